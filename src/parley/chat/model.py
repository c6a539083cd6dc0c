"""The chat's names in one place: the configuration, the error, and every string the chat
persists (statuses, kinds, categories, continuation names, agent call ops).

These strings are stored in the chat's database; changing one needs a migration.
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

from parley.protocol import chat as cp


class ChatError(Exception):
    """A command the chat refuses, with a reason a person can act on."""


RECEIPTS_GROUP_LIMIT: Final = 20  # the default of ChatConfig.receipts_group_limit
# a group's changes (edits, deletions, reactions) that came before their message are held
# for at most a day, and at most this many per group (the oldest are dropped first)
HELD_CHANGE_TTL: Final = 86400.0
HELD_CHANGES_MAX: Final = 100


@dataclass
class ChatConfig:
    db_prefix: Path
    relays: list[str]
    # The host re-introduces a pair of members that makes no progress: the first time
    # `intro_timeout` after the introduction's last change, then each time `intro_backoff`
    # times later, up to `intro_timeout_max`; each wait varies by up to ±`intro_jitter`
    # (a share of it), so that stuck pairs do not all come back at once.
    intro_timeout: float = 90.0
    intro_backoff: float = 2.0
    intro_timeout_max: float = 900.0
    intro_jitter: float = 0.2
    intro_check_interval: float = 10.0  # how often the host looks for such pairs
    # delivery receipts are sent in groups of at most this many members (when on)
    receipts_group_limit: int = RECEIPTS_GROUP_LIMIT
    # when a connection cannot decrypt, re-negotiate its keys at once (else: `/sync`)
    ratchet_auto_sync: bool = True
    agent: dict[str, Any] = field(default_factory=dict)  # extra AgentConfig settings
    # a passphrase: both databases (chat and agent) are encrypted with SQLCipher
    database_key: str | None = field(default=None, repr=False)


def intro_delay(config: ChatConfig, attempts: int, jitter: float = 0.0) -> float:
    """How long the host waits, after an introduction's last change, before re-introducing
    the pair, when the introduction was sent `attempts` times: `intro_timeout`, times
    `intro_backoff` for each attempt after the first, at most `intro_timeout_max`; `jitter`
    (from -1 to 1) varies it by that share of `intro_jitter`."""
    base = config.intro_timeout * config.intro_backoff ** min(max(attempts - 1, 0), 30)
    base = min(base, max(config.intro_timeout_max, config.intro_timeout))
    return base * (1.0 + config.intro_jitter * max(-1.0, min(1.0, jitter)))


def safe_name(name: str) -> str:
    """A name as shown and as commands name it: control, format (zero-width, direction
    overrides) and other invisible characters escaped as `\\uXXXX`, so that no name can
    look like another."""
    out = []
    for ch in name:
        if unicodedata.category(ch) in ("Cc", "Cf", "Co", "Cs", "Cn", "Zl", "Zp"):
            code = ord(ch)
            out.append(f"\\u{code:04x}" if code <= 0xFFFF else f"\\U{code:08x}")
        else:
            out.append(ch)
    return "".join(out)


def member_role(role: str) -> cp.MemberRole:
    """A stored role as the protocol's type (the chat stores only valid roles)."""
    if role not in cp.MEMBER_ROLES:
        raise ChatError(f"unknown role {role}")
    return role


def text_message(text: str, quote: cp.QuotedMsg | None = None) -> cp.ChatMessage:
    """An `x.msg.new` with text (replying to `quote`), or the reason it cannot be sent."""
    try:
        msg = cp.make(cp.XMsgNew(cp.TextContent(text), quote))
        cp.encode_chat_message(msg)
    except cp.ChatMessageError as e:
        raise ChatError(f"cannot send this message: {e.reason}") from e
    return msg


def profile(display_name: str, full_name: str) -> cp.Profile:
    try:
        return cp.Profile(display_name, full_name)
    except (cp.ChatMessageError, ValueError) as e:
        raise ChatError(str(e)) from e


# connection statuses
C_NEW: Final = "new"
C_JOINED: Final = "joined"
C_REQUESTED: Final = "requested"
C_ACCEPTED: Final = "accepted"
C_SND_READY: Final = "snd-ready"
C_READY: Final = "ready"
C_FAILED: Final = "failed"
C_DELETED: Final = "deleted"

# connection kinds
K_CONTACT: Final = "contact"
K_MEMBER_GROUP: Final = "member_group"
K_MEMBER_DIRECT: Final = "member_direct"
K_ADDRESS: Final = "address"  # our contact address or a group's link (many join it)

# long-term links (`user_contact_links`) and the requests received on them
L_CREATING: Final = "creating"  # the agent is making the link
L_ACTIVE: Final = "active"
L_DELETED: Final = "deleted"
R_PENDING: Final = "pending"  # waiting for /ac or /rc
R_ACCEPTED: Final = "accepted"
R_REJECTED: Final = "rejected"
R_KNOWN: Final = "known"  # from someone who is a contact already: not a new contact
R_GROUP: Final = "group"  # on a group link: accepted as a member

# contact statuses
CT_CONNECTING: Final = "connecting"
CT_READY: Final = "ready"
CT_DELETED: Final = "deleted"

# group statuses
G_INVITED: Final = "invited"
G_JOINING: Final = "joining"
G_ACTIVE: Final = "active"
G_LEFT: Final = "left"
G_REMOVED: Final = "removed"
G_DELETED: Final = "deleted"

# member statuses (simplex-chat's values)
M_INVITED: Final = "memInvited"
M_INTRODUCED: Final = "memIntroduced"
M_INTRO_INVITED: Final = "memIntroInvited"
M_ACCEPTED: Final = "memAccepted"
M_ANNOUNCED: Final = "memAnnounced"
M_CONNECTED: Final = "memConnected"
M_COMPLETE: Final = "memComplete"
M_CREATOR: Final = "memCreator"
M_LEFT: Final = "memLeft"
M_REMOVED: Final = "memRemoved"
ACTIVE_MEMBER: Final = (M_CONNECTED, M_COMPLETE, M_CREATOR)
GONE_MEMBER: Final = (M_LEFT, M_REMOVED)

# member categories
CAT_USER: Final = "user"
CAT_INVITEE: Final = "invitee"
CAT_HOST: Final = "host"
CAT_PRE: Final = "pre"
CAT_POST: Final = "post"

# introductions: which side keeps the row, and its statuses on each side
SIDE_HOST: Final = "host"  # the host: introduced `to_member` to the newcomer `re_member`
SIDE_INVITEE: Final = "invitee"  # the newcomer: was introduced to `to_member`
I_SENT: Final = "sent"  # (host) x.grp.mem.intro queued
I_FWD: Final = "fwd"  # (host) the newcomer's links forwarded in x.grp.mem.fwd
I_NEW: Final = "new"  # (newcomer) links being made
I_INV_SENT: Final = "inv_sent"  # (newcomer) x.grp.mem.inv queued
I_CONNECTED: Final = "connected"  # (both) the pair connected

# chat items
D_SND: Final = "snd"
D_RCV: Final = "rcv"
ITEM_SENDING: Final = "sending"
ITEM_RECEIVED: Final = "received"
ITEM_SENT: Final = "sent"
ITEM_ERROR: Final = "error"
ITEM_RCVD: Final = "rcvd"  # a delivery receipt came back (sndRcvd, ok)
ITEM_RCVD_BAD: Final = "rcvd-bad-hash"  # a receipt with another hash (sndRcvd, badMsgHash)

# item content types (simplex-chat's names)
IC_TEXT: Final = "text"
IC_INTEGRITY: Final = "rcvIntegrityError"
IC_CONN_EVENT: Final = "rcvConnEvent"  # e.g. the encryption was re-negotiated
# how an item was deleted for everyone
DEL_MARKED: Final = "deleted"
DEL_MODERATED: Final = "moderated"

# continuations (`commands` rows): statuses and the functions that run on completion
CMD_NEW: Final = "new"  # stored, the agent call not issued yet
CMD_ISSUED: Final = "issued"
CMD_DONE: Final = "done"
CMD_FAILED: Final = "failed"
CMD_FINISHED: Final = (CMD_DONE, CMD_FAILED)
FN_CONTACT_INVITATION_CREATED: Final = "contact_invitation_created"
FN_CONTACT_JOINED: Final = "contact_joined"
FN_GROUP_JOINED: Final = "group_joined"
FN_JOINED: Final = "joined"  # an introduced member's links (step 6)
FN_ALLOWED: Final = "allowed"
FN_MEMBER_INVITATION_CREATED: Final = "member_invitation_created"
FN_INTRO_LINK_CREATED: Final = "intro_link_created"
FN_ADDRESS_CREATED: Final = "address_created"  # CREATE of our address or a group link
FN_ADDRESS_JOINED: Final = "address_joined"  # JOIN of someone's address: request sent
FN_REQUEST_ACCEPTED: Final = "request_accepted"  # ACCEPT of a contact request

# agent calls stored with a continuation (`agent_call` JSON, key "op")
OP_CREATE: Final = "create"
OP_JOIN: Final = "join"
OP_ALLOW: Final = "allow"
OP_ACCEPT: Final = "accept"

# corr ids of agent commands that have no continuation
ACK_PREFIX: Final = "ack:"
DEL_PREFIX: Final = "del:"

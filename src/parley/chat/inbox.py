"""Received chat messages: the connection's contact or member is looked up once, then one
handler per chat event runs, found in a table (as simplex-chat's Subscriber does); and the
agent's reports on sent messages.

The functions run inside one transaction and return what to do after the commit.
"""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Callable
from enum import Enum

from parley.chat import contacts, groups, introductions, items, profiles, store
from parley.chat import events as cev
from parley.chat.effects import Effects
from parley.chat.groups import GroupMessage
from parley.chat.model import (
    C_DELETED,
    CAT_HOST,
    CAT_INVITEE,
    CAT_POST,
    CAT_PRE,
    G_DELETED,
    K_CONTACT,
    RECEIPTS_GROUP_LIMIT,
    ChatConfig,
)
from parley.protocol import chat as cp

log = logging.getLogger(__name__)

ContactHandler = Callable[
    [sqlite3.Connection, store.UserRow, store.ContactRow, cp.ChatMessage], Effects
]
GroupHandler = Callable[[sqlite3.Connection, GroupMessage], Effects]


class Sender(Enum):
    """Whom a group event is accepted from."""

    ANY = "any member"  # (the handler checks the sender's role where it matters)
    HOST = "the host"  # the member who invited us
    TO_HOST = "a member we invited (we are its host)"


CONTACT_EVENTS: dict[type[cp.Params], ContactHandler] = {
    cp.XMsgNew: contacts.received_text,
    cp.XMsgUpdate: items.contact_change,
    cp.XMsgDel: items.contact_change,
    cp.XMsgReact: items.contact_change,
    cp.XGrpInv: groups.invitation_received,
    cp.XInfo: profiles.contact_updated,
}

GROUP_EVENTS: dict[type[cp.Params], tuple[Sender, GroupHandler]] = {
    cp.XMsgNew: (Sender.ANY, lambda c, g: _group_text(c, g)),
    cp.XMsgUpdate: (Sender.ANY, items.group_update),
    cp.XMsgDel: (Sender.ANY, items.group_delete),
    cp.XMsgReact: (Sender.ANY, items.group_react),
    # from the member that introduced us to the author, or the author to us (checked there)
    cp.XGrpMsgForward: (Sender.ANY, lambda c, g: _forwarded(c, g)),
    cp.XGrpMemNew: (Sender.ANY, groups.member_announced),  # from the newcomer's host
    cp.XGrpMemIntro: (Sender.HOST, introductions.introduced),
    cp.XGrpMemFwd: (Sender.ANY, introductions.forwarded),  # from the newcomer's host
    cp.XGrpMemInv: (Sender.TO_HOST, introductions.links_received),
    cp.XGrpMemCon: (Sender.TO_HOST, introductions.member_con),
    cp.XGrpMemConAll: (Sender.TO_HOST, introductions.member_con_all),
    cp.XGrpLeave: (Sender.ANY, groups.member_left),
    cp.XGrpMemDel: (Sender.ANY, groups.member_deleted),  # the roles are checked there
    cp.XGrpMemRole: (Sender.ANY, groups.member_role_changed),
    cp.XGrpDel: (Sender.ANY, groups.group_deleted),  # an owner (checked there)
    cp.XInfo: (Sender.ANY, profiles.member_updated),
    cp.XGrpInfo: (Sender.ANY, profiles.group_updated),  # the role is checked there
}


# the events whose copy inside x.grp.msg.forward the receiver acts on (as from the author)
FORWARDED_EVENTS: dict[type[cp.Params], GroupHandler] = {
    cp.XMsgUpdate: items.group_update,
    cp.XMsgDel: items.group_delete,
    cp.XMsgReact: items.group_react,
}


def on_msg(
    c: sqlite3.Connection,
    agent_conn: str,
    body: bytes,
    agent_msg_id: int | None = None,
    integrity: str = "ok",
    config: ChatConfig | None = None,
) -> Effects:
    """A chat message on an agent connection (agent message `agent_msg_id`); a repeat
    (same message id from the same contact or member) changes nothing. A new message
    stored as an item is acknowledged with a delivery receipt when the chat has receipts
    on (`Effects.receipt`); so is the same agent message shown again after a restart, but
    never a duplicate that came in another agent message. An integrity report of the
    agent becomes an item of the chat, once."""
    found = store.connection_and_user(c, agent_conn)
    if found is None or found[0].status == C_DELETED:
        return Effects()
    conn, user = found
    fx = Effects()
    if integrity != "ok" and agent_msg_id is not None:
        fx.merge(items.integrity_item(c, user, conn, integrity, agent_msg_id))
    try:
        msg = cp.decode_chat_message(body)
    except cp.ChatMessageError as e:
        log.warning("dropped a bad chat message on %s: %s", agent_conn, e)
        return fx
    agent_msg = (agent_conn, agent_msg_id) if agent_msg_id is not None else None
    if conn.kind == K_CONTACT:
        scope = f"conn:{agent_conn}"
        if not store.first_seen(c, scope, msg.msg_id, agent_msg):
            return fx.merge(_receipt_again(c, config, user, conn, None, scope, msg, agent_msg))
        fx.merge(_contact_message(c, user, conn, msg))
        group_id = None
    else:
        assert conn.member_row is not None
        sender = store.member(c, conn.member_row)
        if sender is None:
            return fx
        scope = store.member_scope(sender.group_id, sender.member_id)
        group_id = sender.group_id
        if not store.first_seen(c, scope, msg.msg_id, agent_msg):
            return fx.merge(_receipt_again(c, config, user, conn, group_id, scope, msg, agent_msg))
        fx.merge(_group_message(c, user, conn, sender, msg))
    if _stored_item(msg, fx):
        fx.receipt = _receipts_on(c, config, user, conn, group_id)
    fx.label = f"msg:{msg.event}"
    return fx


def _stored_item(msg: cp.ChatMessage, fx: Effects) -> bool:
    return isinstance(msg.params, cp.XMsgNew) and any(
        isinstance(e, cev.NewChatItem) for e in fx.events
    )


def _receipts_on(
    c: sqlite3.Connection,
    config: ChatConfig | None,
    user: store.UserRow,
    conn: store.ConnectionRow,
    group_id: int | None,
) -> bool:
    limit = config.receipts_group_limit if config else RECEIPTS_GROUP_LIMIT
    return items.receipts_on(c, limit, user.user_id, conn.contact_id, group_id)


def _receipt_again(
    c: sqlite3.Connection,
    config: ChatConfig | None,
    user: store.UserRow,
    conn: store.ConnectionRow,
    group_id: int | None,
    scope: str,
    msg: cp.ChatMessage,
    agent_msg: tuple[str, int] | None,
) -> Effects:
    """A message seen before: if this very agent message brought it (shown again after a
    restart before its ack), the receipt it earned is still owed (the agent sends one
    receipt per message at most). So is one for the author's own copy of a group message
    that came first in the host's forward: the author counts receipts per member."""
    fx = Effects()
    if (
        agent_msg is not None
        and isinstance(msg.params, cp.XMsgNew)
        and (
            store.first_brought_by(c, scope, msg.msg_id, agent_msg)
            or (group_id is not None and store.first_came_forwarded(c, scope, msg.msg_id))
        )
    ):
        fx.receipt = _receipts_on(c, config, user, conn, group_id)
    return fx


def _forwarded(c: sqlite3.Connection, g: GroupMessage) -> Effects:
    """`x.grp.msg.forward`: edits, deletions and reactions are handled as from their
    author (deduplicated by the author's msgId); the rest as `groups.received_forward`."""
    assert isinstance(g.msg.params, cp.XGrpMsgForward)
    author_id, inner = g.msg.params.member_id, g.msg.params.msg
    if not _host_of_pair(c, g, author_id):
        log.info("ignored a forward from %s about %s", g.sender.display_name, author_id)
        return Effects()
    handler = FORWARDED_EVENTS.get(type(inner.params))
    if handler is None:
        fx = groups.received_forward(c, g)
        if isinstance(inner.params, cp.XMsgNew):  # changes that came before it apply now
            fx.merge(items.apply_held(c, g, inner.msg_id))
        return fx
    author = store.member_by_id(c, g.group_id, author_id)
    if author is None:
        return Effects()
    if not store.first_seen(c, store.member_scope(g.group_id, author_id), inner.msg_id):
        return Effects()
    return handler(c, GroupMessage(g.user, g.conn, author, g.group, g.me, inner, forwarded=True))


def _host_of_pair(c: sqlite3.Connection, g: GroupMessage, author_id: str) -> bool:
    """Whether the sender of a forward hosts the introduction between us and its author:
    it introduced the author to us (the author joined after us), or it is our host and
    the author was introduced to us (we are the newcomer)."""
    author = store.member_by_id(c, g.group_id, author_id)
    if author is None or author.category not in (CAT_PRE, CAT_POST):
        return False
    return groups.introducer(c, author) == g.sender.member_row


def _group_text(c: sqlite3.Connection, g: GroupMessage) -> Effects:
    """`x.msg.new` from a member; then the changes of it that came before it."""
    return groups.received_text(c, g).merge(items.apply_held(c, g, g.msg.msg_id))


def _contact_message(
    c: sqlite3.Connection, user: store.UserRow, conn: store.ConnectionRow, msg: cp.ChatMessage
) -> Effects:
    contact = store.contact_by_id(c, conn.contact_id) if conn.contact_id else None
    if contact is None:
        return Effects()
    handler = CONTACT_EVENTS.get(type(msg.params))
    if handler is None:
        log.info("ignored %s from contact %s", msg.event, contact.local_name)
        return Effects()
    return handler(c, user, contact, msg)


def _group_message(
    c: sqlite3.Connection,
    user: store.UserRow,
    conn: store.ConnectionRow,
    sender: store.MemberRow,
    msg: cp.ChatMessage,
) -> Effects:
    group = store.group_by_id(c, sender.group_id)
    if group is None or group.status == G_DELETED:
        return Effects()
    me = store.user_member(c, group.group_id)
    entry = GROUP_EVENTS.get(type(msg.params))
    if entry is None or not _accepted(entry[0], sender, me):
        log.info("ignored %s from member %s", msg.event, sender.display_name)
        return Effects()
    return entry[1](c, GroupMessage(user, conn, sender, group, me, msg))


def _accepted(who: Sender, sender: store.MemberRow, me: store.MemberRow) -> bool:
    match who:
        case Sender.HOST:
            return sender.category == CAT_HOST
        case Sender.TO_HOST:
            return sender.category == CAT_INVITEE
    return True


def on_rcvd(c: sqlite3.Connection, agent_conn: str, agent_msg_id: int, status: str) -> Effects:
    """A delivery receipt (RCVD) for one of our messages."""
    return items.on_rcvd(c, agent_conn, agent_msg_id, status)


def on_sent(
    c: sqlite3.Connection, agent_conn: str, agent_msg_id: int, status: str, reason: str
) -> Effects:
    """SENT or MERR of a message: its chat item's status, if it carried one."""
    item_id = store.settle_delivery(c, agent_conn, agent_msg_id, status)
    if item_id is None:
        return Effects()
    return items.delivery_settled(c, item_id, agent_conn, status, reason)

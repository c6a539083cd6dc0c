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

from parley.chat import contacts, groups, introductions, profiles, store
from parley.chat import events as cev
from parley.chat.effects import Effects
from parley.chat.groups import GroupMessage
from parley.chat.model import C_DELETED, CAT_HOST, G_DELETED, K_CONTACT, M_CREATOR
from parley.protocol import chat as cp

log = logging.getLogger(__name__)

ContactHandler = Callable[
    [sqlite3.Connection, store.UserRow, store.ContactRow, cp.ChatMessage], Effects
]
GroupHandler = Callable[[sqlite3.Connection, GroupMessage], Effects]


class Sender(Enum):
    """Whom a group event is accepted from."""

    ANY = "any member"
    HOST = "the host"  # the member who invited us
    TO_HOST = "a member, by us as the host"  # we created the group


CONTACT_EVENTS: dict[type[cp.Params], ContactHandler] = {
    cp.XMsgNew: contacts.received_text,
    cp.XGrpInv: groups.invitation_received,
    cp.XInfo: profiles.contact_updated,
}

GROUP_EVENTS: dict[type[cp.Params], tuple[Sender, GroupHandler]] = {
    cp.XMsgNew: (Sender.ANY, groups.received_text),
    cp.XGrpMsgForward: (Sender.HOST, groups.received_forward),
    cp.XGrpMemNew: (Sender.HOST, groups.member_announced),
    cp.XGrpMemIntro: (Sender.HOST, introductions.introduced),
    cp.XGrpMemFwd: (Sender.HOST, introductions.forwarded),
    cp.XGrpMemInv: (Sender.TO_HOST, introductions.links_received),
    cp.XGrpMemCon: (Sender.TO_HOST, introductions.member_con),
    cp.XGrpMemConAll: (Sender.TO_HOST, introductions.member_con_all),
    cp.XGrpLeave: (Sender.ANY, groups.member_left),
    cp.XGrpMemDel: (Sender.ANY, groups.member_deleted),  # the roles are checked there
    cp.XGrpMemRole: (Sender.ANY, groups.member_role_changed),
    cp.XGrpDel: (Sender.HOST, groups.group_deleted),
    cp.XInfo: (Sender.ANY, profiles.member_updated),
    cp.XGrpInfo: (Sender.ANY, profiles.group_updated),  # the role is checked there
}


def on_msg(c: sqlite3.Connection, agent_conn: str, body: bytes) -> Effects:
    """A chat message on an agent connection; a repeat (same message id from the same
    contact or member) changes nothing."""
    found = store.connection_and_user(c, agent_conn)
    if found is None or found[0].status == C_DELETED:
        return Effects()
    conn, user = found
    try:
        msg = cp.decode_chat_message(body)
    except cp.ChatMessageError as e:
        log.warning("dropped a bad chat message on %s: %s", agent_conn, e)
        return Effects()
    if conn.kind == K_CONTACT:
        if not store.first_seen(c, f"conn:{agent_conn}", msg.msg_id):
            return Effects()
        fx = _contact_message(c, user, conn, msg)
    else:
        assert conn.member_row is not None
        sender = store.member(c, conn.member_row)
        if sender is None:
            return Effects()
        if not store.first_seen(
            c, store.member_scope(sender.group_id, sender.member_id), msg.msg_id
        ):
            return Effects()
        fx = _group_message(c, user, conn, sender, msg)
    fx.label = f"msg:{msg.event}"
    return fx


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
            return me.status == M_CREATOR
    return True


def on_sent(
    c: sqlite3.Connection, agent_conn: str, agent_msg_id: int, status: str, reason: str
) -> Effects:
    """SENT or MERR of a message: its chat item's status, if it carried one."""
    item_id = store.settle_delivery(c, agent_conn, agent_msg_id, status)
    if item_id is None:
        return Effects()
    return Effects(events=[cev.ChatItemStatus(item_id, status, reason)])

"""The handshake events of a connection (CONF, INFO, CON) and the continuations of JOIN and
ALLOW: who the peer is, and what its connection being ready means for a contact or a member.

The functions taking a database connection run inside one transaction and return what to
do after the commit (`Effects`).
"""

from __future__ import annotations

import logging
import sqlite3

from parley.agent import events as aev
from parley.chat import (
    connections,
    contacts,
    group_links,
    groups,
    introductions,
    model,
    store,
)
from parley.chat.effects import Completion, Effects, allow_call
from parley.chat.model import (
    C_ACCEPTED,
    C_DELETED,
    C_FAILED,
    C_JOINED,
    C_NEW,
    C_READY,
    C_REQUESTED,
    C_SND_READY,
    CAT_HOST,
    CAT_INVITEE,
    FN_ALLOWED,
    K_CONTACT,
    K_MEMBER_GROUP,
    M_ACCEPTED,
    M_INVITED,
    ChatConfig,
)
from parley.protocol import chat as cp

log = logging.getLogger(__name__)

UNEXPECTED_MEMBER = "x.grp.mem.info from an unexpected member"


def _profile(user: store.UserRow) -> cp.Profile:
    return cp.Profile(user.display_name, user.full_name)


def _decode(
    c: sqlite3.Connection, conn: store.ConnectionRow, info: bytes
) -> cp.ChatMessage | Effects:
    """The peer's connection info, or the failed connection if it is not a chat message."""
    try:
        return cp.decode_chat_message(info)
    except cp.ChatMessageError as e:
        return connections.fail(c, conn.connection_id, f"bad info: {e}")


def _check_member_info(
    c: sqlite3.Connection, conn: store.ConnectionRow, info: cp.XGrpMemInfo
) -> store.MemberRow | None:
    """The member a connection is for, if x.grp.mem.info names it. Its name stays the one
    the host announced (and made unique in the group): a different name here cannot take
    another member's place."""
    m = store.member(c, conn.member_row) if conn.member_row else None
    if m is None or m.member_id != info.member_id:
        return None  # a mixed-up link: the connection is not the member's
    return m


def on_conf(c: sqlite3.Connection, agent_conn: str, conf_id: str, info: bytes) -> Effects:
    """CONF: the joining peer's info; allow it with ours (OK: `allowed`). On a contact
    connection `x.info`; on the host's group link `x.grp.acpt` (seed #1486); on an
    introduced member's connections `x.grp.mem.info` (seed #1419 and #1495)."""
    found = store.connection_and_user(c, agent_conn)
    if found is None or found[0].status not in (C_NEW, C_REQUESTED):
        return Effects()
    conn, user = found
    if store.allow_under_way(c, conn.connection_id):
        return Effects()  # an allow is already under way: the CONF was replayed
    msg = _decode(c, conn, info)
    if isinstance(msg, Effects):
        return msg
    store.set_connection(c, conn.connection_id, status=C_REQUESTED)
    reply: cp.Params
    match conn.kind, msg.params:
        case model.K_CONTACT, cp.XInfo(profile):
            contacts.contact_for(c, user, conn, profile)
            reply = cp.XOk(_profile(user))
        case model.K_CONTACT, cp.XGrpLinkMem() as link_mem if conn.link is not None:
            answer = group_links.accepted(c, user, conn, link_mem)
            if isinstance(answer, str):
                return connections.fail(c, conn.connection_id, answer)
            reply = answer
        case model.K_MEMBER_GROUP, cp.XGrpAcpt(member_id) if conn.member_row is not None:
            m = store.member(c, conn.member_row)
            assert m is not None
            if m.member_id != member_id:
                return connections.fail(c, conn.connection_id, "x.grp.acpt from the wrong member")
            store.set_member(c, m.member_row, status=M_ACCEPTED)
            reply = cp.XOk(_profile(user))
        case ((model.K_MEMBER_GROUP | model.K_MEMBER_DIRECT), cp.XGrpMemInfo() as mem_info):
            m = _check_member_info(c, conn, mem_info)
            if m is None:
                return connections.fail(c, conn.connection_id, UNEXPECTED_MEMBER)
            me = store.user_member(c, m.group_id)
            reply = cp.XGrpMemInfo(me.member_id, _profile(user))
        case _:
            return connections.fail(
                c, conn.connection_id, f"unexpected {msg.event} as confirmation"
            )
    fx = Effects(label=f"conf:{msg.event}")
    call = allow_call(agent_conn, conf_id, cp.make(reply))
    fx.call(c, user.user_id, conn.connection_id, FN_ALLOWED, {}, call)
    return fx


def allowed(c: sqlite3.Connection, k: Completion) -> Effects:
    """Continuation of an ALLOW: wait for CON."""
    if not isinstance(k.event, aev.Ok):
        return connections.fail(c, k.connection_id, k.reason)
    assert k.connection_id is not None
    conn = store.connection(c, k.connection_id)
    if conn is not None and conn.status in (C_NEW, C_REQUESTED):
        store.set_connection(c, k.connection_id, status=C_ACCEPTED)
    return Effects()


def joined(c: sqlite3.Connection, k: Completion) -> Effects:
    """Continuation of a JOIN (a contact's link, seed #779's group link, or seed #2147's
    links of an introduced member): wait for INFO."""
    if not isinstance(k.event, aev.Ok):
        return connections.fail(c, k.connection_id, k.reason)
    assert k.connection_id is not None
    conn = store.connection(c, k.connection_id)
    if conn is not None and conn.status == C_NEW:
        store.set_connection(c, k.connection_id, status=C_JOINED)
    gid = k.data.get("group_id")
    if gid is not None:
        me = store.user_member(c, gid)
        if me.status == M_INVITED:
            store.set_member(c, me.member_row, status=M_ACCEPTED)
    return Effects()


def on_info(c: sqlite3.Connection, agent_conn: str, info: bytes) -> Effects:
    """INFO: the initiator's info on a connection we joined (`x.ok` with its profile, or
    `x.grp.mem.info`)."""
    found = store.connection_and_user(c, agent_conn)
    if found is None:
        return Effects()
    conn, user = found
    msg = _decode(c, conn, info)
    if isinstance(msg, Effects):
        return msg
    if conn.status in (C_NEW, C_JOINED):
        store.set_connection(c, conn.connection_id, status=C_SND_READY)
    match conn.kind, msg.params:
        case model.K_CONTACT, cp.XOk(profile):
            contacts.contact_for(c, user, conn, profile)
        case ((model.K_MEMBER_GROUP | model.K_MEMBER_DIRECT), cp.XGrpMemInfo() as mem_info):
            if _check_member_info(c, conn, mem_info) is None:
                return connections.fail(c, conn.connection_id, UNEXPECTED_MEMBER)
        case _:
            pass  # x.ok from the host on the group link: nothing to record
    return Effects()


def needs_peer_info(c: sqlite3.Connection, agent_conn: str) -> bool:
    """Whether a CON needs the peer's info from the agent: a contact connection without
    its contact (its INFO was lost, or carried no profile)."""
    conn = store.connection_by_agent_id(c, agent_conn)
    return conn is not None and conn.kind == K_CONTACT and conn.contact_id is None


def on_con(
    c: sqlite3.Connection, config: ChatConfig, agent_conn: str, peer_info: bytes | None
) -> Effects:
    """CON: the connection is ready; what that means depends on whose it is."""
    found = store.connection_and_user(c, agent_conn)
    if found is None or found[0].status in (C_READY, C_DELETED):
        return Effects()
    conn, user = found
    if conn.kind == K_CONTACT:
        return contacts.connection_ready(c, user, conn, peer_info)
    if conn.status == C_FAILED:
        # failed already, with its reason (a mixed-up x.grp.mem.info, say): it does not
        # become ready silently; a re-introduction replaces it
        log.warning("member connection %s failed before CON: %s", agent_conn, conn.last_error)
        return Effects()
    store.set_connection(c, conn.connection_id, status=C_READY, last_error=None)
    fx = _member_connection_ready(c, config, conn)
    fx.label = fx.label or "con:member"
    return fx


def _member_connection_ready(
    c: sqlite3.Connection, config: ChatConfig, conn: store.ConnectionRow
) -> Effects:
    assert conn.member_row is not None
    m = store.member(c, conn.member_row)
    assert m is not None
    group = store.group_by_id(c, m.group_id)
    assert group is not None
    me = store.user_member(c, m.group_id)
    fx = Effects()
    if conn.kind == K_MEMBER_GROUP and conn.agent_conn_id is not None:
        groups.release_held(c, m.member_row, conn.agent_conn_id, fx)
    if m.category == CAT_INVITEE:  # we invited it: we are its host
        return fx.merge(introductions.invitee_connected(c, config, group, m))
    if m.category == CAT_HOST:
        fx.merge(groups.host_connected(c, group, me, m))
        # introductions that came before this CON: their links go to the host now
        introductions.send_waiting_links(c, group.group_id, fx)
        return fx
    return fx.merge(introductions.member_connected(c, config, group, me, m))

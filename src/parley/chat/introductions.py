"""Introductions: how the members of a group connect to each other (DESIGN §4 steps 3 to 7,
host A, newcomer B, existing member C), from `x.grp.mem.intro` to `x.grp.mem.con`.

Each step's function names the call site of seed/group-connections-recovery.md it makes
durable. Each runs inside one transaction (its first argument, the database connection)
and returns, or adds to, what to do after the commit (`Effects`). The CONF, INFO and CON
events of step 7 arrive through `handshake`.
"""

from __future__ import annotations

import random
import sqlite3

from parley.agent import events as aev
from parley.chat import connections, store, views
from parley.chat import events as cev
from parley.chat.effects import Completion, Effects, create_call, join_call
from parley.chat.groups import (
    ADMIN_RANK,
    GroupMessage,
    a_role,
    announced_member,
    introducer,
    introducer_refusal,
    member_info,
    rank,
    refused,
)
from parley.chat.model import (
    ACTIVE_MEMBER,
    C_FAILED,
    C_READY,
    CAT_INVITEE,
    CAT_POST,
    CAT_PRE,
    CAT_USER,
    FN_INTRO_LINK_CREATED,
    FN_JOINED,
    I_CONNECTED,
    I_FWD,
    I_INV_SENT,
    I_NEW,
    I_SENT,
    K_MEMBER_DIRECT,
    K_MEMBER_GROUP,
    M_COMPLETE,
    M_CONNECTED,
    M_INTRO_INVITED,
    M_INTRODUCED,
    SIDE_HOST,
    SIDE_INVITEE,
    ChatConfig,
    intro_delay,
)
from parley.protocol import chat as cp

# ---------------------------------------------------------------- step 3 (host A)


def invitee_connected(
    c: sqlite3.Connection,
    config: ChatConfig,
    group: store.GroupRow,
    b: store.MemberRow,
) -> Effects:
    """Step 3 (host), the CON after seed #1486 (allowConnection on XGrpAcpt): the invitee
    is connected: announce it (x.grp.mem.new) and introduce everyone (x.grp.mem.intro)."""
    store.set_member(c, b.member_row, status=M_CONNECTED)
    fx = Effects(
        events=[
            cev.JoinedGroupMember(views.group(c, group.group_id), views.member(c, b.member_row))
        ]
    )
    b_conn = store.member_connection(c, b.member_row, K_MEMBER_GROUP)
    assert b_conn is not None and b_conn.agent_conn_id is not None
    # everyone we are connected to, whoever hosted them: the creator, our own host, the
    # members introduced to us and those who joined after us
    others: list[store.MemberRow] = []
    for m in store.members(c, group.group_id):
        if m.member_row == b.member_row or m.category == CAT_USER:
            continue
        if m.status not in (M_CONNECTED, M_COMPLETE):
            continue
        other_conn = store.member_connection(c, m.member_row, K_MEMBER_GROUP)
        if other_conn is None or other_conn.agent_conn_id is None or other_conn.status != C_READY:
            continue
        others.append(m)
        fx.send(c, other_conn.agent_conn_id, cp.make(cp.XGrpMemNew(member_info(b))))
    for other in others:
        introduce(c, config, fx, group.group_id, b, other, b_conn.agent_conn_id)
    if not others:
        store.set_member(c, b.member_row, status=M_COMPLETE)
    fx.label = "con:invitee"
    return fx


def introduce(
    c: sqlite3.Connection,
    config: ChatConfig,
    fx: Effects,
    group_id: int,
    b: store.MemberRow,
    other: store.MemberRow,
    b_agent_conn: str,
    attempts: int = 1,
) -> None:
    """Record an introduction of `other` to `b` (the `attempts`-th) and queue the
    x.grp.mem.intro; the pair is re-introduced if it makes no progress in time."""
    delay = intro_delay(config, attempts, random.uniform(-1.0, 1.0))
    msg = cp.make(cp.XGrpMemIntro(member_info(other)))
    store.insert_intro(
        c, group_id, SIDE_HOST, b.member_row, other.member_row, I_SENT, msg.msg_id, attempts, delay
    )
    fx.send(c, b_agent_conn, msg)


# ---------------------------------------------------------------- step 4 (newcomer B)


def introduced(c: sqlite3.Connection, g: GroupMessage) -> Effects:
    """Step 4 (newcomer), seed #2112 (createConnection on XGrpMemIntro): the host introduced
    member C: make two links for it (INV: `intro_link_created`)."""
    assert isinstance(g.msg.params, cp.XGrpMemIntro)
    info = g.msg.params.member_info
    group_id = g.group_id
    if rank(g.sender.role) < ADMIN_RANK:
        why = f"x.grp.mem.intro refused: {a_role(g.sender.role)} cannot add members"
        return refused(c, group_id, g.sender, why)
    m = store.member_by_id(c, group_id, info.member_id)
    fx = Effects()
    if m is not None and m.category == CAT_POST and introducer(c, m) != g.sender.member_row:
        # another host introduced it to us already (two hosts caught up with the same
        # pair): that introduction goes on; ours answers when it is done
        if m.status in ACTIVE_MEMBER:
            _tell_host_connected(c, group_id, m, fx)
        return fx
    if m is not None and m.category != CAT_PRE:
        why = f"x.grp.mem.intro refused: {m.display_name} is not a member to connect to"
        return refused(c, group_id, g.sender, why)
    if m is not None:
        if m.status in ACTIVE_MEMBER:
            _tell_host_connected(c, group_id, m, fx)  # the host missed our x.grp.mem.con
            return fx
        # a re-introduction: connections still under way are kept (the member may be
        # about to connect through them) and their links offered again; only failed
        # ones are replaced by new links
        conns = store.member_connections(c, m.member_row)
        current = store.invitee_intros_of(c, m.member_row)
        if conns and current and all(x.status != C_FAILED for x in conns):
            intro = current[-1]
            if intro.group_link and intro.direct_link:
                _send_links(c, intro, m, fx, again=True)
            return fx  # (links not both made yet: they go when they are)
        connections.drop_member_connections(c, m.member_row, fx)
        row = m.member_row
        store.set_member(c, row, status=M_INTRODUCED)
        store.delete_invitee_intros_of(c, row)
    else:
        row = store.insert_member(
            c,
            group_id,
            info.member_id,
            info.member_role,
            CAT_PRE,
            M_INTRODUCED,
            info.profile.display_name,
            info.profile.full_name,
            introduced_by=g.sender.member_row,
        )
    me = store.user_member(c, group_id)
    intro_id = store.insert_intro(
        c, group_id, SIDE_INVITEE, me.member_row, row, I_NEW, cp.new_msg_id()
    )
    for which, kind in (("group", K_MEMBER_GROUP), ("direct", K_MEMBER_DIRECT)):
        conn = store.insert_connection(c, kind, member_row=row)
        data = {"intro_id": intro_id, "which": which}
        fx.call(c, g.user.user_id, conn, FN_INTRO_LINK_CREATED, data, create_call())
    fx.events.append(cev.MemberConnecting(views.group(c, group_id), views.member(c, row)))
    return fx


def intro_link_created(c: sqlite3.Connection, k: Completion) -> Effects:
    """Step 4 (newcomer), the completion of seed #2112's createConnection: one of the two
    links for an introduced member exists; when both do, send x.grp.mem.inv to the host,
    exactly once."""
    intro = store.intro(c, k.data["intro_id"])
    if intro is None:
        return Effects()
    if not isinstance(k.event, aev.Inv):
        store.set_intro(c, intro.intro_id, last_error=k.reason)
        return connections.fail(c, k.connection_id, k.reason)
    assert k.connection_id is not None
    store.set_connection(c, k.connection_id, link=k.event.link)
    column = "group_link" if k.data["which"] == "group" else "direct_link"
    store.set_intro(c, intro.intro_id, **{column: k.event.link})
    intro = store.intro(c, intro.intro_id)
    assert intro is not None
    fx = Effects()
    if intro.status == I_NEW:
        send_links(c, intro, fx)
    return fx


def send_links(c: sqlite3.Connection, intro: store.IntroRow, fx: Effects) -> None:
    """Step 4's end (newcomer): both links for the introduced member exist: x.grp.mem.inv
    to the host. The introduction becomes `inv_sent` only with the message in the outbox;
    while the connection with the host is not ready (an intro can arrive before our own
    CON), it stays `new` and the host's CON sends it (`send_waiting_links`)."""
    if intro.status != I_NEW or not (intro.group_link and intro.direct_link):
        return
    m = store.member(c, intro.to_member)
    if m is not None:
        _send_links(c, intro, m, fx, again=False)


def _send_links(
    c: sqlite3.Connection, intro: store.IntroRow, m: store.MemberRow, fx: Effects, again: bool
) -> None:
    """x.grp.mem.inv with the introduction's links, if the host connection is ready: with
    the introduction's message id the first time, with a new one `again` (a
    re-introduction, which the host must not drop as a repeat)."""
    host_conn = store.host_agent_conn(c, intro.group_id)
    if host_conn is None or not (intro.group_link and intro.direct_link):
        return
    links = cp.IntroInvitation(intro.group_link, intro.direct_link)
    inv = cp.XGrpMemInv(m.member_id, links)
    fx.send(c, host_conn, cp.make(inv) if again else cp.make(inv, msg_id=intro.msg_id))
    if intro.status == I_NEW:
        store.set_intro(c, intro.intro_id, status=I_INV_SENT)
        if m.status == M_INTRODUCED:
            store.set_member(c, m.member_row, status=M_INTRO_INVITED)


def send_waiting_links(c: sqlite3.Connection, group_id: int | None, fx: Effects) -> None:
    """Send the x.grp.mem.inv of every introduction (of one group, or of all) whose two
    links exist but which waited for the connection with the host."""
    for intro in store.invitee_intros_with_links(c, group_id):
        send_links(c, intro, fx)


# ---------------------------------------------------------------- step 5 (host A)


def links_received(c: sqlite3.Connection, g: GroupMessage) -> Effects:
    """Step 5 (host), x.grp.mem.inv from the newcomer about C: forward its links to C in
    x.grp.mem.fwd (no agent call)."""
    assert isinstance(g.msg.params, cp.XGrpMemInv)
    member_id, links = g.msg.params.member_id, g.msg.params.member_intro
    b = g.sender
    other = store.member_by_id(c, g.group_id, member_id)
    fx = Effects()
    if other is None:
        return fx
    rows = store.host_intros_of_pair(c, b.member_row, other.member_row)
    if not rows or rows[0].status == I_CONNECTED:
        return fx
    conn = store.member_connection(c, other.member_row, K_MEMBER_GROUP)
    if conn is None or conn.agent_conn_id is None:
        return fx
    store.set_intro(
        c,
        rows[0].intro_id,
        status=I_FWD,
        group_link=links.group_conn_req,
        direct_link=links.direct_conn_req,
    )
    fx.send(c, conn.agent_conn_id, cp.make(cp.XGrpMemFwd(member_info(b), links)))
    return fx


# ---------------------------------------------------------------- step 6 (existing member C)


def forwarded(c: sqlite3.Connection, g: GroupMessage) -> Effects:
    """Step 6 (existing member), seed #2147 (joinConnection on XGrpMemFwd): join the
    newcomer's two links with x.grp.mem.info (OK: `joined`). The sender is the newcomer's
    host: an admin or owner, and the one that announced it (checked here)."""
    assert isinstance(g.msg.params, cp.XGrpMemFwd)
    info, links = g.msg.params.member_info, g.msg.params.member_intro
    why = introducer_refusal(c, g, info)
    if why is not None:
        return refused(c, g.group_id, g.sender, f"x.grp.mem.fwd refused: {why}")
    fx = Effects()
    m = store.member_by_id(c, g.group_id, info.member_id)
    if m is None:  # the forward came before x.grp.mem.new
        row = announced_member(c, g.group_id, info, g.sender.member_row)
    elif m.status in ACTIVE_MEMBER:
        return fx
    else:
        row = m.member_row
        conns = store.member_connections(c, row)
        joined = {x.link for x in conns if x.status != C_FAILED}
        if joined == {links.group_conn_req, links.direct_conn_req}:
            return fx  # the same links again: the joins are under way
        connections.drop_member_connections(c, row, fx)  # new links of a re-introduction
    mem_info = cp.make(
        cp.XGrpMemInfo(g.me.member_id, cp.Profile(g.user.display_name, g.user.full_name))
    )
    for link, kind in (
        (links.group_conn_req, K_MEMBER_GROUP),
        (links.direct_conn_req, K_MEMBER_DIRECT),
    ):
        conn = store.insert_connection(c, kind, member_row=row)
        store.set_connection(c, conn, link=link)
        fx.call(c, g.user.user_id, conn, FN_JOINED, {}, join_call(link, mem_info))
    return fx


# ---------------------------------------------------------------- step 7 (B and C)


def member_connected(
    c: sqlite3.Connection,
    config: ChatConfig,
    group: store.GroupRow,
    me: store.MemberRow,
    m: store.MemberRow,
) -> Effects:
    """Step 7, the CONs after seed #1419 and #1495 (allowConnection on XGrpMemInfo): an
    introduced member (pre) or one who joined after us (post) is connected when both
    connections are; the newcomer tells the host (x.grp.mem.con, and x.grp.mem.con.all
    when it is connected to everyone introduced). As a host, we then introduce that
    member to those of our invitees that nobody introduced it to (`_catch_up`)."""
    fx = Effects()
    conns = store.member_connections(c, m.member_row)
    if len(conns) < 2 or any(x.status != C_READY for x in conns):
        return fx
    if m.status in ACTIVE_MEMBER:
        return fx
    store.set_member(c, m.member_row, status=M_CONNECTED, last_error=None)
    fx.events.append(
        cev.ConnectedToGroupMember(views.group(c, group.group_id), views.member(c, m.member_row))
    )
    if m.category == CAT_PRE:  # tell the host which introduction finished
        store.invitee_intros_connected(c, m.member_row)
        host_conn = _tell_host_connected(c, group.group_id, m, fx)
        if host_conn is not None and store.unconnected_pre_members(c, group.group_id) == 0:
            fx.send(c, host_conn, cp.make(cp.XGrpMemConAll(me.member_id)))
    elif _introduced_by_another_host(c, m):
        _tell_host_connected(c, group.group_id, m, fx)  # our host may have introduced it too
    _catch_up(c, config, fx, group.group_id, m)
    return fx


def _introduced_by_another_host(c: sqlite3.Connection, m: store.MemberRow) -> bool:
    host = store.host_member(c, m.group_id)
    return host is not None and introducer(c, m) != host.member_row


def _catch_up(
    c: sqlite3.Connection, config: ChatConfig, fx: Effects, group_id: int, m: store.MemberRow
) -> None:
    """(a host) We just connected to `m`, a member hosted by someone else. An invitee of
    ours that joined while `m` was joining elsewhere may never have been introduced to
    it: neither host was connected to the other's newcomer at its CON. Of the two hosts,
    the one whose newcomer has the greater member id introduces the pair (the other
    skips it), so a pair is introduced at most once this way; if the pair was introduced
    at a CON after all, the invitee answers with x.grp.mem.con."""
    m_host = introducer(c, m)
    for n in store.members(c, group_id):
        if n.category != CAT_INVITEE or n.status not in (M_CONNECTED, M_COMPLETE):
            continue
        if n.member_row == m_host or n.member_id < m.member_id:
            continue  # n introduced m to us (it hosts m), or m's host catches up with n
        if store.host_pair_introduced(c, n.member_row, m.member_row):
            continue
        conn = store.member_connection(c, n.member_row, K_MEMBER_GROUP)
        if conn is None or conn.agent_conn_id is None or conn.status != C_READY:
            continue
        introduce(c, config, fx, group_id, n, m, conn.agent_conn_id)


def _tell_host_connected(
    c: sqlite3.Connection, group_id: int, m: store.MemberRow, fx: Effects
) -> str | None:
    """x.grp.mem.con about `m` to the host, if the host connection is ready (returned)."""
    host_conn = store.host_agent_conn(c, group_id)
    if host_conn is not None:
        fx.send(c, host_conn, cp.make(cp.XGrpMemCon(m.member_id)))
    return host_conn


def member_con(c: sqlite3.Connection, g: GroupMessage) -> Effects:
    """Step 7's end (host), x.grp.mem.con: the sender connected to that member."""
    assert isinstance(g.msg.params, cp.XGrpMemCon)
    other = store.member_by_id(c, g.group_id, g.msg.params.member_id)
    if other is not None:
        if not store.host_pair_introduced(c, g.sender.member_row, other.member_row):
            # another host introduced them: noted, so that we do not catch up with it
            store.insert_intro(
                c,
                g.group_id,
                SIDE_HOST,
                g.sender.member_row,
                other.member_row,
                I_CONNECTED,
                g.msg.msg_id,
            )
        store.host_pair_connected(c, g.sender.member_row, other.member_row)
        _maybe_complete(c, g.sender.member_row)
    return Effects()


def member_con_all(c: sqlite3.Connection, g: GroupMessage) -> Effects:
    """Step 7's end (host), x.grp.mem.con.all: the sender connected to everyone."""
    _maybe_complete(c, g.sender.member_row)
    return Effects()


def _maybe_complete(c: sqlite3.Connection, member_row: int) -> None:
    if store.host_intros_pending(c, member_row) == 0:
        store.set_member(c, member_row, status=M_COMPLETE)

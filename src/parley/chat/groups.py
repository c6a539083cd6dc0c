"""Groups: creating one, inviting and joining (DESIGN §4 steps 1 and 2), messages, leaving,
removal, deletion, and the group events a member receives (but the introductions, in
`introductions`).
"""

from __future__ import annotations

import logging
import sqlite3
from dataclasses import dataclass

from parley.agent import events as aev
from parley.chat import connections, contacts, store, views
from parley.chat import events as cev
from parley.chat.effects import Completion, Effects, create_call, join_call
from parley.chat.model import (
    ACTIVE_MEMBER,
    C_READY,
    CAT_HOST,
    CAT_INVITEE,
    CAT_POST,
    CAT_USER,
    D_RCV,
    D_SND,
    FN_GROUP_JOINED,
    FN_MEMBER_INVITATION_CREATED,
    G_ACTIVE,
    G_INVITED,
    G_JOINING,
    G_LEFT,
    G_REMOVED,
    GONE_MEMBER,
    K_MEMBER_GROUP,
    M_ANNOUNCED,
    M_CONNECTED,
    M_CREATOR,
    M_INVITED,
    M_LEFT,
    M_REMOVED,
    ChatError,
    member_role,
)
from parley.protocol import chat as cp

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class GroupMessage:
    """A chat message received on a member's group or direct connection, with what its
    handler needs: the user, the connection, the sender, the group, our own member row."""

    user: store.UserRow
    conn: store.ConnectionRow
    sender: store.MemberRow
    group: store.GroupRow
    me: store.MemberRow
    msg: cp.ChatMessage
    forwarded: bool = False  # from the host in x.grp.msg.forward; `sender` is the author

    @property
    def group_id(self) -> int:
        return self.group.group_id


def member_info(m: store.MemberRow) -> cp.MemberInfo:
    """A member as the protocol names it (in x.grp.mem.new, .intro and .fwd)."""
    return cp.MemberInfo(m.member_id, member_role(m.role), cp.Profile(m.display_name, m.full_name))


def named(c: sqlite3.Connection, user: store.UserRow, name: str) -> store.GroupRow:
    group = store.group_by_name(c, user.user_id, name.lstrip("#"))
    if group is None:
        raise ChatError(f"no group #{name.lstrip('#')}")
    return group


def member_named(c: sqlite3.Connection, group_id: int, name: str) -> store.MemberRow:
    for m in store.members(c, group_id):
        if m.display_name == name and m.category != CAT_USER:
            return m
    raise ChatError(f"no member {name}")


def rank(role: str) -> int:
    """owner > admin > member > observer (an unknown role ranks lowest)."""
    return cp.MEMBER_ROLES.index(role) if role in cp.MEMBER_ROLES else -1


ADMIN_RANK = cp.MEMBER_ROLES.index("admin")


def a_role(role: str) -> str:
    """`an admin`, `a member`: a role with its article, for reasons people read."""
    return f"{'an' if role[:1] in ('a', 'e', 'i', 'o', 'u') else 'a'} {role}"


def may_manage(actor_role: str, target_role: str, new_role: str | None = None) -> str | None:
    """Why a member with `actor_role` may not remove a member with `target_role` (or
    change its role to `new_role`), or None if it may: admins and owners manage members
    below their own role, and give roles not above their own."""
    if rank(actor_role) < ADMIN_RANK:
        return f"{a_role(actor_role)} cannot manage members (admins and owners can)"
    if rank(target_role) >= rank(actor_role) and actor_role != "owner":
        return f"{a_role(actor_role)} cannot manage a member whose role is {target_role}"
    if new_role is not None and rank(new_role) > rank(actor_role):
        return f"{a_role(actor_role)} cannot give the role {new_role}"
    return None


def may_add(actor_role: str, new_role: str) -> str | None:
    """Why a member with `actor_role` may not bring in a member with `new_role` (invite
    it, accept it through a group link, announce and introduce it), or None if it may:
    admins and owners add members whose role is not above their own."""
    if rank(actor_role) < ADMIN_RANK:
        return f"{a_role(actor_role)} cannot add members (admins and owners can)"
    if rank(new_role) > rank(actor_role):
        return f"{a_role(actor_role)} cannot add a member as {new_role}"
    return None


def hosting(c: sqlite3.Connection, group: store.GroupRow, role: str) -> store.MemberRow:
    """Our member row, if we may bring a member into the group with `role` (we are an
    active admin or owner of an active group), else the reason."""
    me = store.user_member(c, group.group_id)
    if group.status != G_ACTIVE or me.status not in ACTIVE_MEMBER:
        raise ChatError(f"#{group.local_name} is {group.status}: you cannot add members")
    why = may_add(me.role, role)
    if why is not None:
        raise ChatError(f"#{group.local_name}: you cannot add members: {why}")
    return me


def introducer_refusal(c: sqlite3.Connection, g: GroupMessage, info: cp.MemberInfo) -> str | None:
    """Why the sender of `g` may not introduce the member `info` (x.grp.mem.new or
    x.grp.mem.fwd: it is that member's host), or None: the sender is an admin or owner,
    the member's role is not above the sender's, the member is not us, and nobody else
    introduced it to us before."""
    why = may_add(g.sender.role, info.member_role)
    if why is not None:
        return why
    if info.member_id == g.me.member_id or info.member_id == g.sender.member_id:
        return "a member cannot be introduced to itself"
    known = store.member_by_id(c, g.group_id, info.member_id)
    if known is None:
        return None
    if known.category != CAT_POST:
        return f"{known.display_name} is not a newcomer here"
    if introducer(c, known) not in (None, g.sender.member_row):
        return f"{known.display_name} was introduced to us by another member"
    return None


def introducer(c: sqlite3.Connection, m: store.MemberRow) -> int | None:
    """The member row of who introduced `m` (pre, post) to us: recorded, or (rows from
    before that was recorded) our host."""
    if m.introduced_by is not None:
        return m.introduced_by
    host = store.host_member(c, m.group_id)
    return host.member_row if host is not None else None


def listed(c: sqlite3.Connection, user: store.UserRow) -> list[cev.Group]:
    return [views.group(c, gid) for gid in store.live_group_ids(c, user.user_id)]


def members(c: sqlite3.Connection, user: store.UserRow, group_name: str) -> list[cev.Member]:
    group = named(c, user, group_name)
    return [views.member(c, m.member_row) for m in store.members(c, group.group_id)]


def create(c: sqlite3.Connection, user: store.UserRow, name: str, full_name: str) -> cev.Group:
    """A group with us as its creator (the caller checked the profile)."""
    gid = store.insert_group(c, user.user_id, name, full_name, G_ACTIVE)
    store.insert_member(
        c,
        gid,
        cp.new_member_id(),
        "owner",
        CAT_USER,
        M_CREATOR,
        user.display_name,
        user.full_name,
    )
    return views.group(c, gid)


def check_profile(name: str, full_name: str) -> None:
    try:
        cp.GroupProfile(name, full_name)
    except (cp.ChatMessageError, ValueError) as e:
        raise ChatError(str(e)) from e


# ---------------------------------------------------------------- step 1: the host invites


def add_member(
    c: sqlite3.Connection, user: store.UserRow, group_name: str, contact_name: str, role: str
) -> tuple[cev.Member, Effects]:
    """`/a group contact [role]` (host, step 1): a link for the invitee (INV:
    `member_invitation_created`)."""
    group = named(c, user, group_name)
    hosting(c, group, role)
    contact = contacts.named(c, user, contact_name)
    conn = store.contact_connection(c, contact.contact_id)
    if conn is None or conn.status != C_READY:
        raise ChatError(f"{contact_name} is not connected yet")
    if store.current_member_of_contact(c, group.group_id, contact.contact_id):
        raise ChatError(f"{contact_name} is already a member of #{group.local_name}")
    row = store.insert_member(
        c,
        group.group_id,
        cp.new_member_id(),
        role,
        CAT_INVITEE,
        M_INVITED,
        contact.display_name,
        contact.full_name,
        contact.contact_id,
    )
    mconn = store.insert_connection(c, K_MEMBER_GROUP, member_row=row)
    fx = Effects()
    fx.call(
        c, user.user_id, mconn, FN_MEMBER_INVITATION_CREATED, {"member_row": row}, create_call()
    )
    return views.member(c, row), fx


def member_invitation_created(c: sqlite3.Connection, k: Completion) -> Effects:
    """Step 1 (host): the link for the invitee exists; send it x.grp.inv."""
    if not isinstance(k.event, aev.Inv):
        return connections.fail(c, k.connection_id, k.reason)
    assert k.connection_id is not None
    store.set_connection(c, k.connection_id, link=k.event.link)
    m = store.member(c, k.data["member_row"])
    assert m is not None and m.contact_id is not None
    group = store.group_by_id(c, m.group_id)
    me = store.user_member(c, m.group_id)
    contact_conn = store.contact_connection(c, m.contact_id)
    assert group is not None
    if contact_conn is None or contact_conn.agent_conn_id is None:
        return connections.fail(c, k.connection_id, "contact is gone")
    inv = cp.XGrpInv(
        cp.MemberIdRole(me.member_id, member_role(me.role)),
        cp.MemberIdRole(m.member_id, member_role(m.role)),
        k.event.link,
        cp.GroupProfile(group.display_name, group.full_name),
    )
    fx = Effects()
    fx.send(c, contact_conn.agent_conn_id, cp.make(inv))
    return fx


# ---------------------------------------------------------------- step 2: the invitee joins


def invitation_received(
    c: sqlite3.Connection, user: store.UserRow, contact: store.ContactRow, msg: cp.ChatMessage
) -> Effects:
    """`x.grp.inv` from a contact: the group, invited, with us and the host as members."""
    inv = msg.params
    assert isinstance(inv, cp.XGrpInv)
    why = may_add(inv.from_member.member_role, inv.invited_member.member_role)
    if why is None and store.member_in_groups_of(c, user.user_id, inv.from_member.member_id):
        why = "we are already in that group, or invited to it"  # (another admin's invitation)
    if why is not None:
        log.info("refused a group invitation from %s: %s", contact.local_name, why)
        name = inv.group_profile.display_name
        return Effects(events=[cev.GroupInvitationRefused(views.contact(contact), name, why)])
    gid = store.insert_group(
        c,
        user.user_id,
        inv.group_profile.display_name,
        inv.group_profile.full_name,
        G_INVITED,
        inv.conn_request,
    )
    store.insert_member(
        c,
        gid,
        inv.invited_member.member_id,
        inv.invited_member.member_role,
        CAT_USER,
        M_INVITED,
        user.display_name,
        user.full_name,
    )
    store.insert_member(
        c,
        gid,
        inv.from_member.member_id,
        inv.from_member.member_role,
        CAT_HOST,
        M_INVITED,
        contact.display_name,
        contact.full_name,
        contact.contact_id,
    )
    event = cev.ReceivedGroupInvitation(
        views.group(c, gid), views.contact(contact), inv.invited_member.member_role
    )
    return Effects(events=[event])


def join(c: sqlite3.Connection, user: store.UserRow, group_name: str) -> tuple[cev.Group, Effects]:
    """`/j group` (step 2): join the host's link with `x.grp.acpt` (OK: `group_joined`)."""
    group = named(c, user, group_name)
    if group.status != G_INVITED or group.invitation is None:
        raise ChatError(f"no pending invitation to #{group.local_name}")
    me = store.user_member(c, group.group_id)
    host = store.host_member(c, group.group_id)
    assert host is not None
    conn = store.insert_connection(c, K_MEMBER_GROUP, member_row=host.member_row)
    store.set_group_status(c, group.group_id, G_JOINING)
    fx = Effects()
    call = join_call(group.invitation, cp.make(cp.XGrpAcpt(me.member_id)))
    fx.call(c, user.user_id, conn, FN_GROUP_JOINED, {"group_id": group.group_id}, call)
    return views.group(c, group.group_id), fx


def host_connected(
    c: sqlite3.Connection, group: store.GroupRow, me: store.MemberRow, host: store.MemberRow
) -> Effects:
    """(invitee) CON with the host: we are in the group."""
    store.set_member(c, host.member_row, status=M_CONNECTED)
    store.set_member(c, me.member_row, status=M_CONNECTED)
    store.set_group_status(c, group.group_id, G_ACTIVE)
    return Effects(events=[cev.UserJoinedGroup(views.group(c, group.group_id))], label="con:host")


# ---------------------------------------------------------------- messages


def send_message(
    c: sqlite3.Connection,
    user: store.UserRow,
    group_name: str,
    msg: cp.ChatMessage,
    text: str,
    quote: store.ItemQuote | None = None,
) -> tuple[cev.ChatItem, Effects]:
    group = named(c, user, group_name)
    if group.status != G_ACTIVE:
        raise ChatError(f"#{group.local_name} is {group.status}: cannot send")
    if store.user_member(c, group.group_id).role == "observer":
        raise ChatError(f"#{group.local_name}: you are an observer: you cannot send messages")
    item_id = store.insert_item(
        c, user.user_id, D_SND, text, msg.msg_id, group_id=group.group_id, quote=quote
    )
    body = cp.encode_chat_message(msg)
    fx = Effects()
    for conn in store.ready_group_conns(c, group.group_id):
        fx.send(c, conn, body, item_id)
    # Kept for the members we are still connecting to, and sent when their group
    # connection is ready. (The host forwards it too; receivers drop the second copy by
    # message id. Relying on the host alone loses the message when the host learns the
    # pair connected before the message reaches it.)
    store.hold_for_connecting_members(c, group.group_id, body, item_id)
    store.track_member_deliveries(c, item_id)
    return views.item(c, item_id), fx


def release_held(c: sqlite3.Connection, member_row: int, agent_conn_id: str, fx: Effects) -> None:
    """The member's group connection is ready: send what was kept for it."""
    for body, item_id in store.take_held(c, member_row):
        fx.send(c, agent_conn_id, body, item_id)


def _to_all(c: sqlite3.Connection, group_id: int, msg: cp.ChatMessage, fx: Effects) -> None:
    body = cp.encode_chat_message(msg)
    for conn in store.ready_group_conns(c, group_id):
        fx.send(c, conn, body)


def farewell(
    c: sqlite3.Connection, user: store.UserRow, group_name: str, delete: bool
) -> tuple[Effects, list[str]]:
    """Leave the group, or (its creator) delete it: tell everyone. Returns the agent
    connections to delete once the farewell is sent."""
    group = named(c, user, group_name)
    me = store.user_member(c, group.group_id)
    if delete and me.role != "owner":
        raise ChatError(f"only owners can delete #{group.local_name}")
    fx = Effects()
    _to_all(c, group.group_id, cp.make(cp.XGrpDel() if delete else cp.XGrpLeave()), fx)
    _without_our_link(c, group.group_id, fx)
    if delete:
        store.tombstone_group(c, group.group_id)
    else:
        store.set_group_status(c, group.group_id, G_LEFT)
    store.set_member(c, me.member_row, status=M_LEFT)
    if delete:
        fx.events.append(cev.GroupDeleted(views.group(c, group.group_id), None))
    return fx, store.group_agent_conns(c, group.group_id)


def _without_our_link(c: sqlite3.Connection, group_id: int, fx: Effects) -> None:
    """We are no longer in the group (left, removed, or it is deleted): our link to it,
    if we host one, stops working."""
    from parley.chat import group_links  # (it builds on this module)

    group_links.delete_with_group(c, group_id, fx)


def remove_member(
    c: sqlite3.Connection, user: store.UserRow, group_name: str, member_name: str
) -> tuple[Effects, list[str]]:
    """(an admin or owner) remove a member below our role: tell everyone. Returns the
    member's agent connections, to delete once that is sent."""
    group = named(c, user, group_name)
    me = store.user_member(c, group.group_id)
    target = member_named(c, group.group_id, member_name)
    why = may_manage(me.role, target.role)
    if why is not None:
        raise ChatError(f"#{group.local_name}: you cannot remove {member_name}: {why}")
    if target.status in (M_REMOVED, M_LEFT):
        raise ChatError(f"#{group.local_name}: {member_name} is not a member any more")
    fx = Effects()
    _to_all(c, group.group_id, cp.make(cp.XGrpMemDel(target.member_id)), fx)
    store.set_member(c, target.member_row, status=M_REMOVED)
    view = views.member(c, target.member_row)
    fx.events.append(cev.MemberRemoved(views.group(c, group.group_id), view, None))
    conns = [x.agent_conn_id for x in store.member_connections(c, target.member_row)]
    return fx, [x for x in conns if x]


# ---------------------------------------------------------------- received group events


def received_text(c: sqlite3.Connection, g: GroupMessage) -> Effects:
    """`x.msg.new` from a member; the host passes it on to those not connected to it."""
    assert isinstance(g.msg.params, cp.XMsgNew)
    if g.sender.role == "observer":
        return refused(c, g.group_id, g.sender, "observers cannot send messages")
    text = g.msg.params.content.text
    item_id = store.insert_item(
        c,
        g.user.user_id,
        D_RCV,
        text,
        g.msg.msg_id,
        group_id=g.group_id,
        author=g.sender.member_row,
        quote=contacts.received_quote(c, g.msg.params.quote, group_id=g.group_id),
    )
    fx = Effects(events=[cev.NewChatItem(views.item(c, item_id))])
    pass_on(c, g, fx)
    return fx


def refused(c: sqlite3.Connection, group_id: int, sender: store.MemberRow, why: str) -> Effects:
    """A member sent what its role does not allow: dropped, and said so."""
    log.info("refused a message from %s: %s", sender.display_name, why)
    event = cev.GroupMessageRefused(
        views.group(c, group_id), views.member(c, sender.member_row), why
    )
    return Effects(events=[event])


def pass_on(c: sqlite3.Connection, g: GroupMessage, fx: Effects) -> None:
    """(a host) pass a member's message (not one forwarded to us) on to the members we
    introduced it to, or introduced to it, that are not connected to it yet."""
    if g.forwarded:
        return
    fwd: bytes | None = None
    # an invitee of ours tells us (x.grp.mem.con, after its messages before it) when it
    # connected to a member; one hosted by another member tells its own host
    reports_to_us = g.sender.category == CAT_INVITEE
    for row in store.host_partners_unconnected(c, g.sender.member_row, reports_to_us):
        m = store.member(c, row)
        if m is None or m.status in GONE_MEMBER:
            continue
        conn = store.member_connection(c, m.member_row, K_MEMBER_GROUP)
        if conn is not None and conn.agent_conn_id and conn.status == C_READY:
            fwd = fwd or cp.encode_chat_message(cp.forward(g.sender.member_id, g.msg))
            fx.send(c, conn.agent_conn_id, fwd)


def received_forward(c: sqlite3.Connection, g: GroupMessage) -> Effects:
    """`x.grp.msg.forward` from the host of the pair (the caller checked it): a message
    of a member we are not connected to."""
    assert isinstance(g.msg.params, cp.XGrpMsgForward)
    author_id, inner = g.msg.params.member_id, g.msg.params.msg
    author = store.member_by_id(c, g.group_id, author_id)
    if author is None or author.category == CAT_USER:  # never our own words back
        return Effects()
    if not isinstance(
        inner.params, cp.XMsgNew | cp.XGrpMemDel | cp.XGrpMemRole | cp.XInfo | cp.XGrpInfo
    ):
        return Effects()
    if not store.first_seen(c, store.member_scope(g.group_id, author_id), inner.msg_id):
        return Effects()
    if not isinstance(inner.params, cp.XMsgNew):
        as_author = GroupMessage(g.user, g.conn, author, g.group, g.me, inner, forwarded=True)
        if isinstance(inner.params, cp.XGrpMemDel):
            return member_deleted(c, as_author)
        if isinstance(inner.params, cp.XInfo | cp.XGrpInfo):
            from parley.chat import profiles  # (it builds on this module)

            if isinstance(inner.params, cp.XInfo):
                return profiles.member_updated(c, as_author)
            return profiles.group_updated(c, as_author)
        return member_role_changed(c, as_author)
    if author.role == "observer":
        return refused(c, g.group_id, author, "observers cannot send messages")
    item_id = store.insert_item(
        c,
        g.user.user_id,
        D_RCV,
        inner.params.content.text,
        inner.msg_id,
        group_id=g.group_id,
        author=author.member_row,
        quote=contacts.received_quote(c, inner.params.quote, group_id=g.group_id),
    )
    return Effects(events=[cev.NewChatItem(views.item(c, item_id))])


def member_announced(c: sqlite3.Connection, g: GroupMessage) -> Effects:
    """`x.grp.mem.new` from the new member's host (an admin or owner, checked here): a
    new member, who will connect to us."""
    assert isinstance(g.msg.params, cp.XGrpMemNew)
    info = g.msg.params.member_info
    why = introducer_refusal(c, g, info)
    if why is not None:
        return refused(c, g.group_id, g.sender, f"x.grp.mem.new refused: {why}")
    fx = Effects()
    if store.member_by_id(c, g.group_id, info.member_id) is None:
        row = announced_member(c, g.group_id, info, g.sender.member_row)
        fx.events.append(cev.MemberAnnounced(views.group(c, g.group_id), views.member(c, row)))
    return fx


def announced_member(
    c: sqlite3.Connection, group_id: int, info: cp.MemberInfo, host_row: int
) -> int:
    """A member who joined after us (from x.grp.mem.new, or x.grp.mem.fwd if first),
    introduced to us by its host `host_row`."""
    return store.insert_member(
        c,
        group_id,
        info.member_id,
        info.member_role,
        CAT_POST,
        M_ANNOUNCED,
        info.profile.display_name,
        info.profile.full_name,
        introduced_by=host_row,
    )


def member_left(c: sqlite3.Connection, g: GroupMessage) -> Effects:
    """`x.grp.leave`."""
    gview = views.group(c, g.group_id)
    store.set_member(c, g.sender.member_row, status=M_LEFT)
    return Effects(events=[cev.MemberLeft(gview, views.member(c, g.sender.member_row))])


def member_deleted(c: sqlite3.Connection, g: GroupMessage) -> Effects:
    """`x.grp.mem.del` from an admin or owner (checked here): a member, or we, removed."""
    assert isinstance(g.msg.params, cp.XGrpMemDel)
    member_id = g.msg.params.member_id
    target_row = (
        g.me if member_id == g.me.member_id else store.member_by_id(c, g.group_id, member_id)
    )
    if target_row is None:
        return Effects()
    why = may_manage(g.sender.role, target_row.role)
    if why is not None:
        return refused(c, g.group_id, g.sender, f"x.grp.mem.del refused: {why}")
    gview = views.group(c, g.group_id)
    fx = Effects()
    pass_on(c, g, fx)  # (a host) to those not connected to the sender yet
    if member_id == g.me.member_id:
        store.set_member(c, g.me.member_row, status=M_REMOVED)
        store.set_group_status(c, g.group_id, G_REMOVED)
        _without_our_link(c, g.group_id, fx)
        fx.events.append(cev.UserRemoved(gview, views.member(c, g.sender.member_row)))
        return fx
    if target_row.status == M_REMOVED:
        return fx
    store.set_member(c, target_row.member_row, status=M_REMOVED)
    removed = cev.MemberRemoved(
        gview, views.member(c, target_row.member_row), views.member(c, g.sender.member_row)
    )
    fx.events.append(removed)
    return fx


def set_role(
    c: sqlite3.Connection, user: store.UserRow, group_name: str, member_name: str, role: str
) -> tuple[cev.Member, Effects]:
    """`/mr #g NAME ROLE`: change a member's role; announced (x.grp.mem.role)."""
    group = named(c, user, group_name)
    if role not in cp.MEMBER_ROLES:
        raise ChatError(f"unknown role {role} (owner, admin, member or observer)")
    me = store.user_member(c, group.group_id)
    target = member_named(c, group.group_id, member_name)
    why = may_manage(me.role, target.role, role)
    if why is not None:
        raise ChatError(f"#{group.local_name}: you cannot change the role of {member_name}: {why}")
    old = target.role
    store.set_member(c, target.member_row, role=role)
    fx = Effects()
    _to_all(c, group.group_id, cp.make(cp.XGrpMemRole(target.member_id, member_role(role))), fx)
    view = views.member(c, target.member_row)
    fx.events.append(cev.MemberRoleUpdated(views.group(c, group.group_id), view, old, role, None))
    return view, fx


def member_role_changed(c: sqlite3.Connection, g: GroupMessage) -> Effects:
    """`x.grp.mem.role` from an admin or owner (checked here, as the sender did)."""
    assert isinstance(g.msg.params, cp.XGrpMemRole)
    member_id, role = g.msg.params.member_id, g.msg.params.role
    target = g.me if member_id == g.me.member_id else store.member_by_id(c, g.group_id, member_id)
    if target is None:
        return Effects()
    why = may_manage(g.sender.role, target.role, role)
    if why is not None:
        return refused(c, g.group_id, g.sender, f"x.grp.mem.role refused: {why}")
    fx = Effects()
    pass_on(c, g, fx)
    if target.role == role:
        return fx
    store.set_member(c, target.member_row, role=role)
    fx.events.append(
        cev.MemberRoleUpdated(
            views.group(c, g.group_id),
            views.member(c, target.member_row),
            target.role,
            role,
            views.member(c, g.sender.member_row),
        )
    )
    return fx


def group_deleted(c: sqlite3.Connection, g: GroupMessage) -> Effects:
    """`x.grp.del` from an owner (checked here)."""
    if g.sender.role != "owner":
        return refused(c, g.group_id, g.sender, "x.grp.del refused: only owners delete the group")
    fx = Effects()
    _without_our_link(c, g.group_id, fx)
    store.tombstone_group(c, g.group_id)
    event = cev.GroupDeleted(views.group(c, g.group_id), views.member(c, g.sender.member_row))
    fx.events.append(event)
    return fx

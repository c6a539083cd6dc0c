"""Group links: a group's long-term link (an agent contact address, `K_ADDRESS`). Whoever
joins it is accepted at once as a member with the link's role: the host joins the
joiner's invitation with `x.grp.link.mem` (the group, the host, the new member's id and
role) as its info; the joiner answers with `x.grp.mem.info`; on CON the newcomer is
introduced to every member exactly as an invited member is (DESIGN §4 from step 3, with
the same recovery). Rules run in the transaction given as their first argument.
"""

from __future__ import annotations

import logging
import sqlite3

from parley.chat import addresses, store, views
from parley.chat import events as cev
from parley.chat.effects import Effects, accept_call, create_call
from parley.chat.groups import hosting, may_add, member_info, named
from parley.chat.model import (
    CAT_HOST,
    CAT_INVITEE,
    CAT_USER,
    FN_ADDRESS_CREATED,
    FN_REQUEST_ACCEPTED,
    G_JOINING,
    K_ADDRESS,
    K_MEMBER_GROUP,
    L_ACTIVE,
    L_DELETED,
    M_ACCEPTED,
    R_GROUP,
    ChatError,
    member_role,
)
from parley.protocol import chat as cp

log = logging.getLogger(__name__)

LINK_ROLES = ("admin", "member", "observer")


def _check_role(role: str) -> None:
    if role not in LINK_ROLES:
        raise ChatError(f"a group link gives the role admin, member or observer, not {role}")


def _hosted(
    c: sqlite3.Connection, user: store.UserRow, group_name: str, role: str = "observer"
) -> store.GroupRow:
    """The group, if we may host a link to it giving `role`: an admin or owner (the
    member that made a link is the host of whoever joins it)."""
    group = named(c, user, group_name)
    hosting(c, group, role)
    return group


def create(
    c: sqlite3.Connection, user: store.UserRow, group_name: str, role: str
) -> tuple[int, Effects]:
    """`/create link #g [role]`: the agent makes the link (INV: `addresses.created`)."""
    _check_role(role)
    group = _hosted(c, user, group_name, role)
    row = store.group_link(c, group.group_id, L_DELETED)
    if row is not None and row.status == L_ACTIVE:
        raise ChatError(f"#{group.local_name} has a link already (/show link #{group.local_name})")
    if row is not None:
        return row.link_id, Effects()
    conn = store.insert_connection(c, K_ADDRESS)
    link_id = store.insert_contact_link(
        c, user.user_id, conn, "creating", group_id=group.group_id, role=role
    )
    fx = Effects()
    data = {"link_id": link_id}
    fx.call(c, user.user_id, conn, FN_ADDRESS_CREATED, data, create_call(contact=True))
    return link_id, fx


def _link(c: sqlite3.Connection, group: store.GroupRow) -> store.LinkRow:
    row = store.group_link(c, group.group_id, L_DELETED)
    if row is None or row.status != L_ACTIVE:
        raise ChatError(f"#{group.local_name} has no link (/create link #{group.local_name})")
    return row


def _view(c: sqlite3.Connection, row: store.LinkRow) -> cev.GroupLinkView:
    assert row.group_id is not None and row.link is not None
    return cev.GroupLinkView(views.group(c, row.group_id), row.link, row.role or "member")


def show(c: sqlite3.Connection, user: store.UserRow, group_name: str) -> cev.GroupLinkView | None:
    group = named(c, user, group_name)
    row = store.group_link(c, group.group_id, L_DELETED)
    return _view(c, row) if row is not None and row.status == L_ACTIVE else None


def set_role(
    c: sqlite3.Connection, user: store.UserRow, group_name: str, role: str
) -> cev.GroupLinkView:
    _check_role(role)
    row = _link(c, _hosted(c, user, group_name, role))
    store.set_contact_link(c, row.link_id, role=role)
    fresh = store.contact_link(c, row.link_id)
    assert fresh is not None
    return _view(c, fresh)


def delete(c: sqlite3.Connection, user: store.UserRow, group_name: str) -> Effects:
    group = named(c, user, group_name)
    row = _link(c, group)  # (ours: a member that is no longer admin can still delete it)
    return addresses.delete_link(c, row, cev.GroupLinkDeleted(views.group(c, group.group_id)))


def delete_with_group(c: sqlite3.Connection, group_id: int, fx: Effects) -> None:
    """The group is deleted (or left): its link stops working."""
    row = store.group_link(c, group_id, L_DELETED)
    if row is not None:
        fx.merge(addresses.delete_link(c, row, cev.GroupLinkDeleted(views.group(c, group_id))))


# ---------------------------------------------------------------- the host


def on_request(
    c: sqlite3.Connection,
    user: store.UserRow,
    row: store.LinkRow,
    inv_id: str,
    profile: cp.Profile,
    x_contact_id: str | None,
) -> Effects:
    """A request on the group link: a new member, accepted at once (the agent joins the
    requester's invitation with x.grp.link.mem; OK: `handshake.joined`)."""
    assert row.group_id is not None
    group = store.group_by_id(c, row.group_id)
    me = store.user_member(c, row.group_id) if group is not None else None
    role = row.role or "member"
    if group is None or me is None:
        return Effects(rejects=[inv_id])
    try:
        hosting(c, group, role)  # still an active admin or owner (a role can change)
    except ChatError as e:
        log.info("rejected a request on the link of #%s: %s", group.local_name, e)
        return Effects(rejects=[inv_id])
    store.insert_contact_request(
        c,
        user.user_id,
        row.link_id,
        inv_id,
        x_contact_id,
        profile.display_name,
        profile.full_name,
        R_GROUP,
    )
    member_id = cp.new_member_id()
    m = store.insert_member(
        c,
        group.group_id,
        member_id,
        role,
        CAT_INVITEE,
        M_ACCEPTED,
        profile.display_name,
        profile.full_name,
    )
    conn = store.insert_connection(c, K_MEMBER_GROUP, member_row=m)
    info = cp.XGrpLinkMem(
        cp.GroupProfile(group.display_name, group.full_name),
        member_info(me),
        cp.MemberIdRole(member_id, member_role(role)),
    )
    fx = Effects(label="req:group")
    fx.call(c, user.user_id, conn, FN_REQUEST_ACCEPTED, {}, accept_call(inv_id, cp.make(info)))
    fx.events.append(cev.MemberConnecting(views.group(c, group.group_id), views.member(c, m)))
    return fx


# ---------------------------------------------------------------- the joiner


def accepted(
    c: sqlite3.Connection, user: store.UserRow, conn: store.ConnectionRow, info: cp.XGrpLinkMem
) -> cp.XGrpMemInfo | str:
    """(joiner) CONF with x.grp.link.mem on the connection we made through a link: it was
    a group's. We are a member; the connection is our group connection with the host.
    Returns our answer (allow) to the host, or the reason we refuse (the host's role does
    not allow it to add members with that role; the caller fails the connection)."""
    host = info.from_member
    why = may_add(host.member_role, info.invited_member.member_role)
    if why is not None:
        return f"x.grp.link.mem refused: {why}"
    if store.member_in_groups_of(c, user.user_id, host.member_id):
        return "x.grp.link.mem refused: we are already in that group, or invited to it"
    gid = store.insert_group(
        c,
        user.user_id,
        info.group_profile.display_name,
        info.group_profile.full_name,
        G_JOINING,
    )
    store.insert_member(
        c,
        gid,
        info.invited_member.member_id,
        info.invited_member.member_role,
        CAT_USER,
        M_ACCEPTED,
        user.display_name,
        user.full_name,
    )
    host_row = store.insert_member(
        c,
        gid,
        host.member_id,
        host.member_role,
        CAT_HOST,
        M_ACCEPTED,
        host.profile.display_name,
        host.profile.full_name,
    )
    store.set_connection(c, conn.connection_id, kind=K_MEMBER_GROUP, member_row=host_row)
    return cp.XGrpMemInfo(
        info.invited_member.member_id, cp.Profile(user.display_name, user.full_name)
    )

"""Profiles that change: ours (`/p NAME`, announced with x.info to every contact and in every
group), a contact's or a member's (x.info received), and a group's (x.grp.info, from an
owner).

Names stay unique as the naming rules say (`store.unique_name`, `store.unique_member_name`):
a contact renamed to a name another contact has is shown as `name_1`; a member's new name
never takes another member's place in the group.
"""

from __future__ import annotations

import sqlite3

from parley.chat import events as cev
from parley.chat import groups, store, views
from parley.chat.effects import Effects
from parley.chat.groups import GroupMessage
from parley.chat.model import C_READY, G_ACTIVE, GONE_MEMBER, ChatError
from parley.protocol import chat as cp


def update_user(
    c: sqlite3.Connection, user: store.UserRow, display_name: str, full_name: str
) -> tuple[cev.User, Effects]:
    """Our new profile (the caller checked it), with x.info queued to every ready contact
    and to the members of every group we are active in (in this transaction)."""
    before = views.user(user)
    if (display_name, full_name) == (user.display_name, user.full_name):
        return before, Effects()
    store.set_user_profile(c, user.user_id, display_name, full_name)
    fresh = store.user_by_id(c, user.user_id)
    assert fresh is not None
    after = views.user(fresh)
    body = cp.encode_chat_message(cp.make(cp.XInfo(cp.Profile(display_name, full_name))))
    fx = Effects(events=[cev.UserProfileUpdated(before, after)], label="profile")
    for contact in store.live_contacts(c, user.user_id):
        conn = store.contact_connection(c, contact.contact_id)
        if conn is not None and conn.status == C_READY and conn.agent_conn_id:
            fx.send(c, conn.agent_conn_id, body)
    for group_id in store.live_group_ids(c, user.user_id):
        me = store.user_member(c, group_id)
        if me.status in GONE_MEMBER:
            continue
        name = store.unique_member_name(c, group_id, display_name, exclude=me.member_row)
        store.set_member(c, me.member_row, display_name=name, full_name=full_name)
        group = store.group_by_id(c, group_id)
        if group is None or group.status != G_ACTIVE:
            continue
        for agent_conn in store.ready_group_conns(c, group_id):
            fx.send(c, agent_conn, body)
        store.hold_for_connecting_members(c, group_id, body, None)
    return after, fx


def update_group(
    c: sqlite3.Connection,
    user: store.UserRow,
    group_name: str,
    display_name: str,
    full_name: str,
) -> tuple[cev.Group, Effects]:
    """(an owner) the group's new profile (the caller checked it), announced with x.grp.info."""
    group = groups.named(c, user, group_name)
    me = store.user_member(c, group.group_id)
    if group.status != G_ACTIVE:
        raise ChatError(f"#{group.local_name} is {group.status}: cannot change its profile")
    if me.role != "owner":
        raise ChatError(f"#{group.local_name}: only owners can change the group profile")
    before = views.group(c, group.group_id)
    if (display_name, full_name) == (group.display_name, group.full_name):
        return before, Effects()
    store.set_group_profile(c, group.group_id, user.user_id, display_name, full_name)
    after = views.group(c, group.group_id)
    msg = cp.make(cp.XGrpInfo(cp.GroupProfile(display_name, full_name)))
    body = cp.encode_chat_message(msg)
    fx = Effects(events=[cev.GroupUpdated(before, after, None)])
    for agent_conn in store.ready_group_conns(c, group.group_id):
        fx.send(c, agent_conn, body)
    store.hold_for_connecting_members(c, group.group_id, body, None)
    return after, fx


# ---------------------------------------------------------------- received


def contact_updated(
    c: sqlite3.Connection, user: store.UserRow, contact: store.ContactRow, msg: cp.ChatMessage
) -> Effects:
    """`x.info` from a contact: its new profile; its local name follows (unique)."""
    assert isinstance(msg.params, cp.XInfo)
    p = msg.params.profile
    if (p.display_name, p.full_name) == (contact.display_name, contact.full_name):
        return Effects()
    before = views.contact(contact)
    store.set_contact_profile(c, contact.contact_id, user.user_id, p.display_name, p.full_name)
    fresh = store.contact_by_id(c, contact.contact_id)
    assert fresh is not None
    return Effects(events=[cev.ContactUpdated(before, views.contact(fresh))])


def member_updated(c: sqlite3.Connection, g: GroupMessage) -> Effects:
    """`x.info` from a member (or forwarded by the host): its new profile in the group,
    under a name no other member has."""
    assert isinstance(g.msg.params, cp.XInfo)
    p = g.msg.params.profile
    fx = Effects()
    groups.pass_on(c, g, fx)  # (a host) to those not connected to the sender yet
    name = store.unique_member_name(c, g.group_id, p.display_name, exclude=g.sender.member_row)
    if (name, p.full_name) == (g.sender.display_name, g.sender.full_name):
        return fx
    before = views.member(c, g.sender.member_row)
    store.set_member(c, g.sender.member_row, display_name=name, full_name=p.full_name)
    after = views.member(c, g.sender.member_row)
    fx.events.append(cev.GroupMemberUpdated(views.group(c, g.group_id), before, after))
    return fx


def group_updated(c: sqlite3.Connection, g: GroupMessage) -> Effects:
    """`x.grp.info` from an owner (checked here, as the sender did)."""
    assert isinstance(g.msg.params, cp.XGrpInfo)
    if g.sender.role != "owner":
        return groups.refused(
            c, g.group_id, g.sender, "x.grp.info refused: only owners change the group profile"
        )
    p = g.msg.params.group_profile
    fx = Effects()
    groups.pass_on(c, g, fx)
    if (p.display_name, p.full_name) == (g.group.display_name, g.group.full_name):
        return fx
    before = views.group(c, g.group_id)
    store.set_group_profile(c, g.group_id, g.user.user_id, p.display_name, p.full_name)
    after = views.group(c, g.group_id)
    fx.events.append(cev.GroupUpdated(before, after, views.member(c, g.sender.member_row)))
    return fx

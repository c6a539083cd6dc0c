"""Bot API commands about groups: creating, joining and leaving, members and their roles,
the group profile, group links and the group list."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence

from parley.api import commands as c
from parley.api import lookup as look
from parley.api import responses as r
from parley.api.lookup import Ctx, JsonObject
from parley.chat import events as cev


async def new_group(ctx: Ctx, cmd: c.NewGroup) -> JsonObject:
    group = await ctx.chat.create_group(cmd.display_name, cmd.full_name)
    members = await ctx.chat.members(group.name)
    return r.response("groupCreated", ctx.me, groupInfo=r.group_info_json(group, members))


async def add_member(ctx: Ctx, cmd: c.AddMember) -> JsonObject:
    group = await look.group(ctx.chat, cmd.group_id)
    contact = await look.contact(ctx.chat, cmd.contact_id)
    member = await ctx.chat.add_member(group.name, contact.name, cmd.role)
    return r.response(
        "sentGroupInvitation",
        ctx.me,
        groupInfo=await look.group_info(ctx.chat, cmd.group_id),
        contact=r.contact_json(contact),
        member=r.member_json(member),
    )


async def join_group(ctx: Ctx, cmd: c.JoinGroup) -> JsonObject:
    group = await ctx.chat.join_group((await look.group(ctx.chat, cmd.group_id)).name)
    members = await ctx.chat.members(group.name)
    out = r.response("userAcceptedGroupSent", ctx.me, groupInfo=r.group_info_json(group, members))
    host = r.host_member(members)
    if host is not None and host.contact_id is not None:
        contacts = {x.contact_id: x for x in await ctx.chat.contacts()}
        if host.contact_id in contacts:
            out["hostContact"] = r.contact_json(contacts[host.contact_id])
    return out


async def list_members(ctx: Ctx, cmd: c.ListMembers) -> JsonObject:
    group = await look.group(ctx.chat, cmd.group_id)
    members = await ctx.chat.members(group.name)
    return r.response("groupMembers", ctx.me, group=r.group_json(group, members))


async def leave_group(ctx: Ctx, cmd: c.LeaveGroup) -> JsonObject:
    await ctx.chat.leave_group((await look.group(ctx.chat, cmd.group_id)).name)
    info = await look.group_info(ctx.chat, cmd.group_id)
    return r.response("leftMemberUser", ctx.me, groupInfo=info)


async def member_info(ctx: Ctx, cmd: c.GroupMemberInfo) -> JsonObject:
    group, members, member = await look.group_member(ctx.chat, cmd.group_id, cmd.member_id)
    return r.response(
        "groupMemberInfo",
        ctx.me,
        groupInfo=r.group_info_json(group, members),
        member=r.member_json(member),
    )


async def _change_members(
    ctx: Ctx,
    group_id: int,
    member_ids: Sequence[int],
    change: Callable[[str, str], Awaitable[object]],
) -> tuple[r.GroupInfoJson, list[r.MemberJson]]:
    """Apply `change(group name, member name)` to each member the ids name (after checking
    them all) and return the group's info and those members as they are afterwards."""
    group = await look.group(ctx.chat, group_id)
    members = await ctx.chat.members(group.name)
    targets = [look.member(members, group_id, i) for i in member_ids]
    for member in targets:
        look.unique_name(group, members, member)
    for member in targets:
        await change(group.name, member.name)
    after = await ctx.chat.members(group.name)
    by_row = {m.member_row: m for m in after}
    changed = [r.member_json(by_row.get(m.member_row, m)) for m in targets]
    return r.group_info_json(group, after), changed


async def remove_members(ctx: Ctx, cmd: c.RemoveMember) -> JsonObject:
    info, removed = await _change_members(
        ctx, cmd.group_id, (cmd.member_id, *cmd.more), ctx.chat.remove_member
    )
    if cmd.listed or ctx.current or len(removed) > 1:
        return r.response(
            "userDeletedMembers", ctx.me, groupInfo=info, members=removed, withMessages=False
        )
    return r.response("userDeletedMember", ctx.me, groupInfo=info, member=removed[0])


async def set_roles(ctx: Ctx, cmd: c.SetMembersRole) -> JsonObject:
    async def set_role(group: str, member: str) -> None:
        await ctx.chat.set_member_role(group, member, cmd.role)

    info, changed = await _change_members(ctx, cmd.group_id, cmd.member_ids, set_role)
    return r.response("membersRoleUser", ctx.me, groupInfo=info, members=changed, toRole=cmd.role)


async def update_group_profile(ctx: Ctx, cmd: c.UpdateGroupProfile) -> JsonObject:
    group = await look.group(ctx.chat, cmd.group_id)
    before = await look.group_info(ctx.chat, cmd.group_id)
    if (cmd.display_name, cmd.full_name) == (group.display_name, group.full_name):
        return r.response("groupUpdated", ctx.me, fromGroup=before, toGroup=before)
    await ctx.chat.update_group_profile(group.name, cmd.display_name, cmd.full_name)
    after = await look.group_info(ctx.chat, cmd.group_id)
    return r.response("groupUpdated", ctx.me, fromGroup=before, toGroup=after)


async def _link_response(
    ctx: Ctx, kind: str, group_id: int, view: cev.GroupLinkView | None
) -> JsonObject:
    fields = r.group_link_fields(view) if view is not None else {}
    return r.response(kind, ctx.me, groupInfo=await look.group_info(ctx.chat, group_id), **fields)


async def create_group_link(ctx: Ctx, cmd: c.CreateGroupLink) -> JsonObject:
    group = await look.group(ctx.chat, cmd.group_id)
    link = await ctx.chat.create_group_link(group.name, cmd.role, ctx.invitation_timeout)
    view = cev.GroupLinkView(group, link, cmd.role)
    return await _link_response(ctx, "groupLinkCreated", cmd.group_id, view)


async def set_group_link_role(ctx: Ctx, cmd: c.SetGroupLinkRole) -> JsonObject:
    group = await look.group(ctx.chat, cmd.group_id)
    await look.group_link(ctx.chat, group)
    view = await ctx.chat.set_group_link_role(group.name, cmd.role)
    return await _link_response(ctx, "groupLink", cmd.group_id, view)


async def delete_group_link(ctx: Ctx, cmd: c.DeleteGroupLink) -> JsonObject:
    group = await look.group(ctx.chat, cmd.group_id)
    await look.group_link(ctx.chat, group)
    await ctx.chat.delete_group_link(group.name)
    return await _link_response(ctx, "groupLinkDeleted", cmd.group_id, None)


async def get_group_link(ctx: Ctx, cmd: c.GetGroupLink) -> JsonObject:
    group = await look.group(ctx.chat, cmd.group_id)
    view = await look.group_link(ctx.chat, group)
    return await _link_response(ctx, "groupLink", cmd.group_id, view)


async def list_groups(ctx: Ctx, cmd: c.ListGroups) -> JsonObject:
    look.check_user(ctx.me, cmd.user_id)
    out: list[JsonObject] = []
    if cmd.contact_id is not None:
        await look.contact(ctx.chat, cmd.contact_id)
    search = cmd.search.casefold() if cmd.search is not None else None
    for group in await ctx.chat.groups():
        if search is not None and search not in group.display_name.casefold():
            continue
        members = await look.members_or_none(ctx.chat, group)
        if cmd.contact_id is not None and not any(m.contact_id == cmd.contact_id for m in members):
            continue
        out.append(dict(r.group_info_json(group, members)))
    return r.response("groupsList", ctx.me, groups=out)

"""Bot API commands about whole chats (a contact's or a group's): the chat list, one
chat's items (with before=/after=/search=), reading, receipt settings, ratchet
re-synchronisation, deletion."""

from __future__ import annotations

from parley.api import commands as c
from parley.api import lookup as look
from parley.api import responses as r
from parley.api.lookup import Ctx, JsonObject
from parley.chat import events as cev
from parley.chat.controller import ChatController

# how far back /_get chat looks for before=/after=/search= (the controller can only
# return the latest N items)
SCAN_LIMIT = 10_000


async def _items(
    chat: ChatController, ref: c.ChatRef | c.NamedChatRef, name: str, count: int
) -> list[cev.ChatItem]:
    if ref.type == "direct":
        return await chat.chat_items(contact=name, count=count)
    return await chat.chat_items(group=name, count=count)


async def get_chats(ctx: Ctx, cmd: c.GetChats) -> JsonObject:
    """Every contact and group with its latest item, the most recent first."""
    chats: list[tuple[float, r.ChatJson]] = []
    for contact in await ctx.chat.contacts():
        items = await ctx.chat.chat_items(contact=contact.name, count=1)
        chats.append(
            (items[-1].created_at if items else 0.0, r.chat_json(r.direct_info(contact), items))
        )
    for group in await ctx.chat.groups():
        members = await ctx.chat.members(group.name)
        items = await ctx.chat.chat_items(group=group.name, count=1)
        info = r.group_chat_info(group, members)
        chats.append((items[-1].created_at if items else 0.0, r.chat_json(info, items)))
    chats.sort(key=lambda x: x[0], reverse=True)
    listed = [chat for _, chat in chats]
    return r.response("apiChats", ctx.me, chats=listed[: cmd.count] if cmd.count else listed)


async def get_chat(ctx: Ctx, cmd: c.GetChat) -> JsonObject:
    info, name = await look.chat_info(ctx.chat, cmd.chat)
    if cmd.before is None and cmd.after is None and cmd.search is None:
        items = await _items(ctx.chat, cmd.chat, name, cmd.count)
    else:
        items = await _items(ctx.chat, cmd.chat, name, SCAN_LIMIT)
        if cmd.search is not None:
            needle = cmd.search.casefold()
            items = [i for i in items if needle in i.text.casefold()]
        if cmd.after is not None:
            after = cmd.after
            items = [i for i in items if i.item_id > after][: cmd.count]
        else:
            if cmd.before is not None:
                before = cmd.before
                items = [i for i in items if i.item_id < before]
            items = items[-cmd.count :]
    return r.response("apiChat", ctx.me, chat=r.chat_json(info, items))


async def chat_read(ctx: Ctx, cmd: c.ChatRead) -> JsonObject:
    await look.chat_info(ctx.chat, cmd.chat)  # the chat must exist; parley tracks no reads
    return r.response("cmdOk", ctx.me)


async def set_chat_settings(ctx: Ctx, cmd: c.SetChatSettings) -> JsonObject:
    _, name = await look.chat_info(ctx.chat, cmd.chat)
    if cmd.chat.type == "direct":
        await ctx.chat.set_receipts(cmd.send_receipts, contact=name)
    else:
        await ctx.chat.set_receipts(cmd.send_receipts, group=name)
    return r.response("cmdOk", ctx.me)


async def set_contact_prefs(ctx: Ctx, cmd: c.SetContactPrefs) -> JsonObject:
    """Only fullDelete is kept: full deletion for this contact (null: the default)."""
    contact = await look.contact(ctx.chat, cmd.contact_id)
    await ctx.chat.set_full_delete(cmd.full_delete, contact=contact.name)
    as_json = r.contact_json(contact)
    return r.response("contactPrefsUpdated", ctx.me, fromContact=as_json, toContact=as_json)


async def sync_ratchet(ctx: Ctx, cmd: c.SyncRatchet) -> JsonObject:
    if cmd.chat.type == "direct":
        contact = await look.contact(ctx.chat, cmd.chat.chat_id)
        state = await ctx.chat.sync_ratchet(contact=contact.name, force=cmd.force)
        return r.response(
            "contactRatchetSyncStarted",
            ctx.me,
            contact=r.contact_json(contact),
            connectionStats=r.connection_stats(state),
        )
    group, members, member = await look.group_member(ctx.chat, cmd.chat.chat_id, cmd.member_id or 0)
    state = await ctx.chat.sync_ratchet(group=group.name, member=member.name, force=cmd.force)
    return r.response(
        "groupMemberRatchetSyncStarted",
        ctx.me,
        groupInfo=r.group_info_json(group, members),
        member=r.member_json(member),
        connectionStats=r.connection_stats(state),
    )


async def delete_chat(ctx: Ctx, cmd: c.DeleteChat) -> JsonObject:
    if cmd.chat.type == "direct":
        contact = await look.contact(ctx.chat, cmd.chat.chat_id)
        await ctx.chat.delete_contact(contact.name)
        return r.response("contactDeleted", ctx.me, contact=r.contact_json(contact))
    group = await look.group(ctx.chat, cmd.chat.chat_id)
    info = await look.group_info(ctx.chat, cmd.chat.chat_id)
    await ctx.chat.delete_group(group.name)
    return r.response("groupDeletedUser", ctx.me, groupInfo=info)

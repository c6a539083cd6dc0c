"""Bot API commands about messages: sending, editing, deleting and moderating items,
reactions, an item's info (versions, delivery to each member)."""

from __future__ import annotations

from parley.api import commands as c
from parley.api import lookup as look
from parley.api import responses as r
from parley.api.lookup import Ctx, JsonObject

SCAN_LIMIT = 10_000  # how far back /_get item info looks for the item


async def send(ctx: Ctx, cmd: c.SendMessages) -> JsonObject:
    info, name = await look.chat_info(ctx.chat, cmd.chat)
    sent: list[r.AChatItemJson] = []
    for i, text in enumerate(cmd.texts):
        quote = cmd.quotes[i] if i < len(cmd.quotes) else None
        if cmd.chat.type == "direct":
            item = await ctx.chat.send_contact_message(name, text, quote)
        else:
            item = await ctx.chat.send_group_message(name, text, quote)
        sent.append(r.a_chat_item(info, item))
    return r.response("newChatItems", ctx.me, chatItems=sent)


async def update(ctx: Ctx, cmd: c.UpdateItem) -> JsonObject:
    info, _ = await look.chat_info(ctx.chat, cmd.chat)
    item = await ctx.chat.update_item(cmd.item_id, cmd.text)
    return r.response("chatItemUpdated", ctx.me, chatItem=r.a_chat_item(info, item))


async def delete(ctx: Ctx, cmd: c.DeleteItems) -> JsonObject:
    info, _ = await look.chat_info(ctx.chat, cmd.chat)
    deletions = []
    for item_id in cmd.item_ids:
        item = await ctx.chat.delete_item(item_id, cmd.broadcast)
        deletions.append(r.a_chat_item(info, item))
    return _deleted(ctx, deletions, None)


async def moderate(ctx: Ctx, cmd: c.DeleteMemberItems) -> JsonObject:
    info, _ = await look.chat_info(ctx.chat, c.ChatRef("group", cmd.group_id))
    moderated = []
    for item_id in cmd.item_ids:
        item = await ctx.chat.moderate_item(item_id)
        moderated.append(r.a_chat_item(info, item))
    return _deleted(ctx, moderated, moderated)


def _deleted(
    ctx: Ctx, deleted: list[r.AChatItemJson], to_items: list[r.AChatItemJson] | None
) -> JsonObject:
    if ctx.current or len(deleted) != 1:
        return r.response(
            "chatItemsDeleted",
            ctx.me,
            chatItemDeletions=[
                {"deletedChatItem": d, "toChatItem": to_items[i] if to_items else None}
                for i, d in enumerate(deleted)
            ],
            byUser=True,
            timed=False,
        )
    return r.item_deleted_response(
        ctx.me, deleted[0], to_items[0] if to_items else None, True, current=False
    )


async def react(ctx: Ctx, cmd: c.SetReaction) -> JsonObject:
    info, _ = await look.chat_info(ctx.chat, cmd.chat)
    item = await ctx.chat.react(cmd.item_id, cmd.emoji, cmd.add)
    return r.reaction_response(ctx.me, info, item, cmd.emoji, cmd.add)


async def item_info(ctx: Ctx, cmd: c.GetItemInfo) -> JsonObject:
    """``chatItemInfo``: the item, its versions (the original first) and, for a group
    item we sent, each member's delivery (``memberDeliveryStatuses``; else null)."""
    info, name = await look.chat_info(ctx.chat, cmd.chat)
    direct = cmd.chat.type == "direct"
    found = [
        i
        for i in await ctx.chat.chat_items(
            contact=name if direct else None, group=None if direct else name, count=SCAN_LIMIT
        )
        if i.item_id == cmd.item_id
    ]
    if not found:
        raise look.refuse_not_found(
            "chatItemNotFound", f"no item {cmd.item_id} in this chat", itemId=cmd.item_id
        )
    item = found[0]
    versions = await ctx.chat.item_history(item.item_id)
    deliveries = None
    if not direct and item.direction == "snd":
        deliveries = await ctx.chat.item_deliveries(item.item_id)
    return r.response(
        "chatItemInfo",
        ctx.me,
        chatItem=r.a_chat_item(info, item),
        chatItemInfo=r.item_info_json(item, versions, deliveries),
    )

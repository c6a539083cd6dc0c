"""The bot API's item commands and events between two served chats: receipts (sndRcvd),
replies, edits, reactions, deletion for everyone, receipts off per chat, ratchet sync."""

from __future__ import annotations

import json
from typing import Any

from parley.relay.server import RelayServer
from tests.api.conftest import MakeBot, connect_bots
from tests.chat.conftest import MakeChat
from tests.chat.test_group_rules import group_of_three


async def test_items_through_the_api(
    relay: RelayServer, make_chat: MakeChat, bot_for: MakeBot
) -> None:
    relays = [str(relay.address)]
    a = await bot_for(await make_chat("alice", relays))
    b = await bot_for(await make_chat("bob", relays))
    ca, cb = await connect_bots(a, b)
    bob_id, alice_id = ca["contact"]["contactId"], cb["contact"]["contactId"]

    msg = {"msgContent": {"type": "text", "text": "hello"}}
    sent = await a.ok(f"/_send @{bob_id} json {json.dumps([msg])}", "newChatItems")
    item_id = sent["chatItems"][0]["chatItem"]["meta"]["itemId"]
    got = await b.event("newChatItems")
    rcv_id = got["chatItems"][0]["chatItem"]["meta"]["itemId"]
    rcvd = await a.event(
        "chatItemStatusUpdated",
        lambda e: e["chatItem"]["chatItem"]["meta"]["itemStatus"]["type"] == "sndRcvd",
    )
    status = rcvd["chatItem"]["chatItem"]["meta"]["itemStatus"]
    assert status == {"type": "sndRcvd", "msgRcptStatus": "ok", "sndProgress": "complete"}

    reply = {"msgContent": {"type": "text", "text": "hi"}, "quotedItemId": rcv_id}
    await b.ok(f"/_send @{alice_id} json {json.dumps([reply])}", "newChatItems")
    quoted = await a.event("newChatItems")
    assert quoted["chatItems"][0]["chatItem"]["quotedItem"]["itemId"] == item_id

    upd = await a.ok(
        f'/_update item @{bob_id} {item_id} json {{"type": "text", "text": "hello!"}}',
        "chatItemUpdated",
    )
    assert upd["chatItem"]["chatItem"]["meta"]["itemEdited"] is True
    edited = await b.event("chatItemUpdated")
    assert edited["chatItem"]["chatItem"]["content"]["msgContent"]["text"] == "hello!"

    emoji = json.dumps({"type": "emoji", "emoji": "👍"})
    await b.ok(f"/_reaction @{alice_id} {rcv_id} on json {emoji}", "chatItemReaction")
    reacted = await a.event("chatItemReaction")
    assert reacted["added"] is True
    reactions = reacted["reaction"]["chatReaction"]["chatItem"]["reactions"]
    assert reactions == [
        {"reaction": {"type": "emoji", "emoji": "👍"}, "userReacted": False, "totalReacted": 1}
    ]
    bad = await b.cmd(f'/_reaction @{alice_id} {rcv_id} on json {{"type": "emoji", "emoji": "xx"}}')
    assert bad["type"] == "chatCmdError"

    deleted = await a.ok(f"/_delete item @{bob_id} {item_id} broadcast", "chatItemDeleted")
    assert deleted["byUser"] is True and deleted["toChatItem"] is None
    marked = await b.event("chatItemDeleted")
    assert marked["toChatItem"]["chatItem"]["meta"]["itemDeleted"]["type"] == "deleted"

    # full deletion on for alice (bob's contact preference fullDelete): removed, not marked
    prefs = json.dumps({"fullDelete": {"allow": "yes"}})
    updated = await b.ok(f"/_set prefs @{alice_id} {prefs}", "contactPrefsUpdated")
    assert updated["toContact"]["contactId"] == alice_id
    gone = await a.ok(f"/_send @{bob_id} json {json.dumps([msg])}", "newChatItems")
    gone_id = gone["chatItems"][0]["chatItem"]["meta"]["itemId"]
    await b.event("newChatItems")
    await a.ok(f"/_delete item @{bob_id} {gone_id} broadcast", "chatItemDeleted")
    removed = await b.event("chatItemDeleted")
    assert removed["byUser"] is False and removed["toChatItem"] is None

    await b.ok(f'/_settings @{alice_id} {{"sendRcpts": false}}', "cmdOk")
    await b.ok("/_set receipts contacts 1 on", "cmdOk")

    sync = await a.ok(f"/_sync @{bob_id}", "contactRatchetSyncStarted")
    assert sync["connectionStats"]["ratchetSyncState"] == "started"
    await b.event(
        "contactRatchetSync", lambda e: e["ratchetSyncProgress"]["ratchetSyncStatus"] == "ok"
    )
    await a.event(
        "contactRatchetSync", lambda e: e["ratchetSyncProgress"]["ratchetSyncStatus"] == "ok"
    )


async def test_group_item_info_shows_each_members_delivery(
    relay: RelayServer, make_chat: MakeChat, bot_for: MakeBot
) -> None:
    """bob's group message: alice's receipt alone leaves it sndSent (partially received),
    cath's (she was offline) makes it sndRcvd; /_get item info shows each member."""
    relays = [str(relay.address)]
    a, b, c = await group_of_three(make_chat, relay)
    names = {m.member_row: m.name for m in await b.members("team")}
    group_id = (await b.groups())[0].group_id
    await c.close()
    bot = await bot_for(b)
    msg = {"msgContent": {"type": "text", "text": "hello team"}}
    sent = await bot.ok(f"/_send #{group_id} json {json.dumps([msg])}", "newChatItems")
    item_id = sent["chatItems"][0]["chatItem"]["meta"]["itemId"]

    async def info() -> dict[str, Any]:
        """The item's status and each member's delivery, by name."""
        resp = await bot.ok(f"/_get item info #{group_id} {item_id}", "chatItemInfo")
        assert resp["chatItem"]["chatItem"]["meta"]["itemId"] == item_id
        versions = resp["chatItemInfo"]["itemVersions"]
        assert [v["msgContent"]["text"] for v in versions] == ["hello team"]
        statuses = resp["chatItemInfo"]["memberDeliveryStatuses"]
        by_name = {names[s["groupMemberId"]]: s["memberDeliveryStatus"] for s in statuses}
        return {"item": resp["chatItem"]["chatItem"]["meta"]["itemStatus"], **by_name}

    def about_it(e: dict[str, Any]) -> bool:
        return bool(e["chatItem"]["chatItem"]["meta"]["itemId"] == item_id)

    for _ in range(10):  # an event per delivery that settles: two SENTs, alice's receipt
        await bot.event("chatItemStatusUpdated", about_it)
        now = await info()
        if now["alice"]["type"] == "rcvd":
            break
    assert now["alice"] == {"type": "rcvd", "msgRcptStatus": "ok"}
    assert now["cath"]["type"] in ("new", "sent")
    assert now["item"]["type"] == "sndSent"  # partially received

    await make_chat("cath", relays)  # back: she stores it and sends her receipt
    await bot.event(
        "chatItemStatusUpdated",
        lambda e: about_it(e)
        and e["chatItem"]["chatItem"]["meta"]["itemStatus"]["type"] == "sndRcvd",
        timeout=30,
    )
    done = await info()
    assert done["cath"] == done["alice"] == {"type": "rcvd", "msgRcptStatus": "ok"}
    assert done["item"] == {"type": "sndRcvd", "msgRcptStatus": "ok", "sndProgress": "complete"}
    # a received item: its versions, no member deliveries; an unknown item: an error
    (got,) = [i for i in await a.chat_items(group="team") if i.text == "hello team"]
    a_bot = await bot_for(a)
    a_group = (await a.groups())[0].group_id
    theirs = await a_bot.ok(f"/_get item info #{a_group} {got.item_id}", "chatItemInfo")
    assert theirs["chatItemInfo"]["memberDeliveryStatuses"] is None
    missing = await bot.cmd(f"/_get item info #{group_id} 999999")
    assert missing["chatError"]["storeError"]["type"] == "chatItemNotFound"

"""The bot API's item commands and events between two served chats: receipts (sndRcvd),
replies, edits, reactions, deletion for everyone, receipts off per chat, ratchet sync."""

from __future__ import annotations

import json

from parley.relay.server import RelayServer
from tests.api.conftest import MakeBot, connect_bots
from tests.chat.conftest import MakeChat


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

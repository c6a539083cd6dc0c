"""The bot API over a real WebSocket, with real chats and a relay on loopback."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any, cast

import pytest
from websockets.asyncio.client import connect
from websockets.asyncio.server import ServerConnection
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.typing import Origin

from parley.api.server import _Client
from parley.chat.controller import ChatController
from parley.relay.server import RelayServer
from parley.testing.waiting import wait_for_condition
from tests.api.conftest import MakeBot, Resp, Serve, WsBot, connect_bots
from tests.chat.conftest import MakeChat, chat_config


def text_of(item: Resp) -> str:
    text: str = item["chatItem"]["content"]["msgContent"]["text"]
    return text


def send_json(ref: str, *texts: str) -> str:
    msgs = [{"msgContent": {"type": "text", "text": t}} for t in texts]
    return f"/_send {ref} json {json.dumps(msgs)}"


def error_of(resp: Resp) -> Resp:
    assert resp["type"] == "chatCmdError", resp
    error: Resp = resp["chatError"]
    return error


def command_error(resp: Resp) -> str:
    error = error_of(resp)
    assert error["type"] == "error" and error["errorType"]["type"] == "commandError", error
    message: str = error["errorType"]["message"]
    return message


def store_error(resp: Resp) -> str:
    error = error_of(resp)
    assert error["type"] == "errorStore", error
    kind: str = error["storeError"]["type"]
    return kind


@pytest.fixture
async def bare_chat(tmp_path: Path, relay: RelayServer) -> AsyncIterator[ChatController]:
    chat = await ChatController.open(chat_config(tmp_path / "bare", [str(relay.address)]))
    yield chat
    await chat.close()


async def test_user_and_start(bare_chat: ChatController, bot_for: MakeBot) -> None:
    bot = await bot_for(bare_chat)
    for cmd in ("/u", "/_get chats pcc=off", "/connect", "/_members #1"):
        assert error_of(await bot.cmd(cmd))["errorType"] == {"type": "noActiveUser"}
    created = await bot.ok(
        '/_create user {"profile": {"displayName": "bot", "fullName": "A Bot"}, '
        '"sameServers": true, "pastTimestamp": false}',
        "activeUser",
    )
    assert created["user"]["profile"]["displayName"] == "bot"
    shown = await bot.ok("/u", "activeUser")
    assert shown["user"] == created["user"]
    again = await bot.cmd('/_create user {"profile": {"displayName": "other"}}')
    assert "has a user already (bot)" in command_error(again)
    assert not bare_chat.started
    await bot.ok("/_start subscribe=off expire=off", "chatStarted")
    assert bare_chat.started
    await bot.ok("/_start", "chatRunning")
    assert (await bot.ok("/_get chats pcc=off", "apiChats"))["chats"] == []


async def test_bad_requests_get_errors_and_the_socket_stays_open(
    relay: RelayServer, make_chat: MakeChat, serve: Serve
) -> None:
    chat = await make_chat("alice", [str(relay.address)])
    server = await serve(chat, max_command=4000)
    async with connect(f"ws://127.0.0.1:{server.port}") as ws:
        bot = WsBot(ws)

        async def raw(frame: str | bytes) -> dict[str, Any]:
            await bot.send_raw(frame)
            return await bot.recv()

        got = await raw("{not json")
        assert "corrId" not in got and "not valid JSON" in command_error(got["resp"])
        got = await raw('["/u"]')
        assert "JSON object" in command_error(got["resp"])
        got = await raw('{"corrId": "x1"}')
        assert got["corrId"] == "x1" and 'no "cmd"' in command_error(got["resp"])
        got = await raw('{"corrId": "x2", "cmd": 5}')
        assert got["corrId"] == "x2" and "must be a string" in command_error(got["resp"])
        got = await raw(b'{"corrId": "x3", "cmd": "/u"}')
        assert "binary" in command_error(got["resp"])
        got = await raw(json.dumps({"corrId": "x4", "cmd": "/u " + "x" * 5000}))
        assert got["corrId"] == "x4" and "too large" in command_error(got["resp"])

        assert "unknown command" in command_error(await bot.cmd("/frobnicate"))
        assert "unknown command" in command_error(await bot.cmd("hello"))
        assert "count" in command_error(await bot.cmd("/_get chat @1"))
        assert "not supported" in command_error(await bot.cmd("/_stop"))
        assert store_error(await bot.cmd("/_show_address 9")) == "userNotFound"
        assert store_error(await bot.cmd("/_show_address 1")) == "userContactLinkNotFound"
        assert store_error(await bot.cmd("/_info @42")) == "contactNotFound"
        assert store_error(await bot.cmd("/_members #42")) == "groupNotFound"
        assert store_error(await bot.cmd(send_json("@42", "hi"))) == "contactNotFound"
        assert store_error(await bot.cmd("@nobody hi")) == "contactNotFound"
        assert "incognito" in command_error(await bot.cmd("/_connect 1 incognito=on"))
        assert "invitation link" in command_error(await bot.cmd("/connect https://example.com"))

        # an integer corrId is echoed as it came; pipelined commands answer in order
        await ws.send(json.dumps({"corrId": 41, "cmd": "/u"}))
        await ws.send(json.dumps({"corrId": "b", "cmd": "/nope"}))
        await ws.send(json.dumps({"corrId": "c", "cmd": "/u"}))
        replies = [await bot.recv() for _ in range(3)]
        assert [m["corrId"] for m in replies] == [41, "b", "c"]
        assert [m["resp"]["type"] for m in replies] == ["activeUser", "chatCmdError", "activeUser"]
        await bot.ok("/u", "activeUser")  # still open


async def test_too_large_frames_close_the_connection_politely(
    relay: RelayServer, make_chat: MakeChat, serve: Serve
) -> None:
    chat = await make_chat("alice", [str(relay.address)])
    server = await serve(chat, max_frame=10_000)
    async with connect(f"ws://127.0.0.1:{server.port}", max_size=None) as ws:
        await ws.send(json.dumps({"corrId": "1", "cmd": "/u " + "x" * 20_000}))
        with pytest.raises(ConnectionClosed) as closed:
            await ws.recv()
        assert closed.value.rcvd is not None and closed.value.rcvd.code == 1009
    async with connect(f"ws://127.0.0.1:{server.port}") as ws:  # the server carries on
        assert (await WsBot(ws).cmd("/u"))["type"] == "activeUser"


async def test_browsers_need_an_allowed_origin(
    relay: RelayServer, make_chat: MakeChat, serve: Serve
) -> None:
    chat = await make_chat("alice", [str(relay.address)])
    server = await serve(chat, origins=["http://localhost:8000"])
    url = f"ws://127.0.0.1:{server.port}"
    with pytest.raises(InvalidStatus) as refused:
        await connect(url, origin=Origin("http://evil.example"))
    assert refused.value.response.status_code == 403
    async with connect(url, origin=Origin("http://localhost:8000")) as ws:
        assert (await WsBot(ws).cmd("/u"))["type"] == "activeUser"


async def test_contacts_and_messages(
    relay: RelayServer, make_chat: MakeChat, bot_for: MakeBot
) -> None:
    relays = [str(relay.address)]
    a = await bot_for(await make_chat("alice", relays))
    b = await bot_for(await make_chat("bob", relays))
    seen_by_a, seen_by_b = await connect_bots(a, b)
    bob = seen_by_a["contact"]["contactId"]
    alice = seen_by_b["contact"]["contactId"]
    assert seen_by_a["contact"]["localDisplayName"] == "bob"
    assert seen_by_a["contact"]["activeConn"]["connStatus"] == "ready"
    assert seen_by_a["user"]["localDisplayName"] == "alice"
    await a.ok("/u", "activeUser")
    assert not [e for e in a.events if e["type"] == "invitation"]  # the reply had the link

    # the three ways to send
    sent = await a.ok(send_json(f"@{bob}", "one", "two"), "newChatItems")
    assert [text_of(i) for i in sent["chatItems"]] == ["one", "two"]
    assert sent["chatItems"][0]["chatItem"]["chatDir"]["type"] == "directSnd"
    assert sent["chatItems"][0]["chatInfo"]["contact"]["contactId"] == bob
    await a.ok(f"/_send @{bob} text three", "newChatItems")
    await a.ok("@bob four", "newChatItems")
    got = [await b.event("newChatItems") for _ in range(4)]
    assert [text_of(e["chatItems"][0]) for e in got] == ["one", "two", "three", "four"]
    first = got[0]["chatItems"][0]
    assert first["chatInfo"] == {"type": "direct", "contact": seen_by_b["contact"]}
    assert first["chatItem"]["chatDir"] == {"type": "directRcv"}
    assert first["chatItem"]["meta"]["itemStatus"] == {"type": "rcvNew"}
    # each message's delivery settles once: chatItemStatusUpdated with sndSent
    for text in ("one", "two", "three", "four"):
        status = await a.event(
            "chatItemStatusUpdated",
            lambda e, t=text: e["chatItem"]["chatItem"]["meta"]["itemText"] == t,  # type: ignore[misc]
        )
        # the event carries the item's status now: the receipt may have overtaken the SENT
        assert status["chatItem"]["chatItem"]["meta"]["itemStatus"]["type"] in (
            "sndSent",
            "sndRcvd",
        )
    too_long = await a.cmd(f"/_send @{bob} text " + "x" * 20_000)
    assert "too large" in command_error(too_long)

    # reading chats
    chats = (await b.ok("/_get chats pcc=off", "apiChats"))["chats"]
    assert len(chats) == 1 and text_of({"chatItem": chats[0]["chatItems"][0]}) == "four"
    chat = (await b.ok(f"/_get chat @{alice} count=2", "apiChat"))["chat"]
    assert [i["content"]["msgContent"]["text"] for i in chat["chatItems"]] == ["three", "four"]
    ids = [
        i["meta"]["itemId"]
        for i in (await b.ok(f"/_get chat @{alice} count=10", "apiChat"))["chat"]["chatItems"]
    ]
    assert len(ids) == 4

    async def texts(query: str) -> list[str]:
        chat = (await b.ok(f"/_get chat @{alice} {query}", "apiChat"))["chat"]
        return [i["meta"]["itemText"] for i in chat["chatItems"]]

    assert await texts(f"before={ids[2]} count=1") == ["two"]
    assert await texts(f"after={ids[0]} count=2") == ["two", "three"]
    assert await texts("count=10 search=T") == ["two", "three"]

    info = await a.ok(f"/_info @{bob}", "contactInfo")
    assert info["contact"]["contactId"] == bob and info["connectionStats"] == {}
    await a.ok(f"/_read chat @{bob}", "cmdOk")

    # deleting
    deleted = await a.ok(f"/_delete @{bob}", "contactDeleted")
    assert deleted["contact"]["contactId"] == bob
    assert (await a.ok("/_get chats", "apiChats"))["chats"] == []
    assert store_error(await a.cmd(send_json(f"@{bob}", "hello?"))) == "contactNotFound"


async def test_every_client_gets_the_events(
    relay: RelayServer, make_chat: MakeChat, serve: Serve, bot_for: MakeBot
) -> None:
    relays = [str(relay.address)]
    alice = await make_chat("alice", relays)
    server = await serve(alice)
    b = await bot_for(await make_chat("bob", relays))
    async with (
        connect(f"ws://127.0.0.1:{server.port}") as ws1,
        connect(f"ws://127.0.0.1:{server.port}") as ws2,
    ):
        a1, a2 = WsBot(ws1), WsBot(ws2)
        inv = await a1.ok("/connect", "invitation")
        await b.ok(f"/connect {inv['connReqInvitation']}", "sentConfirmation")
        for a in (a1, a2):
            assert (await a.event("contactConnected"))["contact"]["localDisplayName"] == "bob"
        await b.event("contactConnected")
        await b.ok("@alice hi both", "newChatItems")
        for a in (a1, a2):
            assert text_of((await a.event("newChatItems"))["chatItems"][0]) == "hi both"


async def members_of(bot: WsBot, group_id: int) -> dict[str, Resp]:
    resp = await bot.ok(f"/_members #{group_id}", "groupMembers")
    return {m["localDisplayName"]: m for m in resp["group"]["members"]}


async def test_group_bot_scenario(
    relay: RelayServer, make_chat: MakeChat, bot_for: MakeBot
) -> None:
    relays = [str(relay.address)]
    a = await bot_for(await make_chat("alice", relays))
    b = await bot_for(await make_chat("bob", relays))
    c = await bot_for(await make_chat("cath", relays))
    bob = (await connect_bots(a, b))[0]["contact"]["contactId"]
    cath = (await connect_bots(a, c))[0]["contact"]["contactId"]

    created = await a.ok('/_group {"displayName": "team", "fullName": "The Team"}', "groupCreated")
    gid = created["groupInfo"]["groupId"]
    assert created["groupInfo"]["membership"]["memberStatus"] == "memCreator"
    assert created["groupInfo"]["groupProfile"]["fullName"] == "The Team"

    # bob: invited, joins; alice watches his status through /_members
    added = await a.ok(f"/_add #{gid} {bob} member", "sentGroupInvitation")
    assert added["member"]["memberStatus"] == "memInvited"
    assert added["contact"]["contactId"] == bob
    assert (await members_of(a, gid))["bob"]["memberStatus"] == "memInvited"
    inv = await b.event("receivedGroupInvitation")
    b_gid = inv["groupInfo"]["groupId"]
    assert inv["memberRole"] == "member" and inv["groupInfo"]["localDisplayName"] == "team"
    accepted = await b.ok(f"/_join #{b_gid}", "userAcceptedGroupSent")
    assert accepted["hostContact"]["localDisplayName"] == "alice"
    joined = await b.event("userJoinedGroup")
    assert joined["hostMember"]["localDisplayName"] == "alice"
    assert joined["groupInfo"]["membership"]["memberStatus"] == "memConnected"
    assert (await a.event("joinedGroupMember"))["member"]["localDisplayName"] == "bob"
    assert (await members_of(a, gid))["bob"]["memberStatus"] == "memComplete"
    assert (await members_of(b, b_gid))["alice"]["memberCategory"] == "host"

    # cath joins: bob and cath are introduced and connect to each other
    await a.ok(f"/_add #{gid} {cath} admin", "sentGroupInvitation")
    c_gid = (await c.event("receivedGroupInvitation"))["groupInfo"]["groupId"]
    await c.ok(f"/_join #{c_gid}", "userAcceptedGroupSent")
    await c.event("userJoinedGroup")
    announced = await b.event("joinedGroupMemberConnecting")
    assert announced["member"]["localDisplayName"] == "cath"
    assert announced["hostMember"]["localDisplayName"] == "alice"
    assert (await b.event("connectedToGroupMember"))["member"]["localDisplayName"] == "cath"
    assert (await c.event("connectedToGroupMember"))["member"]["localDisplayName"] == "bob"

    async def everyone_connected() -> bool:
        views = [await members_of(x, g) for x, g in ((a, gid), (b, b_gid), (c, c_gid))]
        return all(
            len(v) == 2
            and all(m["memberStatus"] in ("memConnected", "memComplete") for m in v.values())
            for v in views
        )

    async def host_sees_cath_complete() -> bool:  # after cath's x.grp.mem.con.all
        return bool((await members_of(a, gid))["cath"]["memberStatus"] == "memComplete")

    await wait_for_condition(everyone_connected, 15)
    await wait_for_condition(host_sees_cath_complete, 15)
    assert (await members_of(c, c_gid))["bob"]["memberCategory"] == "pre"
    assert (await members_of(b, b_gid))["cath"]["memberCategory"] == "post"

    # group messages
    sent = await c.ok(send_json(f"#{c_gid}", "hello team"), "newChatItems")
    assert sent["chatItems"][0]["chatItem"]["chatDir"] == {"type": "groupSnd"}
    for bot, g in ((a, gid), (b, b_gid)):
        item = (await bot.event("newChatItems"))["chatItems"][0]
        assert text_of(item) == "hello team"
        assert item["chatInfo"]["groupInfo"]["groupId"] == g
        assert item["chatItem"]["chatDir"]["type"] == "groupRcv"
        assert item["chatItem"]["chatDir"]["groupMember"]["localDisplayName"] == "cath"
    await a.ok("#team hi from alice", "newChatItems")
    item = (await c.event("newChatItems"))["chatItems"][0]
    assert item["chatItem"]["chatDir"]["groupMember"]["localDisplayName"] == "alice"
    group_chat = (await c.ok(f"/_get chat #{c_gid} count=10", "apiChat"))["chat"]
    assert [i["meta"]["itemText"] for i in group_chat["chatItems"]] == [
        "hello team",
        "hi from alice",
    ]

    # member info, refusals
    cath_member = (await members_of(a, gid))["cath"]
    info = await a.ok(f"/_info #{gid} {cath_member['groupMemberId']}", "groupMemberInfo")
    assert info["member"]["memberRole"] == "admin" and "connectionStats_" not in info
    assert store_error(await a.cmd(f"/_info #{gid} 999")) == "groupMemberNotFound"
    assert "unknown role" in command_error(await a.cmd(f"/_add #{gid} {bob} owner"))
    not_admin = await b.cmd(f"/_add #{b_gid} 1 member")  # bob is a member
    assert "admins and owners can" in command_error(not_admin)

    # alice removes cath; bob hears of it, cath learns she was removed
    removed = await a.ok(f"/_remove #{gid} {cath_member['groupMemberId']}", "userDeletedMember")
    assert removed["member"]["memberStatus"] == "memRemoved"
    gone = await b.event("deletedMember")
    assert gone["deletedMember"]["localDisplayName"] == "cath"
    assert gone["byMember"]["localDisplayName"] == "alice"
    assert (await c.event("deletedMemberUser"))["member"]["localDisplayName"] == "alice"

    # bob leaves; alice deletes the group
    left = await b.ok(f"/_leave #{b_gid}", "leftMemberUser")
    assert left["groupInfo"]["membership"]["memberStatus"] == "memLeft"
    assert (await a.event("leftMember"))["member"]["localDisplayName"] == "bob"
    await a.ok(f"/_delete #{gid}", "groupDeletedUser")
    assert store_error(await a.cmd(f"/_members #{gid}")) == "groupNotFound"

    # a group deleted while a member is in it
    more = (await a.ok('/_group {"displayName": "more"}', "groupCreated"))["groupInfo"]["groupId"]
    await a.ok(f"/_add #{more} {bob}", "sentGroupInvitation")
    invited = await b.event("receivedGroupInvitation")
    await b.ok(f"/_join #{invited['groupInfo']['groupId']}", "userAcceptedGroupSent")
    await a.event("joinedGroupMember", lambda e: e["groupInfo"]["groupId"] == more)
    await a.ok(f"/_delete #{more}", "groupDeletedUser")
    deleted = await b.event("groupDeleted")
    assert deleted["member"]["localDisplayName"] == "alice"
    assert deleted["groupInfo"]["groupProfile"]["displayName"] == "more"


class _StubConnection:
    id = "stub"

    def __init__(self) -> None:
        self.closed_with: tuple[int, str] | None = None

    async def close(self, code: int, reason: str) -> None:
        self.closed_with = (code, reason)


async def test_a_client_that_does_not_read_is_disconnected() -> None:
    stub = _StubConnection()
    client = _Client(cast(ServerConnection, stub), queue_size=2)
    for _ in range(3):
        client.put(b"{}")
    assert client.closer is not None
    await client.closer
    assert stub.closed_with is not None and stub.closed_with[0] == 1008
    client.put(b"{}")  # ignored once closing
    assert client.queue.qsize() == 2
    await asyncio.sleep(0)

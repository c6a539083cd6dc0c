"""Introductions (DESIGN §4, steps 3 to 7) at their edges: an introduction that reaches the
newcomer before its own CON with the host."""

from __future__ import annotations

import sqlite3
from collections.abc import Awaitable, Callable

from parley.chat import events as cev
from parley.chat import store as s
from parley.chat.controller import ChatController
from parley.relay.server import RelayServer
from parley.testing.waiting import wait_for_condition
from tests.chat.conftest import MakeChat, expect, make_contacts
from tests.chat.test_group import full_mesh


def hold_host_con(chat: ChatController) -> tuple[list[str], Callable[[], Awaitable[None]]]:
    """Make `chat` miss the CON of its group connection with the host, as if that event came
    late; returns the held connection ids and a function that hands the CON over."""
    held: list[str] = []
    original = chat._on_con

    async def on_con(agent_conn: str) -> None:
        def category(c: sqlite3.Connection) -> str | None:
            conn = s.connection_by_agent_id(c, agent_conn)
            m = s.member(c, conn.member_row) if conn and conn.member_row else None
            return m.category if m else None

        if await chat._db.run(category) == s.CAT_HOST:
            held.append(agent_conn)
            return
        await original(agent_conn)

    async def release() -> None:
        async with chat._lock:
            for agent_conn in held:
                await original(agent_conn)

    chat._on_con = on_con  # type: ignore[method-assign]
    return held, release


async def invitee_intros(chat: ChatController) -> list[tuple[str, bool]]:
    """(status, both links made) of the newcomer's introductions."""
    rows = await chat._db.run(lambda c: s.intros(c, "side = 'invitee' ORDER BY intro_id", ()))
    return [(r.status, bool(r.group_link and r.direct_link)) for r in rows]


async def group_of_two(
    make_chat: MakeChat, relays: list[str], **host: object
) -> tuple[ChatController, ChatController, ChatController]:
    """Host alice with cath in #team, and bob, alice's contact, not invited yet."""
    a = await make_chat("alice", relays, **host)
    b = await make_chat("bob", relays)
    c = await make_chat("cath", relays)
    await make_contacts(a, b)
    await make_contacts(a, c)
    await a.create_group("team")
    await a.add_member("team", "cath")
    await expect(c, cev.ReceivedGroupInvitation)
    await c.join_group("team")
    await expect(c, cev.UserJoinedGroup)
    await wait_for_condition(lambda: full_mesh({"alice": a, "cath": c}, "team"), 20)
    return a, b, c


async def test_intro_before_the_newcomers_con_is_answered_on_con(
    relay: RelayServer, make_chat: MakeChat
) -> None:
    relays = [str(relay.address)]
    a, b, c = await group_of_two(make_chat, relays)
    held, release = hold_host_con(b)
    await a.add_member("team", "bob")
    await expect(b, cev.ReceivedGroupInvitation)
    await b.join_group("team")

    async def links_made() -> bool:
        return [made for _, made in await invitee_intros(b)] == [True]

    # the host's x.grp.mem.intro about cath came before bob's chat saw its CON with the host
    await wait_for_condition(links_made, 20, 0.02, "bob never made the links for cath")
    assert held, "bob's chat saw the CON with the host before the intro"
    assert await invitee_intros(b) == [("new", True)]  # not sent: nothing to send it on
    members = {m.name: m.status for m in await b.members("team")}
    assert members["cath"] == s.M_INTRODUCED

    await release()  # the CON arrives: the links go to the host now, once
    await expect(b, cev.UserJoinedGroup)
    assert await invitee_intros(b) == [("inv_sent", True)]
    chats = {"alice": a, "bob": b, "cath": c}
    await wait_for_condition(lambda: full_mesh(chats, "team"), 30, 0.1, "no full mesh")
    await release()  # the same CON again changes nothing
    assert await invitee_intros(b) == [("connected", True)]
    await b.send_group_message("team", "hello from bob")
    for chat in (a, c):
        got = await expect(chat, cev.NewChatItem)
        assert got.item.text == "hello from bob"


async def test_links_waiting_for_the_host_are_sent_after_a_restart(
    relay: RelayServer, make_chat: MakeChat
) -> None:
    """The newcomer stops before its chat handled the CON with the host (the agent has it):
    at start, reconciliation runs that CON and sends the links that waited for it."""
    relays = [str(relay.address)]
    a, b, c = await group_of_two(make_chat, relays)
    held, _ = hold_host_con(b)
    await a.add_member("team", "bob")
    await expect(b, cev.ReceivedGroupInvitation)
    await b.join_group("team")

    async def links_made() -> bool:
        return await invitee_intros(b) == [("new", True)]

    await wait_for_condition(links_made, 20, 0.02, "bob never made the links for cath")
    assert held
    await b.close()

    b = await make_chat("bob", relays)  # the same database files
    assert await invitee_intros(b) == [("inv_sent", True)]
    chats = {"alice": a, "bob": b, "cath": c}
    await wait_for_condition(lambda: full_mesh(chats, "team"), 30, 0.1, "no full mesh")

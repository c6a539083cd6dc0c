"""Introductions (DESIGN §4, steps 3 to 7) at their edges: an introduction that reaches the
newcomer before its own CON with the host, and the host's re-introduction timer."""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest

from parley.chat import events as cev
from parley.chat import store as s
from parley.chat.controller import ChatConfig, ChatController, intro_delay
from parley.chat.model import CAT_HOST, M_INTRODUCED, SIDE_INVITEE
from parley.relay.server import RelayServer
from parley.testing.waiting import wait_for_condition
from tests.chat.conftest import MakeChat, expect, make_contacts
from tests.chat.test_group import full_mesh


def hold_host_con(chat: ChatController) -> tuple[list[str], Callable[[], Awaitable[None]]]:
    """Make `chat` miss the CON of its group connection with the host, as if that event came
    late; returns the held connection ids and a function that hands the CON over."""
    held: list[str] = []
    original = chat._subscriber.on_con

    async def on_con(agent_conn: str) -> None:
        def category(c: sqlite3.Connection) -> str | None:
            conn = s.connection_by_agent_id(c, agent_conn)
            m = s.member(c, conn.member_row) if conn and conn.member_row else None
            return m.category if m else None

        if await chat._db.run(category) == CAT_HOST:
            held.append(agent_conn)
            return
        await original(agent_conn)

    async def release() -> None:
        async with chat._lock:
            for agent_conn in held:
                await original(agent_conn)

    chat._subscriber.on_con = on_con  # type: ignore[method-assign]
    return held, release


async def invitee_intros(chat: ChatController) -> list[tuple[str, bool]]:
    """(status, both links made) of the newcomer's introductions."""
    rows = await chat._db.run(lambda c: s.intros_on_side(c, SIDE_INVITEE))
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
    assert members["cath"] == M_INTRODUCED

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


def test_reintroduction_waits_grow_to_a_cap() -> None:
    config = ChatConfig(db_prefix=Path("unused"), relays=[])
    assert config.intro_timeout == 90.0  # a minute and a half, not ten minutes
    waits = [intro_delay(config, n) for n in range(1, 8)]
    assert waits == [90.0, 180.0, 360.0, 720.0, 900.0, 900.0, 900.0]
    assert intro_delay(config, 10_000) == 900.0  # no overflow after many attempts
    low, high = intro_delay(config, 1, -1.0), intro_delay(config, 1, 1.0)
    assert low == pytest.approx(90.0 * (1 - config.intro_jitter))
    assert high == pytest.approx(90.0 * (1 + config.intro_jitter))


async def test_the_hosts_timer_reintroduces_with_backoff(
    relay: RelayServer, make_chat: MakeChat
) -> None:
    """Cath is away, so the bob-cath pair makes no progress: the host's own timer (no call
    from outside) re-introduces it after 0.4 s, then 0.8 s, then at the cap of 1 s, counting
    the attempts; when cath is back the pair connects through the same links."""
    relays = [str(relay.address)]
    timers = {
        "intro_timeout": 0.4,
        "intro_backoff": 2.0,
        "intro_timeout_max": 1.0,
        "intro_jitter": 0.0,
        "intro_check_interval": 0.02,
    }
    a, b, c = await group_of_two(make_chat, relays, **timers)
    await c.close()

    seen: dict[int, tuple[float, float, float]] = {}  # attempts: (wait, created, last change)

    async def fourth_attempt() -> bool:
        rows = await a._db.run(
            lambda c: c.execute(
                "SELECT attempts, retry_delay, created_at, updated_at FROM introductions "
                "WHERE side = 'host'"
            ).fetchall()
        )
        assert len(rows) <= 1, "a re-introduction must replace the introduction it repeats"
        for attempts, wait, created, updated in rows:
            seen[attempts] = (wait, created, updated)
        return any(r[0] >= 4 for r in rows)

    started = time.monotonic()
    await a.add_member("team", "bob")
    await expect(b, cev.ReceivedGroupInvitation)
    await b.join_group("team")
    await wait_for_condition(fourth_attempt, 30, 0.01, f"attempts seen: {sorted(seen)}")
    assert time.monotonic() - started >= 0.4 + 0.8 + 1.0
    assert [seen[n][0] for n in (1, 2, 3, 4) if n in seen] == [
        w for n, w in ((1, 0.4), (2, 0.8), (3, 1.0), (4, 1.0)) if n in seen
    ]
    for n in (1, 2, 3):
        if n in seen and n + 1 in seen:  # never before the wait since the last change
            wait, _, last_change = seen[n]
            assert seen[n + 1][1] >= last_change + wait

    c = await make_chat("cath", relays)  # back: the re-introductions did no harm
    chats = {"alice": a, "bob": b, "cath": c}
    await wait_for_condition(lambda: full_mesh(chats, "team"), 30, 0.1, "no full mesh")
    with sqlite3.connect(f"file:{b._db.path}?mode=ro", uri=True) as bdb:
        dropped = bdb.execute(
            "SELECT count(*) FROM connections WHERE status = 'deleted'"
        ).fetchone()[0]
    assert dropped == 0  # bob offered the same links each time: nothing was redone


async def test_no_reintroductions_pile_up_for_a_newcomer_who_is_away(
    relay: RelayServer, make_chat: MakeChat
) -> None:
    """Bob answers the introduction, then goes away (cath is away all along): the host
    re-introduces once more, then waits for bob to say something before the next."""
    relays = [str(relay.address)]
    timers = {
        "intro_timeout": 0.3,
        "intro_backoff": 1.0,
        "intro_jitter": 0.0,
        "intro_check_interval": 0.02,
    }
    a, b, c = await group_of_two(make_chat, relays, **timers)
    await c.close()

    async def host_intro() -> tuple[str, int] | None:
        rows = await a._db.run(
            lambda c: c.execute(
                "SELECT status, attempts FROM introductions WHERE side = 'host'"
            ).fetchall()
        )
        return (rows[0][0], rows[0][1]) if rows else None

    async def attempts_at_least(n: int) -> bool:
        got = await host_intro()
        return got is not None and got[1] >= n

    await a.add_member("team", "bob")
    await expect(b, cev.ReceivedGroupInvitation)
    await b.join_group("team")

    async def answered() -> bool:
        return await host_intro() == ("fwd", 1)

    await wait_for_condition(answered, 20, 0.01)
    await b.close()  # bob answered the first introduction, and is away now

    await wait_for_condition(lambda: attempts_at_least(2), 10, 0.01)
    with pytest.raises(TimeoutError):  # ten waits later, still no third attempt
        await wait_for_condition(lambda: attempts_at_least(3), 3.0, 0.05)
    assert await host_intro() == ("sent", 2)

    b = await make_chat("bob", relays)  # back: bob answers, and the timer goes on
    await wait_for_condition(lambda: attempts_at_least(3), 20, 0.01)
    c = await make_chat("cath", relays)
    chats = {"alice": a, "bob": b, "cath": c}
    await wait_for_condition(lambda: full_mesh(chats, "team"), 30, 0.1, "no full mesh")

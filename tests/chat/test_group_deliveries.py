"""A sent group item's delivery to each member, and the item's status derived from them
(rcvd only when every member still in the group has it), on a real chat store with a
recording agent."""

from __future__ import annotations

import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from parley.chat import events as cev
from parley.chat import groups, inbox, items, store
from parley.chat.model import CAT_POST, K_MEMBER_GROUP, M_CONNECTED, M_LEFT
from parley.protocol import chat as cp
from tests.chat.bench import Bench, member_group, ready_connection


@pytest.fixture
async def bench(tmp_path: Path) -> AsyncIterator[Bench]:
    b = await Bench.open(tmp_path / "chat.db")
    yield b
    await b.close()


async def sent_to_three(b: Bench) -> tuple[int, dict[str, int], store.UserRow]:
    """bob (the creator of #team, with dan, eve and fay) sends a message: its item and the
    agent message id each member's copy got."""

    def setup(c: sqlite3.Connection) -> store.UserRow:
        g = member_group(c, host=None)
        for name in ("dan", "eve", "fay"):
            row = store.insert_member(
                c, g.group_id, cp.new_member_id(), "member", CAT_POST, M_CONNECTED, name
            )
            ready_connection(c, K_MEMBER_GROUP, row, f"{name}-conn")
        return g.user

    user = await b.read(setup)
    msg = cp.make(cp.XMsgNew(cp.TextContent("hi all")))
    view, fx = await b.read(lambda c: groups.send_message(c, user, "team", msg, "hi all"))
    await b.engine.perform(fx)
    ids = {conn.removesuffix("-conn"): n + 1 for n, (conn, _) in enumerate(b.agent.sent)}
    return view.item_id, ids, user


async def statuses(b: Bench, user: store.UserRow, item_id: int) -> dict[str, str]:
    got = await b.read(lambda c: items.member_deliveries(c, user, item_id))
    return {d.member.name: d.status for d in got}


def changes(events: list[cev.ChatEvent]) -> list[tuple[int, str]]:
    return [(e.item_id, e.status) for e in events if isinstance(e, cev.ChatItemStatus)]


async def item_status(b: Bench, item_id: int) -> str:
    row = await b.read(lambda c: store.item(c, item_id))
    assert row is not None
    return row.status


async def test_rcvd_only_when_every_member_has_it(bench: Bench) -> None:
    item_id, ids, user = await sent_to_three(bench)
    assert await statuses(bench, user, item_id) == dict.fromkeys(("dan", "eve", "fay"), "sending")
    assert await item_status(bench, item_id) == "sending"
    await bench.apply(lambda c: inbox.on_sent(c, "dan-conn", ids["dan"], "sent", ""))
    assert await item_status(bench, item_id) == "sent"
    await bench.apply(lambda c: inbox.on_rcvd(c, "dan-conn", ids["dan"], "ok"))
    fx = await bench.apply(lambda c: inbox.on_rcvd(c, "eve-conn", ids["eve"], "ok"))
    assert changes(fx.events) == [(item_id, "sent")]  # partially received
    again = await bench.apply(lambda c: inbox.on_rcvd(c, "eve-conn", ids["eve"], "ok"))
    assert not again.events
    # a late SENT does not move a member back
    await bench.apply(lambda c: inbox.on_sent(c, "eve-conn", ids["eve"], "sent", ""))
    assert await statuses(bench, user, item_id) == {
        "dan": "rcvd",
        "eve": "rcvd",
        "fay": "sending",
    }
    assert await item_status(bench, item_id) == "sent"
    fx = await bench.apply(lambda c: inbox.on_rcvd(c, "fay-conn", ids["fay"], "ok"))
    assert changes(fx.events) == [(item_id, "rcvd")]
    assert await item_status(bench, item_id) == "rcvd"


async def test_errors_name_the_member_and_gone_members_do_not_count(bench: Bench) -> None:
    item_id, ids, user = await sent_to_three(bench)
    fx = await bench.apply(lambda c: inbox.on_sent(c, "dan-conn", ids["dan"], "error", "expired"))
    (event,) = fx.events
    assert isinstance(event, cev.ChatItemStatus)
    assert (event.status, event.reason) == ("sending", "dan: expired")
    await bench.apply(lambda c: inbox.on_sent(c, "eve-conn", ids["eve"], "error", "AUTH"))
    await bench.apply(lambda c: inbox.on_sent(c, "fay-conn", ids["fay"], "error", "AUTH"))
    assert await item_status(bench, item_id) == "error"  # no delivery succeeded

    item_id, ids, user = await sent_to_second(bench, user)
    await bench.apply(lambda c: inbox.on_rcvd(c, "dan-conn", ids["dan"], "ok"))
    await bench.apply(lambda c: inbox.on_rcvd(c, "eve-conn", ids["eve"], "ok"))
    assert await item_status(bench, item_id) == "sent"  # fay has not

    def fay_leaves(c: sqlite3.Connection) -> None:
        (fay,) = [m for m in store.members(c, 1) if m.display_name == "fay"]
        store.set_member(c, fay.member_row, status=M_LEFT)

    await bench.read(fay_leaves)
    await bench.apply(lambda c: inbox.on_rcvd(c, "dan-conn", ids["dan"], "ok"))  # a repeat
    assert await item_status(bench, item_id) == "sent"
    fx = await bench.apply(lambda c: inbox.on_rcvd(c, "dan-conn", 999, "ok"))
    assert not fx.events
    # the next member change re-derives it: everyone still in the group has it
    await bench.apply(lambda c: inbox.on_sent(c, "fay-conn", ids["fay"], "sent", ""))
    assert await item_status(bench, item_id) == "rcvd"


async def sent_to_second(
    b: Bench, user: store.UserRow
) -> tuple[int, dict[str, int], store.UserRow]:
    """Another message of bob's to the same members."""
    before = len(b.agent.sent)
    msg = cp.make(cp.XMsgNew(cp.TextContent("second")))
    view, fx = await b.read(lambda c: groups.send_message(c, user, "team", msg, "second"))
    await b.engine.perform(fx)
    ids = {
        conn.removesuffix("-conn"): before + n + 1
        for n, (conn, _) in enumerate(b.agent.sent[before:])
    }
    return view.item_id, ids, user


async def test_the_authors_copy_after_the_hosts_forward_gets_a_receipt(bench: Bench) -> None:
    """A member's message that came first in the host's forward: the author's own copy,
    dropped as a duplicate, still gets a receipt (the author counts them per member)."""

    def setup(c: sqlite3.Connection) -> str:
        g = member_group(c)  # bob, joined through host alice
        dan_id = cp.new_member_id()
        row = store.insert_member(c, g.group_id, dan_id, "member", CAT_POST, M_CONNECTED, "dan")
        ready_connection(c, K_MEMBER_GROUP, row, "dan-conn")
        return dan_id

    dan_id = await bench.read(setup)
    post = cp.make(cp.XMsgNew(cp.TextContent("from dan")))
    fwd = cp.encode_chat_message(cp.make(cp.XGrpMsgForward(dan_id, post)))
    fx = await bench.apply(lambda c: inbox.on_msg(c, "host-conn", fwd, 4, "ok", bench.config))
    assert not fx.receipt  # (the forward is the host's message)
    direct = cp.encode_chat_message(post)
    fx = await bench.apply(lambda c: inbox.on_msg(c, "dan-conn", direct, 9, "ok", bench.config))
    assert fx.receipt and not fx.events  # shown once, acknowledged to dan with a receipt

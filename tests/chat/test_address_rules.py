"""The address's rules on a real store with a recording agent: a replayed REQ changes
nothing; a REQ replayed after a rejection is rejected again; auto-accept calls ACCEPT once."""

from __future__ import annotations

import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from parley.agent import events as aev
from parley.chat import addresses, store
from parley.chat import events as cev
from parley.protocol import chat as cp
from tests.chat.bench import Bench


@pytest.fixture
async def bench(tmp_path: Path) -> AsyncIterator[Bench]:
    b = await Bench.open(tmp_path / "chat.db")
    yield b
    await b.close()


async def address(bench: Bench) -> tuple[store.UserRow, str]:
    user = await bench.read(lambda c: store.insert_user(c, "owner", ""))
    _, fx = await bench.read(lambda c: addresses.create(c, user))
    await bench.engine.perform(fx)
    corr = bench.agent.of_kind("create")[-1][1]
    row = await bench.read(lambda c: store.command(c, corr))
    assert row is not None and row.connection_id is not None
    conn = await bench.read(lambda c: store.connection(c, row.connection_id))  # type: ignore[arg-type]
    assert conn is not None and conn.agent_conn_id is not None
    await bench.complete(corr, conn.agent_conn_id, aev.Inv("parley:/contact#x"))
    return user, conn.agent_conn_id


def request_info(name: str, x_id: str | None = None) -> bytes:
    return cp.encode_chat_message(
        cp.make(cp.XContact(cp.Profile(name), x_id or cp.new_member_id()))
    )


async def test_replayed_requests(bench: Bench) -> None:
    user, addr = await address(bench)
    info = request_info("alice")
    await bench.apply(lambda c: addresses.on_request(c, addr, "inv-1", info))
    await bench.apply(lambda c: addresses.on_request(c, addr, "inv-1", info))  # replayed
    reqs = await bench.read(lambda c: addresses.pending(c, user))
    assert [r.name for r in reqs] == ["alice"]
    await bench.apply(lambda c: addresses.reject(c, user, reqs[0].request_id))
    assert bench.agent.of_kind("reject") == [("reject", "", ("inv-1",))]
    # the process stopped before the agent heard: the REQ comes again
    await bench.apply(lambda c: addresses.on_request(c, addr, "inv-1", info))
    assert len(bench.agent.of_kind("reject")) == 2
    # a bad request is rejected at once
    await bench.apply(lambda c: addresses.on_request(c, addr, "inv-2", b"{}"))
    assert bench.agent.of_kind("reject")[-1][2] == ("inv-2",)


async def test_auto_accept_accepts_once(bench: Bench) -> None:
    user, addr = await address(bench)

    def auto(c: sqlite3.Connection) -> None:
        addresses.set_auto_accept(c, user, True, "hi")

    await bench.read(auto)
    info = request_info("bob")
    for _ in range(2):
        await bench.apply(lambda c: addresses.on_request(c, addr, "inv-9", info))
    assert [call[2][0] for call in bench.agent.of_kind("accept")] == ["inv-9"]
    events = bench.drain()
    assert any(isinstance(e, cev.AcceptingContactRequest) for e in events)
    # the same x contact id on the same address later: recognised once the contact exists
    assert await bench.read(lambda c: addresses.pending(c, user)) == []

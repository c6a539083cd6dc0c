"""Ratchet re-synchronisation: one side's database restored from an earlier copy (its
ratchet behind the peer's); both report it, re-agree keys through the same queues, and
messages flow again both ways, none after the re-agreement lost."""

from __future__ import annotations

import shutil
from pathlib import Path

from parley.agent import events as ev
from parley.agent.agent import Agent
from parley.relay.server import RelayServer
from tests.agent.conftest import MakeAgent, connect_pair, expect


def copy_db(src: Path, dst: Path) -> None:
    for suffix in ("", "-wal", "-shm"):
        s = Path(str(src) + suffix)
        d = Path(str(dst) + suffix)
        if s.exists():
            shutil.copyfile(s, d)
        elif d.exists():
            d.unlink()


async def exchange(a: Agent, a_conn: str, b: Agent, b_conn: str, text: bytes) -> None:
    await a.send_message(a_conn, text)
    _, got = await expect(b, ev.Msg, b_conn)
    assert got.body == text
    await b.ack_message(b_conn, got.msg_id)


async def test_restored_database_resyncs(
    tmp_path: Path, relay: RelayServer, make_agent: MakeAgent
) -> None:
    relays = [str(relay.address)]
    a = await make_agent("a", relays)
    b = await make_agent("b", relays)
    a_conn, b_conn = await connect_pair(a, b)
    await exchange(a, a_conn, b, b_conn, b"before")
    await b.close()
    copy_db(tmp_path / "b.db", tmp_path / "b-old.db")
    b = await make_agent("b", relays)
    for i in range(3):  # both ratchets step on
        await exchange(a, a_conn, b, b_conn, b"a%d" % i)
        await exchange(b, b_conn, a, a_conn, b"b%d" % i)
    await b.close()
    copy_db(tmp_path / "b-old.db", tmp_path / "b.db")  # b's ratchet is behind now
    b = await make_agent("b", relays)

    await a.send_message(a_conn, b"lost")
    _, required = await expect(b, ev.RSync, b_conn)
    assert required.state == "required" and required.reason
    assert await b.ratchet_state(b_conn) == "required"

    assert await b.synchronize_ratchet(b_conn) == "started"
    assert await b.synchronize_ratchet(b_conn) == "started"  # idempotent
    _, agreed = await expect(a, ev.RSync, a_conn)
    assert agreed.state == "agreed"
    _, ok = await expect(a, ev.RSync, a_conn)
    assert ok.state == "ok"
    states = [(await expect(b, ev.RSync, b_conn))[1].state for _ in range(3)]
    assert states == ["started", "agreed", "ok"]

    for i in range(3):
        await a.send_message(a_conn, b"after a%d" % i)
        _, got = await expect(b, ev.Msg, b_conn)
        assert (got.body, got.integrity) == (b"after a%d" % i, "ok")
        await b.ack_message(b_conn, got.msg_id)
        await b.send_message(b_conn, b"after b%d" % i)
        _, got = await expect(a, ev.Msg, a_conn)
        assert (got.body, got.integrity) == (b"after b%d" % i, "ok")
        await a.ack_message(a_conn, got.msg_id)
    assert await a.ratchet_state(a_conn) == await b.ratchet_state(b_conn) == "ok"

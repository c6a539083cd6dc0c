"""The agent's subscription safety net: a queue whose subscription was lost at the relay,
or whose message the relay holds without the agent knowing, is found and served by the
periodic check (no call from the test), and what it found is shown in pending()."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from parley.agent import events as ev
from parley.agent.agent import Agent
from parley.agent.subscriptions import NetPolicy
from parley.protocol.relay_auth import AuthKey
from parley.relay.client import MessageReceived, RelayClient
from parley.relay.server import RelayServer
from parley.testing.waiting import wait_for_condition
from tests.agent.conftest import MakeAgent, connect_pair, expect
from tests.relay.conftest import FAST, next_event

# checks within a second instead of minutes
QUICK_NET = NetPolicy(interval=0.2, expecting=0.5, quiet=0.5, quiet_cap=1.0)


def rcv_queue(db: Path, conn_id: str) -> tuple[bytes, AuthKey]:
    c = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        rid, key = c.execute(
            "SELECT recipient_id, recipient_key FROM rcv_queues WHERE conn_id = ?", (conn_id,)
        ).fetchone()
    finally:
        c.close()
    return rid, AuthKey.from_bytes(key)


async def take_over(relay: RelayServer, rid: bytes, key: AuthKey, a: Agent, a_conn: str) -> None:
    """Another client subscribes B's queue, gets A's next message pushed and never
    acknowledges it, then goes away: the message waits on the relay, nobody subscribed."""
    other = RelayClient(relay.address, settings=FAST)
    try:
        await other.subscribe(rid, key)
        await a.send_message(a_conn, b"while the queue was taken")
        got = await next_event(other, MessageReceived)
        assert got.recipient_id == rid
    finally:
        await other.close()


async def test_taken_over_queue_is_subscribed_again(
    relay: RelayServer, make_agent: MakeAgent, tmp_path: Path
) -> None:
    addr = str(relay.address)
    a = await make_agent("a", [addr])
    b = await make_agent("b", [addr], net=QUICK_NET)
    a_conn, b_conn = await connect_pair(a, b)
    rid, key = rcv_queue(tmp_path / "b.db", b_conn)
    await take_over(relay, rid, key, a, a_conn)
    await expect(b, ev.End, b_conn)
    _, msg = await expect(b, ev.Msg, b_conn)
    assert msg.body == b"while the queue was taken"
    report = await b.pending()
    assert report.net is not None and report.net.passes >= 1
    assert not report.subscriptions


async def test_safety_net_finds_a_message_the_agent_missed(
    relay: RelayServer, make_agent: MakeAgent, tmp_path: Path
) -> None:
    """The END never reached B (lost on the way, or a bug): B's relay client believes the
    queue is subscribed while the relay has no subscriber for it. Only a check at the
    relay can find the waiting message."""
    addr = str(relay.address)
    a = await make_agent("a", [addr])
    b = await make_agent("b", [addr], net=QUICK_NET)
    a_conn, b_conn = await connect_pair(a, b)
    rid, key = rcv_queue(tmp_path / "b.db", b_conn)
    client = b._relays.client(addr)
    await take_over(relay, rid, key, a, a_conn)
    await expect(b, ev.End, b_conn)
    conn = client._conn
    assert conn is not None
    conn.subscribed.add(rid)  # the END is lost: the client still holds the queue
    _, msg = await expect(b, ev.Msg, b_conn)
    assert msg.body == b"while the queue was taken"
    report = await b.pending()
    assert report.net is not None
    assert report.net.found == 1
    assert [f.conn_id for f in report.net.recent] == [b_conn]
    await b.ack_message(b_conn, msg.msg_id)  # a message found by GET is acknowledged as usual
    await wait_for_condition(lambda: relay.stats.messages_stored == 0, 5)


async def test_pending_shows_subscriptions_of_an_unreachable_relay(
    relay: RelayServer, make_agent: MakeAgent
) -> None:
    addr = str(relay.address)
    a = await make_agent("a", [addr])
    b = await make_agent("b", [addr])
    _, b_conn = await connect_pair(a, b)
    await relay.stop()

    async def down() -> bool:
        report = await b.pending()
        return [(s.conn_id, s.state) for s in report.subscriptions] == [(b_conn, "relay down")]

    await wait_for_condition(down, 10, 0.05, "the lost subscription is not shown")
    report = await b.pending()
    assert [(r.relay, r.connected, r.queues) for r in report.relays] == [(addr, False, 1)]

"""A message the relay delivers again, or a sender's message sent twice, is shown once."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from parley.agent import events as ev
from parley.protocol.relay_auth import AuthKey
from parley.relay.client import RelayClient
from parley.relay.server import RelayServer
from parley.testing.waiting import wait_for_condition
from tests.agent.conftest import MakeAgent, connect_pair, expect
from tests.relay.conftest import FAST, relay_config


async def test_redelivered_unacknowledged_message_is_shown_once(
    relay: RelayServer, make_agent: MakeAgent
) -> None:
    a = await make_agent("a", [str(relay.address)])
    b = await make_agent("b", [str(relay.address)])
    a_conn, b_conn = await connect_pair(a, b)
    await a.send_message(a_conn, b"once")
    _, msg = await expect(b, ev.Msg, b_conn)

    delivered = relay.stats.messages_delivered
    b._relays.client(str(relay.address)).drop_connection()  # the network fails
    await expect(b, ev.Up)  # reconnected and resubscribed: the relay delivers it again
    await wait_for_condition(lambda: relay.stats.messages_delivered > delivered, 5)

    await b.ack_message(b_conn, msg.msg_id)
    await a.send_message(a_conn, b"next")
    _, nxt = await expect(b, ev.Msg, b_conn)  # the redelivered copy never shows up
    assert (nxt.body, nxt.msg_id, nxt.integrity) == (b"next", msg.msg_id + 1, "ok")


async def test_message_sent_twice_is_shown_once(tmp_path: Path, make_agent: MakeAgent) -> None:
    relay = RelayServer(relay_config(tmp_path / "relay"))
    await relay.start()
    port, address = relay.port, relay.address
    a = await make_agent("a", [str(address)])
    b = await make_agent("b", [str(address)])
    a_conn, b_conn = await connect_pair(a, b)

    await relay.stop()  # hold the message in A's delivery queue to copy its envelope
    await a.send_message(a_conn, b"only once")
    with sqlite3.connect(tmp_path / "a.db") as db:
        envelope, sender_id, sender_key = db.execute(
            "SELECT d.envelope, s.sender_id, s.sender_key FROM deliveries d "
            "JOIN snd_queues s USING (conn_id) WHERE d.conn_id = ?",
            (a_conn,),
        ).fetchone()
    relay = RelayServer(relay_config(tmp_path / "relay", port=port))
    await relay.start()
    try:
        _, msg = await expect(b, ev.Msg, b_conn, timeout=15)
        assert msg.body == b"only once"
        await b.ack_message(b_conn, msg.msg_id)

        # the same envelope again, as a SEND retried after a lost OK would put it there
        replay = RelayClient(address, settings=FAST)
        await replay.send(sender_id, AuthKey.from_bytes(sender_key), envelope)
        await replay.close()
        await a.send_message(a_conn, b"after")
        _, nxt = await expect(b, ev.Msg, b_conn)
        assert nxt.body == b"after" and nxt.integrity == "ok"
    finally:
        await relay.stop()

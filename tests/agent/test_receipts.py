"""Delivery receipts: the receiving client acks a stored message with a receipt; the
sender gets RCVD for that message, once, with the hash checked; across a restart too."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from parley.agent import events as ev
from parley.relay.server import RelayServer
from tests.agent.conftest import MakeAgent, connect_pair, expect


async def test_receipt_reaches_the_sender_once(relay: RelayServer, make_agent: MakeAgent) -> None:
    a = await make_agent("a", [str(relay.address)])
    b = await make_agent("b", [str(relay.address)])
    a_conn, b_conn = await connect_pair(a, b)
    sent = await a.send_message(a_conn, b"hello")
    _, msg = await expect(b, ev.Msg, b_conn)
    await b.ack_message(b_conn, msg.msg_id, receipt=True)
    _, rcvd = await expect(a, ev.Rcvd, a_conn)
    assert (rcvd.snd_msg_id, rcvd.status) == (sent, "ok")
    await a.ack_message(a_conn, rcvd.msg_id)
    # no receipt without asking for one; the next message still flows in order
    sent2 = await a.send_message(a_conn, b"no receipt")
    _, msg2 = await expect(b, ev.Msg, b_conn)
    await b.ack_message(b_conn, msg2.msg_id)
    sent3 = await a.send_message(a_conn, b"third")
    _, msg3 = await expect(b, ev.Msg, b_conn)
    assert msg3.integrity == "ok"
    await b.ack_message(b_conn, msg3.msg_id, receipt=True)
    _, rcvd3 = await expect(a, ev.Rcvd, a_conn)
    assert rcvd3.snd_msg_id == sent3 != sent2


async def test_unacked_receipt_is_shown_again_after_restart(
    tmp_path: Path, relay: RelayServer, make_agent: MakeAgent
) -> None:
    a = await make_agent("a", [str(relay.address)])
    b = await make_agent("b", [str(relay.address)])
    a_conn, b_conn = await connect_pair(a, b)
    sent = await a.send_message(a_conn, b"hello")
    _, msg = await expect(b, ev.Msg, b_conn)
    await b.ack_message(b_conn, msg.msg_id, receipt=True)
    await expect(a, ev.Rcvd, a_conn)
    await a.close()
    a2 = await make_agent("a", [str(relay.address)])
    _, again = await expect(a2, ev.Rcvd, a_conn)
    assert again.snd_msg_id == sent
    with sqlite3.connect(tmp_path / "a.db") as db:
        (status,) = db.execute(
            "SELECT receipt FROM snd_messages WHERE conn_id = ? AND msg_id = ?", (a_conn, sent)
        ).fetchone()
    assert status == "ok"

"""The full handshake and messages both ways, through a real relay."""

from __future__ import annotations

from parley.agent import events as ev
from parley.relay.server import RelayServer
from tests.agent.conftest import MakeAgent, connect_pair, expect


async def test_handshake_and_messages_both_ways(relay: RelayServer, make_agent: MakeAgent) -> None:
    a = await make_agent("alice", [str(relay.address)])
    b = await make_agent("bob", [str(relay.address)])
    a_conn, b_conn = await connect_pair(a, b)

    mid = await a.send_message(a_conn, b"hello bob")
    _, sent = await expect(a, ev.Sent, a_conn)
    assert sent.msg_id == mid
    _, msg = await expect(b, ev.Msg, b_conn)
    assert (msg.body, msg.integrity) == (b"hello bob", "ok")
    await b.ack_message(b_conn, msg.msg_id)

    for i in range(5):
        await b.send_message(b_conn, b"reply %d" % i)
    for i in range(5):
        _, msg = await expect(a, ev.Msg, a_conn)
        assert msg.body == b"reply %d" % i and msg.integrity == "ok"
        await a.ack_message(a_conn, msg.msg_id)
    statuses = {s.conn_id: s for s in await a.subscribe_all()}
    assert statuses[a_conn].status == "ready"


async def test_corr_ids_are_unique(relay: RelayServer, make_agent: MakeAgent) -> None:
    import pytest

    from parley.agent.agent import AgentError, DuplicateCommand

    a = await make_agent("alice", [str(relay.address)])
    conn = await a.create_connection_async("same")
    with pytest.raises(DuplicateCommand):
        await a.create_connection_async("same")
    with pytest.raises(DuplicateCommand):
        await a.delete_connection_async("same", conn)
    with pytest.raises(AgentError, match="corr id"):
        await a.create_connection_async("")
    assert [c.corr_id for c in (await a.pending()).commands] in ([], ["same"])


async def test_cancelled_callers_do_not_strand_committed_work(
    relay: RelayServer, make_agent: MakeAgent
) -> None:
    """A call cancelled after its transaction committed still runs (no restart needed)."""
    import asyncio

    from parley.agent import events as ev
    from tests.agent.conftest import expect

    a = await make_agent("alice", [str(relay.address)])
    tasks = [asyncio.create_task(a.create_connection_async(f"c{i}")) for i in range(40)]
    await asyncio.sleep(0)  # let them start (each is now inside its transaction)
    for t in tasks:
        t.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)

    async def all_done() -> bool:
        return not (await a.pending()).commands

    from parley.testing.waiting import wait_for_condition

    await wait_for_condition(all_done, 15)  # whatever committed also ran
    stored = await a.subscribe_all()
    invs = [(await expect(a, ev.Inv))[0].conn_id for _ in stored]
    assert sorted(invs) == sorted(st.conn_id for st in stored)

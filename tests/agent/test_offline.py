"""Connections made while one side, or the relay, is offline: nothing needs a retry by hand."""

from __future__ import annotations

from pathlib import Path

from parley.agent import events as ev
from parley.agent.agent import Agent
from parley.relay.server import RelayServer
from tests.agent.conftest import agent_config, expect
from tests.relay.conftest import relay_config


async def reopen(agent: Agent) -> Agent:
    """Close an agent and open it again on the same database (a restart)."""
    config = agent.config
    await agent.close()
    return await Agent.open(config)


async def test_initiator_offline_while_joiner_joins(relay: RelayServer, tmp_path: Path) -> None:
    relays = [str(relay.address)]
    a = await Agent.open(agent_config(tmp_path / "a.db", relays))
    b = await Agent.open(agent_config(tmp_path / "b.db", relays))
    a_conn = await a.create_connection_async("c1")
    _, inv = await expect(a, ev.Inv, a_conn)
    await a.ack_command_event("c1")
    await a.close()  # A goes offline

    b_conn = await b.join_connection_async("j1", inv.link, b"bob")
    e, _ = await expect(b, ev.Ok, b_conn)
    assert e.corr_id == "j1"

    a = await Agent.open(a.config)  # back online: the confirmation was waiting on the relay
    _, conf = await expect(a, ev.Conf, a_conn)
    await a.allow_connection_async("a1", a_conn, conf.conf_id, b"alice")
    await expect(a, ev.Con, a_conn)
    await expect(b, ev.Con, b_conn)
    await a.close()
    await b.close()


async def test_joiner_offline_after_joining(relay: RelayServer, tmp_path: Path) -> None:
    relays = [str(relay.address)]
    a = await Agent.open(agent_config(tmp_path / "a.db", relays))
    b = await Agent.open(agent_config(tmp_path / "b.db", relays))
    a_conn = await a.create_connection_async("c1")
    _, inv = await expect(a, ev.Inv, a_conn)
    b_conn = await b.join_connection_async("j1", inv.link, b"bob")
    await expect(b, ev.Ok, b_conn)
    await b.close()  # B goes offline before A allows

    _, conf = await expect(a, ev.Conf, a_conn)
    await a.allow_connection_async("a1", a_conn, conf.conf_id, b"alice")
    e, _ = await expect(a, ev.Ok, a_conn)
    assert e.corr_id == "a1"

    b = await reopen(b)
    _, info = await expect(b, ev.Info, b_conn)
    assert info.info == b"alice"
    await expect(b, ev.Con, b_conn)
    await expect(a, ev.Con, a_conn)
    await a.close()
    await b.close()


async def test_never_online_together(relay: RelayServer, tmp_path: Path) -> None:
    """A and B take turns; each turn ends when that side has nothing more to do."""
    relays = [str(relay.address)]
    a_config = agent_config(tmp_path / "a.db", relays)
    b_config = agent_config(tmp_path / "b.db", relays)

    a = await Agent.open(a_config)
    a_conn = await a.create_connection_async("c1")
    _, inv = await expect(a, ev.Inv, a_conn)
    await a.close()

    b = await Agent.open(b_config)
    b_conn = await b.join_connection_async("j1", inv.link, b"bob")
    await expect(b, ev.Ok, b_conn)
    await b.close()

    a = await Agent.open(a_config)
    _, conf = await expect(a, ev.Conf, a_conn)
    await a.allow_connection_async("a1", a_conn, conf.conf_id, b"alice")
    await expect(a, ev.Ok, a_conn)
    await a.close()

    b = await Agent.open(b_config)
    await expect(b, ev.Info, b_conn)
    # B secures its queue and sends HELLO; wait until nothing is pending
    from parley.testing.waiting import wait_for_condition

    async def idle(agent: Agent) -> bool:
        report = await agent.pending()
        return not report.commands and not report.deliveries

    await wait_for_condition(lambda: idle(b), 10)
    await b.close()

    a = await Agent.open(a_config)
    await expect(a, ev.Con, a_conn)  # got B's HELLO, sent its own
    await wait_for_condition(lambda: idle(a), 10)
    await a.close()

    b = await Agent.open(b_config)
    await expect(b, ev.Con, b_conn)
    await b.send_message(b_conn, b"finally")
    await expect(b, ev.Sent, b_conn)
    await b.close()

    a = await Agent.open(a_config)
    _, msg = await expect(a, ev.Msg, a_conn)
    assert msg.body == b"finally"
    await a.close()


async def test_relay_down_during_create_then_agent_restarted(tmp_path: Path) -> None:
    relay = RelayServer(relay_config(tmp_path / "relay"))
    await relay.start()
    address, port = relay.address, relay.port
    await relay.stop()  # the relay is down before the command is even tried

    a = await Agent.open(agent_config(tmp_path / "a.db", [str(address)]))
    a_conn = await a.create_connection_async("create-1")
    from parley.testing.waiting import wait_for_condition

    async def tried() -> bool:
        return any(c.attempts > 0 for c in (await a.pending()).commands)

    await wait_for_condition(tried, 10)
    report = await a.pending()
    assert report.commands[0].corr_id == "create-1" and report.commands[0].last_error
    await a.close()  # the agent stops with the command pending

    relay = RelayServer(relay_config(tmp_path / "relay", port=port))
    await relay.start()
    try:
        a = await Agent.open(a.config)
        e, inv = await expect(a, ev.Inv, a_conn)
        assert e.corr_id == "create-1" and inv.link.startswith("parley:/invite#")
        await a.close()
    finally:
        await relay.stop()


async def test_relay_down_during_join_and_allow(tmp_path: Path) -> None:
    relay = RelayServer(relay_config(tmp_path / "relay"))
    await relay.start()
    port, relays = relay.port, [str(relay.address)]
    a = await Agent.open(agent_config(tmp_path / "a.db", relays))
    b = await Agent.open(agent_config(tmp_path / "b.db", relays))
    try:
        a_conn = await a.create_connection_async("c1")
        _, inv = await expect(a, ev.Inv, a_conn)

        await relay.stop()
        b_conn = await b.join_connection_async("j1", inv.link, b"bob")
        relay = RelayServer(relay_config(tmp_path / "relay", port=port))
        await relay.start()
        e, _ = await expect(b, ev.Ok, b_conn, timeout=15)
        assert e.corr_id == "j1"

        _, conf = await expect(a, ev.Conf, a_conn, timeout=15)
        await relay.stop()
        await a.allow_connection_async("a1", a_conn, conf.conf_id, b"alice")
        relay = RelayServer(relay_config(tmp_path / "relay", port=port))
        await relay.start()
        e, _ = await expect(a, ev.Ok, a_conn, timeout=15)
        assert e.corr_id == "a1"
        await expect(a, ev.Con, a_conn, timeout=15)
        await expect(b, ev.Con, b_conn, timeout=15)
    finally:
        await a.close()
        await b.close()
        await relay.stop()


async def test_permanent_error_ends_with_err(relay: RelayServer, tmp_path: Path) -> None:
    relays = [str(relay.address)]
    a = await Agent.open(agent_config(tmp_path / "a.db", relays))
    b = await Agent.open(agent_config(tmp_path / "b.db", relays))
    a_conn = await a.create_connection_async("c1")
    _, inv = await expect(a, ev.Inv, a_conn)
    await a.delete_connection_async("d1", a_conn)  # the invitation's queue is deleted
    await expect(a, ev.Ok, a_conn)

    b_conn = await b.join_connection_async("join-dead-link", inv.link, b"bob")
    e, err = await expect(b, ev.Err, b_conn)
    assert e.corr_id == "join-dead-link" and err.code == "NO_QUEUE"
    assert not (await b.pending()).commands
    await a.close()
    await b.close()


async def test_hundred_connections_wait_for_their_relay(tmp_path: Path) -> None:
    relay = RelayServer(relay_config(tmp_path / "relay"))
    await relay.start()
    address, port = relay.address, relay.port
    await relay.stop()

    a = await Agent.open(agent_config(tmp_path / "a.db", [str(address)]))
    conns = {await a.create_connection_async(f"c{i}"): f"c{i}" for i in range(100)}
    from parley.testing.waiting import wait_for_condition

    async def all_tried_twice() -> bool:
        return all(c.attempts >= 2 for c in (await a.pending()).commands)

    await wait_for_condition(all_tried_twice, 20)
    next_tries = [c.next_try for c in (await a.pending()).commands]
    assert len(next_tries) == 100
    # jitter: retries are spread out, not in lock step
    assert len({round(t, 3) for t in next_tries}) > 50

    relay = RelayServer(relay_config(tmp_path / "relay", port=port))
    await relay.start()
    try:
        done: dict[str, str] = {}
        while len(done) < 100:
            e, _ = await expect(a, ev.Inv, timeout=20)
            assert conns[e.conn_id] == e.corr_id
            done[e.conn_id] = e.corr_id
        assert not (await a.pending()).commands
    finally:
        await a.close()
        await relay.stop()


async def test_relay_up_sends_waiting_messages_at_once(tmp_path: Path) -> None:
    """Deliveries backing off for a long time go as soon as their relay is back."""
    from parley.retry import Backoff

    relay = RelayServer(relay_config(tmp_path / "relay"))
    await relay.start()
    port, relays = relay.port, [str(relay.address) + "/"]  # another spelling of the address
    slow = {"retry": Backoff(30.0, 1.5, 60.0, 0.0)}  # retries far beyond the test's patience
    a = await Agent.open(agent_config(tmp_path / "a.db", relays))
    b = await Agent.open(agent_config(tmp_path / "b.db", relays))
    try:
        from tests.agent.conftest import connect_pair

        a_conn, b_conn = await connect_pair(a, b)
        await a.close()
        a = await Agent.open(agent_config(tmp_path / "a.db", relays, **slow))
        await relay.stop()
        await a.send_message(a_conn, b"waiting")
        from parley.testing.waiting import wait_for_condition

        async def tried() -> bool:
            return any(d.attempts > 0 for d in (await a.pending()).deliveries)

        await wait_for_condition(tried, 10)
        relay = RelayServer(relay_config(tmp_path / "relay", port=port))
        await relay.start()
        await expect(a, ev.Sent, a_conn, timeout=10)  # not 30 s later
        _, msg = await expect(b, ev.Msg, b_conn, timeout=10)
        assert msg.body == b"waiting"
    finally:
        await a.close()
        await b.close()
        await relay.stop()

"""A relay outage with work waiting: clients probe the relay and resume by themselves.

The 2-second goal is measured by bench/recovery.py; these tests check the behaviour: the
pause before a reconnect attempt is cut to the probe interval while work waits, and two
agents with default timers resume their pending work after a relay process was down."""

from __future__ import annotations

import asyncio
from pathlib import Path

from parley.agent import events as ev
from parley.agent.agent import Agent, AgentConfig
from parley.protocol.relay_auth import AuthKey
from parley.relay.client import ClientSettings, RelayClient
from parley.retry import Backoff
from parley.testing.process import RelayProcess
from tests.agent.conftest import connect_pair, expect

UNREACHABLE = "parley://" + "A" * 43 + "@127.0.0.1:9"  # discard port: nothing listens

SLOW_BACKOFF = ClientSettings(reconnect=Backoff(60.0, 1.5, 60.0, 0.0), probe_interval=0.05)


async def test_pause_is_cut_to_the_probe_interval_while_work_waits() -> None:
    c = RelayClient(UNREACHABLE, settings=SLOW_BACKOFF)
    loop = asyncio.get_running_loop()
    try:
        c._subscriptions[b"q" * 24] = AuthKey.generate()  # a queue waiting to be subscribed
        start = loop.time()
        assert await c._pause(20)  # cut short: a probe is due
        assert loop.time() - start < 1.0
    finally:
        await c.close()


async def test_work_arriving_ends_a_long_backoff() -> None:
    c = RelayClient(UNREACHABLE, settings=SLOW_BACKOFF)
    try:
        assert not c.work_waiting()
        pause = asyncio.create_task(c._pause(20))  # nothing waits: the 60 s backoff
        await asyncio.sleep(0)
        assert not pause.done()
        c._subscriptions[b"q" * 24] = AuthKey.generate()
        c._hurry.set()  # what keep_subscribed and a command do
        async with asyncio.timeout(5):
            assert await pause
    finally:
        await c.close()


async def test_two_agents_resume_after_a_relay_outage(tmp_path: Path) -> None:
    """Default client timers; the relay process is SIGKILLed, stays down long enough for
    the reconnect backoff to grow past the probe interval, and comes back on its port."""
    relay = RelayProcess(tmp_path / "relay")
    address = str(await relay.start())
    a = await Agent.open(AgentConfig(tmp_path / "a.db", [address]))
    b = await Agent.open(AgentConfig(tmp_path / "b.db", [address]))
    try:
        a_conn, _ = await connect_pair(a, b)
        await relay.kill()
        await expect(a, ev.Down)
        await expect(b, ev.Down)
        msg_id = await a.send_message(a_conn, b"sent during the outage")
        new_conn = await b.create_connection_async("during-outage")
        await asyncio.sleep(8)  # the outage itself (not a wait for an event)
        await relay.start()
        _, sent = await expect(a, ev.Sent, a_conn, timeout=30)
        assert sent.msg_id == msg_id
        await expect(b, ev.Inv, new_conn, timeout=30)
        clients = [x._relays.client(address) for x in (a, b)]
        assert all(c.connected for c in clients)
    finally:
        await a.close()
        await b.close()
        await relay.kill()

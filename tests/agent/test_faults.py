"""Connections and messages through a fault proxy that cuts links at random moments."""

from __future__ import annotations

import asyncio
import os
import random

from parley.agent import events as ev
from parley.agent.agent import Agent
from parley.protocol.address import RelayAddress
from parley.relay.server import RelayServer
from parley.testing.proxy import FaultProxy
from tests.agent.conftest import MakeAgent, expect


async def handshake(a: Agent, b: Agent, n: int) -> tuple[str, str]:
    a_conn = await a.create_connection_async(f"c{n}")
    _, inv = await expect(a, ev.Inv, a_conn, timeout=30)
    b_conn = await b.join_connection_async(f"j{n}", inv.link, b"b%d" % n)
    _, conf = await expect(a, ev.Conf, a_conn, timeout=30)
    await a.allow_connection_async(f"a{n}", a_conn, conf.conf_id, b"a%d" % n)
    await expect(a, ev.Con, a_conn, timeout=30)
    await expect(b, ev.Con, b_conn, timeout=30)
    return a_conn, b_conn


async def test_connections_form_while_links_are_cut(
    relay: RelayServer, make_agent: MakeAgent
) -> None:
    seed = int(os.environ.get("PARLEY_SEED", random.randrange(2**32)))
    rng = random.Random(seed)
    async with FaultProxy(relay.address.host, relay.address.port, seed=seed) as proxy:
        proxy.cut_random(0.5, after=(0.005, 0.05))
        via_proxy = str(RelayAddress(relay.address.fingerprint, "127.0.0.1", proxy.port))
        a = await make_agent("a", [via_proxy])
        b = await make_agent("b", [via_proxy])

        async def chaos() -> None:
            while True:
                await asyncio.sleep(rng.uniform(0.01, 0.08))
                proxy.cut()

        cutter = asyncio.create_task(chaos())
        try:
            pairs = [await handshake(a, b, n) for n in range(3)]
            for n, (a_conn, _) in enumerate(pairs):
                await a.send_message(a_conn, b"msg %d" % n)
            received: set[bytes] = set()
            while len(received) < 3:
                e, msg = await expect(b, ev.Msg, timeout=30)
                assert msg.body not in received, "duplicate shown"
                received.add(msg.body)
                await b.ack_message_async(f"ack-{e.conn_id}", e.conn_id, msg.msg_id)
            assert proxy.stats.faults_injected > 0
        except BaseException:
            print(f"fault seed: {seed} (PARLEY_SEED={seed} reproduces the cut pattern)")
            raise
        finally:
            cutter.cancel()

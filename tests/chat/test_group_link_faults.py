"""Five members join a group through its link, in processes, while the network cuts their
connections (a seeded FaultProxy) and one member is SIGKILLed; the mesh forms and every
message arrives exactly once at every member."""

from __future__ import annotations

import os
import random
from pathlib import Path

from parley.chat import events as cev
from parley.protocol.address import RelayAddress
from parley.relay.server import RelayServer
from parley.testing.chat_process import ChatProcess
from parley.testing.proxy import FaultProxy
from tests.chat.harness import assert_exactly_once, wait_mesh
from tests.chat.proc import Proc


async def test_five_join_through_the_link_under_faults(relay: RelayServer, tmp_path: Path) -> None:
    seed = int(os.environ.get("PARLEY_SEED", random.randrange(1_000_000)))
    print(f"seed {seed} (PARLEY_SEED={seed} repeats it)")
    rng = random.Random(seed)
    async with FaultProxy(relay.address.host, relay.address.port, seed=seed) as proxy:
        via = [str(RelayAddress(relay.address.fingerprint, "127.0.0.1", proxy.port))]
        names = ["host", "m1", "m2", "m3", "m4", "m5"]
        procs: dict[str, ChatProcess] = {n: Proc(tmp_path / n, via, n) for n in names}
        try:
            host = procs["host"]
            await host.start()
            await host.call("create_group", name="team")
            link = await host.call("create_group_link", group_name="team", role="member")
            proxy.cut_random(0.5, mean=1.5, existing=True)
            victim = rng.choice(names[1:])
            for name in names[1:]:
                p = procs[name]
                await p.start()
                await p.call("connect", link=link)
                if name == victim:
                    await p.kill()
                    await p.start()
            await procs[victim].expect(cev.UserJoinedGroup, None, 90)
            proxy.cut_random(0.0)
            await wait_mesh(procs, "team", 120)
            sent: dict[str, list[str]] = {}
            for name, p in procs.items():
                text = f"hello from {name}"
                await p.call("send_group_message", group_name="team", text=text)
                sent[name] = [text]
            await assert_exactly_once(procs, "team", sent, 60)
            members = await host.call("members", group_name="team")
            assert sorted(m["name"] for m in members) == sorted(names)
        finally:
            for p in procs.values():
                await p.kill()

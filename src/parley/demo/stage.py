"""The scenario's stage: K relays (in this process or as `parley relay` processes), a
:class:`~parley.testing.proxy.FaultProxy` in front of each, and N chat clients configured
with every relay through the proxies; started and stopped together."""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass, field
from pathlib import Path

from parley.demo.clients import Member
from parley.demo.config import ScenarioConfig
from parley.demo.faults import FaultPlan
from parley.demo.progress import MemberProgress, RelayCounts
from parley.protocol.address import RelayAddress
from parley.relay.config import RelayConfig
from parley.relay.server import RelayServer
from parley.testing.chat_process import ChatProcess
from parley.testing.process import RelayProcess
from parley.testing.proxy import FaultProxy


class Relay:
    """One relay: in-process (RelayServer) or a `parley relay` process, restartable."""

    def __init__(self, store: Path, as_process: bool) -> None:
        self.store = store
        self.as_process = as_process
        self.port = 0
        self.address: RelayAddress | None = None
        self.server: RelayServer | None = None
        self.process: RelayProcess | None = RelayProcess(store) if as_process else None
        self._past_messages = 0
        self._past_sessions = 0
        self._last_queues = 0
        self.up = False

    async def start(self) -> None:
        if self.process is not None:
            self.address = await self.process.start()
            self.port = self.address.port
        else:
            config = RelayConfig(store=self.store, host="127.0.0.1", port=self.port)
            self.server = RelayServer(config)
            await self.server.start()
            self.address = self.server.address
            self.port = self.server.port
        self.up = True

    async def stop(self, crash: bool = True) -> None:
        self.up = False
        if self.process is not None:
            await (self.process.kill() if crash else self.process.terminate())
        elif self.server is not None:
            server, self.server = self.server, None
            self._past_messages += server.stats.messages_sent
            self._past_sessions += server.stats.connections_total
            self._last_queues = server.stats.queues
            await server.stop()

    @property
    def messages(self) -> int | None:
        if self.process is not None:
            return None
        return self._past_messages + (self.server.stats.messages_sent if self.server else 0)

    @property
    def sessions(self) -> int | None:
        if self.process is not None:
            return None
        return self._past_sessions + (self.server.stats.connections_total if self.server else 0)

    @property
    def queues(self) -> int | None:
        if self.process is not None:
            return None
        return self.server.stats.queues if self.server is not None else self._last_queues


@dataclass
class Stage:
    """The relays, their proxies (same index), the clients (index 0 is the host)."""

    relays: list[Relay] = field(default_factory=list)
    proxies: list[FaultProxy] = field(default_factory=list)
    relay_locks: list[asyncio.Lock] = field(default_factory=list)  # one fault at a time
    members: list[Member] = field(default_factory=list)

    def relay_counts(self) -> RelayCounts | None:
        """What the relays counted so far (None with relay processes)."""
        counts = [(r.messages, r.sessions, r.queues) for r in self.relays]
        if not counts or any(x is None for c in counts for x in c):
            return None
        return RelayCounts(*(sum(x or 0 for x in column) for column in zip(*counts, strict=True)))

    async def start_relays(self, workdir: Path, config: ScenarioConfig, plan: FaultPlan) -> None:
        for i in range(config.relays):
            relay = Relay(workdir / f"relay{i + 1}", bool(config.relay_processes))
            await relay.start()
            self.relays.append(relay)
            self.relay_locks.append(asyncio.Lock())
            proxy = FaultProxy("127.0.0.1", relay.port, seed=plan.proxy_seeds[i])
            await proxy.start()
            self.proxies.append(proxy)

    def add_members(
        self, workdir: Path, config: ScenarioConfig, progress: list[MemberProgress]
    ) -> None:
        """One client per entry of `progress` (not started), each listing every relay."""
        addresses = []
        for relay, proxy in zip(self.relays, self.proxies, strict=True):
            assert relay.address is not None
            addresses.append(str(RelayAddress(relay.address.fingerprint, "127.0.0.1", proxy.port)))
        for i, p in enumerate(progress):
            # each client lists every relay, starting at a different one, so that queues
            # spread over the relays (an agent makes new queues on its first relay)
            shift = i % len(addresses)
            relays = addresses[shift:] + addresses[:shift]
            proc = ChatProcess(
                workdir / p.name,
                relays,
                p.name,
                fast=not config.default_timers,
                intro_timeout=config.intro_timeout,
            )
            self.members.append(Member(i, proc, p))

    async def shutdown(self) -> None:
        # the last progress stays as it was (a front end may show it after the end)
        await asyncio.gather(*(m.kill(shown=False) for m in self.members), return_exceptions=True)
        for proxy in self.proxies:
            with contextlib.suppress(Exception):
                await proxy.stop()
        for relay in self.relays:
            with contextlib.suppress(Exception):
                await relay.stop(crash=False)

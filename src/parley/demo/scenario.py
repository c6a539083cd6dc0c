"""The demo's orchestration, without any UI: a group forms under seeded faults.

:class:`Scenario` starts K relays on loopback with a :class:`~parley.testing.proxy.FaultProxy`
in front of each, N chat clients in their own processes (each configured with every relay,
through the proxies), makes the first client the host, connects it to every other client as
a contact, creates a group and invites everyone. While the group forms, the fault schedule
of :mod:`parley.demo.faults` runs: connection cuts, relay outages and restarts, client
SIGKILLs. Once every pair of members sees each other connected, every member sends a few
group messages, and the scenario waits until every member has every other member's
messages, and checks that none arrived twice. Optionally it then waits until no client has
anything pending (agent commands, deliveries, chat continuations). When a client says it
gave up sending a message (the chat logs "not sent"), the wait for the messages ends early
(:class:`MessagesDropped`): the missing ones will not come.

``await Scenario(config).run()`` returns a :class:`ScenarioResult`; it never raises for a
group that does not form in time (the result says what is missing). :attr:`Scenario.progress`
is updated live for front ends (see :mod:`parley.demo.view`); :attr:`Scenario.on_log` is
called for every notable moment (phases, faults).

The clients run with shortened retry timers unless `ScenarioConfig.default_timers` is set
(`ScenarioConfig.describe_timers()` says which, and by how much); the relays run in this
process, or as `parley relay` processes with `relay_processes` (the default at the harsh
fault level).

The demo (`parley demo`), the chaos tests (tests/chaos/), the group benchmark
(bench/group.py) and the convergence benchmark (bench/convergence.py, the field scenario of
parley.demo.field) all run this.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import shutil
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from parley.demo.clients import Member, call
from parley.demo.config import (
    CONNECTED,
    GROUP,
    STALL_AFTER,
    Phase,
    ScenarioConfig,
    default_span,
    member_names,
)
from parley.demo.fault_runner import FaultRunner
from parley.demo.faults import make_plan
from parley.demo.group import contacts_missing, invite, pair_contacts
from parley.demo.messages import Messages
from parley.demo.polling import Poller
from parley.demo.progress import (
    FaultCounts,
    MemberProgress,
    MessagesDropped,
    Progress,
    RelayCounts,
    ScenarioResult,
    Stalled,
)
from parley.demo.report import Milestones, build_result
from parley.demo.stage import Stage
from parley.demo.stall import StallWatch
from parley.testing.waiting import wait_for_condition

__all__ = [
    "CONNECTED",
    "STALL_AFTER",
    "FaultCounts",
    "MemberProgress",
    "MessagesDropped",
    "Progress",
    "RelayCounts",
    "Scenario",
    "ScenarioConfig",
    "ScenarioResult",
    "Stalled",
    "default_span",
    "member_names",
    "run_scenario",
]


class Scenario:
    """The run's phases in order; the rooms it wires: the stage (relays, proxies, clients),
    the fault runner, the poller (each client's state, summed up in `progress`), the
    messages and their receipts, the stall watch and the report."""

    def __init__(self, config: ScenarioConfig) -> None:
        self.config = config
        self.seed = (
            config.seed
            if config.seed is not None
            else random.SystemRandom().randrange(1, 1_000_000)
        )
        n = config.members
        self.names = member_names(n)
        self.span = config.span if config.span is not None else default_span(n)
        self.plan = make_plan(
            config.faults,
            self.seed,
            members=n,
            relays=config.relays,
            span=self.span,
            rounds=config.rounds,
        )
        self.poll_interval = config.poll_interval or max(0.4, n / 25)
        self.progress = Progress(
            pairs_total=n * (n - 1) // 2, faults_planned=len(self.plan.actions)
        )
        self.progress.members = [MemberProgress(name) for name in self.names]
        self.progress.messages_expected = n * (n - 1) * (config.messages + config.early_messages)
        self.on_log: Callable[[float, str], None] | None = None
        self.relay_names = [f"relay {i + 1}" for i in range(config.relays)]
        self._t0 = 0.0  # loop time at the start
        self._stage = Stage()
        self._members = self._stage.members  # filled at the start of run()
        self._faults = FaultRunner(
            self.plan,
            self._stage,
            self.progress.faults,
            relay_names=self.relay_names,
            names=self.names,
            log=self.log,
            fail=self._fail,
            clock=self._now,
        )
        self._poller = Poller(
            self._members, self._stage.proxies, self.progress, lambda: self._faults.cleanup_cuts
        )
        self._messages = Messages(
            self.names, self._members, self.progress, self._faults.done, self._now
        )
        self._stall = StallWatch(config.stall_after, config.timers)
        self._noted = Milestones()
        self._tasks: list[asyncio.Task[None]] = []
        self._failure: asyncio.Future[BaseException] | None = None

    # ------------------------------------------------------------ helpers

    def _now(self) -> float:
        return asyncio.get_running_loop().time() - self._t0

    def elapsed(self) -> float:
        """Seconds since the run started."""
        return self._now() if self._t0 else 0.0

    def log(self, text: str) -> None:
        t = self._now()
        self.progress.log.append((t, text))
        if self.on_log is not None:
            self.on_log(t, text)

    def _phase(self, phase: Phase, text: str) -> None:
        self.progress.phase = phase
        self.log(text)

    async def _wait(self, predicate: Callable[[], Awaitable[bool]], what: str) -> None:
        """Poll until `predicate`, with the run's own deadline around it (run())."""
        await wait_for_condition(predicate, 24 * 3600, self.poll_interval, what)

    # ------------------------------------------------------------ run

    async def run(self) -> ScenarioResult:
        loop = asyncio.get_running_loop()
        self._t0 = loop.time()
        wall = time.perf_counter()
        cfg = self.config
        owned_dir = cfg.workdir is None
        workdir = Path(tempfile.mkdtemp(prefix="parley-demo-")) if owned_dir else cfg.workdir
        assert workdir is not None
        if workdir.exists() and any(workdir.iterdir()):
            raise ValueError(f"{workdir} is not empty: a scenario starts from fresh databases")
        workdir.mkdir(parents=True, exist_ok=True)
        problems: list[str] = []
        try:
            scope = asyncio.timeout(cfg.timeout)
            try:
                async with scope:
                    await self._run_or_fail(workdir)
            except TimeoutError as e:
                if scope.expired():
                    problems.append(
                        f"timed out after {cfg.timeout:g} s in phase {self.progress.phase!r}"
                    )
                else:
                    problems.append(f"gave up waiting: {e}")
            except (MessagesDropped, Stalled) as e:
                problems.append(str(e))
            except Exception as e:  # a broken setup: report it, do not hide it
                problems.append(f"{type(e).__name__}: {e}")
            finally:
                for t in self._tasks:
                    t.cancel()
                await asyncio.gather(*self._tasks, return_exceptions=True)
                await self._faults.cancel()
            result = await self._result(problems, time.perf_counter() - wall, workdir)
        finally:  # also when cancelled (Ctrl-C): no process is left behind
            await self._stage.shutdown()
        if owned_dir and result.ok and not cfg.keep_workdir:
            shutil.rmtree(workdir, ignore_errors=True)
            result.workdir = None
        return result

    async def _run_or_fail(self, workdir: Path) -> None:
        """Run, but stop at once when a fault could not be carried out (a client that does
        not start again, a relay that does not come back)."""
        self._failure = asyncio.get_running_loop().create_future()
        main = asyncio.create_task(self._run(workdir), name="demo-run")
        try:
            waiting: set[asyncio.Future[Any]] = {main, self._failure}
            await asyncio.wait(waiting, return_when=asyncio.FIRST_COMPLETED)
        finally:
            if not main.done():
                main.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await main
        if self._failure.done():
            raise self._failure.result()
        main.result()

    def _fail(self, error: BaseException) -> None:
        if self._failure is not None and not self._failure.done():
            self._failure.set_result(error)

    async def _run(self, workdir: Path) -> None:
        cfg = self.config
        noted = self._noted
        # relays, proxies, clients
        await self._stage.start_relays(workdir, cfg, self.plan)
        self._stage.add_members(workdir, cfg, self.progress.members)
        self.log(f"{cfg.relays} relay(s) behind fault proxies; starting {cfg.members} chat clients")
        self.log(f"clients with {cfg.describe_timers()}")
        await asyncio.gather(*(m.start() for m in self._members))
        poll = self._poller.run(self.poll_interval, self._now)
        self._tasks.append(asyncio.create_task(poll, name="demo-poll"))

        # contacts: the host and every other client
        t = self._now()
        self._phase("contacts", f"connecting {self.names[0]} (the host) with everyone")
        await self._contacts()
        noted.contacts_time = self._now() - t

        # the group, under faults
        host = self._members[0]
        await call(host, "create_group", name=GROUP)
        noted.group_t0 = self._now()
        self._poller.group_started = True
        noted.relay_at_group_start = self._stage.relay_counts()
        self._phase(
            "group",
            f"#{GROUP} created; inviting {cfg.members - 1} members "
            f"({self.plan.level} faults, seed {self.seed})",
        )
        self._tasks.append(asyncio.create_task(self._faults.run(), name="demo-faults"))
        interval = cfg.invite_interval
        await asyncio.gather(
            *(self._invite(m, i * interval) for i, m in enumerate(self._members[1:]))
        )
        early: asyncio.Task[None] | None = None
        if cfg.early_messages:
            await self._wait(self._poller.all_joined, "every member joined")
            self.log(
                f"everyone joined; every member sends {cfg.early_messages} messages while "
                f"{self.progress.pairs_total - self.progress.pairs_connected} pairs still connect"
            )
            self._messages.last_receipt = self._now()
            early = asyncio.create_task(self._messages.send_everyone(cfg.early_messages, "early"))
            self._tasks.append(early)
        await self._wait(self._mesh_complete, "full mesh")
        self.progress.time_to_mesh = self._now() - noted.group_t0
        noted.relay_at_mesh = self._stage.relay_counts()
        self.log(
            f"full mesh: {self.progress.pairs_total} pairs connected in "
            f"{self.progress.time_to_mesh:.1f} s"
        )

        if early is not None:
            await early

        # messages
        if cfg.messages:
            self._phase("messages", f"every member sends {cfg.messages} group messages")
            messages_t0 = self._messages.last_receipt = self._now()
            await self._messages.send_everyone(cfg.messages, "hello")
            await self._wait(self._messages.all_received, "every message at every member")
            noted.messages_time = self._now() - messages_t0
            self.log(
                f"{self.progress.messages_received} of {self.progress.messages_expected} "
                f"receipts in {noted.messages_time:.1f} s"
            )

        # the rest of the fault schedule, then (optionally) nothing pending
        if not self._faults.done.is_set():
            self.log("waiting for the rest of the fault schedule")
            await self._faults.done.wait()
        if cfg.messages or cfg.early_messages:
            await self._wait(self._messages.all_received, "every message after the last fault")
        if cfg.settle:
            self._phase("settling", "waiting until nothing is pending at any client")
            noted.settled = False
            await self._wait(self._poller.nothing_pending, "nothing pending")
            noted.settled = True
        self._phase("done", "done")

    # ------------------------------------------------------------ the group

    async def _contacts(self) -> None:
        host, others = self._members[0], self._members[1:]
        await pair_contacts(host, others)

        async def ready() -> bool:
            self._noted.contacts_missing = await contacts_missing(host, others)
            return not self._noted.contacts_missing

        await self._wait(ready, "contacts")

    async def _invite(self, m: Member, delay: float) -> None:
        await invite(self._members[0], m, self._wait, delay)
        self.log(f"{m.name} accepted the invitation")

    async def _mesh_complete(self) -> bool:
        pr = self.progress
        if pr.pairs_connected == pr.pairs_total:
            return True
        self._stall.check(pr, self._members, self._faults.done.is_set(), self._now())
        return False

    # ------------------------------------------------------------ the end

    async def _result(self, problems: list[str], total: float, workdir: Path) -> ScenarioResult:
        # a last look at everything, so the result is exact even after a timeout
        await self._poller.poll_all(return_exceptions=True)
        if self.progress.messages_sent:
            with contextlib.suppress(Exception):
                await self._messages.all_received()
        if self.config.settle and not self._noted.settled:
            with contextlib.suppress(Exception):
                await self._poller.nothing_pending()
        finished, t0 = self._faults.finished_at, self._noted.group_t0
        if finished is not None and t0 is not None:
            self._noted.faults_end = finished - t0
        return build_result(
            config=self.config,
            seed=self.seed,
            plan=self.plan,
            progress=self.progress,
            members=self._members,
            messages=self._messages,
            poller=self._poller,
            noted=self._noted,
            relay_at_end=self._stage.relay_counts(),
            problems=problems,
            total=total,
            workdir=workdir,
        )


async def run_scenario(
    config: ScenarioConfig, on_log: Callable[[float, str], None] | None = None
) -> ScenarioResult:
    scenario = Scenario(config)
    scenario.on_log = on_log
    return await scenario.run()

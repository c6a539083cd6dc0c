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
from collections import Counter, deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from parley.chat.controller import ChatError
from parley.demo.faults import FaultAction, FaultLevel, FaultPlan, make_plan
from parley.protocol.address import RelayAddress
from parley.relay.config import RelayConfig
from parley.relay.server import RelayServer
from parley.testing.chat_process import ChatProcess, Timers, describe_timers
from parley.testing.process import RelayProcess
from parley.testing.proxy import FaultProxy
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
    "member_names",
    "run_scenario",
]

GROUP = "team"
# what the chat logs when the agent refuses a message from the outbox, which is then dropped
DROPPED = b"not sent:"
# give up waiting for messages this long after the last new receipt, once a sender has
# dropped a message and the fault schedule is over (the missing ones will not come)
DROPPED_GRACE = 5.0
# give up waiting for the mesh after this long without progress while nothing is pending
# (ScenarioConfig.stall_after): longer than the chat's re-introduction of a pair that makes
# no progress and the agent's periodic check of its subscriptions, which could still help
STALL_AFTER = 120.0
CONNECTED = ("memConnected", "memComplete")
JOINED = ("memConnected", "memComplete", "memCreator")

_NAMES = [
    "alice",
    "bob",
    "carol",
    "dave",
    "erin",
    "frank",
    "grace",
    "heidi",
    "ivan",
    "judy",
    "mallory",
    "niaj",
    "olivia",
    "peggy",
    "rupert",
    "sybil",
    "trent",
    "victor",
    "walter",
    "yvonne",
]

Phase = Literal["starting", "contacts", "group", "messages", "settling", "done", "failed"]


def member_names(n: int) -> list[str]:
    """alice, bob, ... then m21, m22, ... for large groups."""
    return [_NAMES[i] if i < len(_NAMES) else f"m{i + 1}" for i in range(n)]


def default_span(members: int) -> float:
    """Seconds over which the faults are spread: about how long the group takes to form."""
    return 2.0 + 0.05 * members * members


@dataclass
class ScenarioConfig:
    members: int = 8
    relays: int = 2
    faults: FaultLevel = "light"
    seed: int | None = None  # None: a random seed (see ScenarioResult.seed)
    messages: int = 3  # group messages each member sends once the mesh is complete
    timeout: float = 180.0  # for the whole run, from the first process start
    span: float | None = None  # seconds the fault schedule covers (default_span(members))
    rounds: int | None = None  # exact number of discrete faults (see make_plan)
    settle: bool = False  # at the end, wait until no client has anything pending
    # `parley relay` processes (SIGKILLed to restart); None: processes with harsh faults,
    # relays inside this process otherwise
    relay_processes: bool | None = None
    # the clients run with their default timers, like `parley chat`; by default they run
    # with shortened retry timers (parley.testing.chat_process.describe_timers says which)
    default_timers: bool = False
    # the host re-introduces pairs stuck for this long (None: the chat's default)
    intro_timeout: float | None = None
    invite_interval: float = 0.0  # seconds between two invitations (0: everyone at once)
    # group messages each member sends as soon as everyone has joined, while the members
    # are still connecting to each other (the host forwards them meanwhile)
    early_messages: int = 0
    poll_interval: float | None = None  # default grows with the number of members
    # give up early when the mesh is not complete, the fault schedule is over, every client
    # is up with nothing pending and no member's view changed for this long (None: never;
    # the run then lasts until `timeout`)
    stall_after: float | None = STALL_AFTER
    workdir: Path | None = None  # default: a temporary directory, removed on success
    keep_workdir: bool = False

    def __post_init__(self) -> None:
        if self.members < 2:
            raise ValueError("a group needs at least 2 members")
        if self.relays < 1:
            raise ValueError("at least one relay")
        if self.messages < 0 or self.early_messages < 0:
            raise ValueError("messages must not be negative")
        if self.timeout <= 0:
            raise ValueError("timeout must be positive")
        if self.stall_after is not None and self.stall_after <= 0:
            raise ValueError("stall_after must be positive (or None)")
        if self.relay_processes is None:
            self.relay_processes = self.faults == "harsh"

    @property
    def timers(self) -> Timers:
        """The clients' timers as this scenario runs them."""
        return Timers.of(not self.default_timers, self.intro_timeout)

    def describe_timers(self) -> str:
        """The clients' timers in words (shortened ones: by how much)."""
        return describe_timers(not self.default_timers, self.intro_timeout)


@dataclass
class FaultCounts:
    links_cut: int = 0  # by proxy cuts, random or whole-relay (FaultProxy.stats.links_cut)
    random_cuts: int = 0  # the part of links_cut chosen by cut_random
    refused: int = 0  # connections reset on arrival: during outages, or at random
    random_refusals: int = 0  # the part of refused chosen by refuse_random
    outages: int = 0
    relay_restarts: int = 0
    client_kills: int = 0

    @property
    def total(self) -> int:
        return self.links_cut + self.refused + self.relay_restarts + self.client_kills


@dataclass(frozen=True)
class RelayCounts:
    """Totals over all relays (and over restarts) at one moment."""

    messages: int  # SENDs accepted
    sessions: int  # TLS sessions accepted
    queues: int  # queues that exist

    def minus(self, other: RelayCounts) -> RelayCounts:
        return RelayCounts(
            self.messages - other.messages,
            self.sessions - other.sessions,
            self.queues - other.queues,
        )


@dataclass
class MemberProgress:
    name: str
    up: bool = False
    kills: int = 0
    joined: bool = False
    peers: int = 0  # members this one sees connected
    commands: int = 0  # pending agent commands
    retrying: int = 0  # ... of which attempts > 0
    deliveries: int = 0  # pending agent deliveries
    continuations: int = 0  # pending chat continuations
    received: int = 0  # distinct group messages received
    last_error: str | None = None


@dataclass
class Progress:
    phase: Phase = "starting"
    elapsed: float = 0.0
    members: list[MemberProgress] = field(default_factory=list)
    joined: int = 0  # members (host included) in the group
    pairs_connected: int = 0
    pairs_total: int = 0
    commands: int = 0
    retrying: int = 0
    deliveries: int = 0
    continuations: int = 0
    faults: FaultCounts = field(default_factory=FaultCounts)
    faults_planned: int = 0
    messages_sent: int = 0
    messages_expected: int = 0  # receipts: every message at every other member
    messages_received: int = 0
    duplicates: int = 0
    time_to_mesh: float | None = None
    log: deque[tuple[float, str]] = field(default_factory=lambda: deque(maxlen=200))


@dataclass
class ScenarioResult:
    config: ScenarioConfig
    seed: int
    plan: FaultPlan
    ok: bool
    problems: list[str]
    time_to_mesh: float | None  # from the group's creation to the last pair connected
    # from the group's creation to the end of the fault schedule: the last fault (None if
    # the schedule did not finish)
    faults_end: float | None
    time_to_messages: float | None  # from the first send to the last message received
    total_time: float
    members: int
    joined: int
    pairs_connected: int
    pairs_total: int
    missing_pairs: list[str]
    messages_sent: int
    messages_expected: int
    messages_received: int
    duplicates: list[str]
    missing_messages: dict[str, list[str]]
    faults: FaultCounts
    commands_retried: int  # distinct agent commands seen with attempts > 0 (sampled)
    retry_attempts: int  # the sum of the highest attempt count seen for each of them
    deliveries_retried: int
    settled: bool | None  # None when not asked to wait for it
    pending_at_end: dict[str, list[str]]
    # what the relays counted (in-process relays only; None with relay processes)
    relay_at_group_start: RelayCounts | None
    relay_at_mesh: RelayCounts | None
    relay_at_end: RelayCounts | None
    dropped: list[str]  # messages the clients said they gave up sending (client: log line)
    agent_connections: int  # duplex connections a full group of this size needs
    contacts_time: float
    stderr: dict[str, str]  # the end of what each client wrote to stderr (if anything)
    workdir: Path | None
    log: list[tuple[float, str]]

    @property
    def joins(self) -> int:
        return self.members - 1

    @property
    def mesh_after_faults(self) -> float | None:
        """Seconds from the last fault to the full mesh (0 when it came before)."""
        if self.time_to_mesh is None or self.faults_end is None:
            return None
        return max(0.0, self.time_to_mesh - self.faults_end)


class Stalled(RuntimeError):
    """The group stopped forming with nothing pending anywhere, and neither a re-introduction
    by the host nor the agents' own periodic checks helped for `stall_after` seconds."""


class MessagesDropped(RuntimeError):
    """A client logged that it gave up sending a message: waiting longer is pointless."""


class _Relay:
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


class _Member:
    def __init__(self, index: int, proc: ChatProcess, progress: MemberProgress) -> None:
        self.index = index
        self.proc = proc
        self.progress = progress
        self.view: dict[str, str] = {}  # other member -> status, as this member sees it
        self.received: Counter[tuple[str, str]] = Counter()
        self.stderr: deque[bytes] = deque(maxlen=200)
        self.dropped: list[str] = []  # the chat's warnings about messages it gave up on
        self._drain: asyncio.Task[None] | None = None
        self.lock = asyncio.Lock()  # one fault at a time per client

    @property
    def name(self) -> str:
        return self.proc.name

    async def start(self) -> None:
        await self.proc.start(timeout=60)
        self.progress.up = True
        proc = self.proc.proc
        if proc is not None and proc.stderr is not None:
            # keep the child's stderr flowing: a full pipe would block it
            self._drain = asyncio.create_task(self._collect(proc.stderr))

    async def _collect(self, stream: asyncio.StreamReader) -> None:
        with contextlib.suppress(Exception):
            while line := await stream.readline():
                self.stderr.append(line)
                if DROPPED in line:
                    self.dropped.append(line.decode(errors="replace").strip())

    async def kill(self, *, shown: bool = True) -> None:
        if shown:
            self.progress.up = False
        await self.proc.kill()
        if self._drain is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._drain, 2)

    def stderr_tail(self, lines: int = 8) -> str:
        return b"".join(list(self.stderr)[-lines:]).decode(errors="replace")


class Scenario:
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
        self._relays: list[_Relay] = []
        self._proxies: list[FaultProxy] = []
        self._members: list[_Member] = []
        self._t0 = 0.0  # loop time at the start
        self._group_t0: float | None = None
        self._retried: dict[tuple[str, str], int] = {}  # (client, corr id) -> attempts seen
        self._deliveries_retried: set[tuple[str, str, int]] = set()
        self._sent: dict[str, list[str]] = {name: [] for name in self.names}
        self._group_started = False
        self._tasks: list[asyncio.Task[None]] = []
        self._relay_locks: list[asyncio.Lock] = []
        self._fault_tasks: set[asyncio.Task[None]] = set()
        self._faults_done = asyncio.Event()
        self._relay_at_group_start: RelayCounts | None = None
        self._relay_at_mesh: RelayCounts | None = None
        self._contacts_time = 0.0
        self._messages_t0: float | None = None
        self._messages_time: float | None = None
        self._settled: bool | None = None
        self._pending: dict[str, list[str]] = {}
        self._failure: asyncio.Future[BaseException] | None = None
        self._cleanup_cuts = 0  # links cut after an in-process relay stopped (not faults)
        self._contacts_missing: list[str] = []
        self._last_receipt = 0.0
        self._stall_views = 0
        self._faults_end: float | None = None
        self._idle_since = 0.0

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

    async def _call(self, m: _Member, op: str, timeout: float = 20.0, **args: Any) -> Any:
        """Call a client, waiting for it through kills and restarts (ChatError passes)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + max(timeout, 60.0)
        while True:
            remaining = deadline - loop.time()
            if remaining <= 0:
                raise TimeoutError(f"{m.name}: {op} did not complete")
            if not m.proc.running:
                await wait_for_condition(
                    lambda: m.proc.running, remaining, 0.05, f"{m.name} is not running"
                )
            try:
                return await m.proc.call(op, timeout=min(timeout, remaining), **args)
            except (ConnectionError, TimeoutError):
                if loop.time() >= deadline:
                    raise
            await asyncio.sleep(0.1)

    async def _try_call(self, m: _Member, op: str, **args: Any) -> Any | None:
        """One attempt with a short timeout, for polling: None if it failed."""
        if not m.proc.running:
            return None
        try:
            return await m.proc.call(op, timeout=5.0, **args)
        except (ConnectionError, TimeoutError, ChatError):
            return None

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
                for t in list(self._fault_tasks):
                    t.cancel()
                await asyncio.gather(*self._fault_tasks, return_exceptions=True)
            result = await self._result(problems, time.perf_counter() - wall, workdir)
        finally:  # also when cancelled (Ctrl-C): no process is left behind
            await self._shutdown()
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
        # relays, proxies, clients
        for i in range(cfg.relays):
            relay = _Relay(workdir / f"relay{i + 1}", bool(cfg.relay_processes))
            await relay.start()
            self._relays.append(relay)
            self._relay_locks.append(asyncio.Lock())
            proxy = FaultProxy("127.0.0.1", relay.port, seed=self.plan.proxy_seeds[i])
            await proxy.start()
            self._proxies.append(proxy)
        addresses = []
        for relay, proxy in zip(self._relays, self._proxies, strict=True):
            assert relay.address is not None
            addresses.append(str(RelayAddress(relay.address.fingerprint, "127.0.0.1", proxy.port)))
        for i, name in enumerate(self.names):
            # each client lists every relay, starting at a different one, so that queues
            # spread over the relays (an agent makes new queues on its first relay)
            shift = i % len(addresses)
            relays = addresses[shift:] + addresses[:shift]
            proc = ChatProcess(
                workdir / name,
                relays,
                name,
                fast=not cfg.default_timers,
                intro_timeout=cfg.intro_timeout,
            )
            self._members.append(_Member(i, proc, self.progress.members[i]))
        self.log(f"{cfg.relays} relay(s) behind fault proxies; starting {cfg.members} chat clients")
        self.log(f"clients with {cfg.describe_timers()}")
        await asyncio.gather(*(m.start() for m in self._members))
        self._tasks.append(asyncio.create_task(self._poll(), name="demo-poll"))

        # contacts: the host and every other client
        t = self._now()
        self._phase("contacts", f"connecting {self.names[0]} (the host) with everyone")
        await self._contacts()
        self._contacts_time = self._now() - t

        # the group, under faults
        host = self._members[0]
        await self._call(host, "create_group", name=GROUP)
        self._group_t0 = self._now()
        self._group_started = True
        self._relay_at_group_start = self._relay_counts()
        self._phase(
            "group",
            f"#{GROUP} created; inviting {cfg.members - 1} members "
            f"({self.plan.level} faults, seed {self.seed})",
        )
        self._tasks.append(asyncio.create_task(self._faults(), name="demo-faults"))
        interval = cfg.invite_interval
        await asyncio.gather(
            *(self._invite(m, i * interval) for i, m in enumerate(self._members[1:]))
        )
        early: asyncio.Task[None] | None = None
        if cfg.early_messages:
            await self._wait(self._all_joined, "every member joined")
            self.log(
                f"everyone joined; every member sends {cfg.early_messages} messages while "
                f"{self.progress.pairs_total - self.progress.pairs_connected} pairs still connect"
            )
            self._last_receipt = self._now()
            early = asyncio.create_task(self._send_everyone(cfg.early_messages, "early"))
            self._tasks.append(early)
        await self._wait(self._mesh_complete, "full mesh")
        self.progress.time_to_mesh = self._now() - self._group_t0
        self._relay_at_mesh = self._relay_counts()
        self.log(
            f"full mesh: {self.progress.pairs_total} pairs connected in "
            f"{self.progress.time_to_mesh:.1f} s"
        )

        if early is not None:
            await early

        # messages
        if cfg.messages:
            self._phase("messages", f"every member sends {cfg.messages} group messages")
            self._messages_t0 = self._last_receipt = self._now()
            await asyncio.gather(*(self._send_all(m, cfg.messages, "hello") for m in self._members))
            await self._wait(self._all_received, "every message at every member")
            self._messages_time = self._now() - self._messages_t0
            self.log(
                f"{self.progress.messages_received} of {self.progress.messages_expected} "
                f"receipts in {self._messages_time:.1f} s"
            )

        # the rest of the fault schedule, then (optionally) nothing pending
        if not self._faults_done.is_set():
            self.log("waiting for the rest of the fault schedule")
            await self._faults_done.wait()
        if cfg.messages or cfg.early_messages:
            await self._wait(self._all_received, "every message after the last fault")
        if cfg.settle:
            self._phase("settling", "waiting until nothing is pending at any client")
            self._settled = False
            await self._wait(self._nothing_pending, "nothing pending")
            self._settled = True
        self._phase("done", "done")

    async def _wait(self, predicate: Callable[[], Awaitable[bool]], what: str) -> None:
        """Poll until `predicate`, with the run's own deadline around it (run())."""
        await wait_for_condition(predicate, 24 * 3600, self.poll_interval, what)

    # ------------------------------------------------------------ contacts and group

    async def _contacts(self) -> None:
        host = self._members[0]

        async def pair(m: _Member) -> None:
            _, link = await self._call(host, "create_invitation", timeout=60)
            if not link:
                raise RuntimeError(f"no invitation link for {m.name}")
            await self._call(m, "connect", link=link)

        await asyncio.gather(*(pair(m) for m in self._members[1:]))

        async def ready() -> bool:
            missing: list[str] = []
            mine = await self._try_call(host, "contacts")
            ok = {c["name"] for c in mine or () if c["status"] == "ready"}
            missing += [
                f"{host.name} has no ready contact {n}" for n in self.names[1:] if n not in ok
            ]
            for m in self._members[1:]:
                theirs = await self._try_call(m, "contacts")
                if theirs is None or not any(
                    c["name"] == host.name and c["status"] == "ready" for c in theirs
                ):
                    state = [(c["name"], c["status"]) for c in theirs or ()]
                    missing.append(f"{m.name} has no ready contact {host.name} (has {state})")
            self._contacts_missing = missing
            return not missing

        await self._wait(ready, "contacts")

    async def _invite(self, m: _Member, delay: float = 0.0) -> None:
        """Steps 1 and 2 of the group dance for one member, through faults."""
        if delay > 0:
            await asyncio.sleep(delay)
        host = self._members[0]
        try:
            await self._call(host, "add_member", group_name=GROUP, contact_name=m.name)
        except ChatError as e:
            if "already a member" not in str(e):  # a retry after a kill: it was committed
                raise

        async def invited() -> bool:
            groups = await self._try_call(m, "groups")
            return groups is not None and any(g["name"] == GROUP for g in groups)

        await self._wait(invited, f"{m.name} invited")
        try:
            await self._call(m, "join_group", group_name=GROUP)
        except ChatError as e:
            if "no pending invitation" not in str(e):  # joined before a kill
                raise
        self.log(f"{m.name} accepted the invitation")

    async def _mesh_complete(self) -> bool:
        pr = self.progress
        if pr.pairs_connected == pr.pairs_total:
            return True
        stall_after = self.config.stall_after
        if stall_after is None:
            return False
        timers = self.config.timers
        stall_after = max(stall_after, timers.intro_timeout + timers.intro_check)
        # a stall: no fault left to come, every client up and nothing pending anywhere, yet
        # no member's view of the others changed for a long time, longer than the timers
        # that could still help (the host's re-introduction of a pair, the agents' checks
        # of their subscriptions)
        now = self._now()
        views = hash(tuple(tuple(sorted(m.view.items())) for m in self._members))
        idle = (
            self._faults_done.is_set()
            and all(m.up for m in pr.members)
            and not (pr.commands or pr.deliveries or pr.continuations)
            and views == self._stall_views
        )
        if not idle:
            self._stall_views, self._idle_since = views, now
        elif now - self._idle_since > stall_after:
            missing = pr.pairs_total - pr.pairs_connected
            raise Stalled(
                f"stalled: {missing} member pairs not connected; for {stall_after:g} s no "
                "member's view changed and no client had anything pending (commands, "
                "deliveries, continuations)"
            )
        return False

    # ------------------------------------------------------------ messages

    async def _all_joined(self) -> bool:
        return self.progress.joined == len(self._members)

    async def _send_everyone(self, count: int, label: str) -> None:
        await asyncio.gather(*(self._send_all(m, count, label) for m in self._members))

    async def _send_all(self, m: _Member, count: int, label: str) -> None:
        for k in range(count):
            text = f"{label} #{k + 1} from {m.name}"
            await self._send(m, text)
            self._sent[m.name].append(text)
            self.progress.messages_sent += 1

    async def _send(self, m: _Member, text: str) -> None:
        """Send once: after a failed call, look whether the message was stored first."""
        while True:
            try:
                await m.proc.call("send_group_message", timeout=20, group_name=GROUP, text=text)
                return
            except (ConnectionError, TimeoutError):
                await wait_for_condition(lambda: m.proc.running, 60, 0.05)
                items = await self._call(m, "chat_items", group=GROUP, count=10_000)
                if any(i["direction"] == "snd" and i["text"] == text for i in items):
                    return

    async def _all_received(self) -> bool:
        complete = True
        for m in self._members:
            items = await self._try_call(m, "chat_items", group=GROUP, count=10_000)
            if items is None:
                complete = False
                continue
            m.received = Counter(
                (i["author"]["name"] if i["author"] else "?", i["text"])
                for i in items
                if i["direction"] == "rcv"
            )
            m.progress.received = len(m.received)
            if not self._expected_for(m.name) <= set(m.received):
                complete = False
        received = sum(m.progress.received for m in self._members)
        now = self._now()
        if received != self.progress.messages_received:
            self._last_receipt = now
        self.progress.messages_received = received
        self.progress.duplicates = sum(
            c - 1 for m in self._members for c in m.received.values() if c > 1
        )
        dropped = [f"{m.name}: {line}" for m in self._members for line in m.dropped]
        if (
            not complete
            and dropped
            and self._faults_done.is_set()
            and now - self._last_receipt > DROPPED_GRACE
        ):
            raise MessagesDropped("a sender dropped messages: " + "; ".join(dropped[:5]))
        return complete

    def _expected_for(self, name: str) -> set[tuple[str, str]]:
        return {(a, t) for a, texts in self._sent.items() if a != name for t in texts}

    # ------------------------------------------------------------ pending work

    async def _nothing_pending(self) -> bool:
        for m in self._members:
            status = await self._try_call(m, "status")
            if status is None:
                return False
            self._pending[m.name] = _describe_pending(status)
            if self._pending[m.name]:
                return False
        return True

    # ------------------------------------------------------------ polling

    async def _poll(self) -> None:
        """Refresh the progress: each client's view of the group and its pending work."""
        rounds = 0
        while True:
            self.progress.elapsed = self._now()
            await asyncio.gather(*(self._poll_member(m, rounds) for m in self._members))
            self._update_totals()
            rounds += 1
            await asyncio.sleep(self.poll_interval)

    async def _poll_member(self, m: _Member, rounds: int) -> None:
        p = m.progress
        p.up = m.proc.running
        if not p.up:
            return
        if self._group_started:
            members = await self._try_call(m, "members", group_name=GROUP)
            if members is not None:
                m.view = {x["name"]: x["status"] for x in members if x["category"] != "user"}
                me = [x for x in members if x["category"] == "user"]
                p.joined = bool(me) and me[0]["status"] in JOINED
        if rounds % 2 == 0 or self.progress.phase == "settling":
            status = await self._try_call(m, "status")
            if status is not None:
                report, continuations = status
                commands = report["commands"]
                p.commands = len(commands)
                p.retrying = sum(1 for c in commands if c["attempts"] > 0)
                p.deliveries = len(report["deliveries"])
                p.continuations = len(continuations)
                errors = [c["last_error"] for c in commands if c["last_error"]]
                errors += [d["last_error"] for d in report["deliveries"] if d["last_error"]]
                p.last_error = errors[-1] if errors else None
                for c in commands:
                    if c["attempts"] > 0:
                        key = (m.name, c["corr_id"])
                        self._retried[key] = max(self._retried.get(key, 0), c["attempts"])
                for d in report["deliveries"]:
                    if d["attempts"] > 0:
                        self._deliveries_retried.add((m.name, d["conn_id"], d["msg_id"]))

    def _update_totals(self) -> None:
        pr = self.progress
        pairs = 0
        for i, a in enumerate(self._members):
            seen = sum(1 for s in a.view.values() if s in CONNECTED)
            a.progress.peers = seen
            for b in self._members[i + 1 :]:
                if a.view.get(b.name) in CONNECTED and b.view.get(a.name) in CONNECTED:
                    pairs += 1
        pr.pairs_connected = pairs
        pr.joined = sum(1 for m in pr.members if m.joined)
        pr.commands = sum(m.commands for m in pr.members)
        pr.retrying = sum(m.retrying for m in pr.members)
        pr.deliveries = sum(m.deliveries for m in pr.members)
        pr.continuations = sum(m.continuations for m in pr.members)
        f = pr.faults
        f.links_cut = sum(p.stats.links_cut for p in self._proxies) - self._cleanup_cuts
        f.random_cuts = sum(p.stats.random_cuts for p in self._proxies)
        f.refused = sum(p.stats.links_refused for p in self._proxies)
        f.random_refusals = sum(p.stats.random_refusals for p in self._proxies)
        f.client_kills = sum(m.kills for m in pr.members)

    # ------------------------------------------------------------ faults

    async def _faults(self) -> None:
        plan = self.plan
        loop = asyncio.get_running_loop()
        start = loop.time()
        try:
            random_faults = plan.cut_share > 0 or plan.refuse_share > 0
            for proxy in self._proxies:
                if plan.cut_mean is not None:  # the links open now too: every link is cut
                    proxy.cut_random(plan.cut_share, mean=plan.cut_mean, existing=True)
                elif plan.cut_share > 0:
                    proxy.cut_random(plan.cut_share, after=plan.cut_after)
                proxy.refuse_random(plan.refuse_share)
            for action in plan.actions:
                delay = start + action.at - loop.time()
                if delay > 0:
                    await asyncio.sleep(delay)
                task = asyncio.create_task(self._fault(action))
                self._fault_tasks.add(task)
                task.add_done_callback(self._fault_tasks.discard)
            if random_faults:  # random cuts and refusals go on until the end of the span
                delay = start + plan.span - loop.time()
                if delay > 0:
                    await asyncio.sleep(delay)
                for proxy in self._proxies:
                    proxy.cut_random(0.0)
                    proxy.refuse_random(0.0)
                    proxy.cancel_planned_cuts()  # no fault after the schedule
            if self._fault_tasks:
                await asyncio.gather(*list(self._fault_tasks))
            if self._group_t0 is not None:
                self._faults_end = self._now() - self._group_t0
            if plan.level != "none":
                self.log("fault schedule finished")
        finally:
            self._faults_done.set()

    async def _fault(self, a: FaultAction) -> None:
        try:
            await self._inject(a)
        except Exception as e:
            what = a.describe(self.relay_names, self.names)
            self._fail(RuntimeError(f"fault {what!r} failed: {type(e).__name__}: {e}"))

    async def _inject(self, a: FaultAction) -> None:
        what = a.describe(self.relay_names, self.names)
        if a.kind == "client_kill":
            m = self._members[a.target]
            async with m.lock:
                self.log(what)
                await m.kill()
                m.progress.kills += 1
                await asyncio.sleep(a.duration)
                await m.start()
                self.log(f"{m.name} is back")
            return
        relay, proxy = self._relays[a.target], self._proxies[a.target]
        async with self._relay_locks[a.target]:
            self.log(what)
            match a.kind:
                case "cut":
                    proxy.cut()
                case "outage":
                    self.progress.faults.outages += 1
                    proxy.refuse(True)
                    proxy.cut()
                    await asyncio.sleep(a.duration)
                    proxy.refuse(False)
                case "relay_restart":
                    await relay.stop(crash=True)
                    if not relay.as_process:
                        # RelayServer.stop() can leave sessions alive that were still in
                        # their TLS handshake when it was called (they would keep clients
                        # subscribed to the stopped instance); a process that exits has
                        # none. Cut what is left through the proxy, like the exit would.
                        self._cleanup_cuts += proxy.cut()
                    self.progress.faults.relay_restarts += 1
                    await asyncio.sleep(a.duration)
                    await relay.start()
                    self.log(f"{self.relay_names[a.target]} is back")

    # ------------------------------------------------------------ the end

    def _relay_counts(self) -> RelayCounts | None:
        counts = [(r.messages, r.sessions, r.queues) for r in self._relays]
        if not counts or any(x is None for c in counts for x in c):
            return None
        return RelayCounts(*(sum(x or 0 for x in column) for column in zip(*counts, strict=True)))

    async def _result(self, problems: list[str], total: float, workdir: Path) -> ScenarioResult:
        pr = self.progress
        # a last look at everything, so the result is exact even after a timeout
        await asyncio.gather(
            *(self._poll_member(m, 0) for m in self._members), return_exceptions=True
        )
        self._update_totals()
        if pr.messages_sent:
            with contextlib.suppress(Exception):
                await self._all_received()
        if self.config.settle and not self._settled:
            with contextlib.suppress(Exception):
                await self._nothing_pending()
        missing_pairs = []
        for i, a in enumerate(self._members):
            for b in self._members[i + 1 :]:
                sa, sb = a.view.get(b.name), b.view.get(a.name)
                if sa not in CONNECTED or sb not in CONNECTED:
                    missing_pairs.append(f"{a.name}→{b.name}: {sa}, {b.name}→{a.name}: {sb}")
        missing_messages: dict[str, list[str]] = {}
        duplicates: list[str] = []
        for m in self._members:
            lost = sorted(self._expected_for(m.name) - set(m.received))
            if lost:
                missing_messages[m.name] = [f"{a}: {t}" for a, t in lost]
            duplicates += [
                f"{m.name} got {a}: {t} ×{c}" for (a, t), c in m.received.items() if c > 1
            ]
        if pr.phase == "contacts" and self._contacts_missing:
            problems.append("contacts not ready: " + "; ".join(self._contacts_missing))
        if missing_pairs:
            problems.append(f"{len(missing_pairs)} of {pr.pairs_total} member pairs not connected")
        to_send = (self.config.messages + self.config.early_messages) * self.config.members
        if pr.messages_sent < to_send:
            problems.append(f"only {pr.messages_sent} of {to_send} messages were sent")
        if missing_messages:
            n = sum(len(v) for v in missing_messages.values())
            problems.append(f"{n} message receipts missing")
        if duplicates:
            problems.append(f"{len(duplicates)} messages received more than once")
        pending = {k: v for k, v in self._pending.items() if v}
        if self.config.settle and self._settled is False:  # the settling phase was reached
            problems.append(f"work still pending at {len(pending)} client(s)")
        for m in self._members:
            if not m.proc.running and m.proc.proc is not None:
                problems.append(f"{m.name} is not running: {m.stderr_tail()}")
        problems = list(dict.fromkeys(problems))
        n = self.config.members
        ok = not problems
        if not ok:
            pr.phase = "failed"
        return ScenarioResult(
            config=self.config,
            seed=self.seed,
            plan=self.plan,
            ok=ok,
            problems=problems,
            time_to_mesh=pr.time_to_mesh,
            faults_end=self._faults_end,
            time_to_messages=self._messages_time,
            total_time=total,
            members=n,
            joined=pr.joined,
            pairs_connected=pr.pairs_connected,
            pairs_total=pr.pairs_total,
            missing_pairs=missing_pairs,
            messages_sent=pr.messages_sent,
            messages_expected=pr.messages_expected,
            messages_received=pr.messages_received,
            duplicates=duplicates,
            missing_messages=missing_messages,
            faults=pr.faults,
            commands_retried=len(self._retried),
            retry_attempts=sum(self._retried.values()),
            deliveries_retried=len(self._deliveries_retried),
            settled=self._settled,
            pending_at_end=pending,
            relay_at_group_start=self._relay_at_group_start,
            relay_at_mesh=self._relay_at_mesh,
            relay_at_end=self._relay_counts(),
            dropped=[f"{m.name}: {line}" for m in self._members for line in m.dropped],
            agent_connections=n * (n - 1),
            contacts_time=self._contacts_time,
            stderr={m.name: m.stderr_tail(30) for m in self._members if m.stderr},
            workdir=workdir,
            log=list(pr.log),
        )

    async def _shutdown(self) -> None:
        # the last progress stays as it was (a front end may show it after the end)
        await asyncio.gather(*(m.kill(shown=False) for m in self._members), return_exceptions=True)
        for proxy in self._proxies:
            with contextlib.suppress(Exception):
                await proxy.stop()
        for relay in self._relays:
            with contextlib.suppress(Exception):
                await relay.stop(crash=False)


def _describe_pending(status: Any) -> list[str]:
    report, continuations = status
    out = [
        f"command {c['kind']} ({c['corr_id']}): {c['attempts']} attempts, "
        f"last error {c['last_error']}"
        for c in report["commands"]
    ]
    out += [
        f"delivery {d['msg_id']} on {d['conn_id']}: {d['attempts']} attempts, "
        f"last error {d['last_error']}"
        for d in report["deliveries"]
    ]
    out += [
        f"continuation {c['function']} ({c['status']}) on {c['connection']}" for c in continuations
    ]
    return out


async def run_scenario(
    config: ScenarioConfig, on_log: Callable[[float, str], None] | None = None
) -> ScenarioResult:
    scenario = Scenario(config)
    scenario.on_log = on_log
    return await scenario.run()

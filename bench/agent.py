"""Agent benchmark: connections, messages and asynchronous commands through one relay.

Run from the project root:

    .venv/bin/python -m bench.agent            # full run, rewrites "## Agent" in docs/benchmarks.md
    .venv/bin/python -m bench.agent --quick    # smaller and once each, prints only

The relay is a real `parley relay` process (`RelayProcess`, its durable SQLite store in a
temporary directory). Both agents, "alice" and "bob", run in this benchmark process on one
event loop, each with its own SQLite file (and database thread) in the same temporary
directory, with the default `AgentConfig` (8 commands at a time per relay). The client side
of each agent is a small event router: it hands INV, CONF and CON to whoever waits for them,
acknowledges every completion event (INV, OK) with `ack_command_event` in the background and,
on bob, answers every MSG with `ack_message_async(..., event=False)` (as the chat does: the
relay's ACK leaves at the call and no OK comes back).

Measured, after a warm-up (2 connections, 100 messages, 10 invitations):

1. connections: N connections (N = 1, 10, 100) made at once with the asynchronous API
   (alice creates, bob joins, alice allows), from the first `create_connection_async` to
   the last CON on either side;
2. messages: alice → bob over 1 and over 10 connections, 256-byte bodies (a sequence number
   and the `perf_counter_ns` of the `send_message` call in the first 16 bytes), at most
   `window` messages per connection sent but not yet received; messages per second is
   counted to the last MSG received, latency is `send_message` call → MSG event. A run with
   a window of 1 gives the latency of an otherwise idle connection;
3. commands: N `create_connection_async` calls at once, until the last INV.

CPU use is of this process (both agents, their database threads), of the relay process and
of the rest of the machine (a sign of interference), in cores. With --repeat > 1 each point
is run that many times and the median (by rate) is reported with the range of rates.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import functools
import logging
import os
import platform
import sqlite3
import struct
import subprocess
import sys
import tempfile
import time
from collections import Counter, defaultdict
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from bench.report import read_text, write_section
from parley.agent import events as ev
from parley.agent.agent import Agent, AgentConfig
from parley.testing.process import RelayProcess

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs" / "benchmarks.md"
SECTION = "## Agent"
COMMAND = ".venv/bin/python -m bench.agent"

BODY_SIZE = 256
_STAMP = struct.Struct(">QQ")  # sequence number, perf_counter_ns at send_message
WAIT = 120.0  # seconds any single wait may take before the benchmark gives up

E = TypeVar("E", bound=ev.Event)
T = TypeVar("T")


class BenchError(RuntimeError):
    pass


# ---------------------------------------------------------------- measuring


def _cpu_of(pid: int) -> float:
    """User + system CPU seconds of process `pid` so far (all threads)."""
    with open(f"/proc/{pid}/stat", "rb") as f:
        raw = f.read()
    rest = raw[raw.rindex(b")") + 2 :].split()  # skip "pid (comm) "; fields start at state
    ticks = os.sysconf("SC_CLK_TCK")
    return (int(rest[11]) + int(rest[12])) / ticks


def _machine_busy() -> float:
    """CPU seconds the whole machine has spent not idle (nor waiting for I/O) so far."""
    with open("/proc/stat") as f:
        fields = [int(x) for x in f.readline().split()[1:]]
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)
    return (sum(fields[:8]) - idle) / os.sysconf("SC_CLK_TCK")


class Cpu:
    """CPU over an interval, in cores: this process, the relay, and everything else."""

    def __init__(self, relay_pid: int | None) -> None:
        self.relay_pid = relay_pid
        self._t = self._own = self._relay = self._machine = 0.0

    def start(self) -> None:
        self._t = time.perf_counter()
        self._own = time.process_time()
        self._relay = _cpu_of(self.relay_pid) if self.relay_pid else 0.0
        self._machine = _machine_busy()

    def stop(self) -> tuple[float, float, float]:
        wall = max(time.perf_counter() - self._t, 1e-9)
        own = (time.process_time() - self._own) / wall
        relay = (_cpu_of(self.relay_pid) - self._relay) / wall if self.relay_pid else 0.0
        machine = (_machine_busy() - self._machine) / wall
        return own, relay, max(0.0, machine - own - relay)


def quantile(values: Sequence[float], q: float) -> float:
    """The `q` quantile (0..1) by the nearest-rank method; 0.0 for no values."""
    if not values:
        return 0.0
    ordered = sorted(values)
    rank = max(1, int(-(-q * len(ordered) // 1)))  # ceil(q * n), at least 1
    return ordered[min(rank, len(ordered)) - 1]


# ---------------------------------------------------------------- the client side


class Router:
    """Reads one agent's events and hands them out; acknowledges what must be acknowledged."""

    WAITED = (ev.Inv, ev.Conf, ev.Con)

    def __init__(self, agent: Agent, name: str) -> None:
        self.agent = agent
        self.name = name
        self.on_msg: Callable[[str, ev.Msg], None] | None = None
        self.errors: list[str] = []
        self.counts: Counter[str] = Counter()
        self._boxes: dict[tuple[str, type], asyncio.Queue[tuple[float, ev.Event]]] = defaultdict(
            asyncio.Queue
        )
        self._failed = asyncio.Event()
        self._background: set[asyncio.Task[None]] = set()
        self._acks = 0
        self._task = asyncio.create_task(self._route(), name=f"router-{name}")

    async def _route(self) -> None:
        while True:
            e = await self.agent.next_event()
            arrived = time.perf_counter()
            event = e.event
            self.counts[type(event).__name__] += 1
            if e.corr_id:  # a completion event: the client has it, so forget it
                self.spawn(self.agent.ack_command_event(e.corr_id))
            match event:
                case ev.Msg():
                    if self.on_msg is None:
                        self.error(f"unexpected MSG on {e.conn_id}")
                    else:
                        self.on_msg(e.conn_id, event)
                case ev.Err(reason, code):
                    self.error(f"ERR {code} {reason} ({e.corr_id})")
                case ev.MErr(msg_id, reason):
                    self.error(f"MERR {msg_id} {reason}")
                case ev.Down() | ev.End():
                    self.error(f"{type(event).__name__} {e.conn_id}")
                case ev.Inv() | ev.Conf() | ev.Con():
                    self._boxes[(e.conn_id, type(event))].put_nowait((arrived, event))
                case _:
                    pass  # OK, SENT, INFO, UP: counted only

    def error(self, text: str) -> None:
        self.errors.append(f"{self.name}: {text}")
        self._failed.set()

    def spawn(self, work: Awaitable[None]) -> None:
        async def run() -> None:
            try:
                await work
            except Exception as e:
                self.error(f"{type(e).__name__}: {e}")

        task = asyncio.create_task(run())
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    def ack_message(self, conn_id: str, msg_id: int) -> None:
        self._acks += 1
        ack = self.agent.ack_message_async(f"ack:{self._acks}", conn_id, msg_id, event=False)
        self.spawn(ack)

    async def wait(self, conn_id: str, kind: type[E], timeout: float = WAIT) -> tuple[float, E]:
        """The next `kind` event for `conn_id` and when it arrived (perf_counter)."""
        box = self._boxes[(conn_id, kind)]
        if not box.empty():
            arrived, event = box.get_nowait()
        else:
            get = asyncio.create_task(box.get())
            failed = asyncio.create_task(self._failed.wait())
            try:
                await asyncio.wait(
                    {get, failed}, timeout=timeout, return_when=asyncio.FIRST_COMPLETED
                )
            finally:
                failed.cancel()
                if not get.done():
                    get.cancel()
            if not get.done() or get.cancelled():
                raise BenchError(
                    f"{self.name}: no {kind.__name__} for {conn_id}: "
                    + ("; ".join(self.errors[-5:]) or f"timeout after {timeout} s")
                )
            arrived, event = get.result()
        assert isinstance(event, kind)
        return arrived, event

    def check(self) -> None:
        if self.errors:
            raise BenchError("; ".join(self.errors[:10]))

    async def quiet(self, timeout: float = WAIT) -> None:
        """Until no acknowledgement is in flight and the agent has no pending work."""
        async with asyncio.timeout(timeout):
            while True:
                if not self._background:
                    report = await self.agent.pending()
                    if not report.commands and not report.deliveries and not self._background:
                        return
                await asyncio.sleep(0.02)

    async def close(self) -> None:
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task


@dataclass
class Pair:
    alice: Router
    bob: Router
    serial: int = 0

    def tag(self, what: str) -> str:
        self.serial += 1
        return f"{what}:{self.serial}"

    def check(self) -> None:
        self.alice.check()
        self.bob.check()

    async def quiet(self) -> None:
        await asyncio.gather(self.alice.quiet(), self.bob.quiet())
        self.check()


async def connect(pair: Pair) -> tuple[str, str, float]:
    """Alice invites, bob joins, alice allows; returns both conn ids and when the last CON came."""
    a, b = pair.alice, pair.bob
    corr = pair.tag("new")
    a_conn = await a.agent.create_connection_async(corr)
    _, inv = await a.wait(a_conn, ev.Inv)
    b_conn = await b.agent.join_connection_async(pair.tag("join"), inv.link, b"bob's info")
    _, conf = await a.wait(a_conn, ev.Conf)
    await a.agent.allow_connection_async(pair.tag("allow"), a_conn, conf.conf_id, b"alice's info")
    (t_a, _), (t_b, _) = await asyncio.gather(a.wait(a_conn, ev.Con), b.wait(b_conn, ev.Con))
    return a_conn, b_conn, max(t_a, t_b)


async def connect_many(pair: Pair, n: int) -> list[tuple[str, str, float]]:
    return list(await asyncio.gather(*(connect(pair) for _ in range(n))))


# ---------------------------------------------------------------- the points


@dataclass
class Point:
    """One measured run."""

    kind: str  # "connections", "messages", "commands"
    label: str
    count: int  # connections made, messages received, commands completed
    seconds: float
    cpu_agents: float
    cpu_relay: float
    cpu_other: float  # the rest of the machine: interference if well above 0
    latencies: list[float] = field(default_factory=list)  # seconds

    @property
    def rate(self) -> float:
        return self.count / self.seconds if self.seconds > 0 else 0.0


@dataclass
class Result:
    """The runs of one point: the median one (by rate) and the range of rates."""

    runs: list[Point]

    @property
    def median(self) -> Point:
        ordered = sorted(self.runs, key=lambda p: p.rate)
        return ordered[(len(ordered) - 1) // 2]

    @property
    def rates(self) -> tuple[float, float]:
        return min(p.rate for p in self.runs), max(p.rate for p in self.runs)


async def connections_point(pair: Pair, n: int, cpu: Cpu) -> Point:
    cpu.start()
    t0 = time.perf_counter()
    made = await connect_many(pair, n)
    last_con = max(t for _, _, t in made)
    own, relay, other = cpu.stop()
    await pair.quiet()
    return Point("connections", f"{n} at once", n, last_con - t0, own, relay, other)


async def messages_point(
    pair: Pair, conns: list[tuple[str, str]], per_conn: int, window: int, cpu: Cpu
) -> Point:
    a, b = pair.alice, pair.bob
    total = per_conn * len(conns)
    slots = {b_conn: asyncio.Semaphore(window) for _, b_conn in conns}
    latencies: list[float] = []
    done: asyncio.Future[float] = asyncio.get_running_loop().create_future()
    received = 0

    def on_msg(conn_id: str, msg: ev.Msg) -> None:
        nonlocal received
        t = time.perf_counter_ns()
        b.ack_message(conn_id, msg.msg_id)
        slot = slots.get(conn_id)
        if slot is None:
            b.error(f"MSG on an unexpected connection {conn_id}")
            return
        if msg.integrity != "ok" or len(msg.body) != BODY_SIZE:
            b.error(f"MSG {msg.msg_id} on {conn_id}: {msg.integrity}, {len(msg.body)} bytes")
        _, sent_ns = _STAMP.unpack_from(msg.body)
        latencies.append((t - sent_ns) / 1e9)
        slot.release()
        received += 1
        if received == total and not done.done():
            done.set_result(time.perf_counter())

    async def sender(a_conn: str, slot: asyncio.Semaphore) -> None:
        padding = bytes(BODY_SIZE - _STAMP.size)
        for seq in range(per_conn):
            await slot.acquire()
            body = _STAMP.pack(seq, time.perf_counter_ns()) + padding
            await a.agent.send_message(a_conn, body)

    b.on_msg = on_msg
    try:
        cpu.start()
        t0 = time.perf_counter()
        senders = [asyncio.create_task(sender(ac, slots[bc])) for ac, bc in conns]
        sending: set[asyncio.Future[Any]] = set(senders)
        try:
            async with asyncio.timeout(WAIT):
                while not done.done():
                    finished, _ = await asyncio.wait(
                        {done, *sending}, timeout=1.0, return_when=asyncio.FIRST_COMPLETED
                    )
                    for s in finished & sending:
                        sending.discard(s)
                        if s.exception() is not None:
                            raise BenchError(f"sender failed: {s.exception()!r}")
                    pair.check()
        finally:
            for s in senders:
                s.cancel()
        t1 = done.result()
        own, relay, other = cpu.stop()
        await pair.quiet()
    finally:
        b.on_msg = None
    label = f"{len(conns)} conn{'s' if len(conns) > 1 else ''}, window {window}"
    return Point("messages", label, total, t1 - t0, own, relay, other, latencies)


async def commands_point(pair: Pair, n: int, cpu: Cpu) -> Point:
    a = pair.alice

    async def one() -> float:
        conn_id = await a.agent.create_connection_async(pair.tag("cmd"))
        arrived, _ = await a.wait(conn_id, ev.Inv)
        return arrived

    cpu.start()
    t0 = time.perf_counter()
    arrivals = await asyncio.gather(*(one() for _ in range(n)))
    own, relay, other = cpu.stop()
    await pair.quiet()
    return Point(
        "commands", f"{n} create_connection_async", n, max(arrivals) - t0, own, relay, other
    )


# ---------------------------------------------------------------- the run


@dataclass
class Plan:
    connections: list[int]
    message_runs: list[tuple[int, int, int]]  # connections, messages per connection, window
    commands: int
    repeat: int


FULL = Plan(
    connections=[1, 10, 100],
    message_runs=[(1, 300, 1), (1, 2000, 32), (10, 400, 32)],
    commands=200,
    repeat=3,
)
QUICK = Plan(
    connections=[1, 10, 100],
    message_runs=[(1, 50, 1), (1, 300, 32), (10, 60, 32)],
    commands=200,
    repeat=1,
)


async def repeat(times: int, run: Callable[[], Awaitable[Point]], show: bool) -> Result:
    runs: list[Point] = []
    for _ in range(times):
        p = await run()
        if show:
            print(f"  {p.kind:<11} {p.label:<28} {p.rate:10.1f}/s  ({p.seconds:.3f} s)")
        runs.append(p)
    return Result(runs)


async def run_all(plan: Plan, tmp: Path) -> tuple[list[Result], dict[str, Counter[str]]]:
    relay = RelayProcess(tmp / "relay")
    address = str(await relay.start())
    proc = relay.proc
    cpu = Cpu(proc.pid if proc is not None else None)
    agents: list[Agent] = []
    routers: list[Router] = []
    try:
        for name in ("alice", "bob"):
            agents.append(
                await Agent.open(AgentConfig(database=tmp / f"{name}.db", relays=[address]))
            )
            routers.append(Router(agents[-1], name))
        pair = Pair(routers[0], routers[1])

        print("warming up ...", flush=True)
        warm = [(ac, bc) for ac, bc, _ in await connect_many(pair, 2)]
        await pair.quiet()
        await messages_point(pair, warm, 50, 32, cpu)
        await commands_point(pair, 10, cpu)

        results: list[Result] = []
        for n in plan.connections:
            results.append(
                await repeat(plan.repeat, functools.partial(connections_point, pair, n, cpu), True)
            )
        most = max(c for c, _, _ in plan.message_runs)
        msg_conns = [(ac, bc) for ac, bc, _ in await connect_many(pair, most)]
        await pair.quiet()
        for n_conns, per_conn, window in plan.message_runs:
            conns = msg_conns[:n_conns]
            results.append(
                await repeat(
                    plan.repeat,
                    functools.partial(messages_point, pair, conns, per_conn, window, cpu),
                    True,
                )
            )
        results.append(
            await repeat(
                plan.repeat, functools.partial(commands_point, pair, plan.commands, cpu), True
            )
        )
        counts = {r.name: r.counts for r in routers}
        return results, counts
    finally:
        for r in routers:
            await r.close()
        for agent in agents:
            await agent.close()
        await relay.terminate()


# ---------------------------------------------------------------- reporting


def _date_u() -> str:
    """What `date -u` prints."""
    try:
        out = subprocess.run(["date", "-u"], capture_output=True, text=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        return time.strftime("%a %b %d %H:%M:%S UTC %Y", time.gmtime())
    return out.strip()


def machine(tmp: Path) -> list[str]:
    cpuinfo = read_text("/proc/cpuinfo")
    model = next(
        (
            line.split(":", 1)[1].strip()
            for line in cpuinfo.splitlines()
            if line.startswith("model name")
        ),
        platform.processor() or "unknown",
    )
    mem_kb = next(
        (
            int(line.split()[1])
            for line in read_text("/proc/meminfo").splitlines()
            if line.startswith("MemTotal:")
        ),
        0,
    )
    fs = "unknown"
    best = -1
    for line in read_text("/proc/mounts").splitlines():
        parts = line.split()
        if len(parts) >= 3 and str(tmp).startswith(parts[1]) and len(parts[1]) > best:
            best, fs = len(parts[1]), f"{parts[2]} at {parts[1]}"
    return [
        f"- Date: {_date_u()}",
        f"- Machine: {os.cpu_count()} CPUs (nproc {len(os.sched_getaffinity(0))}), {model}, "
        f"{mem_kb / 1024 / 1024:.1f} GiB RAM; {platform.system()} {platform.release()}",
        f"- Python {platform.python_version()} ({platform.python_implementation()}), "
        f"asyncio default event loop; SQLite {sqlite3.sqlite_version} "
        f"(WAL, synchronous=FULL) on {fs}",
    ]


def _ms(seconds: float) -> str:
    return f"{seconds * 1000:.1f}"


def _range(result: Result) -> str:
    if len(result.runs) < 2:
        return "–"
    lo, hi = result.rates
    return f"{lo:.1f}–{hi:.1f}"


def table(results: list[Result]) -> list[str]:
    rows = [
        "| Benchmark | Point | Count | Seconds | Rate (/s) | Range of rates | p50 ms | p99 ms "
        "| CPU agents | CPU relay | CPU other |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    names = {
        "connections": "connections established",
        "messages": "messages alice → bob",
        "commands": "async commands (NEW → INV)",
    }
    for r in results:
        p = r.median
        lat = p.latencies
        p50 = _ms(quantile(lat, 0.5)) if lat else "–"
        p99 = _ms(quantile(lat, 0.99)) if lat else "–"
        rows.append(
            f"| {names[p.kind]} | {p.label} | {p.count} | {p.seconds:.3f} | {p.rate:.1f} "
            f"| {_range(r)} | {p50} | {p99} | {p.cpu_agents:.2f} | {p.cpu_relay:.2f} "
            f"| {p.cpu_other:.2f} |"
        )
    return rows


INTERFERENCE = 0.3  # cores used by other processes that make a point suspect


def interference(results: list[Result]) -> list[str]:
    """A warning naming the points during which other processes used the CPUs."""
    busy = [
        f"{r.median.kind} {r.median.label} ({r.median.cpu_other:.2f})"
        for r in results
        if r.median.cpu_other > INTERFERENCE
    ]
    if not busy:
        return []
    return [
        "**Interference:** other processes on the machine used more than "
        f"{INTERFERENCE} cores during: " + "; ".join(busy) + ". Those numbers are low; "
        "rerun on an idle machine to compare.",
        "",
    ]


def section(
    plan: Plan, results: list[Result], info: list[str], counts: dict[str, Counter[str]]
) -> str:
    lines = [
        SECTION,
        "",
        f"Written by `bench/agent.py`: `{COMMAND}` (`--quick` for a short run that only prints).",
        "",
        *info,
        f"- Runs per point: {plan.repeat}; the table shows the median run (by rate) and the "
        "range of rates over the runs",
        "",
        "Setup: one `parley relay` process (`RelayProcess`: a subprocess with its durable SQLite "
        "store, TLS on 127.0.0.1). Both agents (alice and bob) run in the benchmark process, on "
        "one asyncio event loop, each with its own SQLite file and database thread in a "
        "temporary directory and the default `AgentConfig`. Each agent's events are read by one "
        "router task that acknowledges every completion event (`ack_command_event`, in the "
        "background); bob acknowledges every MSG with `ack_message_async(..., event=False)` (as "
        "the chat does: the relay's ACK leaves at the call, no OK comes back). Warm-up first: 2 "
        "connections, 100 messages, 10 invitations.",
        "",
        *table(results),
        "",
        "- *connections established*: N handshakes at once with the asynchronous API (alice "
        "`create_connection_async`, bob `join_connection_async` on INV, alice "
        "`allow_connection_async` on CONF), from the first create to the last CON on either "
        "side; rate = connections per second.",
        "- *messages alice → bob*: `send_message` of 256-byte bodies, at most *window* messages "
        "per connection sent but not yet received by bob; rate = messages per second to the last "
        "MSG received; latency = the `send_message` call → bob's MSG event. Window 1 is the "
        "latency of an idle connection; with window 32 latency is mostly queueing. The relay "
        "gives a queue's next message only after the ACK of the one before, so one connection "
        "carries one message per MSG → `ack_message_async` → ACK round trip.",
        "- *async commands*: N `create_connection_async` at once, until the last INV (each: a "
        "transaction to store it, then a read, a relay NEW and a transaction to complete it; "
        "at most 8 run at a time, `commands_per_relay`).",
        "- CPU: cores used during the measured interval by the benchmark process (both agents "
        "and their database threads), by the relay process, and by everything else on the "
        "machine (*other*: well above 0 means something else competed for the CPUs).",
        "",
        *interference(results),
        "Events seen (whole run, warm-up included): "
        + "; ".join(
            f"{name}: " + ", ".join(f"{k} {v}" for k, v in sorted(c.items()))
            for name, c in counts.items()
        ),
        "",
    ]
    return "\n".join(lines)


# ---------------------------------------------------------------- main


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench.agent", description=__doc__.split("\n")[0]
    )
    parser.add_argument(
        "--quick", action="store_true", help="smaller runs, once each, docs untouched"
    )
    parser.add_argument("--repeat", type=int, help="runs per point (default 3, or 1 with --quick)")
    parser.add_argument("--no-docs", action="store_true", help="do not write docs/benchmarks.md")
    return parser.parse_args(argv)


async def amain(args: argparse.Namespace) -> int:
    plan = QUICK if args.quick else FULL
    if args.repeat is not None:
        plan = Plan(plan.connections, plan.message_runs, plan.commands, max(1, args.repeat))
    with tempfile.TemporaryDirectory(prefix="parley-bench-agent-") as d:
        tmp = Path(d)
        info = machine(tmp)
        results, counts = await run_all(plan, tmp)
    print()
    for line in info:
        print(line)
    print()
    for row in table(results):
        print(row)
    for line in interference(results):
        print(line and "\n" + line)
    if not args.quick and not args.no_docs:
        write_section(SECTION, section(plan, results, info, counts), DOCS)
        print(f"\nwrote the Agent section of {DOCS.relative_to(ROOT)}")
    return 0


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    return asyncio.run(amain(parse_args(argv)))


if __name__ == "__main__":
    sys.exit(main())

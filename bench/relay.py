"""Relay throughput and latency: SEND → MSG → ACK through one relay over TLS.

Run from the project root:

    .venv/bin/python -m bench.relay            # 5 s per point, rewrites docs/benchmarks.md
    .venv/bin/python -m bench.relay --quick    # 1.5 s per point, prints only

The relay is a real `parley relay` process (its SQLite store in WAL mode with
synchronous=FULL, every SEND answered only after its commit), started afresh for each point
on a store in a temporary directory. This process is the client side: one `RelayClient`
for all senders and one for all recipients. Each queue is a pipeline: senders send
256-byte messages (a sequence number and a send timestamp in the body) while fewer than
`window` of the queue's messages are unacknowledged; the recipient, on MSG, records the
latency and ACKs, which frees a slot of the window (and lets the relay push the next MSG).
After a warm-up, completed messages (ACK answered) are counted for a fixed time.

In the same run a bare TLS echo (bench.echo) measures the machine's ceiling in 16384-byte
blocks per second, and the ratio of the two is reported.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import importlib.util
import os
import platform
import struct
import sys
import tempfile
import textwrap
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path

from bench.echo import (
    ROOT,
    CpuMeter,
    EchoResult,
    MachineMeter,
    echo_process,
    percentile,
    run_echo,
    wait_for_quiet,
)
from bench.report import read_text, write_section
from parley.protocol import relay as p
from parley.protocol.address import RelayAddress
from parley.protocol.relay_auth import AuthKey
from parley.relay.client import (
    ClientSettings,
    MessageReceived,
    RelayClient,
    RelayDown,
    SubscriptionEnded,
)
from parley.testing.process import RelayProcess

DOCS = ROOT / "docs" / "benchmarks.md"
SECTION = "## Relay"
TARGET_RATE = 10_000  # messages per second at 100 queues
TARGET_RATIO = 0.5  # of the echo ceiling
TARGET_QUEUES = 100
OTHER_CPU_WARNING = 0.25  # cores used by the rest of the machine that make a run suspect
RETRIES = 3  # times a disturbed run is done again

_HEADER = struct.Struct(">QQ")  # sequence number, send time (perf_counter_ns)
SETTINGS = ClientSettings(connect_timeout=10.0, command_timeout=30.0, ping_interval=60.0)


# ---------------------------------------------------------------- block counting


@dataclass
class BlockCounts:
    """Blocks and transmissions this process's relay clients wrote and read."""

    blocks_out: int = 0
    blocks_in: int = 0
    transmissions_out: int = 0
    transmissions_in: int = 0

    def minus(self, other: BlockCounts) -> BlockCounts:
        return BlockCounts(
            self.blocks_out - other.blocks_out,
            self.blocks_in - other.blocks_in,
            self.transmissions_out - other.transmissions_out,
            self.transmissions_in - other.transmissions_in,
        )

    def copy(self) -> BlockCounts:
        return self.minus(BlockCounts())


@contextmanager
def counting_blocks() -> Iterator[BlockCounts]:
    """Count the blocks of every RelayClient in this process while the context is open.

    The client packs and parses blocks through the `parley.protocol.relay` module, so
    wrapping those two functions sees all of its traffic (the relay is another process and
    is not affected). The wrappers cost well under a microsecond per block.
    """
    counts = BlockCounts()
    pack, decode = p.pack_blocks, p.decode_block

    def counting_pack(transmissions: Iterable[bytes]) -> list[bytes]:
        ts = list(transmissions)
        blocks = pack(ts)
        counts.blocks_out += len(blocks)
        counts.transmissions_out += len(ts)
        return blocks

    def counting_decode(block: bytes | memoryview) -> list[bytes]:
        ts = decode(block)
        counts.blocks_in += 1
        counts.transmissions_in += len(ts)
        return ts

    p.pack_blocks, p.decode_block = counting_pack, counting_decode
    try:
        yield counts
    finally:
        p.pack_blocks, p.decode_block = pack, decode


# ---------------------------------------------------------------- one load point


@dataclass(eq=False)
class Pipe:
    """One queue under load: its clients, keys, ids, window and the recipient's inbox."""

    sender: RelayClient
    recipient: RelayClient
    recipient_id: bytes
    sender_id: bytes
    recipient_key: AuthKey
    sender_key: AuthKey
    window: asyncio.Semaphore
    inbox: asyncio.Queue[p.Msg] = field(default_factory=asyncio.Queue)
    seq: int = 0


@dataclass
class Tally:
    measuring: bool = False
    completed: int = 0
    to_msg: list[int] = field(default_factory=list)  # ns from SEND to the MSG arriving
    to_ack: list[int] = field(default_factory=list)  # ns from SEND to the ACK answered
    errors: dict[str, int] = field(default_factory=dict)

    def error(self, what: str) -> None:
        self.errors[what] = self.errors.get(what, 0) + 1


@dataclass(frozen=True)
class RelayResult:
    queues: int
    window: int
    connections: int  # RelayClients per role (senders, recipients)
    messages_per_s: float
    msg_p50_ms: float
    msg_p99_ms: float
    ack_p50_ms: float
    ack_p99_ms: float
    relay_cpu: float | None  # fraction of one core; None if the relay's pid is unknown
    client_cpu: float
    other_cpu: float | None  # cores busy with other processes, or stolen by the hypervisor
    blocks: BlockCounts
    completed: int
    errors: dict[str, int]
    rates: tuple[float, ...] = ()  # messages/s of every repetition, when repeated

    @property
    def blocks_per_message(self) -> float:
        """Blocks on the wire (both directions, both connections) per completed message."""
        return (self.blocks.blocks_out + self.blocks.blocks_in) / max(self.completed, 1)

    @property
    def transmissions_per_block(self) -> float:
        b = self.blocks
        return (b.transmissions_out + b.transmissions_in) / max(b.blocks_out + b.blocks_in, 1)


async def _setup_queue(sender: RelayClient, recipient: RelayClient, window: int) -> Pipe:
    rkey, skey = AuthKey.generate(), AuthKey.generate()
    ids = await recipient.create_queue(rkey)
    await recipient.secure(ids.recipient_id, rkey, skey.public)
    return Pipe(
        sender, recipient, ids.recipient_id, ids.sender_id, rkey, skey, asyncio.Semaphore(window)
    )


async def _sender(pipe: Pipe, padding: bytes, tally: Tally) -> None:
    client = pipe.sender
    while True:
        await pipe.window.acquire()
        pipe.seq += 1
        body = _HEADER.pack(pipe.seq, time.perf_counter_ns()) + padding
        try:
            await client.send(pipe.sender_id, pipe.sender_key, body)
        except Exception as e:
            tally.error(f"SEND: {e}")
            pipe.window.release()
            await asyncio.sleep(0.01)


async def _recipient(pipe: Pipe, tally: Tally) -> None:
    client = pipe.recipient
    while True:
        msg = await pipe.inbox.get()
        arrived = time.perf_counter_ns()
        _, sent = _HEADER.unpack_from(msg.body)
        try:
            await client.ack(pipe.recipient_id, pipe.recipient_key, msg.msg_id)
        except Exception as e:
            tally.error(f"ACK: {e}")
            continue  # the relay pushes the message again on the next subscription only
        if tally.measuring:
            tally.completed += 1
            tally.to_msg.append(arrived - sent)
            tally.to_ack.append(time.perf_counter_ns() - sent)
        pipe.window.release()


async def _dispatch(client: RelayClient, pipes: dict[bytes, Pipe], tally: Tally) -> None:
    while True:
        event = await client.events.get()
        match event:
            case MessageReceived(recipient_id=rid, message=msg):
                pipe = pipes.get(rid)
                if pipe is None:
                    tally.error("MSG for an unknown queue")
                else:
                    pipe.inbox.put_nowait(msg)
            case RelayDown(reason=reason):
                tally.error(f"connection lost: {reason}")
            case SubscriptionEnded():
                tally.error("subscription ended")
            case _:
                pass


async def run_load(
    address: RelayAddress,
    *,
    queues: int,
    window: int,
    body_size: int,
    warmup: float,
    duration: float,
    relay_pid: int | None = None,
    connections: int = 1,
) -> RelayResult:
    """Drive `queues` pipelines through the relay at `address`; measure for `duration` s.

    `connections` RelayClients send and as many receive; queue i uses pair i % connections.
    """
    if body_size < _HEADER.size:
        raise ValueError(f"bodies need at least {_HEADER.size} bytes")
    padding = b"\x00" * (body_size - _HEADER.size)
    senders = [RelayClient(address, settings=SETTINGS) for _ in range(connections)]
    recipients = [RelayClient(address, settings=SETTINGS) for _ in range(connections)]
    tally = Tally()
    tasks: list[asyncio.Task[None]] = []
    try:
        await asyncio.gather(*(c.connect() for c in senders + recipients))
        made = await asyncio.gather(
            *(
                _setup_queue(senders[i % connections], recipients[i % connections], window)
                for i in range(queues)
            )
        )
        pipes = {pipe.recipient_id: pipe for pipe in made}
        for c in recipients:
            tasks.append(asyncio.create_task(_dispatch(c, pipes, tally)))
        await asyncio.gather(
            *(pipe.recipient.subscribe(pipe.recipient_id, pipe.recipient_key) for pipe in made)
        )
        for pipe in made:
            tasks.append(asyncio.create_task(_recipient(pipe, tally)))
            for _ in range(window):
                tasks.append(asyncio.create_task(_sender(pipe, padding, tally)))

        with counting_blocks() as counts:
            await asyncio.sleep(warmup)
            relay_meter = CpuMeter(relay_pid) if relay_pid is not None else None
            client_meter = CpuMeter(os.getpid())
            machine_meter = MachineMeter()
            machine_meter.start()
            if relay_meter is not None:
                relay_meter.start()
            client_meter.start()
            before = counts.copy()
            tally.measuring = True
            t0 = time.perf_counter()
            await asyncio.sleep(duration)
            tally.measuring = False
            elapsed = time.perf_counter() - t0
            blocks = counts.minus(before)
            relay_cpu = relay_meter.stop() if relay_meter is not None else None
            client_cpu = client_meter.stop()
            busy, stolen = machine_meter.stop()
        for t in tasks:
            if t.done():  # the loops run until cancelled: one that ended, failed
                t.result()
    finally:
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        for c in senders + recipients:
            await c.close()

    to_msg, to_ack = sorted(tally.to_msg), sorted(tally.to_ack)
    return RelayResult(
        queues=queues,
        window=window,
        connections=connections,
        messages_per_s=tally.completed / elapsed,
        msg_p50_ms=percentile(to_msg, 0.5) / 1e6,
        msg_p99_ms=percentile(to_msg, 0.99) / 1e6,
        ack_p50_ms=percentile(to_ack, 0.5) / 1e6,
        ack_p99_ms=percentile(to_ack, 0.99) / 1e6,
        relay_cpu=relay_cpu,
        client_cpu=client_cpu,
        other_cpu=None if relay_cpu is None else max(0.0, busy - relay_cpu - client_cpu) + stolen,
        blocks=blocks,
        completed=tally.completed,
        errors=tally.errors,
    )


async def relay_point(
    store: Path,
    *,
    queues: int,
    window: int,
    body_size: int,
    warmup: float,
    duration: float,
    connections: int = 1,
) -> RelayResult:
    """One load point against a fresh relay process on an empty store."""
    relay = RelayProcess(store, port=0)
    address = await relay.start()
    assert relay.proc is not None
    try:
        result = await run_load(
            address,
            queues=queues,
            window=window,
            body_size=body_size,
            warmup=warmup,
            duration=duration,
            relay_pid=relay.proc.pid,
            connections=connections,
        )
    finally:
        await relay.terminate()
    warnings = [line.rstrip() for line in relay.output if " WARNING " in line or " ERROR " in line]
    if warnings:
        print(f"  relay logged {len(warnings)} warnings, e.g. {warnings[0]}", file=sys.stderr)
    return result


async def echo_points(
    store: Path, windows: list[int], warmup: float, duration: float, repeat: int
) -> list[EchoResult]:
    """The echo at each window, `repeat` times; the median run of each, with all rates."""
    server = echo_process(store)
    port = int(await server.start())

    async def one(w: int) -> EchoResult:
        for attempt in range(RETRIES + 1):
            await wait_for_quiet(OTHER_CPU_WARNING)
            r = await run_echo(port, w, warmup, duration, server.pid)
            if r.other_cpu < OTHER_CPU_WARNING or attempt == RETRIES:
                return r
            print(f"  disturbed by other load ({r.other_cpu:.1f} cores), again", flush=True)
        raise AssertionError("unreachable")

    try:
        out: list[EchoResult] = []
        for w in windows:
            runs = [await one(w) for _ in range(repeat)]
            runs.sort(key=lambda r: r.blocks_per_s)
            out.append(replace(runs[len(runs) // 2], rates=tuple(r.blocks_per_s for r in runs)))
        return out
    finally:
        await server.stop()


async def relay_points(
    store: Path,
    *,
    queues: int,
    window: int,
    body_size: int,
    warmup: float,
    duration: float,
    repeat: int,
    connections: int = 1,
) -> RelayResult:
    """`relay_point` `repeat` times; the median run, with the rates of all runs.

    Each run starts once the machine is quiet, and a run disturbed by other load (see
    `OTHER_CPU_WARNING`) is done again, up to `RETRIES` times.
    """

    async def one(i: int) -> RelayResult:
        for attempt in range(RETRIES + 1):
            await wait_for_quiet(OTHER_CPU_WARNING)
            r = await relay_point(
                store / f"run-{i}-{attempt}",
                queues=queues,
                window=window,
                body_size=body_size,
                warmup=warmup,
                duration=duration,
                connections=connections,
            )
            if r.other_cpu is None or r.other_cpu < OTHER_CPU_WARNING or attempt == RETRIES:
                return r
            print(f"  disturbed by other load ({r.other_cpu:.1f} cores), again", flush=True)
        raise AssertionError("unreachable")

    runs = [await one(i) for i in range(repeat)]
    runs.sort(key=lambda r: r.messages_per_s)
    return replace(runs[len(runs) // 2], rates=tuple(r.messages_per_s for r in runs))


# ---------------------------------------------------------------- report


def _relay_loop() -> str:
    """`parley relay` runs on uvloop when it is installed (the `fast` extra)."""
    return "uvloop" if importlib.util.find_spec("uvloop") else "default asyncio loop"


def _filesystem(path: Path) -> str:
    """The type and device of the file system holding `path`, from /proc/mounts."""
    best, kind = "", "unknown"
    target = str(path.resolve())
    for line in read_text("/proc/mounts").splitlines():
        parts = line.split()
        if len(parts) < 3:
            continue
        mount = parts[1]
        inside = target == mount or target.startswith(mount.rstrip("/") + "/")
        if inside and len(mount) > len(best):
            best, kind = mount, f"{parts[2]} ({parts[0]})"
    return kind


def machine(store_parent: Path) -> list[str]:
    cpu = "unknown"
    for line in read_text("/proc/cpuinfo").splitlines():
        if line.startswith("model name"):
            cpu = line.split(":", 1)[1].strip()
            break
    ram = "unknown"
    for line in read_text("/proc/meminfo").splitlines():
        if line.startswith("MemTotal:"):
            ram = f"{int(line.split()[1]) / 1024 / 1024:.1f} GiB"
            break
    os_name = "unknown"
    for line in read_text("/etc/os-release").splitlines():
        if line.startswith("PRETTY_NAME="):
            os_name = line.split("=", 1)[1].strip('"')
    return [
        f"CPUs (`nproc`): {len(os.sched_getaffinity(0))}, {cpu}",
        f"RAM: {ram}",
        f"Python: {platform.python_version()} ({platform.python_implementation()}); "
        f"relay event loop: {_relay_loop()}, load generator: default asyncio loop",
        f"OS: {os_name}, Linux {platform.release()} ({platform.machine()})",
        f"Relay store: {_filesystem(store_parent)}; SQLite WAL, synchronous=FULL",
    ]


def _ms(v: float) -> str:
    return f"{v:.1f}" if v >= 10 else f"{v:.2f}"


def _cpu(v: float | None) -> str:
    return "n/a" if v is None else f"{v * 100:.0f}%"


def _range(rates: tuple[float, ...]) -> str:
    return f"{min(rates):,.0f}–{max(rates):,.0f}" if len(rates) > 1 else "–"


def relay_table(results: list[RelayResult], ceiling: float) -> list[str]:
    rows = [
        "| queues | messages/s | runs | ÷ echo ceiling | SEND→MSG p50 / p99 (ms) "
        "| SEND→ACK p50 / p99 (ms) | blocks/message | transmissions/block "
        "| relay CPU | client CPU | other CPU |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in results:
        rows.append(
            f"| {r.queues} | {r.messages_per_s:,.0f} | {_range(r.rates)} "
            f"| {r.messages_per_s / ceiling:.2f} "
            f"| {_ms(r.msg_p50_ms)} / {_ms(r.msg_p99_ms)} "
            f"| {_ms(r.ack_p50_ms)} / {_ms(r.ack_p99_ms)} "
            f"| {r.blocks_per_message:.2f} | {r.transmissions_per_block:.1f} "
            f"| {_cpu(r.relay_cpu)} | {_cpu(r.client_cpu)} | {_cpu(r.other_cpu)} |"
        )
    return rows


def echo_table(results: list[EchoResult]) -> list[str]:
    rows = [
        "| window (blocks) | blocks/s | runs | MB/s each way | RTT p50 / p99 (ms) "
        "| server CPU | client CPU | other CPU |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for e in results:
        rows.append(
            f"| {e.window} | {e.blocks_per_s:,.0f} | {_range(e.rates)} "
            f"| {e.blocks_per_s * p.BLOCK_SIZE / 1e6:.0f} "
            f"| {_ms(e.rtt_p50_ms)} / {_ms(e.rtt_p99_ms)} "
            f"| {_cpu(e.server_cpu)} | {_cpu(e.client_cpu)} | {_cpu(e.other_cpu)} |"
        )
    return rows


@dataclass(frozen=True)
class Verdict:
    ratio_met: bool
    rate_met: bool
    lines: list[str]


def verdict(results: list[RelayResult], ceiling: float) -> Verdict | None:
    """The issue's two targets, judged on the median run at 100 queues."""
    at = [r for r in results if r.queues == TARGET_QUEUES]
    if not at:
        return None
    r = at[0]
    rate = r.messages_per_s
    ratio = rate / ceiling
    ratio_met, rate_met = ratio >= TARGET_RATIO, rate >= TARGET_RATE

    def word(met: bool) -> str:
        return "**met**" if met else "**not met**"

    def runs_reaching(target: float) -> str:
        k = sum(x >= target for x in r.rates)
        return f"; {k} of {len(r.rates)} runs reached it" if 0 < k < len(r.rates) else ""

    lines = [
        "Targets (from the issue): at least half of the echo ceiling, and at least 10,000 "
        "messages per second at 100 queues with 256-byte bodies. Judged on the median run:",
        "",
        f"- Half of the echo ceiling: {word(ratio_met)}. At {TARGET_QUEUES} queues the relay "
        f"moved {rate:,.0f} messages/s, {ratio:.2f} of the echo's {ceiling:,.0f} blocks/s "
        f"(target ≥ {TARGET_RATIO}){runs_reaching(TARGET_RATIO * ceiling)}.",
        f"- 10,000 messages/s at {TARGET_QUEUES} queues: {word(rate_met)} "
        f"({rate:,.0f} messages/s, {rate / TARGET_RATE:.0%} of the target"
        f"{runs_reaching(TARGET_RATE)}).",
    ]
    return Verdict(ratio_met, rate_met, lines)


def interference(results: list[RelayResult], echoes: list[EchoResult]) -> str:
    """A warning if the rest of the machine was busy during the reported runs."""
    others = [r.other_cpu for r in results if r.other_cpu is not None]
    others += [e.other_cpu for e in echoes]
    worst = max(others, default=0.0)
    if worst < OTHER_CPU_WARNING:
        return ""
    return (
        f"Warning: other processes used up to {worst:.1f} cores during the reported runs "
        "(*other CPU*); those numbers are disturbed. Rerun on a quiet machine."
    )


def section(
    *,
    date: str,
    command: str,
    machine_lines: list[str],
    results: list[RelayResult],
    echoes: list[EchoResult],
    body_size: int,
    window: int,
    connections: int,
    warmup: float,
    duration: float,
    repeat: int,
) -> str:
    ceiling = max(e.blocks_per_s for e in echoes)
    v = verdict(results, ceiling)
    clients = (
        "one `RelayClient` for all senders and one for all recipients"
        if connections == 1
        else f"{connections} `RelayClient`s for the senders and {connections} for the recipients"
    )
    out = [
        SECTION,
        "",
        "SEND → MSG → ACK through one relay over TLS 1.3, every SEND committed to the relay's "
        f"SQLite store (WAL, synchronous=FULL) before it is answered; {body_size}-byte bodies; "
        "queues secured, so every SEND and ACK carries an authenticator. The relay "
        f"(`python -m parley relay`, {_relay_loop()}) runs in its own process, started "
        f"afresh on an empty store for every run; the load comes from one other process with "
        f"{clients}. Each queue keeps up to {window} messages unacknowledged: senders send "
        "while there is room, the recipient records the latency when MSG arrives and ACKs, "
        "which frees the slot. The relay pushes a queue's next message only after the "
        "previous one is ACKed, so a queue delivers at most one message per client↔relay "
        "round trip, and the latencies include the wait behind earlier messages of the same "
        f"queue. Each run: {warmup:g} s warm-up, then {duration:g} s counted; messages/s "
        f"counts ACKs answered in that time. Each row is the median of {repeat} runs "
        "(*runs* gives the lowest and highest); a run starts once the machine is otherwise "
        f"idle and is redone (up to {RETRIES} times) if other processes used more than "
        f"{OTHER_CPU_WARNING:g} cores during it.",
        "",
        "The ceiling is a bare asyncio TLS echo (`bench/echo.py`): a server process that reads "
        f"and writes {p.BLOCK_SIZE}-byte blocks with the relay's TLS context, and a client "
        "that keeps `window` blocks in flight on one connection; blocks/s are round trips. "
        "*÷ echo ceiling* is relay messages/s ÷ the best echo blocks/s. It is not "
        "blocks-for-blocks: one relay message is five transmissions (SEND, OK, MSG, ACK, OK) "
        "that the relay and the client batch into shared blocks; *blocks/message* counts the "
        "blocks the client connections wrote and read per completed message, "
        "*transmissions/block* how full they were. CPU columns are the share of one core each "
        "process used during the counted time (the relay's includes its SQLite thread); "
        "*other CPU* is what the rest of the machine used or the hypervisor stole, a sign of "
        "interference.",
        "",
        f"- Date: {date}",
        *(f"- {line}" for line in machine_lines),
        f"- Command: `{command}`",
        "",
        "Relay:",
        "",
        *relay_table(results, ceiling),
        "",
        "Echo ceiling:",
        "",
        *echo_table(echoes),
        "",
    ]
    if v is not None:
        out += [*v.lines, ""]
    disturbed = interference(results, echoes)
    if disturbed:
        out += [disturbed, ""]
    errors: dict[str, int] = {}
    for r in results:
        for k, n in r.errors.items():
            errors[k] = errors.get(k, 0) + n
    if errors:
        out += [
            "Errors during the run: " + "; ".join(f"{k} ×{n}" for k, n in errors.items()),
            "",
        ]
    return "\n".join(_wrap(line) for line in out)


def _wrap(line: str, width: int = 100) -> str:
    """Fill prose and list items to `width` columns; leave tables and headings alone."""
    if not line or line.startswith(("|", "#")):
        return line
    indent = "  " if line.startswith("- ") else ""
    return textwrap.fill(
        line, width, subsequent_indent=indent, break_long_words=False, break_on_hyphens=False
    )


def print_lines(rows: list[str], out: Callable[[str], None] = print) -> None:
    for row in rows:
        out(row)


# ---------------------------------------------------------------- main


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench.relay", description="Relay throughput and latency benchmark."
    )
    parser.add_argument(
        "--quick", action="store_true", help="short runs (1.5 s), once each, docs untouched"
    )
    parser.add_argument(
        "--queues", default="1,10,100", help="comma-separated queue counts (default 1,10,100)"
    )
    parser.add_argument(
        "--window", type=int, default=8, help="unacknowledged messages per queue (default 8)"
    )
    parser.add_argument(
        "--connections", type=int, default=1, help="RelayClients per role (default 1)"
    )
    parser.add_argument("--body", type=int, default=256, help="message body bytes (default 256)")
    parser.add_argument(
        "--echo-windows", default="1,8,32", help="echo windows in blocks (default 1,8,32)"
    )
    parser.add_argument("--duration", type=float, help="seconds counted per run (default 5)")
    parser.add_argument("--warmup", type=float, help="seconds of warm-up per run (default 1.5)")
    parser.add_argument("--repeat", type=int, help="runs per point, median reported (default 3)")
    parser.add_argument(
        "--docs",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="rewrite the Relay section of docs/benchmarks.md (default: yes unless --quick)",
    )
    parser.add_argument(
        "--tmp", type=Path, default=None, help="where to put the relay stores (default: $TMPDIR)"
    )
    return parser.parse_args(argv)


async def amain(args: argparse.Namespace) -> int:
    duration = args.duration if args.duration is not None else (1.5 if args.quick else 5.0)
    warmup = args.warmup if args.warmup is not None else (0.5 if args.quick else 1.5)
    repeat = args.repeat if args.repeat is not None else (1 if args.quick else 3)
    queue_counts = [int(x) for x in args.queues.split(",") if x]
    echo_windows = [int(x) for x in args.echo_windows.split(",") if x]
    write_docs = (not args.quick) if args.docs is None else args.docs
    command = " ".join([".venv/bin/python -m bench.relay", *sys.argv[1:]])
    date = datetime.datetime.now(datetime.UTC).strftime("%a %b %d %H:%M:%S UTC %Y")

    with tempfile.TemporaryDirectory(prefix="parley-bench-", dir=args.tmp) as tmp:
        tmp_path = Path(tmp)
        machine_lines = machine(tmp_path)
        print(f"{date}; runs of {warmup:g} s warm-up + {duration:g} s, {repeat} per point")
        print_lines(["  " + line for line in machine_lines])
        print("echo ceiling ...", flush=True)
        echoes = await echo_points(tmp_path / "echo", echo_windows, warmup, duration, repeat)
        print_lines(echo_table(echoes))
        ceiling = max(e.blocks_per_s for e in echoes)
        results: list[RelayResult] = []
        for n in queue_counts:
            print(f"relay, {n} queues ...", flush=True)
            results.append(
                await relay_points(
                    tmp_path / f"relay-{n}",
                    queues=n,
                    window=args.window,
                    body_size=args.body,
                    warmup=warmup,
                    duration=duration,
                    repeat=repeat,
                    connections=args.connections,
                )
            )
        print()
        print_lines(relay_table(results, ceiling))
        v = verdict(results, ceiling)
        if v is not None:
            print()
            print_lines([line.replace("**", "") for line in v.lines])
        disturbed = interference(results, echoes)
        if disturbed:
            print("\n" + disturbed, file=sys.stderr)
        for r in results:
            if r.errors:
                print(f"errors at {r.queues} queues: {r.errors}", file=sys.stderr)

    if write_docs:
        text = section(
            date=date,
            command=command,
            machine_lines=machine_lines,
            results=results,
            echoes=echoes,
            body_size=args.body,
            window=args.window,
            connections=args.connections,
            warmup=warmup,
            duration=duration,
            repeat=repeat,
        )
        write_section(SECTION, text, DOCS)
        print(f"\nwrote the Relay section of {DOCS.relative_to(ROOT)}")
    return 0


def main(argv: list[str] | None = None) -> int:
    return asyncio.run(amain(parse_args(argv)))


if __name__ == "__main__":
    sys.exit(main())

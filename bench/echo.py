"""The machine's ceiling for the relay benchmark: a bare asyncio TLS echo of 16384-byte blocks.

The echo server runs in its own process (`python -m bench.echo --store DIR` prints its port
and serves until SIGTERM); it uses the relay's own TLS setup (`RelayIdentity.server_context`,
TLS 1.3 only, an Ed25519 certificate) and reads and writes one block at a time with
`readexactly` as the relay does, but does nothing with the bytes. The client pipelines blocks
with a window and counts round trips: blocks per second is the most the relay could move
through one TLS connection on this machine with Python's ssl module and asyncio.

Also here: the helpers `bench.relay` shares (CPU time of a process, percentiles, the
subprocess wrapper).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import math
import os
import signal
import struct
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from parley.protocol.relay import BLOCK_SIZE
from parley.relay.identity import client_context, load_or_create_identity

PORT_PREFIX = "bench echo port: "
ROOT = Path(__file__).resolve().parent.parent
_STAMP = struct.Struct(">Q")
_TICKS = os.sysconf("SC_CLK_TCK")


# ---------------------------------------------------------------- shared helpers


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of process `pid` (all its threads) so far, from /proc."""
    with open(f"/proc/{pid}/stat", "rb") as f:
        stat = f.read()
    # the fields after the parenthesised command name; utime and stime are fields 14 and 15
    fields = stat[stat.rindex(b")") + 2 :].split()
    return (int(fields[11]) + int(fields[12])) / _TICKS


class CpuMeter:
    """CPU use of a process over an interval, as a fraction of one core."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self._cpu = 0.0
        self._wall = 0.0

    def start(self) -> None:
        self._cpu = cpu_seconds(self.pid)
        self._wall = time.perf_counter()

    def stop(self) -> float:
        wall = time.perf_counter() - self._wall
        return (cpu_seconds(self.pid) - self._cpu) / wall if wall > 0 else 0.0


def busy_cores() -> tuple[float, float]:
    """Seconds of CPU the whole machine has spent busy, and stolen by the hypervisor."""
    with open("/proc/stat") as f:
        fields = [int(x) for x in f.readline().split()[1:]]
    # user nice system idle iowait irq softirq steal ...
    busy = fields[0] + fields[1] + fields[2]  # not irq and softirq: no process is charged them
    steal = fields[7] if len(fields) > 7 else 0
    return busy / _TICKS, steal / _TICKS


class MachineMeter:
    """CPU use of the whole machine over an interval, in cores (busy, stolen)."""

    def __init__(self) -> None:
        self._busy = self._steal = self._wall = 0.0

    def start(self) -> None:
        self._busy, self._steal = busy_cores()
        self._wall = time.perf_counter()

    def stop(self) -> tuple[float, float]:
        wall = time.perf_counter() - self._wall
        busy, steal = busy_cores()
        if wall <= 0:
            return 0.0, 0.0
        return (busy - self._busy) / wall, (steal - self._steal) / wall


async def wait_for_quiet(threshold: float, max_wait: float = 120.0) -> float:
    """Wait (up to `max_wait` s) until the machine is idle: under `threshold` cores busy.

    Call it while nothing of the benchmark runs. Returns the last second's load in cores.
    """
    deadline = time.monotonic() + max_wait
    told = False
    while True:
        meter = MachineMeter()
        meter.start()
        await asyncio.sleep(1.0)
        busy, stolen = meter.stop()
        load = busy + stolen
        if load < threshold or time.monotonic() >= deadline:
            return load
        if not told:
            print(f"  waiting for other load ({load:.1f} cores) to stop ...", flush=True)
            told = True


def percentile(sorted_values: list[int], q: float) -> float:
    """The nearest-rank `q`-quantile (0 < q <= 1) of already sorted values; NaN if empty."""
    if not sorted_values:
        return math.nan
    rank = max(1, math.ceil(q * len(sorted_values)))
    return float(sorted_values[rank - 1])


class ServerProcess:
    """A benchmark server in a subprocess: started, its port read from stdout, SIGTERMed."""

    def __init__(self, args: list[str], prefix: str) -> None:
        self.args = args
        self.prefix = prefix
        self.proc: asyncio.subprocess.Process | None = None
        self.line = ""
        self.output: list[str] = []
        self._drain: asyncio.Task[None] | None = None

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    async def start(self, timeout: float = 30.0) -> str:
        """Start the process; returns what it printed after the prefix."""
        self.proc = await asyncio.create_subprocess_exec(
            *self.args,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
            cwd=ROOT,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
        assert self.proc.stdout is not None
        try:
            async with asyncio.timeout(timeout):
                while True:
                    line = (await self.proc.stdout.readline()).decode()
                    if not line:
                        raise RuntimeError("server exited: " + "".join(self.output[-20:]))
                    self.output.append(line)
                    if line.startswith(self.prefix):
                        self.line = line[len(self.prefix) :].strip()
                        break
        except BaseException:
            await self.stop()
            raise
        self._drain = asyncio.create_task(self._collect())
        return self.line

    async def _collect(self) -> None:
        assert self.proc is not None and self.proc.stdout is not None
        while line := await self.proc.stdout.readline():
            self.output.append(line.decode())

    async def stop(self) -> None:
        proc = self.proc
        if proc is None:
            return
        if proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                proc.send_signal(signal.SIGTERM)
        try:
            await asyncio.wait_for(proc.wait(), 10)
        except TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            await proc.wait()
        if self._drain is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._drain, 5)
        self.proc = None


# ---------------------------------------------------------------- the echo server


async def _echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while True:
            block = await reader.readexactly(BLOCK_SIZE)
            writer.write(block)
            await writer.drain()
    except (ConnectionError, OSError, asyncio.IncompleteReadError):
        pass
    finally:
        writer.transport.abort()


async def serve(store: Path) -> None:
    identity = await asyncio.to_thread(load_or_create_identity, store)
    server = await asyncio.start_server(
        _echo, "127.0.0.1", 0, ssl=identity.server_context(), limit=BLOCK_SIZE * 4
    )
    print(PORT_PREFIX + str(server.sockets[0].getsockname()[1]), flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    async with server:
        await stop.wait()


def echo_process(store: Path) -> ServerProcess:
    return ServerProcess([sys.executable, "-m", "bench.echo", "--store", str(store)], PORT_PREFIX)


# ---------------------------------------------------------------- the echo client


@dataclass(frozen=True)
class EchoResult:
    window: int
    blocks_per_s: float
    rtt_p50_ms: float
    rtt_p99_ms: float
    server_cpu: float  # fraction of one core
    client_cpu: float
    other_cpu: float  # cores busy with other processes, or stolen by the hypervisor
    rates: tuple[float, ...] = ()  # blocks/s of every repetition, when repeated


async def run_echo(
    port: int, window: int, warmup: float, duration: float, server_pid: int
) -> EchoResult:
    """Echo blocks over one TLS connection with `window` blocks in flight."""
    reader, writer = await asyncio.open_connection(
        "127.0.0.1", port, ssl=client_context(), limit=BLOCK_SIZE * 4
    )
    slots = asyncio.Semaphore(window)
    padding = b"#" * (BLOCK_SIZE - _STAMP.size)
    rtts: list[int] = []
    measuring = False
    count = 0

    async def send() -> None:
        while True:
            await slots.acquire()
            writer.write(_STAMP.pack(time.perf_counter_ns()) + padding)
            await writer.drain()

    async def receive() -> None:
        nonlocal count
        while True:
            block = await reader.readexactly(BLOCK_SIZE)
            if measuring:
                rtts.append(time.perf_counter_ns() - _STAMP.unpack_from(block)[0])
                count += 1
            slots.release()

    tasks = [asyncio.create_task(send()), asyncio.create_task(receive())]
    server_cpu, client_cpu = CpuMeter(server_pid), CpuMeter(os.getpid())
    machine_cpu = MachineMeter()
    try:
        await asyncio.sleep(warmup)
        measuring = True
        machine_cpu.start()
        server_cpu.start()
        client_cpu.start()
        t0 = time.perf_counter()
        await asyncio.sleep(duration)
        measuring = False
        elapsed = time.perf_counter() - t0
        server_use, client_use = server_cpu.stop(), client_cpu.stop()
        machine_use, stolen = machine_cpu.stop()
        for t in tasks:
            if t.done():  # a task that ended early ended with an error
                t.result()
    finally:
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        writer.transport.abort()
    rtts.sort()
    return EchoResult(
        window,
        count / elapsed,
        percentile(rtts, 0.5) / 1e6,
        percentile(rtts, 0.99) / 1e6,
        server_use,
        client_use,
        max(0.0, machine_use - server_use - client_use) + stolen,
    )


def main() -> int:
    parser = argparse.ArgumentParser(description="TLS echo server for bench.relay")
    parser.add_argument("--store", type=Path, required=True, help="directory for the TLS identity")
    args = parser.parse_args()
    asyncio.run(serve(args.store))
    return 0


if __name__ == "__main__":
    sys.exit(main())

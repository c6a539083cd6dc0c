"""Recovery benchmark: how soon clients resume after a relay outage, with default timers.

Run from the project root:

    .venv/bin/python -m bench.recovery             # outages of 5, 30 and 90 s, both modes,
                                                   # rewrites "## Recovery" in docs/benchmarks.md
    .venv/bin/python -m bench.recovery --quick     # one 5 s outage, prints only

For each outage length: a real `parley relay` process; two agents ("alice", "bob") with the
default `AgentConfig` (default reconnect backoff and retry timers) connect to each other.
The relay is SIGKILLed; once both agents saw it go down, alice sends a message (a delivery
waits) and bob starts a new connection (a command waits). After the outage the relay starts
again on the same store and port; the clock starts when it listens again. Measured per
agent: the time until its waiting work completed (alice's SENT, bob's INV).

Two modes: `probing` (the default client: while work waits, a TCP probe every
`probe_interval` ±1/3 and TLS as soon as one succeeds) and `backoff only` (probing off,
the reconnect backoff alone: 0.5 s × 1.5 up to 30 s, ±25 %), which is what clients did
before probing.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import statistics
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from bench.report import DOCS, ROOT, machine_lines, write_section
from parley.agent import events as ev
from parley.agent.agent import Agent, AgentConfig
from parley.relay.client import ClientSettings
from parley.testing.process import RelayProcess

SECTION = "## Recovery"
COMMAND = ".venv/bin/python -m bench.recovery"
GOAL = 2.0  # seconds after the relay's return
WAIT = 300.0


@dataclass(frozen=True)
class Run:
    mode: str
    outage: float
    sent: float  # alice's SENT, seconds after the relay listened again
    inv: float  # bob's INV


async def _until(agent: Agent, kind: type[ev.Event], conn_id: str | None = None) -> None:
    async with asyncio.timeout(WAIT):
        while True:
            e = await agent.next_event()
            if isinstance(e.event, kind) and (conn_id is None or e.conn_id == conn_id):
                return


async def _connect(a: Agent, b: Agent) -> str:
    a_conn = await a.create_connection_async("c")
    while True:
        e = await a.next_event(WAIT)
        if isinstance(e.event, ev.Inv):
            link = e.event.link
            break
    b_conn = await b.join_connection_async("j", link, b"bob")
    while True:
        e = await a.next_event(WAIT)
        if isinstance(e.event, ev.Conf):
            await a.allow_connection_async("a", a_conn, e.event.conf_id, b"alice")
            break
    await _until(a, ev.Con, a_conn)
    await _until(b, ev.Con, b_conn)
    return a_conn


async def one_run(mode: str, outage: float, tmp: Path) -> Run:
    relay = RelayProcess(tmp / "relay")
    address = str(await relay.start())
    client = ClientSettings() if mode == "probing" else ClientSettings(probe_interval=1e9)
    a = await Agent.open(AgentConfig(tmp / "alice.db", [address], client=client))
    b = await Agent.open(AgentConfig(tmp / "bob.db", [address], client=client))
    try:
        a_conn = await _connect(a, b)
        await relay.kill()
        await _until(a, ev.Down)
        await _until(b, ev.Down)
        await a.send_message(a_conn, b"waits for the relay")
        new_conn = await b.create_connection_async("waiting")
        await asyncio.sleep(outage)
        await relay.start()
        back = time.perf_counter()

        async def done(agent: Agent, kind: type[ev.Event], conn: str) -> float:
            await _until(agent, kind, conn)
            return time.perf_counter() - back

        sent, inv = await asyncio.gather(done(a, ev.Sent, a_conn), done(b, ev.Inv, new_conn))
        return Run(mode, outage, sent, inv)
    finally:
        await a.close()
        await b.close()
        await relay.kill()


def table(runs: list[Run]) -> list[str]:
    out = [
        "| outage | mode | alice's message sent | bob's command done |",
        "|---:|---|---:|---:|",
    ]
    for r in runs:
        out.append(f"| {r.outage:g} s | {r.mode} | {r.sent:.2f} s | {r.inv:.2f} s |")
    return out


def section(runs: list[Run]) -> str:
    probing = [max(r.sent, r.inv) for r in runs if r.mode == "probing"]
    lines = [
        SECTION,
        "",
        f"`{COMMAND}`: how soon two clients with work waiting resume after a relay outage,",
        "default timers, a real relay process SIGKILLed and started again on its store and",
        "port. Times are from the moment the relay listens again. The goal is at most",
        f"{GOAL:g} s for any outage length (`probe_interval` 1.2 s ±1/3).",
        "",
        *machine_lines(),
        "",
        *table(runs),
        "",
    ]
    if probing:
        worst = max(probing)
        verdict = "met" if worst <= GOAL else "NOT met"
        lines += [
            f"With probing the worst resume took {worst:.2f} s "
            f"(median {statistics.median(probing):.2f} s): the goal is {verdict}. With the",
            "backoff alone the time grows with the outage, since the next attempt comes up",
            "to a backoff step (capped at 30 s) after the return. The cost of probing is in",
            "docs/operators.md (\"Outages and probes\").",
            "",
        ]
    return "\n".join(lines)


async def amain(args: argparse.Namespace) -> int:
    outages = [5.0] if args.quick else args.outages
    modes = ["probing"] if args.quick else ["probing", "backoff only"]
    runs: list[Run] = []
    for outage in outages:
        for mode in modes:
            with tempfile.TemporaryDirectory(prefix="parley-bench-recovery-") as tmp:
                run = await one_run(mode, outage, Path(tmp))
            runs.append(run)
            print(f"outage {outage:g} s, {mode}: sent {run.sent:.2f} s, inv {run.inv:.2f} s")
    print("\n".join(table(runs)))
    if not args.quick:
        write_section(SECTION, section(runs))
        print(f"\nwrote the Recovery section of {DOCS.relative_to(ROOT)}")
    return 0


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(prog="python -m bench.recovery", description=__doc__)
    ap.add_argument("--quick", action="store_true", help="one 5 s outage, print only")
    ap.add_argument(
        "--outages", type=float, nargs="+", default=[5.0, 30.0, 90.0], help="seconds"
    )
    return ap.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    return asyncio.run(amain(parse_args(argv)))


if __name__ == "__main__":
    raise SystemExit(main())

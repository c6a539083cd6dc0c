"""Convergence benchmark: does a group always form on a harsh network, with default timers?

Run from the project root:

    .venv/bin/python -m bench.convergence               # seeds 1..20, 16 members; rewrites
                                                        # "## Convergence" in docs/benchmarks.md
    .venv/bin/python -m bench.convergence --seeds 3 --no-docs     # a short check, prints only
    .venv/bin/python -m bench.convergence --members 20 --first 21 --seeds 10

Each run is the field scenario (`parley.demo.field`, the one issue 8 measured with real
clients): N members on one `parley relay` process behind a `FaultProxy` at the harsh level
(every connection cut after about 1 s, exponentially distributed; 30% of new connections
refused; 3 members SIGKILLed and started again on the same files while the group forms),
every client with its default timers, every member sending group messages as soon as
everyone has joined (while most pairs are still connecting) and once more after the mesh.
A run converges when the group reaches its full mesh within 60 s of the last fault and every
message reaches every other member exactly once. The runs are one after another (each keeps
the 2 CPUs of the reference machine busy); a failed run keeps its databases and says where.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import math
import resource
import statistics
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from bench.group import _cpu, _machine_cpu, machine
from bench.report import write_section
from parley.demo.faults import HARSH_CUT_MEAN, HARSH_DOWNTIME, HARSH_KILLS, HARSH_REFUSE_SHARE
from parley.demo.field import EARLY_MESSAGES, MESH_LIMIT, MESSAGES, field_config, field_problems
from parley.demo.scenario import ScenarioResult, default_span, run_scenario
from parley.testing.chat_process import describe_timers

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs" / "benchmarks.md"
SECTION = "## Convergence under a harsh network"
COMMAND = ".venv/bin/python -m bench.convergence"


@dataclass
class Run:
    seed: int
    result: ScenarioResult
    problems: list[str]  # empty: converged
    wall: float
    cpu_clients: float
    cpu_self: float
    cpu_machine: float

    @property
    def converged(self) -> bool:
        return not self.problems

    @property
    def other_cores(self) -> float:
        other = self.cpu_machine - self.cpu_clients - self.cpu_self
        return max(0.0, other) / self.wall if self.wall > 0 else 0.0


async def one_run(members: int, seed: int, relays: int) -> Run:
    config = field_config(members, seed, relays=relays)
    children, me = _cpu(resource.RUSAGE_CHILDREN), _cpu(resource.RUSAGE_SELF)
    busy, t = _machine_cpu(), time.time()
    result = await run_scenario(config)
    return Run(
        seed,
        result,
        field_problems(result),
        time.time() - t,
        _cpu(resource.RUSAGE_CHILDREN) - children,
        _cpu(resource.RUSAGE_SELF) - me,
        _machine_cpu() - busy,
    )


def _s(value: float | None) -> str:
    return "–" if value is None else f"{value:.1f} s"


def describe(run: Run) -> str:
    r = run.result
    outcome = "converged" if run.converged else "FAILED: " + "; ".join(run.problems)
    where = f" (databases in {r.workdir})" if r.workdir is not None else ""
    return (
        f"seed {run.seed:>3}: mesh {_s(r.time_to_mesh):>8} after the group's creation, "
        f"{_s(r.mesh_after_faults):>7} after the last fault (at {_s(r.faults_end)}); "
        f"receipts {r.messages_received}/{r.messages_expected}, {len(r.duplicates)} duplicates; "
        f"{r.faults.total} faults; run {run.wall:.0f} s; {outcome}{where}"
    )


def quantiles(values: list[float]) -> tuple[float, float, float, float]:
    """min, median, p90 (nearest rank), max."""
    ordered = sorted(values)
    p90 = ordered[max(0, math.ceil(0.9 * len(ordered)) - 1)]
    return ordered[0], statistics.median(ordered), p90, ordered[-1]


def _dist(values: list[float]) -> str:
    if not values:
        return "–"
    low, median, p90, high = quantiles(values)
    return f"{low:.1f} / {median:.1f} / {p90:.1f} / {high:.1f} s"


def table(runs: list[Run]) -> list[str]:
    lines = [
        "| seed | result | group → mesh | last fault → mesh | total | links cut / refused / "
        "client kills | commands retried (attempts) | receipts | duplicates | other CPU |",
        "|---:|---|---:|---:|---:|---|---:|---:|---:|---:|",
    ]
    for run in runs:
        r, f = run.result, run.result.faults
        outcome = "converged" if run.converged else "FAILED: " + "; ".join(run.problems)
        lines.append(
            f"| {run.seed} | {outcome} | {_s(r.time_to_mesh)} | {_s(r.mesh_after_faults)} | "
            f"{r.total_time:.1f} s | {f.links_cut} / {f.refused} / {f.client_kills} | "
            f"{r.commands_retried} ({r.retry_attempts}) | {r.messages_received}/"
            f"{r.messages_expected} | {len(r.duplicates)} | {run.other_cores:.2f} |"
        )
    return lines


def summary(runs: list[Run], members: int) -> list[str]:
    n = len(runs)
    ok = [r for r in runs if r.converged]
    meshed = [r.result for r in runs if r.result.time_to_mesh is not None]
    after = [x.mesh_after_faults for x in meshed if x.mesh_after_faults is not None]
    first = sum(
        1
        for x in meshed
        if x.faults_end is not None
        and x.time_to_mesh is not None
        and x.time_to_mesh <= x.faults_end
    )
    expected = sum(r.result.messages_expected for r in runs)
    received = sum(r.result.messages_received for r in runs)
    duplicates = sum(len(r.result.duplicates) for r in runs)
    missing = sum(len(v) for r in runs for v in r.result.missing_messages.values())
    sent = sum(r.result.messages_sent for r in runs)
    f = [r.result.faults for r in runs]
    out = [
        f"- **Converged: {len(ok)} of {n}** ({100 * len(ok) / n:.0f}%): full mesh within "
        f"{MESH_LIMIT:g} s of the last fault and every message exactly once.",
        f"- Last fault → full mesh (min / median / p90 / max, over the {len(after)} runs that "
        f"reached the mesh; 0 when the mesh came first, {first} runs): {_dist(after)}.",
        "- Group's creation → full mesh: "
        f"{_dist([x.time_to_mesh for x in meshed if x.time_to_mesh is not None])}; the faults "
        f"last {default_span(members):.1f} s from the group's creation, plus the downtime of a "
        "client killed late.",
        f"- Whole run (client start-up and contacts included): "
        f"{_dist([r.result.total_time for r in runs])}.",
        f"- Messages: {sent} sent, {received} of {expected} receipts, {missing} missing, "
        f"{duplicates} duplicates.",
        f"- Faults per run (mean): {statistics.mean(x.links_cut for x in f):.0f} links cut, "
        f"{statistics.mean(x.refused for x in f):.0f} connections refused, "
        f"{statistics.mean(x.client_kills for x in f):.1f} client SIGKILLs.",
    ]
    others = [r.other_cores for r in runs]
    out.append(
        f"- *other CPU* (cores the rest of the machine used meanwhile, from /proc/stat): "
        f"{min(others):.2f} to {max(others):.2f}."
    )
    failed = [r for r in runs if not r.converged]
    if failed:
        out.append(
            "- Failed runs: "
            + "; ".join(f"seed {r.seed}: {', '.join(r.problems)}" for r in failed)
            + "."
        )
    return out


def section(runs: list[Run], info: list[str], members: int, relays: int) -> str:
    span = default_span(members)
    seeds = [r.seed for r in runs]
    lines = [
        SECTION,
        "",
        f"Written by `bench/convergence.py`: `{COMMAND}` (`--seeds N`, `--first S`, "
        "`--members M`; `--no-docs` prints only).",
        "",
        *info,
        f"- Seeds {seeds[0]} to {seeds[-1]}, {members} members, {relays} relay"
        f"{'s' if relays > 1 else ''}; one run per seed, one after another",
        "",
        "Each run is the field scenario (`parley.demo.field`), what issue 8 measured with real "
        f"clients: {members} chat clients, each its own process with its default timers "
        f"({describe_timers(False).split(': ', 1)[1]}), on {relays} `parley relay` process"
        f"{'es' if relays > 1 else ''} behind a `FaultProxy` at the harsh level for the first "
        f"{span:.1f} s (2 + 0.05·N²) after the group's creation: every connection cut after "
        f"{HARSH_CUT_MEAN:g} s on average (exponentially distributed; the connections open "
        f"when the faults start too), {100 * HARSH_REFUSE_SHARE:.0f}% of new connections "
        f"refused, {HARSH_KILLS} members SIGKILLed at random moments and started again on "
        f"the same files {HARSH_DOWNTIME[0]:g} to {HARSH_DOWNTIME[1]:g} s later. The host "
        "connects with everyone as a contact first (no faults yet), creates the group and "
        f"invites everyone at once; as soon as everyone has joined, every member sends "
        f"{EARLY_MESSAGES} group messages while most pairs are still connecting, and "
        f"{MESSAGES} more once the mesh is complete. *Last fault*: the end of the fault "
        "schedule (random cuts and refusals stopped, planned cuts cancelled, the last killed "
        "client started again). *Full mesh*: the first poll that sees all N(N-1)/2 pairs "
        f"connected on both sides (polls every {max(0.4, members / 25):g} s).",
        "",
        *summary(runs, members),
        "",
        *table(runs),
    ]
    return "\n".join(lines).rstrip("\n") + "\n"


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench.convergence", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--members", type=int, default=16, help="group size (default 16)")
    parser.add_argument("--seeds", type=int, default=20, help="how many seeds (default 20)")
    parser.add_argument("--first", type=int, default=1, help="the first seed (default 1)")
    parser.add_argument("--relays", type=int, default=1, help="relay processes (default 1)")
    parser.add_argument("--no-docs", action="store_true", help="do not write docs/ (print only)")
    parser.add_argument("--docs", type=Path, default=DOCS, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.seeds < 1 or args.members < 2 or args.relays < 1:
        parser.error("need at least 1 seed, 2 members and 1 relay")
    return args


async def amain(args: argparse.Namespace) -> int:
    info = machine()
    runs: list[Run] = []
    for seed in range(args.first, args.first + args.seeds):
        run = await one_run(args.members, seed, args.relays)
        runs.append(run)
        print(describe(run), flush=True)
    print()
    for line in [*info, "", *summary(runs, args.members)]:
        print(line)
    if not args.no_docs:
        write_section(SECTION, section(runs, info, args.members, args.relays), args.docs)
        print(f"\nwrote the Convergence section of {args.docs}")
    return 0 if all(r.converged for r in runs) else 1


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    return asyncio.run(amain(parse_args(argv)))


if __name__ == "__main__":
    sys.exit(main())

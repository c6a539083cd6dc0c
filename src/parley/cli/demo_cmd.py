"""`parley demo`: a group of chat clients forms under injected faults, with live progress.

Nothing to configure: relays on loopback behind fault proxies, N chat clients in their own
processes, a group formed and checked (full mesh, every message exactly once). Exit status
0 when it all worked, 1 otherwise (with what is missing). docs/demo.md explains it all.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path
from typing import Any

from rich.console import Console

from parley.cli.common import add_command
from parley.demo.faults import FAULT_LEVELS
from parley.demo.scenario import Scenario, ScenarioConfig, ScenarioResult
from parley.demo.view import (
    print_summary,
    rerun_command,
    say,
    show_live,
    show_plain,
    timers_line,
    title,
)

DESCRIPTION = """\
Watch a group of chat clients connect to each other while the network, the relays and
the clients themselves fail, and recover without anyone pressing "retry".

Starts relays on 127.0.0.1 with a fault-injecting proxy in front of each, N chat clients
(each its own process, with its own databases in a temporary directory), makes the first
client the group's host, connects it with everyone, creates a group and invites everyone.
Every pair of members then connects by itself. Once the mesh is complete, every member
sends a few messages; the demo checks that each member got each message exactly once.

Fault levels:
  none   no faults
  light  random connection cuts, cuts of every link to a relay, one relay restart and one
         client SIGKILLed and started again
  heavy  more cuts, relays refusing connections for a few seconds, several relay restarts
         and client SIGKILLs
  harsh  a network at its worst: every connection cut after about 1 s (exponentially
         distributed), 30% of new connections refused, 3 clients SIGKILLed and started
         again; relays run as `parley relay` processes
The same --seed gives the same fault schedule.

The clients run with shortened retry timers (so that the demo does not wait for the
delays a real client uses; the header says by how much); --default-timers runs them with
their defaults, as `parley chat` does.
"""


def add_parser(commands: Any) -> None:
    p = add_command(commands, "demo", "watch a group form under injected faults", DESCRIPTION)
    _setting(p, "--members", "group size, host included")
    _setting(p, "--faults", "fault level", choices=FAULT_LEVELS)
    p.add_argument("--seed", type=int, help="seed of the fault schedule (default: random, printed)")
    _setting(p, "--relays", "number of relays")
    _setting(p, "--messages", "group messages each member sends once the mesh is complete")
    _setting(p, "--timeout", "give up after this many seconds")
    p.add_argument(
        "--relay-processes",
        action="store_true",
        help="run each relay as a `parley relay` process; restarts are then SIGKILLs "
        "(default: relays inside the demo process, restarted by stopping them; processes "
        "with harsh faults)",
    )
    p.add_argument(
        "--default-timers",
        action="store_true",
        help="run the clients with their default retry timers, as `parley chat` does "
        "(default: shortened ones, so that the demo does not wait for them)",
    )
    p.add_argument(
        "--settle",
        action="store_true",
        help="at the end, also wait until no client has any command or delivery pending",
    )
    p.add_argument("--plain", action="store_true", help="plain lines, no live panel")
    p.add_argument(
        "--keep",
        type=Path,
        metavar="DIR",
        help="keep the databases in DIR (default: a temporary "
        "directory, removed unless the demo fails)",
    )
    p.set_defaults(run=run)


def _setting(p: argparse.ArgumentParser, flag: str, help: str, **extra: Any) -> None:
    """An option for the ScenarioConfig field of its name, with that field's default (the
    help says which)."""
    default = getattr(ScenarioConfig(), flag.removeprefix("--"))
    shown = f"{default:g}" if isinstance(default, float) else default
    help = f"{help} (default {shown})"
    p.add_argument(flag, type=type(default), default=default, help=help, **extra)


async def _demo(scenario: Scenario, console: Console, live: bool) -> ScenarioResult:
    if live:
        return await show_live(scenario, console)
    return await show_plain(scenario, console)


def run(args: argparse.Namespace) -> int:
    try:
        config = ScenarioConfig(
            members=args.members,
            relays=args.relays,
            faults=args.faults,
            seed=args.seed,
            messages=args.messages,
            timeout=args.timeout,
            relay_processes=True if args.relay_processes else None,
            default_timers=args.default_timers,
            settle=args.settle,
            workdir=args.keep,
            keep_workdir=args.keep is not None,
        )
    except ValueError as e:
        print(f"parley demo: {e}", file=sys.stderr)
        return 2
    if args.keep is not None and args.keep.exists() and any(args.keep.iterdir()):
        print(f"parley demo: {args.keep} is not empty (the demo starts afresh)", file=sys.stderr)
        return 2
    scenario = Scenario(config)
    console = Console()
    live = console.is_terminal and not args.plain
    say(console, title(scenario))
    say(console, timers_line(scenario))
    say(
        console,
        f"seed {scenario.seed}: to see the same fault schedule again, run "
        f"`{rerun_command(scenario)}`",
    )
    result = asyncio.run(_demo(scenario, console, live))
    print_summary(console, scenario, result)
    return 0 if result.ok else 1

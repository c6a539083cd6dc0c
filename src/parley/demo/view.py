"""How `parley demo` shows a scenario: a rich Live panel on a terminal, plain lines
otherwise, and a summary table at the end. Nothing here changes what the scenario does."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Iterator

from rich import box
from rich.console import Console, Group, RenderableType
from rich.live import Live
from rich.panel import Panel
from rich.progress_bar import ProgressBar
from rich.table import Table
from rich.text import Text

from parley.demo.progress import Pending
from parley.demo.scenario import FaultCounts, Progress, Scenario, ScenarioResult

REFRESH_PER_SECOND = 4
PLAIN_EVERY = 2.0  # seconds between plain progress lines (when something changed)
LOG_LINES = 5


def say(console: Console, text: str) -> None:
    """Print one plain line: no markup, no highlighting, never cut."""
    console.print(text, markup=False, highlight=False, soft_wrap=True)


def title(scenario: Scenario) -> str:
    c = scenario.config
    return (
        f"parley demo: {c.members} members, {c.relays} relay{'s' if c.relays > 1 else ''}, "
        f"{c.faults} faults, seed {scenario.seed}"
    )


def timers_line(scenario: Scenario) -> str:
    """The header's line on the clients' timers: shortened ones are said so, with how much."""
    c = scenario.config
    hint = "" if c.default_timers else " (--default-timers for the clients' own)"
    return f"client timers: {c.describe_timers()}{hint}"


def timers_short(default_timers: bool) -> str:
    return "default client timers" if default_timers else "client retry timers shortened"


def rerun_command(scenario: Scenario) -> str:
    c = scenario.config
    extra = " --relay-processes" if c.relay_processes else ""
    extra += " --default-timers" if c.default_timers else ""
    return (
        f"parley demo --members {c.members} --relays {c.relays} --faults {c.faults} "
        f"--seed {scenario.seed} --messages {c.messages}{extra}"
    )


def faults_text(p: Progress) -> str:
    f = p.faults
    parts = [f"{f.links_cut} links cut ({f.random_cuts} at random)"]
    parts += _refused(f) if f.refused or f.outages else []
    parts.append(f"{f.relay_restarts} relay restarts")
    parts.append(f"{f.client_kills} client SIGKILLs")
    return f"{f.total}: " + ", ".join(parts)


def _refused(f: FaultCounts) -> list[str]:
    if f.random_refusals:
        return [
            f"{f.refused} connections refused ({f.random_refusals} at random, {f.outages} outages)"
        ]
    return [f"{f.refused} connections refused in {f.outages} outages"]


def status_line(p: Progress, elapsed: float) -> str:
    """One plain line of progress."""
    return (
        f"[{elapsed:6.1f} s] {p.phase}: joined {p.joined}/{len(p.members)}, "
        f"pairs {p.pairs_connected}/{p.pairs_total}, commands pending {p.pending.commands} "
        f"(retrying {p.pending.retrying}), deliveries {p.pending.deliveries}, "
        f"faults {p.faults.total}, "
        f"messages {p.messages_received}/{p.messages_expected}"
    )


def _bar(done: int, total: int) -> Table:
    grid = Table.grid(padding=(0, 1))
    grid.add_column(width=30)
    grid.add_column()
    grid.add_row(ProgressBar(total=max(total, 1), completed=done, width=30), f"{done}/{total}")
    return grid


def _process(up: bool, phase: str) -> Text:
    if up:
        return Text("up", style="green")
    if phase == "starting":
        return Text("starting", style="dim")
    return Text("down", style="bold red")


def render(scenario: Scenario, height: int = 50) -> RenderableType:
    """The live panel: totals, one row per member (as many as fit in `height` lines),
    the latest events."""
    p = scenario.progress
    head = Table.grid(padding=(0, 2))
    head.add_column(style="bold")
    head.add_column()
    head.add_row("phase", f"{p.phase}   {p.elapsed:.1f} s")
    head.add_row("members joined", _bar(p.joined, len(p.members)))
    head.add_row("pairs connected", _bar(p.pairs_connected, p.pairs_total))
    head.add_row(
        "commands pending",
        f"{p.pending.commands} (retrying {p.pending.retrying}); "
        f"deliveries {p.pending.deliveries}; continuations {p.pending.continuations}",
    )
    head.add_row("faults injected", faults_text(p) + f"  [{p.faults_planned} planned actions]")
    head.add_row("client timers", timers_short(scenario.config.default_timers))
    if p.messages_expected:
        head.add_row("messages", _bar(p.messages_received, p.messages_expected))
    if p.time_to_mesh is not None:
        head.add_row("full mesh", f"in {p.time_to_mesh:.1f} s")

    members = Table(box=box.SIMPLE_HEAD, padding=(0, 1), expand=False)
    for name, justify in (
        ("member", "left"),
        ("process", "left"),
        ("joined", "center"),
        ("peers", "right"),
        ("cmds", "right"),
        ("retry", "right"),
        ("deliv", "right"),
        ("kills", "right"),
        ("recv", "right"),
        ("last error", "left"),
    ):
        members.add_column(
            name,
            justify=justify,  # type: ignore[arg-type]
            no_wrap=True,
            overflow="ellipsis",
            max_width=40 if name == "last error" else None,
        )
    others = len(p.members) - 1
    room = max(3, height - 14 - LOG_LINES - (1 if p.time_to_mesh is not None else 0))
    shown = p.members if len(p.members) <= room else p.members[: room - 1]
    for i, m in enumerate(shown):
        members.add_row(
            m.name + (" (host)" if i == 0 else ""),
            _process(m.up, p.phase),
            "✓" if m.joined else "…",
            f"{m.peers}/{others}",
            str(m.pending.commands),
            Text(str(m.pending.retrying), style="yellow" if m.pending.retrying else ""),
            str(m.pending.deliveries),
            str(m.kills),
            str(m.received),
            Text((m.last_error or "")[:40], style="dim"),
        )
    if len(shown) < len(p.members):
        rest = p.members[len(shown) :]
        pending = sum((m.pending for m in rest), Pending())
        members.add_row(
            f"… {len(rest)} more",
            f"{sum(m.up for m in rest)} up",
            f"{sum(m.joined for m in rest)}",
            "",
            str(pending.commands),
            str(pending.retrying),
            str(pending.deliveries),
            str(sum(m.kills for m in rest)),
            str(sum(m.received for m in rest)),
            "",
        )
    log = Text()
    for t, line in list(p.log)[-LOG_LINES:]:
        log.append(f"{t:6.1f} s  ", style="dim")
        log.append(line + "\n")
    return Panel(Group(head, members, log), title=title(scenario), border_style="blue")


async def show_live(scenario: Scenario, console: Console) -> ScenarioResult:
    """Run the scenario under a Live panel refreshed a few times a second."""
    with Live(
        render(scenario, console.size.height),
        console=console,
        refresh_per_second=REFRESH_PER_SECOND,
        transient=False,
    ) as live:
        return await _run_showing(
            scenario,
            1 / REFRESH_PER_SECOND,
            lambda done: live.update(render(scenario, console.size.height)),
        )


async def show_plain(scenario: Scenario, console: Console) -> ScenarioResult:
    """Run the scenario printing plain lines: events as they happen, progress every
    couple of seconds when it changed."""

    def on_log(t: float, text: str) -> None:
        say(console, f"[{t:6.1f} s] {text}")

    last = ""

    def show(done: bool) -> None:
        nonlocal last
        line = status_line(scenario.progress, scenario.elapsed())
        if line.split("] ", 1)[1] != last and not done:
            say(console, line)
            last = line.split("] ", 1)[1]

    scenario.on_log = on_log
    return await _run_showing(scenario, PLAIN_EVERY, show)


async def _run_showing(
    scenario: Scenario, every: float, show: Callable[[bool], None]
) -> ScenarioResult:
    """Run the scenario, calling `show(done)` every `every` seconds and once at its end;
    the run is cancelled when this is (Ctrl-C)."""
    task = asyncio.create_task(scenario.run())
    try:
        while not task.done():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.shield(task), every)
            show(task.done())
    finally:
        if not task.done():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
    return task.result()


def _seconds(value: float | None) -> str:
    return "–" if value is None else f"{value:.1f} s"


def summary_table(result: ScenarioResult) -> Table:
    r = result
    table = Table(
        title="parley demo: summary", box=box.SIMPLE_HEAVY, show_header=False, title_justify="left"
    )
    table.add_column(style="bold")
    table.add_column()
    table.add_row("result", Text("OK", style="bold green") if r.ok else Text("FAILED", "bold red"))
    table.add_row(
        "setup",
        f"{r.members} members, {r.config.relays} relay{'s' if r.config.relays > 1 else ''}, "
        f"{r.plan.level} faults, seed {r.seed}",
    )
    table.add_row("members joined", f"{r.joined}/{r.members}")
    mesh = f"{_seconds(r.time_to_mesh)} ({r.pairs_connected}/{r.pairs_total} pairs connected)"
    if r.plan.level != "none" and r.faults_end is not None:
        mesh += f"; faults until {r.faults_end:.1f} s"
        if r.time_to_mesh is not None:
            after = r.time_to_mesh - r.faults_end
            mesh += f", full mesh {after:.1f} s after the last" if after > 0 else ", mesh first"
    table.add_row("time to full mesh", mesh)
    table.add_row("time for messages", _seconds(r.time_to_messages))
    table.add_row("total time", f"{r.total_time:.1f} s (contacts {r.contacts_time:.1f} s)")
    table.add_row(
        "commands retried",
        f"{r.commands_retried} ({r.retry_attempts} attempts); "
        f"deliveries retried {r.deliveries_retried} (sampled)",
    )
    f = r.faults
    survived = [
        f"{f.links_cut} links cut ({f.random_cuts} at random)",
        *_refused(f),
        f"{f.relay_restarts} relay restarts",
        f"{f.client_kills} client SIGKILLs",
    ]
    table.add_row(
        "faults survived" if r.ok else "faults injected", f"{f.total}: " + ", ".join(survived)
    )
    table.add_row(
        "messages",
        f"{r.messages_sent} sent, {r.messages_received}/{r.messages_expected} received, "
        f"{len(r.duplicates)} duplicates",
    )
    if r.relay_at_end is not None:
        table.add_row(
            "relay traffic",
            f"{r.relay_at_end.messages} messages sent through the relays, "
            f"{r.relay_at_end.sessions} TLS sessions, {r.relay_at_end.queues} queues",
        )
    if r.settled is not None:
        table.add_row("nothing pending", "yes" if r.settled else "no")
    table.add_row("client timers", r.config.describe_timers())
    return table


def _say_per_client(console: Console, what: str, lines: dict[str, list[str]]) -> None:
    """Each client's first few lines under a heading: "<client> <what>:"."""
    for name, theirs in lines.items():
        console.print(f"  {name} {what}:", markup=False, soft_wrap=True)
        for line in _limited(theirs, 5):
            say(console, f"    {line}")


def _limited(lines: list[str], limit: int) -> Iterator[str]:
    yield from lines[:limit]
    if len(lines) > limit:
        yield f"... and {len(lines) - limit} more"


def result_line(result: ScenarioResult) -> str:
    """The last line of the demo: what a script or a test looks for."""
    r = result
    timers = timers_short(r.config.default_timers)
    if r.ok:
        return (
            f"RESULT: OK: full mesh of {r.members} members in {_seconds(r.time_to_mesh)}, "
            f"{r.messages_received}/{r.messages_expected} messages received exactly once, "
            f"{r.faults.total} faults survived (seed {r.seed}, {timers})"
        )
    return f"RESULT: FAILED: {'; '.join(r.problems)} (seed {r.seed}, {timers})"


def print_summary(console: Console, scenario: Scenario, result: ScenarioResult) -> None:
    r = result
    console.print()
    console.print(summary_table(r))
    if not r.ok:
        console.print("[bold red]What is missing:[/]")
        for problem in r.problems:
            say(console, f"  - {problem}")
        if r.missing_pairs:
            console.print("  member pairs not connected (each side's view):")
            for line in _limited(r.missing_pairs, 20):
                say(console, f"    {line}")
        _say_per_client(console, "is missing", r.missing_messages)
        for line in _limited(r.dropped, 10):
            say(console, f"  dropped by its sender: {line}")
        for line in _limited(r.duplicates, 20):
            say(console, f"  duplicate: {line}")
        _say_per_client(console, "still has pending", r.pending_at_end)
        if r.workdir is not None:
            say(console, f"  databases kept in {r.workdir}")
        say(console, f"  rerun: {rerun_command(scenario)}")
    say(console, result_line(r))

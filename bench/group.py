"""Group benchmark: time to a full mesh for groups of 5 to 40 members, with and without faults.

Run from the project root:

    .venv/bin/python -m bench.group            # full run: rewrites "## Groups" in
                                               # docs/benchmarks.md and docs/group-mesh.png
    .venv/bin/python -m bench.group --quick    # N = 5 and 10, no and light faults; prints only

Each point is one `parley.demo` scenario (`parley.demo.scenario.Scenario`, the code behind
`parley demo`): two relays in this process (`RelayServer`, SQLite store, TLS on 127.0.0.1),
each behind a `FaultProxy`; N chat clients, each in its own process
(`parley.testing.chat_process`, short retry delays), each configured with both relays. The
first client is the host: it connects with every other client as a contact (not timed),
creates the group and invites all N - 1 members at once. *Time to full mesh* runs from the
group's creation to the first poll that sees every one of the N(N-1)/2 pairs connected on
both sides. Then every member sends one group message, and the run checks that every member
got every message exactly once. Faults follow `parley.demo.faults` (seed 1 by default), spread
over the first 2 + 0.05 N² seconds of the formation.

Counted per run (the relays' own counters, summed over restarts): SENDs the relays accepted
and TLS sessions they accepted between the group's creation and the full mesh, and queues
created in that time. A group of N needs (N-1)² duplex agent connections beyond the host's
contacts: one host connection per member and two (group and direct) per pair of other
members, so N - 1 per join on average; each is two queues.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import logging
import os
import resource
import struct
import sys
import time
import zlib
from dataclasses import dataclass
from pathlib import Path

from bench.report import machine_lines, read_text
from parley.demo.faults import FAULT_LEVELS, FaultLevel
from parley.demo.scenario import ScenarioConfig, ScenarioResult, default_span, run_scenario

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs" / "benchmarks.md"
PLOT = ROOT / "docs" / "group-mesh.png"
SECTION = "## Groups"
KEEP = "### Soak"  # a subsection written by hand (the soak test's results): kept on rewrite
COMMAND = ".venv/bin/python -m bench.group"

SIZES = (5, 10, 20, 40)
QUICK_SIZES = (5, 10)
QUICK_LEVELS: tuple[FaultLevel, ...] = ("none", "light")
# the harsh level (default timers, relay processes) is measured by bench/convergence.py
LEVELS: tuple[FaultLevel, ...] = ("none", "light", "heavy")


@dataclass
class Run:
    members: int
    level: FaultLevel
    result: ScenarioResult
    cpu_clients: float  # CPU seconds of the chat client processes
    cpu_self: float  # CPU seconds of this process (relays, proxies, orchestration)
    cpu_machine: float  # CPU seconds the whole machine used meanwhile
    wall: float

    @property
    def other_cores(self) -> float:
        """Cores used by everything else on the machine during the run (interference)."""
        other = self.cpu_machine - self.cpu_clients - self.cpu_self
        return max(0.0, other) / self.wall if self.wall > 0 else 0.0

    @property
    def joins(self) -> int:
        return self.members - 1


# ---------------------------------------------------------------- running


def _cpu(who: int) -> float:
    r = resource.getrusage(who)
    return r.ru_utime + r.ru_stime


def _machine_cpu() -> float:
    """CPU seconds the whole machine has been busy (all cores), from /proc/stat."""
    fields = read_text("/proc/stat").split("\n", 1)[0].split()[1:]
    if not fields:
        return 0.0
    ticks = [int(x) for x in fields]
    idle = ticks[3] + (ticks[4] if len(ticks) > 4 else 0)  # idle + iowait
    busy = sum(ticks[:8]) - idle  # user nice system idle iowait irq softirq steal
    return busy / os.sysconf("SC_CLK_TCK")


async def one_run(members: int, level: FaultLevel, seed: int, timeout: float) -> Run:
    config = ScenarioConfig(
        members=members,
        relays=2,
        faults=level,
        seed=seed,
        messages=1,
        timeout=timeout,
    )
    children, me, t = _cpu(resource.RUSAGE_CHILDREN), _cpu(resource.RUSAGE_SELF), time.time()
    busy = _machine_cpu()
    result = await run_scenario(config)
    return Run(
        members,
        level,
        result,
        _cpu(resource.RUSAGE_CHILDREN) - children,
        _cpu(resource.RUSAGE_SELF) - me,
        _machine_cpu() - busy,
        time.time() - t,
    )


def run_timeout(members: int) -> float:
    return 120.0 + 0.5 * members * members


def describe(run: Run) -> str:
    r = run.result
    mesh = f"{r.time_to_mesh:.1f} s" if r.time_to_mesh is not None else "no mesh"
    return (
        f"N={run.members:<3} {run.level:<6} mesh {mesh:>9}  faults {r.faults.total:>4}  "
        f"retried {r.commands_retried:>4}  {'ok' if r.ok else 'FAILED: ' + '; '.join(r.problems)}"
        f"  ({run.wall:.0f} s, other CPU {run.other_cores:.2f})"
    )


# ---------------------------------------------------------------- the machine


def machine() -> list[str]:
    return [*machine_lines(), "- asyncio default event loop"]


# ---------------------------------------------------------------- the report


def _per(value: int | None, joins: int) -> str:
    if value is None:
        return "–"
    return f"{value:,} ({value / joins:.1f})"


def table(runs: list[Run]) -> list[str]:
    lines = [
        "| N | faults | time to full mesh | faults injected: cuts / refused / relay restarts / "
        "client kills | commands retried (attempts) | group connections (per join) | "
        "queues created (per join) | relay messages (per join) | TLS sessions | "
        "CPU s: clients / relays+demo | client CPU per group connection | other CPU | result |",
        "|---:|---|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for run in runs:
        r = run.result
        f = r.faults
        start, mesh = r.relay_at_group_start, r.relay_at_mesh
        used = mesh.minus(start) if mesh is not None and start is not None else None
        joins = run.joins
        mesh_time = f"{r.time_to_mesh:.1f} s" if r.time_to_mesh is not None else "–"
        outcome = "ok" if r.ok else "FAILED: " + "; ".join(r.problems)
        lines.append(
            f"| {run.members} | {run.level} | {mesh_time} | {f.total}: {f.links_cut} / "
            f"{f.refused} / {f.relay_restarts} / {f.client_kills} | "
            f"{r.commands_retried} ({r.retry_attempts}) | {_per(joins * joins, joins)} | "
            f"{_per(used.queues if used else None, joins)} | "
            f"{_per(used.messages if used else None, joins)} | "
            f"{used.sessions if used else '–'} | {run.cpu_clients:.0f} / {run.cpu_self:.0f} | "
            f"{run.cpu_clients / (joins * joins) * 1000:.0f} ms | "
            f"{run.other_cores:.2f} | {outcome} |"
        )
    return lines


def findings(runs: list[Run]) -> list[str]:
    """A few observations computed from the runs, for the reader of the table."""
    out: list[str] = []
    by = {(r.members, r.level): r for r in runs}
    by_level = list(dict.fromkeys(r.level for r in runs))
    failed = [r for r in runs if not r.result.ok]
    if failed:
        out.append(
            "- **Failed points**: "
            + "; ".join(
                f"N = {r.members}, {r.level}: {', '.join(r.result.problems)}" for r in failed
            )
            + "."
        )
    else:
        largest = {level: max(r.members for r in runs if r.level == level) for level in by_level}
        out.append(
            f"- Every point formed its full mesh and delivered every message exactly once "
            f"({len(runs)} of {len(runs)}; largest group per fault level: "
            + ", ".join(f"{level} {n}" for level, n in largest.items())
            + ")."
        )
    none = sorted(
        (r for r in runs if r.level == "none" and r.result.time_to_mesh), key=lambda r: r.members
    )
    if len(none) >= 2:
        parts = []
        for r in none:
            pairs = r.members * (r.members - 1) // 2
            assert r.result.time_to_mesh is not None
            parts.append(
                f"{1000 * r.result.time_to_mesh / pairs:.0f} ms per pair at N = {r.members}"
            )
        out.append(
            "- Without faults the time grows with the number of pairs, N(N-1)/2 (each pair is "
            "two connections, each a handshake of several relay messages, and the host's "
            "introductions): " + ", ".join(parts) + "."
        )
    busy = [r for r in runs if r.wall > 0]
    if busy:
        top_n = max(r.members for r in busy)
        use = [(r.cpu_clients + r.cpu_self) / r.wall for r in busy if r.members == top_n]
        cores = max(use)
        why = (
            " The CPUs, not the protocol, set the pace there: every client is a Python process "
            "doing its own crypto and SQLite commits."
            if cores > 1.5
            else ""
        )
        out.append(
            f"- At N = {top_n} the clients and the relays kept {min(use):.2f} to {cores:.2f} of "
            f"the 2 cores busy on average over a run.{why}"
        )
    for level in ("light", "heavy"):
        ratios = []
        for n in sorted({r.members for r in runs}):
            base, other = by.get((n, "none")), by.get((n, level))
            if base and other and base.result.time_to_mesh and other.result.time_to_mesh:
                ratio = other.result.time_to_mesh / base.result.time_to_mesh
                ratios.append(f"×{ratio:.2f} at N = {n}")
        if ratios:
            out.append(
                f"- Time to full mesh with {level} faults relative to none: "
                + ", ".join(ratios)
                + "."
            )
    if any(r.level == "heavy" for r in runs):
        out.append(
            "- What slows a group down is a relay that cannot be reached (outages, restarts) "
            "and a client that is down, not cut links: a cut connection comes back within a "
            "second with the short retry delays used here; while one relay is down or one "
            "client restarts, the rest of the group goes on connecting. One run per point, "
            "so differences of a few tens of percent are within run-to-run noise."
        )
    per_conn = [
        (r.result.relay_at_mesh.minus(r.result.relay_at_group_start).messages / r.joins**2)
        for r in runs
        if r.level == "none" and r.result.relay_at_mesh and r.result.relay_at_group_start
    ]
    if per_conn:
        out.append(
            f"- About {min(per_conn):.1f} to {max(per_conn):.1f} relay messages per group "
            "connection without faults (handshake and chat messages together); faults add a "
            "few, and the extra queues come from NEW/JOIN commands retried after their answer "
            "was lost (left unused on the relay)."
        )
    if runs:
        others = [r.other_cores for r in runs]
        disturbed = [r for r in runs if r.other_cores > 0.3]
        quiet = f"- *other CPU* was {min(others):.2f} to {max(others):.2f} cores: " + (
            "the machine was otherwise quiet."
            if not disturbed
            else f"{len(disturbed)} of {len(runs)} runs shared the machine with other "
            "work (those times are longer than on a quiet machine)."
        )
        out.append(quiet)
    return out


def section(runs: list[Run], info: list[str], seed: int, notes: list[str], kept: str) -> str:
    lines = [
        SECTION,
        "",
        f"Written by `bench/group.py`: `{COMMAND}` (`--quick` for a short run that only prints).",
        "",
        *info,
        f"- Fault schedule seed: {seed}; one run per point",
        "",
        "Each point is one `parley demo` scenario (`parley.demo.scenario`): 2 relays in the "
        "benchmark process (`RelayServer`, SQLite, TLS on 127.0.0.1), each behind a "
        "`FaultProxy`; N chat clients, each its own process (`parley.testing.chat_process`, "
        "short retry delays: 0.05 s growing ×1.5 to 0.5 s), each configured with both relays "
        "(starting with a different one, so queues spread over both). The host connects with "
        "everyone as a contact first (not timed), creates the group and invites all N - 1 "
        "members at once. *Time to full mesh*: from the group's creation to the first poll "
        "(every max(0.4, N/25) s) that sees all N(N-1)/2 pairs connected on both sides. Then "
        "every member sends one message and the run checks that every member received every "
        "message exactly once (*result*). Fault levels are those of `parley demo` "
        "(docs/demo.md), spread over the first 2 + 0.05·N² s of the formation (so "
        + ", ".join(f"{default_span(n):g} s for N = {n}" for n in SIZES)
        + ").",
        "",
        "- *group connections*: the duplex agent connections a group of N needs beyond the "
        "host's contacts, (N-1)²: each joiner connects to the host, and each pair of other "
        "members makes two (group and direct). *per join* divides by the N - 1 joins.",
        "- *queues created*, *relay messages* (SENDs the relays accepted) and *TLS sessions*: "
        "the relays' counters between the group's creation and the full mesh, summed over "
        "both relays and over restarts. Two queues per connection is the minimum; more means "
        "queues made by NEW or JOIN commands retried after a lost answer. Relay messages "
        "include the chat's own traffic (introductions, forwarded links, confirmations, "
        "x.grp.mem.con) and the agent's handshakes (confirmations, HELLOs).",
        "- *commands retried*: agent commands seen with attempts > 0 by the progress poll "
        "(status() every second poll), so a lower bound.",
        "- *CPU s*: CPU seconds of the chat client processes, and of the benchmark process (the "
        "two relays, the proxies, the polling), over the whole run (start-up, contacts and "
        "messages included). *client CPU per group connection*: the clients' CPU seconds "
        "divided by the (N-1)² group connections (so start-up, about 0.5 s per client, and "
        "the contacts are spread over them too). *other CPU*: cores the rest of the machine "
        "used meanwhile, on "
        "average (from /proc/stat); well above 0 means something else competed for the 2 "
        "CPUs and the times are longer than they would be on a quiet machine.",
        "",
        *table(runs),
        "",
        "![time to full mesh against the group's size, one line per fault level](group-mesh.png)",
        "",
        "*docs/group-mesh.png*: time to full mesh (seconds, vertical) against N (horizontal); "
        "blue: no faults, orange: light, red: heavy.",
        "",
        *findings(runs),
        *notes,
    ]
    text = "\n".join(lines).rstrip("\n") + "\n"
    if kept:
        text += "\n" + kept.rstrip("\n") + "\n"
    return text


def _section_bounds(lines: list[str]) -> tuple[int, int] | None:
    start = next((i for i, line in enumerate(lines) if line.rstrip() == SECTION), None)
    if start is None:
        return None
    end = next((i for i in range(start + 1, len(lines)) if lines[i].startswith("## ")), len(lines))
    return start, end


def kept_subsection(path: Path) -> str:
    """The hand-written `### Soak` part of the current Groups section, if any."""
    try:
        lines = path.read_text().splitlines(keepends=True)
    except FileNotFoundError:
        return ""
    bounds = _section_bounds(lines)
    if bounds is None:
        return ""
    start, end = bounds
    keep = next((i for i in range(start, end) if lines[i].startswith(KEEP)), None)
    return "".join(lines[keep:end]) if keep is not None else ""


def write_section(path: Path, text: str) -> None:
    """Replace (or append) the Groups section: one quick read-modify-write of the file."""
    current = path.read_text() if path.exists() else "# Benchmarks\n"
    lines = current.splitlines(keepends=True)
    bounds = _section_bounds(lines)
    if bounds is None:
        new = current.rstrip("\n") + "\n\n" + text
    else:
        start, end = bounds
        rest = "".join(lines[end:])
        new = "".join(lines[:start]) + text + ("\n" + rest if rest else "")
    path.write_text(new)


# ---------------------------------------------------------------- the plot (PNG, no library)

# 5×7 glyphs ('#' = ink); g, p and y have two more rows below the line
_GLYPHS: dict[str, tuple[str, ...]] = {
    "0": (".###.", "#...#", "#..##", "#.#.#", "##..#", "#...#", ".###."),
    "1": ("..#..", ".##..", "..#..", "..#..", "..#..", "..#..", ".###."),
    "2": (".###.", "#...#", "....#", "...#.", "..#..", ".#...", "#####"),
    "3": ("#####", "...#.", "..#..", "...#.", "....#", "#...#", ".###."),
    "4": ("...#.", "..##.", ".#.#.", "#..#.", "#####", "...#.", "...#."),
    "5": ("#####", "#....", "####.", "....#", "....#", "#...#", ".###."),
    "6": ("..##.", ".#...", "#....", "####.", "#...#", "#...#", ".###."),
    "7": ("#####", "....#", "...#.", "..#..", ".#...", ".#...", ".#..."),
    "8": (".###.", "#...#", "#...#", ".###.", "#...#", "#...#", ".###."),
    "9": (".###.", "#...#", "#...#", ".####", "....#", "...#.", ".##.."),
    "a": (".....", ".....", ".###.", "....#", ".####", "#...#", ".####"),
    "b": ("#....", "#....", "#.##.", "##..#", "#...#", "#...#", "####."),
    "c": (".....", ".....", ".###.", "#....", "#....", "#...#", ".###."),
    "d": ("....#", "....#", ".##.#", "#..##", "#...#", "#...#", ".####"),
    "e": (".....", ".....", ".###.", "#...#", "#####", "#....", ".###."),
    "f": ("..##.", ".#..#", ".#...", "###..", ".#...", ".#...", ".#..."),
    "g": (".....", ".....", ".####", "#...#", "#...#", ".####", "....#", "#...#", ".###."),
    "h": ("#....", "#....", "#.##.", "##..#", "#...#", "#...#", "#...#"),
    "i": ("..#..", ".....", ".##..", "..#..", "..#..", "..#..", ".###."),
    "k": ("#....", "#....", "#..#.", "#.#..", "##...", "#.#..", "#..#."),
    "l": (".##..", "..#..", "..#..", "..#..", "..#..", "..#..", ".###."),
    "m": (".....", ".....", "##.#.", "#.#.#", "#.#.#", "#...#", "#...#"),
    "n": (".....", ".....", "#.##.", "##..#", "#...#", "#...#", "#...#"),
    "o": (".....", ".....", ".###.", "#...#", "#...#", "#...#", ".###."),
    "p": (".....", ".....", "####.", "#...#", "#...#", "####.", "#....", "#....", "#...."),
    "r": (".....", ".....", "#.##.", "##..#", "#....", "#....", "#...."),
    "s": (".....", ".....", ".####", "#....", ".###.", "....#", "####."),
    "t": (".#...", ".#...", "###..", ".#...", ".#...", ".#..#", "..##."),
    "u": (".....", ".....", "#...#", "#...#", "#...#", "#..##", ".##.#"),
    "v": (".....", ".....", "#...#", "#...#", "#...#", ".#.#.", "..#.."),
    "w": (".....", ".....", "#...#", "#...#", "#.#.#", "#.#.#", ".#.#."),
    "x": (".....", ".....", "#...#", ".#.#.", "..#..", ".#.#.", "#...#"),
    "y": (".....", ".....", "#...#", "#...#", "#...#", ".####", "....#", "#...#", ".###."),
    "N": ("#...#", "##..#", "#.#.#", "#..##", "#...#", "#...#", "#...#"),
    "(": ("...#.", "..#..", ".#...", ".#...", ".#...", "..#..", "...#."),
    ")": (".#...", "..#..", "...#.", "...#.", "...#.", "..#..", ".#..."),
    ".": (".....", ".....", ".....", ".....", ".....", ".##..", ".##.."),
    ":": (".....", ".##..", ".##..", ".....", ".##..", ".##..", "....."),
    "-": (".....", ".....", ".....", "#####", ".....", ".....", "....."),
    " ": (".....",) * 7,
}

Color = tuple[int, int, int]
WHITE: Color = (255, 255, 255)
BLACK: Color = (0, 0, 0)
GRID: Color = (225, 225, 225)
LEVEL_COLORS: dict[str, Color] = {
    "none": (31, 119, 180),
    "light": (255, 127, 14),
    "heavy": (214, 39, 40),
    "harsh": (148, 103, 189),
}


class Canvas:
    """An RGB image in memory with the few drawing operations a line chart needs."""

    def __init__(self, width: int, height: int) -> None:
        self.width = width
        self.height = height
        self.pixels = bytearray(WHITE * (width * height))

    def dot(self, x: int, y: int, color: Color) -> None:
        if 0 <= x < self.width and 0 <= y < self.height:
            i = (y * self.width + x) * 3
            self.pixels[i : i + 3] = bytes(color)

    def rect(self, x0: int, y0: int, x1: int, y1: int, color: Color) -> None:
        """Fill the rectangle with corners (x0, y0) and (x1, y1), both included."""
        for y in range(min(y0, y1), max(y0, y1) + 1):
            for x in range(min(x0, x1), max(x0, x1) + 1):
                self.dot(x, y, color)

    def line(self, x0: int, y0: int, x1: int, y1: int, color: Color, width: int = 1) -> None:
        """Bresenham's line, drawn with a square brush `width` pixels wide."""
        dx, dy = abs(x1 - x0), -abs(y1 - y0)
        sx, sy = (1 if x0 < x1 else -1), (1 if y0 < y1 else -1)
        err = dx + dy
        half = width // 2
        while True:
            self.rect(x0 - half, y0 - half, x0 - half + width - 1, y0 - half + width - 1, color)
            if x0 == x1 and y0 == y1:
                return
            e2 = 2 * err
            if e2 >= dy:
                err += dy
                x0 += sx
            if e2 <= dx:
                err += dx
                y0 += sy

    def text(self, x: int, y: int, text: str, color: Color = BLACK, scale: int = 2) -> None:
        """Draw `text` with its top left corner at (x, y)."""
        for ch in text:
            glyph = _GLYPHS.get(ch, _GLYPHS[" "])
            for row, bits in enumerate(glyph):
                for col, bit in enumerate(bits):
                    if bit == "#":
                        self.rect(
                            x + col * scale,
                            y + row * scale,
                            x + col * scale + scale - 1,
                            y + row * scale + scale - 1,
                            color,
                        )
            x += 6 * scale

    @staticmethod
    def text_width(text: str, scale: int = 2) -> int:
        return len(text) * 6 * scale - scale

    def png(self) -> bytes:
        stride = self.width * 3
        raw = b"".join(
            b"\x00" + bytes(self.pixels[y * stride : (y + 1) * stride]) for y in range(self.height)
        )

        def chunk(kind: bytes, data: bytes) -> bytes:
            crc = zlib.crc32(kind + data) & 0xFFFFFFFF
            return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", crc)

        header = struct.pack(">IIBBBBB", self.width, self.height, 8, 2, 0, 0, 0)
        return (
            b"\x89PNG\r\n\x1a\n"
            + chunk(b"IHDR", header)
            + chunk(b"IDAT", zlib.compress(raw, 9))
            + chunk(b"IEND", b"")
        )


def _nice_step(top: float, ticks: int = 6) -> float:
    raw = max(top, 1e-9) / ticks
    magnitude = 10 ** len(str(int(raw))) / 10 if raw >= 1 else 0.1
    for m in (1, 2, 2.5, 5, 10):
        if m * magnitude >= raw:
            return m * magnitude
    return 10 * magnitude


def plot(runs: list[Run], path: Path) -> None:
    """Time to full mesh against N, one line per fault level; a run without a mesh is a
    hollow square at the top of the chart."""
    width, height = 900, 560
    left, right, top, bottom = 90, 200, 60, 80
    c = Canvas(width, height)
    sizes = sorted({r.members for r in runs})
    times = [r.result.time_to_mesh for r in runs if r.result.time_to_mesh is not None]
    y_top = max(times, default=1.0) * 1.1
    step = _nice_step(y_top)
    y_top = step * (int(y_top / step) + 1)
    x_max = max(sizes, default=1)
    pw, ph = width - left - right, height - top - bottom

    def px(n: float) -> int:
        return left + round(pw * n / x_max)

    def py(t: float) -> int:
        return top + ph - round(ph * t / y_top)

    c.text(left, 18, "seconds to full mesh", BLACK, 2)
    tick = 0.0
    while tick <= y_top + 1e-9:
        y = py(tick)
        c.line(left, y, left + pw, y, GRID)
        label = f"{tick:g}"
        c.text(left - 12 - Canvas.text_width(label), y - 7, label)
        tick += step
    for n in sizes:
        x = px(n)
        c.line(x, top, x, top + ph, GRID)
        label = str(n)
        c.text(x - Canvas.text_width(label) // 2, top + ph + 12, label)
    c.line(left, top, left, top + ph, BLACK, 2)
    c.line(left, top + ph, left + pw, top + ph, BLACK, 2)
    xlabel = "members in the group (N)"
    c.text(left + (pw - Canvas.text_width(xlabel)) // 2, height - 36, xlabel)
    c.text(left + pw + 25, top - 10, "faults:", (90, 90, 90))
    legend_y = top + 20
    for level in FAULT_LEVELS:
        mine = sorted((r for r in runs if r.level == level), key=lambda r: r.members)
        if not mine:
            continue
        color = LEVEL_COLORS[level]
        points = [(px(r.members), py(r.result.time_to_mesh)) for r in mine if r.result.time_to_mesh]
        for (x0, y0), (x1, y1) in itertools.pairwise(points):
            c.line(x0, y0, x1, y1, color, 3)
        for x, y in points:
            c.rect(x - 5, y - 5, x + 5, y + 5, color)
        for r in mine:
            if r.result.time_to_mesh is None:
                x, y = px(r.members), top
                c.line(x - 6, y - 6, x + 6, y - 6, color, 2)
                c.line(x - 6, y + 6, x + 6, y + 6, color, 2)
                c.line(x - 6, y - 6, x - 6, y + 6, color, 2)
                c.line(x + 6, y - 6, x + 6, y + 6, color, 2)
        lx = left + pw + 25
        c.line(lx, legend_y + 7, lx + 30, legend_y + 7, color, 3)
        c.rect(lx + 10, legend_y + 2, lx + 20, legend_y + 12, color)
        c.text(lx + 40, legend_y, level)
        legend_y += 30
    path.write_bytes(c.png())


# ---------------------------------------------------------------- main


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench.group", description=__doc__.split("\n")[0]
    )
    parser.add_argument(
        "--quick", action="store_true", help="N = 5, 10; no and light faults; prints only"
    )
    parser.add_argument("--sizes", type=int, nargs="+", help=f"group sizes (default {SIZES})")
    parser.add_argument(
        "--levels",
        nargs="+",
        choices=FAULT_LEVELS,
        help=f"fault levels (default {' '.join(LEVELS)})",
    )
    parser.add_argument("--seed", type=int, default=1, help="fault schedule seed (default 1)")
    parser.add_argument("--no-docs", action="store_true", help="do not write docs/ (print only)")
    parser.add_argument(
        "--skip",
        nargs="*",
        default=[],
        metavar="N:LEVEL",
        help="points not to run (e.g. 40:heavy when it does not fit on the machine)",
    )
    return parser.parse_args(argv)


async def amain(args: argparse.Namespace) -> int:
    sizes = tuple(args.sizes or (QUICK_SIZES if args.quick else SIZES))
    levels: tuple[FaultLevel, ...] = tuple(args.levels or (QUICK_LEVELS if args.quick else LEVELS))
    skip = set(args.skip)
    info = machine()
    runs: list[Run] = []
    notes: list[str] = []
    for level in levels:
        for n in sizes:
            if f"{n}:{level}" in skip:
                notes.append(f"- N = {n} with {level} faults was not run (--skip).")
                continue
            run = await one_run(n, level, args.seed, run_timeout(n))
            runs.append(run)
            print(describe(run), flush=True)
    print()
    for line in info:
        print(line)
    print()
    for row in table(runs):
        print(row)
    if not args.quick and not args.no_docs:
        plot(runs, PLOT)
        text = section(runs, info, args.seed, notes, kept_subsection(DOCS))
        write_section(DOCS, text)
        print(
            f"\nwrote the Groups section of {DOCS.relative_to(ROOT)} and {PLOT.relative_to(ROOT)}"
        )
    return 0 if all(r.result.ok for r in runs) else 1


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    return asyncio.run(amain(parse_args(argv)))


if __name__ == "__main__":
    sys.exit(main())

"""What every benchmark's report shares: the machine it ran on, and rewriting one section
of docs/benchmarks.md in place."""

from __future__ import annotations

import os
import platform
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs" / "benchmarks.md"
DOCS_INTRO = "# Benchmarks\n\nMeasurements of parley's parts, one section per script in `bench/`.\n"


def read_text(path: str) -> str:
    """The file's text, or '' if it cannot be read (a /proc file elsewhere)."""
    try:
        return Path(path).read_text()
    except OSError:
        return ""


def machine_lines() -> list[str]:
    """Date, CPUs, memory, kernel and Python, as list items."""
    model = next(
        (
            line.split(":", 1)[1].strip()
            for line in read_text("/proc/cpuinfo").splitlines()
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
    nproc = len(os.sched_getaffinity(0))
    return [
        f"- Date: {time.strftime('%a %b %d %H:%M:%S UTC %Y', time.gmtime())}",
        f"- Machine: {nproc} CPUs (nproc), {model}, {mem_kb / 1024 / 1024:.1f} GiB RAM; "
        f"{platform.system()} {platform.release()}",
        f"- Python {platform.python_version()} ({platform.python_implementation()})",
    ]


def write_section(heading: str, text: str, path: Path = DOCS) -> None:
    """Replace the section that starts with the line `heading` (e.g. "## Recovery"), up to
    the next "## " heading, by `text`; append it if there is none."""
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        current = path.read_text()
    except FileNotFoundError:
        current = DOCS_INTRO
    lines = current.splitlines(keepends=True)
    start = next((i for i, line in enumerate(lines) if line.rstrip() == heading), None)
    if start is None:
        new = current.rstrip("\n") + "\n\n" + text
    else:
        end = next(
            (i for i in range(start + 1, len(lines)) if lines[i].startswith("## ")), len(lines)
        )
        rest = "".join(lines[end:])
        new = "".join(lines[:start]) + text + ("\n" + rest if rest else "")
    path.write_text(new)

"""The line-based client: events as plain lines on stdout, commands from stdin lines.

For scripts and services (`parley chat --headless`): every event and every command's
result is one or more lines, flushed at once; errors are lines starting with "error: ".
Commands are read from stdin (one per line) when it is given; at the end of stdin the
client keeps running (printing events) until it is stopped, unless a line said /q.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Sequence
from typing import TextIO

from rich.table import Table

from parley.chat import events as cev
from parley.chat.controller import ChatController
from parley.terminal.render import printable
from parley.terminal.session import ChatSession


class LinePrinter:
    """Plain lines on a text stream, flushed one by one (no colours, tables or QR codes)."""

    def __init__(self, stream: TextIO) -> None:
        self.stream = stream

    def line(self, text: str, style: str = "") -> None:
        self.stream.write(printable(text) + "\n")  # one line, whatever others sent
        self.stream.flush()

    def table(self, table: Table, plain: Sequence[str]) -> None:
        for text in plain:
            self.line(text)

    def qr(self, text: str) -> None:
        pass


def _read_lines(
    stream: TextIO, loop: asyncio.AbstractEventLoop, lines: asyncio.Queue[str | None]
) -> None:
    """(in a daemon thread) Put each line of `stream` into `lines`, then None at the end.

    A thread rather than the event loop's pipe reader: stdin may be a file or /dev/null,
    which the loop cannot watch, and a daemon thread blocked in read does not hold up
    the process when it exits."""
    try:
        for line in stream:
            loop.call_soon_threadsafe(lines.put_nowait, line.rstrip("\r\n"))
    except (OSError, ValueError):
        pass
    with contextlib.suppress(RuntimeError):  # the loop is closed: nobody is listening
        loop.call_soon_threadsafe(lines.put_nowait, None)


async def run_headless(
    chat: ChatController,
    *,
    events: asyncio.Queue[cev.ChatEvent] | None,
    commands: TextIO | None,
    out: TextIO,
    stop: asyncio.Event,
) -> None:
    """Print `events` and run the lines of `commands` until `stop` is set or /q is read."""
    session = ChatSession(chat, LinePrinter(out), sees_events=events is not None, verbose=True)
    tasks: list[asyncio.Task[None]] = []
    if events is not None:
        tasks.append(asyncio.create_task(session.pump(events), name="headless-events"))
    if commands is not None:
        tasks.append(
            asyncio.create_task(_run_commands(session, commands, stop), name="headless-commands")
        )
    try:
        await stop.wait()
    finally:
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


async def _run_commands(session: ChatSession, commands: TextIO, stop: asyncio.Event) -> None:
    lines: asyncio.Queue[str | None] = asyncio.Queue()
    loop = asyncio.get_running_loop()
    threading.Thread(
        target=_read_lines, args=(commands, loop, lines), name="headless-stdin", daemon=True
    ).start()
    while (line := await lines.get()) is not None:
        if await session.handle_line(line):
            stop.set()
            return

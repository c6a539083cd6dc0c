"""The scenario's chat clients: one :class:`Member` per client process, and the two ways
the scenario calls them (:func:`call` through kills and restarts, :func:`try_call` once,
for polling)."""

from __future__ import annotations

import asyncio
import contextlib
from collections import Counter, deque
from typing import Any

from parley.chat.controller import ChatError
from parley.demo.config import DROPPED
from parley.demo.progress import MemberProgress
from parley.testing.chat_process import ChatProcess
from parley.testing.waiting import wait_for_condition


class Member:
    """One chat client of the scenario: its process, its progress, what it saw."""

    def __init__(self, index: int, proc: ChatProcess, progress: MemberProgress) -> None:
        self.index = index
        self.proc = proc
        self.progress = progress
        self.view: dict[str, str] = {}  # other member -> status, as this member sees it
        self.received: Counter[tuple[str, str]] = Counter()
        self.stderr: deque[bytes] = deque(maxlen=200)
        self.dropped: list[str] = []  # the chat's warnings about messages it gave up on
        self._drain: asyncio.Task[None] | None = None
        self.lock = asyncio.Lock()  # one fault at a time per client

    @property
    def name(self) -> str:
        return self.proc.name

    async def start(self) -> None:
        await self.proc.start(timeout=60)
        self.progress.up = True
        proc = self.proc.proc
        if proc is not None and proc.stderr is not None:
            # keep the child's stderr flowing: a full pipe would block it
            self._drain = asyncio.create_task(self._collect(proc.stderr))

    async def _collect(self, stream: asyncio.StreamReader) -> None:
        with contextlib.suppress(Exception):
            while line := await stream.readline():
                self.stderr.append(line)
                if DROPPED in line:
                    self.dropped.append(line.decode(errors="replace").strip())

    async def kill(self, *, shown: bool = True) -> None:
        if shown:
            self.progress.up = False
        await self.proc.kill()
        if self._drain is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._drain, 2)

    def stderr_tail(self, lines: int = 8) -> str:
        return b"".join(list(self.stderr)[-lines:]).decode(errors="replace")


async def call(m: Member, op: str, timeout: float = 20.0, **args: Any) -> Any:
    """Call a client, waiting for it through kills and restarts (ChatError passes)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + max(timeout, 60.0)
    while True:
        remaining = deadline - loop.time()
        if remaining <= 0:
            raise TimeoutError(f"{m.name}: {op} did not complete")
        if not m.proc.running:
            await wait_for_condition(
                lambda: m.proc.running, remaining, 0.05, f"{m.name} is not running"
            )
        try:
            return await m.proc.call(op, timeout=min(timeout, remaining), **args)
        except (ConnectionError, TimeoutError):
            if loop.time() >= deadline:
                raise
        await asyncio.sleep(0.1)


async def try_call(m: Member, op: str, **args: Any) -> Any | None:
    """One attempt with a short timeout, for polling: None if it failed."""
    if not m.proc.running:
        return None
    try:
        return await m.proc.call(op, timeout=5.0, **args)
    except (ConnectionError, TimeoutError, ChatError):
        return None

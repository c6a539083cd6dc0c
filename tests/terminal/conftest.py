"""Helpers for the terminal tests: `parley chat --headless` in a real subprocess."""

from __future__ import annotations

import asyncio
import contextlib
import os
import sys
from collections.abc import AsyncIterator
from pathlib import Path

from tests.chat.conftest import make_chat  # noqa: F401  (fixture)
from tests.relay.conftest import relay, relay_config  # noqa: F401  (fixtures)


class ChatProcess:
    """`python -m parley chat --headless ...`, fed commands on stdin, read line by line."""

    def __init__(self, args: list[str]) -> None:
        self.args = args
        self.proc: asyncio.subprocess.Process | None = None
        self.lines: list[str] = []
        self.stderr: list[str] = []
        self._taken: set[int] = set()
        self._changed = asyncio.Event()
        self._readers: list[asyncio.Task[None]] = []

    async def start(self) -> None:
        self.proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "parley",
            "chat",
            "--headless",
            *self.args,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
        assert self.proc.stdout is not None and self.proc.stderr is not None
        self._readers = [
            asyncio.create_task(self._read(self.proc.stdout, self.lines)),
            asyncio.create_task(self._read(self.proc.stderr, self.stderr)),
        ]

    async def _read(self, stream: asyncio.StreamReader, into: list[str]) -> None:
        while line := await stream.readline():
            into.append(line.decode(errors="replace").rstrip("\n"))
            self._changed.set()
        self._changed.set()

    async def send(self, line: str) -> None:
        assert self.proc is not None and self.proc.stdin is not None
        self.proc.stdin.write((line + "\n").encode())
        await self.proc.stdin.drain()

    async def expect(self, text: str, timeout: float = 30.0) -> str:
        """The first line not returned before that contains `text` (waiting for it)."""
        try:
            async with asyncio.timeout(timeout):
                while True:
                    self._changed.clear()
                    for i, line in enumerate(self.lines):
                        if i not in self._taken and text in line:
                            self._taken.add(i)
                            return line
                    if self.proc is not None and self.proc.returncode is not None:
                        break
                    await self._changed.wait()
        except TimeoutError:
            pass
        raise AssertionError(f"no line with {text!r} in {timeout} s:\n{self.transcript()}")

    def transcript(self) -> str:
        return "\n".join(["--- stdout", *self.lines, "--- stderr", *self.stderr[-30:]])

    async def wait(self, timeout: float = 30.0) -> int:
        assert self.proc is not None
        async with asyncio.timeout(timeout):
            code = await self.proc.wait()
            await asyncio.gather(*self._readers)
        return code

    async def stop(self) -> None:
        if self.proc is not None and self.proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                self.proc.terminate()
            try:
                await self.wait(15)
            except TimeoutError:
                self.proc.kill()
                await self.proc.wait()
        for t in self._readers:
            t.cancel()
        await asyncio.gather(*self._readers, return_exceptions=True)


@contextlib.asynccontextmanager
async def chat_process(
    tmp_path: Path, name: str, relay_address: str, *extra: str
) -> AsyncIterator[ChatProcess]:
    p = ChatProcess(["-d", str(tmp_path / name), "-s", relay_address, *extra])
    await p.start()
    try:
        yield p
    finally:
        await p.stop()

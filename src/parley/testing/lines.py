"""A parley component in its own process, driven by JSON lines on stdin and stdout.

The child writes `{"kind": "ready"}` when it is up, `{"kind": "event", "event": ...}` for
each event, and `{"kind": "reply", "id": N, "value": ...}` (or `"error": ...`) for each
request `{"id": N, "op": NAME, "args": {...}}`. Tests and the demo use it to run agents and
chat clients as real processes that can be SIGKILLed and started again on the same files.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, Generic, TypeVar

import msgspec

E = TypeVar("E")
_json = msgspec.json.Encoder()


class Request(msgspec.Struct):
    id: int
    op: str
    args: dict[str, Any] = {}


class Line(msgspec.Struct):
    kind: str
    id: int = 0
    value: Any = None
    error: str | None = None
    event: Any = None


class RemoteError(Exception):
    """The child refused a request (its own error message is the text)."""


# ---------------------------------------------------------------- the child's side


def _write(line: Line) -> None:
    sys.stdout.buffer.write(_json.encode(line) + b"\n")
    sys.stdout.buffer.flush()


async def serve_lines(
    handle: Callable[[str, dict[str, Any]], Awaitable[Any]],
    events: AsyncIterator[Any],
    refusals: tuple[type[Exception], ...],
) -> None:
    """Answer requests from stdin with `handle` (concurrently) and copy `events` to stdout,
    until stdin closes. Exceptions in `refusals` become error replies."""
    _write(Line("ready"))

    async def pump() -> None:
        async for e in events:
            _write(Line("event", event=msgspec.to_builtins(e)))

    caught: tuple[type[Exception], ...] = (*refusals, TypeError, KeyError)

    async def answer(r: Request) -> None:
        try:
            value = await handle(r.op, r.args)
            _write(Line("reply", r.id, value=msgspec.to_builtins(value)))
        except caught as e:
            _write(Line("reply", r.id, error=str(e)))

    pump_task = asyncio.create_task(pump())
    reader = asyncio.StreamReader(limit=1 << 22)
    loop = asyncio.get_running_loop()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    decoder = msgspec.json.Decoder(Request)
    running: set[asyncio.Task[None]] = set()
    while line := await reader.readline():
        try:
            r = decoder.decode(line)
        except msgspec.DecodeError as e:
            _write(Line("reply", error=f"bad request: {e}"))
            continue
        task = asyncio.create_task(answer(r))
        running.add(task)
        task.add_done_callback(running.discard)
    pump_task.cancel()


# ---------------------------------------------------------------- the parent's side


class LineProcess(Generic[E]):
    """Start the child, send requests, receive events; SIGKILL and restart it."""

    def __init__(
        self,
        module: str,
        args: list[str],
        decode_event: Callable[[Any], E],
        *,
        refusal: type[Exception] = RemoteError,
        call_timeout: float = 30.0,
    ) -> None:
        """`refusal`: what :meth:`request` and :meth:`call` raise when the child refuses
        a request; `call_timeout`: :meth:`call`'s default timeout."""
        self.module = module
        self.args = args
        self._decode_event = decode_event
        self.refusal = refusal
        self.call_timeout = call_timeout
        self.proc: asyncio.subprocess.Process | None = None
        self.events: asyncio.Queue[E] = asyncio.Queue()
        self.history: list[E] = []
        self.stderr = b""
        self.crashes = 0
        self._replies: dict[int, asyncio.Future[Line]] = {}
        self._next_id = 0
        self._reader: asyncio.Task[None] | None = None
        self._ready: asyncio.Future[None] | None = None

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.returncode is None

    async def start(self, timeout: float = 30.0, env: dict[str, str] | None = None) -> None:
        full_env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        full_env.pop("PARLEY_CRASH_AT", None)
        full_env.update(env or {})
        self.events = asyncio.Queue()
        self.proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            self.module,
            *self.args,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            env=full_env,
            limit=1 << 22,
        )
        self._ready = asyncio.get_running_loop().create_future()
        self._reader = asyncio.create_task(self._read(self.proc))
        async with asyncio.timeout(timeout):
            await self._ready

    async def _read(self, proc: asyncio.subprocess.Process) -> None:
        assert proc.stdout is not None
        decoder = msgspec.json.Decoder(Line)
        while raw := await proc.stdout.readline():
            line = decoder.decode(raw)
            if line.kind == "ready" and self._ready is not None and not self._ready.done():
                self._ready.set_result(None)
            elif line.kind == "event":
                event = self._decode_event(line.event)
                self.history.append(event)
                self.events.put_nowait(event)
            elif line.kind == "reply":
                fut = self._replies.pop(line.id, None)
                if fut is not None and not fut.done():
                    fut.set_result(line)
        if proc.stderr is not None:
            with contextlib.suppress(Exception):
                self.stderr = await asyncio.wait_for(proc.stderr.read(), 2)
        code = await proc.wait()
        if code == -signal.SIGKILL:
            self.crashes += 1
        error = ConnectionError(
            f"{self.module} exited ({code}): " + self.stderr.decode(errors="replace")
        )
        for fut in self._replies.values():
            if not fut.done():
                fut.set_exception(error)
        self._replies.clear()
        if self._ready is not None and not self._ready.done():
            self._ready.set_exception(error)

    async def request(self, op: str, args: dict[str, Any], timeout: float = 30.0) -> Any:
        """Send a request and wait for its reply; `refusal` if the child refused it."""
        if self.proc is None or self.proc.stdin is None:
            raise ConnectionError(f"{self.module} is not running")
        self._next_id += 1
        fut: asyncio.Future[Line] = asyncio.get_running_loop().create_future()
        self._replies[self._next_id] = fut
        request = Request(self._next_id, op, msgspec.to_builtins(args))
        self.proc.stdin.write(_json.encode(request) + b"\n")
        with contextlib.suppress(ConnectionError):
            await self.proc.stdin.drain()
        async with asyncio.timeout(timeout):
            line = await fut
        if line.error is not None:
            raise self.refusal(line.error)
        return line.value

    async def call(self, op: str, timeout: float | None = None, **args: Any) -> Any:
        """Run `op` in the child with `args` (within `call_timeout` unless given)."""
        return await self.request(op, args, self.call_timeout if timeout is None else timeout)

    async def next_event(self, predicate: Callable[[E], bool], timeout: float = 30.0) -> E:
        """The next event satisfying `predicate`; the ones before it are dropped."""
        async with asyncio.timeout(timeout):
            while True:
                e = await self.events.get()
                if predicate(e):
                    return e

    async def wait_exit(self, timeout: float = 30.0) -> int:
        proc = self.proc
        if proc is None:
            return 0
        async with asyncio.timeout(timeout):
            code = await proc.wait()
        if self._reader is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._reader, 5)
        self.proc = None
        return code

    async def kill(self) -> None:
        """SIGKILL: no chance to flush or clean up."""
        proc = self.proc
        if proc is None:
            return
        if proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                proc.send_signal(signal.SIGKILL)
        await self.wait_exit()

    async def stop(self) -> None:
        """Close stdin: the child shuts down cleanly (SIGKILL if it does not in time)."""
        proc = self.proc
        if proc is None:
            return
        if proc.stdin is not None:
            proc.stdin.close()
        try:
            await self.wait_exit(15)
        except TimeoutError:
            await self.kill()

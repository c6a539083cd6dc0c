"""A chat client in its own process, driven by JSON lines, so tests and the demo can
SIGKILL it for real and start it again on the same database files.

`python -m parley.testing.chat_process --db PREFIX --relay ADDRESS --name NAME [--fast]`
prints `{"kind": "ready"}`, then one line per chat event, and answers requests
`{"id": N, "op": METHOD, "args": {...}}` (METHOD is a ChatController method from `OPS`)
with `{"kind": "reply", "id": N, "value": ...}` or `{"kind": "reply", "id": N, "error": ...}`.
`PARLEY_CRASH_AT` in its environment makes it kill itself at a named step (see
parley.chat.crash).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import signal
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import msgspec

from parley.chat import events as cev
from parley.chat.controller import ChatConfig, ChatController, ChatError
from parley.relay.client import ClientSettings
from parley.retry import Backoff

OPS = frozenset(
    {
        "create_invitation",
        "connect",
        "contacts",
        "send_contact_message",
        "delete_contact",
        "create_group",
        "groups",
        "add_member",
        "join_group",
        "members",
        "send_group_message",
        "leave_group",
        "remove_member",
        "delete_group",
        "chat_items",
        "status",
        "reintroduce_stale",
    }
)

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


def _write(line: Line) -> None:
    sys.stdout.buffer.write(_json.encode(line) + b"\n")
    sys.stdout.buffer.flush()


async def serve(config: ChatConfig, name: str) -> None:
    chat = await ChatController.open(config)
    if await chat.active_user() is None:
        await chat.create_user(name)
    await chat.start()
    _write(Line("ready"))

    async def pump() -> None:
        while True:
            e = await chat.events.get()
            _write(Line("event", event=msgspec.to_builtins(e)))

    pump_task = asyncio.create_task(pump())
    reader = asyncio.StreamReader(limit=1 << 20)
    loop = asyncio.get_running_loop()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    decoder = msgspec.json.Decoder(Request)

    async def handle(r: Request) -> None:
        try:
            if r.op not in OPS:
                raise ChatError(f"unknown op {r.op}")
            value = await getattr(chat, r.op)(**r.args)
            _write(Line("reply", r.id, value=msgspec.to_builtins(value)))
        except (ChatError, TypeError) as e:
            _write(Line("reply", r.id, error=str(e)))

    handlers: set[asyncio.Task[None]] = set()
    while line := await reader.readline():
        try:
            r = decoder.decode(line)
        except msgspec.DecodeError as e:
            _write(Line("reply", error=f"bad request: {e}"))
            continue
        task = asyncio.create_task(handle(r))
        handlers.add(task)
        task.add_done_callback(handlers.discard)
    pump_task.cancel()
    await chat.close()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--db", type=Path, required=True)
    parser.add_argument("--relay", action="append", required=True)
    parser.add_argument("--name", required=True)
    parser.add_argument("--fast", action="store_true", help="short retry delays for tests")
    parser.add_argument("--intro-timeout", type=float, default=600.0)
    args = parser.parse_args()
    config = ChatConfig(db_prefix=args.db, relays=args.relay, intro_timeout=args.intro_timeout)
    if args.fast:
        config.intro_check_interval = min(config.intro_check_interval, args.intro_timeout / 2)
        config.agent = {
            "retry": Backoff(0.05, 1.5, 0.5, 0.2),
            "client": ClientSettings(5.0, 5.0, 30.0, Backoff(0.05, 1.5, 0.5, 0.1)),
        }
    asyncio.run(serve(config, args.name))


_event_decoder = msgspec.json.Decoder(cev.ChatEvent)


class ChatProcess:
    """The parent side: start, call, wait for events, SIGKILL, restart."""

    def __init__(
        self,
        db: Path,
        relays: list[str],
        name: str,
        *,
        fast: bool = True,
        intro_timeout: float = 600.0,
    ) -> None:
        self.db = db
        self.relays = relays
        self.name = name
        self.fast = fast
        self.intro_timeout = intro_timeout
        self.proc: asyncio.subprocess.Process | None = None
        self.events: asyncio.Queue[cev.ChatEvent] = asyncio.Queue()
        self.history: list[cev.ChatEvent] = []
        self._replies: dict[int, asyncio.Future[Line]] = {}
        self._next_id = 0
        self._reader: asyncio.Task[None] | None = None
        self._ready: asyncio.Future[None] | None = None
        self.stderr = b""
        self.crashes = 0

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.returncode is None

    async def start(self, crash_at: str = "", timeout: float = 30.0) -> None:
        args = [
            sys.executable,
            "-m",
            "parley.testing.chat_process",
            "--db",
            str(self.db),
            "--name",
            self.name,
            "--intro-timeout",
            str(self.intro_timeout),
        ]
        for r in self.relays:
            args += ["--relay", r]
        if self.fast:
            args.append("--fast")
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        env.pop("PARLEY_CRASH_AT", None)
        if crash_at:
            env["PARLEY_CRASH_AT"] = crash_at
        self.proc = await asyncio.create_subprocess_exec(
            *args,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            env=env,
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
                event = _event_decoder.decode(_json.encode(line.event))
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
            f"chat process {self.name} exited ({code}): " + self.stderr.decode(errors="replace")
        )
        for fut in self._replies.values():
            if not fut.done():
                fut.set_exception(error)
        self._replies.clear()
        if self._ready is not None and not self._ready.done():
            self._ready.set_exception(error)

    async def call(self, op: str, timeout: float = 30.0, **args: Any) -> Any:
        """Call a controller method in the process; ChatError for its refusals."""
        if self.proc is None or self.proc.stdin is None:
            raise ConnectionError(f"chat process {self.name} is not running")
        self._next_id += 1
        fut: asyncio.Future[Line] = asyncio.get_running_loop().create_future()
        self._replies[self._next_id] = fut
        self.proc.stdin.write(_json.encode(Request(self._next_id, op, args)) + b"\n")
        with contextlib.suppress(ConnectionError):
            await self.proc.stdin.drain()
        async with asyncio.timeout(timeout):
            line = await fut
        if line.error is not None:
            raise ChatError(line.error)
        return line.value

    async def expect(
        self, kind: type[Any], where: Callable[[Any], bool] | None = None, timeout: float = 30.0
    ) -> Any:
        async with asyncio.timeout(timeout):
            while True:
                e = await self.events.get()
                if isinstance(e, kind) and (where is None or where(e)):
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
        proc = self.proc
        if proc is None:
            return
        if proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                proc.send_signal(signal.SIGKILL)
        await self.wait_exit()

    async def stop(self) -> None:
        proc = self.proc
        if proc is None:
            return
        if proc.stdin is not None:
            proc.stdin.close()
        try:
            await self.wait_exit(15)
        except TimeoutError:
            await self.kill()


if __name__ == "__main__":
    main()

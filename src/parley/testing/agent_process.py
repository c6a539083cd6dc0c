"""An agent in its own process, driven by JSON lines, so tests can SIGKILL it for real.

Run as `python -m parley.testing.agent_process --db PATH --relay ADDRESS [...]`. It reads
one request per line on stdin and writes one JSON object per line on stdout:

- `{"kind": "ready"}` once the agent is open;
- `{"kind": "event", "event": AgentEvent}` for every agent event (bytes are base64);
- `{"kind": "reply", "id": N, "value": ...}` or `{"kind": "reply", "id": N, "error": "..."}`.

Requests are `{"id": N, "op": NAME, ...}` with ops create, join, allow, send, ack_msg,
ack_event, delete, pending, status. `AgentProcess` is the parent side.
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

from parley.agent import events as ev
from parley.agent.agent import Agent, AgentConfig, AgentError
from parley.relay.client import ClientSettings
from parley.retry import Backoff

_json = msgspec.json.Encoder()


class Request(msgspec.Struct):
    id: int
    op: str
    corr: str = ""
    conn: str = ""
    link: str = ""
    conf: str = ""
    info: bytes = b""
    body: bytes = b""
    msg_id: int = 0


class Line(msgspec.Struct):
    kind: str
    id: int = 0
    value: Any = None
    error: str | None = None
    event: ev.AgentEvent | None = None


def _write(line: Line) -> None:
    sys.stdout.buffer.write(_json.encode(line) + b"\n")
    sys.stdout.buffer.flush()


async def _handle(agent: Agent, r: Request) -> Any:
    match r.op:
        case "create":
            return await agent.create_connection_async(r.corr)
        case "join":
            return await agent.join_connection_async(r.corr, r.link, r.info)
        case "allow":
            await agent.allow_connection_async(r.corr, r.conn, r.conf, r.info)
            return None
        case "send":
            return await agent.send_message(r.conn, r.body)
        case "ack_msg":
            await agent.ack_message_async(r.corr, r.conn, r.msg_id)
            return None
        case "ack_event":
            await agent.ack_command_event(r.corr)
            return None
        case "delete":
            await agent.delete_connection_async(r.corr, r.conn)
            return None
        case "pending":
            return msgspec.to_builtins(await agent.pending())
        case "status":
            return msgspec.to_builtins(await agent.subscribe_all())
    raise AgentError(f"unknown op {r.op}")


async def serve(config: AgentConfig) -> None:
    agent = await Agent.open(config)
    _write(Line("ready"))

    async def pump() -> None:
        async for e in agent.events():
            _write(Line("event", event=e))

    pump_task = asyncio.create_task(pump())
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    decoder = msgspec.json.Decoder(Request)
    while line := await reader.readline():
        try:
            r = decoder.decode(line)
        except msgspec.DecodeError as e:
            _write(Line("reply", error=f"bad request: {e}"))
            continue
        try:
            _write(Line("reply", r.id, value=await _handle(agent, r)))
        except AgentError as e:
            _write(Line("reply", r.id, error=str(e)))
    pump_task.cancel()
    await agent.close()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--db", type=Path, required=True)
    parser.add_argument("--relay", action="append", required=True)
    parser.add_argument("--fast", action="store_true", help="short retry delays for tests")
    args = parser.parse_args()
    config = AgentConfig(database=args.db, relays=args.relay)
    if args.fast:
        config.retry = Backoff(0.05, 1.5, 0.5, 0.2)
        config.client = ClientSettings(5.0, 5.0, 30.0, Backoff(0.05, 1.5, 0.5, 0.1))
    asyncio.run(serve(config))


class AgentProcess:
    """The parent side: start, send requests, wait for events, SIGKILL, restart."""

    def __init__(self, db: Path, relays: list[str], *, fast: bool = True) -> None:
        self.db = db
        self.relays = relays
        self.fast = fast
        self.proc: asyncio.subprocess.Process | None = None
        self.events: asyncio.Queue[ev.AgentEvent] = asyncio.Queue()
        self._replies: dict[int, asyncio.Future[Line]] = {}
        self._next_id = 0
        self._reader: asyncio.Task[None] | None = None
        self._ready: asyncio.Future[None] | None = None
        self.stderr = b""

    async def start(self, timeout: float = 20.0) -> None:
        args = [sys.executable, "-m", "parley.testing.agent_process", "--db", str(self.db)]
        for r in self.relays:
            args += ["--relay", r]
        if self.fast:
            args.append("--fast")
        self.events = asyncio.Queue()
        self.proc = await asyncio.create_subprocess_exec(
            *args,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
            limit=1 << 20,
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
            elif line.kind == "event" and line.event is not None:
                self.events.put_nowait(line.event)
            elif line.kind == "reply":
                fut = self._replies.pop(line.id, None)
                if fut is not None and not fut.done():
                    fut.set_result(line)
        if proc.stderr is not None:
            with contextlib.suppress(Exception):
                self.stderr = await asyncio.wait_for(proc.stderr.read(), 2)
        error = RuntimeError("agent process exited: " + self.stderr.decode(errors="replace"))
        for fut in self._replies.values():
            if not fut.done():
                fut.set_exception(error)
        if self._ready is not None and not self._ready.done():
            self._ready.set_exception(error)

    async def request(self, op: str, timeout: float = 10.0, **fields: Any) -> Any:
        assert self.proc is not None and self.proc.stdin is not None
        self._next_id += 1
        fut: asyncio.Future[Line] = asyncio.get_running_loop().create_future()
        self._replies[self._next_id] = fut
        req = Request(self._next_id, op, **fields)
        self.proc.stdin.write(_json.encode(req) + b"\n")
        await self.proc.stdin.drain()
        async with asyncio.timeout(timeout):
            line = await fut
        if line.error is not None:
            raise AgentError(line.error)
        return line.value

    async def expect(
        self,
        predicate: Callable[[ev.AgentEvent], bool],
        timeout: float = 15.0,
    ) -> ev.AgentEvent:
        """The next event satisfying `predicate`; earlier events are dropped."""
        async with asyncio.timeout(timeout):
            while True:
                e = await self.events.get()
                if predicate(e):
                    return e

    async def kill(self) -> None:
        """SIGKILL, no clean-up of any kind."""
        proc = self.proc
        if proc is None:
            return
        if proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                proc.send_signal(signal.SIGKILL)
        await proc.wait()
        if self._reader is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._reader, 5)
        self.proc = None

    async def stop(self) -> None:
        """Close stdin: the agent closes cleanly and exits."""
        proc = self.proc
        if proc is None:
            return
        if proc.stdin is not None:
            proc.stdin.close()
        try:
            await asyncio.wait_for(proc.wait(), 10)
        except TimeoutError:
            await self.kill()
        self.proc = None


if __name__ == "__main__":
    main()

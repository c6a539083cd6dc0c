"""Fixtures for the bot API tests: chats served on WebSockets and a small test client."""

from __future__ import annotations

import asyncio
import fcntl
import json
import shutil
import subprocess
import tempfile
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from websockets.asyncio.client import ClientConnection, connect

from parley.api.server import ApiServer, serve_api
from parley.chat.controller import ChatController
from tests.chat.conftest import MakeChat, make_chat  # noqa: F401  (fixtures)
from tests.relay.conftest import relay, relay_config  # noqa: F401  (fixtures)

Resp = dict[str, Any]


class WsBot:
    """A bot API client for tests: `cmd` sends a command and returns its reply ("resp");
    events that arrive meanwhile are kept for `event`."""

    def __init__(self, ws: ClientConnection) -> None:
        self.ws = ws
        self.events: list[Resp] = []
        self._corr = 0

    async def recv(self, timeout: float = 15.0) -> dict[str, Any]:
        async with asyncio.timeout(timeout):
            frame = await self.ws.recv()
        assert isinstance(frame, str), "the server sends text frames"
        msg = json.loads(frame)
        assert isinstance(msg, dict)
        return msg

    async def send_raw(self, frame: str | bytes) -> None:
        await self.ws.send(frame)

    async def cmd(self, text: str, timeout: float = 15.0) -> Resp:
        self._corr += 1
        corr = f"c{self._corr}"
        await self.ws.send(json.dumps({"corrId": corr, "cmd": text}))
        return await self.reply(corr, timeout)

    async def reply(self, corr: str | int, timeout: float = 15.0) -> Resp:
        async with asyncio.timeout(timeout):
            while True:
                msg = await self.recv(timeout)
                if "corrId" not in msg:
                    self.events.append(msg["resp"])
                    continue
                assert msg["corrId"] == corr, f"reply to {msg['corrId']!r}, expected {corr!r}"
                resp: Resp = msg["resp"]
                return resp

    async def ok(self, text: str, expect: str, timeout: float = 15.0) -> Resp:
        """`cmd`, asserting the reply's type."""
        resp = await self.cmd(text, timeout)
        assert resp["type"] == expect, f"{text!r} → {resp}"
        return resp

    async def event(
        self, kind: str, where: Callable[[Resp], bool] | None = None, timeout: float = 15.0
    ) -> Resp:
        """The first event of type `kind` (kept or next to arrive) that satisfies `where`."""
        for i, e in enumerate(self.events):
            if e["type"] == kind and (where is None or where(e)):
                return self.events.pop(i)
        async with asyncio.timeout(timeout):
            while True:
                msg = await self.recv(timeout)
                assert "corrId" not in msg, f"unexpected reply {msg}"
                e = msg["resp"]
                if e["type"] == kind and (where is None or where(e)):
                    resp: Resp = e
                    return resp
                self.events.append(e)


MakeBot = Callable[[ChatController], Awaitable[WsBot]]
Serve = Callable[..., Awaitable[ApiServer]]


@pytest.fixture
async def serve() -> AsyncIterator[Serve]:
    """`await serve(chat, **kw)`: serve_api on 127.0.0.1, any port; closed at the end."""
    servers: list[ApiServer] = []

    async def make(chat: ChatController, **kw: Any) -> ApiServer:
        server = await serve_api(chat, "127.0.0.1", 0, **kw)
        servers.append(server)
        return server

    yield make
    for s in servers:
        await s.close()


@pytest.fixture
async def bot_for(serve: Serve) -> AsyncIterator[MakeBot]:
    """A chat served on a WebSocket, and a client connected to it."""
    conns: list[ClientConnection] = []

    async def make(chat: ChatController) -> WsBot:
        server = await serve(chat)
        ws = await connect(f"ws://127.0.0.1:{server.port}")
        conns.append(ws)
        return WsBot(ws)

    yield make
    for ws in conns:
        await ws.close()


async def connect_bots(a: WsBot, b: WsBot) -> tuple[Resp, Resp]:
    """Make a and b contacts through the API; their contactConnected events."""
    inv = await a.ok("/connect", "invitation")
    await b.ok(f"/connect {inv['connReqInvitation']}", "sentConfirmation")
    return await a.event("contactConnected"), await b.event("contactConnected")


# ---------------------------------------------------------------- the npm client

NODE_DIR = Path(__file__).parent / "node"


@pytest.fixture(scope="session")
def node_client() -> Path:
    """tests/api/node with the simplex-chat npm package installed (npm ci, once).

    Skips only if node or npm is not installed; a failing install fails the test."""
    node, npm = shutil.which("node"), shutil.which("npm")
    if node is None or npm is None:
        pytest.skip("node and npm are needed to run the simplex-chat npm client")
    installed = NODE_DIR / "node_modules" / "simplex-chat" / "package.json"
    lock = Path(tempfile.gettempdir()) / "parley-tests-api-npm.lock"
    with lock.open("w") as held:
        fcntl.flock(held, fcntl.LOCK_EX)  # one install at a time (parallel test runs)
        if not installed.exists():
            done = subprocess.run(
                [npm, "ci", "--no-audit", "--no-fund", "--loglevel=error"],
                cwd=NODE_DIR,
                capture_output=True,
                text=True,
                timeout=180,
            )
            if done.returncode != 0:
                pytest.fail(f"npm ci failed in {NODE_DIR}:\n{done.stdout}\n{done.stderr}")
    return NODE_DIR


async def run_node(script: Path, *args: str, timeout: float = 60.0) -> tuple[int, str, str]:
    """Run a Node script without blocking the event loop (the servers run in it)."""
    node = shutil.which("node")
    assert node is not None
    proc = await asyncio.create_subprocess_exec(
        node,
        str(script),
        *args,
        cwd=script.parent,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        async with asyncio.timeout(timeout):
            out, err = await proc.communicate()
    except TimeoutError:
        proc.kill()
        await proc.wait()
        raise
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()

"""The bot API's WebSocket server: a thin shell around `ApiHandler`.

``server = await serve_api(chat, "127.0.0.1", 5225)`` serves the simplex-chat CLI's
WebSocket API (docs/bot-api.md) until ``await server.close()``. Each connection's commands
run one after another, in the order they arrive; replies and events go out through one
queue per connection, so a client that reads slowly holds back only itself (and is
disconnected if it falls too far behind). While it serves, the server is the only reader
of ``chat.events``: it sends every event to every connected client.

Without a `token`, whoever can open the port controls the chat: serving an address other
than loopback without one is refused. With a token, a client presents it as
``ws://HOST:PORT/?token=TOKEN`` or in an ``Authorization: Bearer TOKEN`` header; other
connections are refused (HTTP 401) before the WebSocket opens. Browsers are refused unless
their Origin is allowed (`origins`), so that a web page cannot drive the chat through
localhost.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import ipaddress
import logging
from collections.abc import Sequence
from http import HTTPStatus
from urllib.parse import parse_qs, urlsplit

from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request, Response
from websockets.typing import Origin

from parley.api import commands
from parley.api import responses as r
from parley.api.handlers import ApiHandler
from parley.chat.controller import ChatController
from parley.loops import failure_logged

log = logging.getLogger(__name__)

MAX_FRAME = 1 << 20  # larger frames close the connection (1009, message too big)
MAX_COMMAND = 256 << 10  # larger requests are answered with chatCmdError
QUEUE_SIZE = 1000  # frames waiting for a client before it is disconnected


def is_loopback(host: str) -> bool:
    """Whether `host` is a loopback address (a host name other than localhost is not
    trusted to be one)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def bind_problem(host: str, token: str | None) -> str | None:
    """Why the API may not be served on `host` with `token` (None if it may)."""
    if token is not None and not token:
        return "the API token is empty"
    if token or is_loopback(host):
        return None
    return (
        f"{host} is not a loopback address: whoever reaches it would control the chat. "
        "Serve it with a token (parley chat --ws-token TOKEN, or serve_api(..., token=...)), "
        "or bind 127.0.0.1"
    )


def presented_token(request: Request) -> str | None:
    """The token a client presents: ``?token=`` in the URL or an Authorization header."""
    auth = request.headers.get("Authorization")
    if auth is not None:
        scheme, _, value = auth.partition(" ")
        if scheme.lower() == "bearer" and value.strip():
            return value.strip()
    values = parse_qs(urlsplit(request.path).query).get("token")
    return values[0] if values else None


class _Client:
    def __init__(self, ws: ServerConnection, queue_size: int) -> None:
        self.ws = ws
        self.queue: asyncio.Queue[bytes] = asyncio.Queue(queue_size)
        self.closing = False
        self.closer: asyncio.Task[None] | None = None

    def put(self, frame: bytes) -> None:
        if self.closing:
            return
        try:
            self.queue.put_nowait(frame)
        except asyncio.QueueFull:
            self.closing = True
            log.warning("bot API client %s reads too slowly: disconnecting it", self.ws.id)
            self.closer = asyncio.create_task(
                self.ws.close(1008, "too many unread replies and events")
            )

    async def send_loop(self) -> None:
        with contextlib.suppress(ConnectionClosed):
            while True:
                frame = await self.queue.get()
                await self.ws.send(frame.decode())


class ApiServer:
    """A running bot API server; `port` is the port it listens on."""

    def __init__(
        self,
        chat: ChatController,
        *,
        invitation_timeout: float = 30.0,
        max_command: int = MAX_COMMAND,
        queue_size: int = QUEUE_SIZE,
        current: bool = False,
    ) -> None:
        self.chat = chat
        self.handler = ApiHandler(chat, invitation_timeout, current=current)
        self.max_command = max_command
        self.queue_size = queue_size
        self.port = 0
        self._server: Server | None = None
        self._clients: set[_Client] = set()
        self._pump: asyncio.Task[None] | None = None

    async def start(
        self,
        host: str,
        port: int,
        *,
        max_frame: int = MAX_FRAME,
        origins: Sequence[str] = (),
        token: str | None = None,
    ) -> None:
        problem = bind_problem(host, token)
        if problem is not None:
            raise ValueError(problem)
        allowed: list[Origin | None] = [None, *(Origin(o) for o in origins)]
        expected = token.encode() if token else None

        def check_token(conn: ServerConnection, request: Request) -> Response | None:
            if expected is None:
                return None
            given = presented_token(request)
            if given is not None and hmac.compare_digest(given.encode(), expected):
                return None
            log.warning("bot API: refused a connection without the right token")
            return conn.respond(HTTPStatus.UNAUTHORIZED, "a valid API token is required\n")

        self._server = await serve(
            self._serve,
            host,
            port,
            max_size=max_frame,
            origins=allowed,
            process_request=check_token,
            logger=log,
        )
        self.port = next(iter(self._server.sockets)).getsockname()[1]
        self._pump = asyncio.create_task(self._pump_events(), name="bot-api-events")
        log.info("bot API listening on %s:%d", host, self.port)

    async def close(self) -> None:
        if self._pump is not None:
            self._pump.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._pump
            self._pump = None
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None

    async def __aenter__(self) -> ApiServer:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    # ------------------------------------------------------------ connections

    async def _serve(self, ws: ServerConnection) -> None:
        client = _Client(ws, self.queue_size)
        sender = asyncio.create_task(client.send_loop(), name=f"bot-api-send-{ws.id}")
        self._clients.add(client)
        log.info("bot API client %s connected from %s", ws.id, ws.remote_address)
        try:
            async for frame in ws:
                try:
                    answer = await self._answer(frame)
                except Exception as e:  # a bug: say so, and keep the connection
                    log.exception("bot API request failed")
                    answer = r.envelope(r.command_error(f"internal error: {e}"))
                client.put(answer)
                self._broadcast(await self.handler.after_command())
        except ConnectionClosed:
            pass
        finally:
            self._clients.discard(client)
            sender.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await sender
            log.info("bot API client %s disconnected", ws.id)

    async def _answer(self, frame: str | bytes) -> bytes:
        request = commands.parse_request(frame)
        if isinstance(request, commands.RequestError):
            return r.envelope(r.command_error(request.message), request.corr_id)
        if len(frame) > self.max_command:
            error = (
                f"the request is too large ({len(frame)} bytes; the limit is {self.max_command})"
            )
            return r.envelope(r.command_error(error), request.corr_id)
        resp = await self.handler.run(commands.parse_command(request.cmd))
        return r.envelope(resp, request.corr_id)

    # ------------------------------------------------------------ events

    def _broadcast(self, events: Sequence[r.JsonObject]) -> None:
        for resp in events:
            frame = r.envelope(resp)
            for client in list(self._clients):
                client.put(frame)

    async def _pump_events(self) -> None:
        while True:
            event = await self.chat.events.get()
            with failure_logged(log, "could not send chat event %r to bot API clients", event):
                self._broadcast(await self.handler.event(event))


async def serve_api(
    chat: ChatController,
    host: str,
    port: int,
    *,
    origins: Sequence[str] = (),
    invitation_timeout: float = 30.0,
    max_frame: int = MAX_FRAME,
    max_command: int = MAX_COMMAND,
    queue_size: int = QUEUE_SIZE,
    token: str | None = None,
    current: bool = False,
) -> ApiServer:
    """Serve the bot API for `chat` on host:port (port 0: any free port, see `.port`).

    The chat may be started already or not (the /_start command starts it). `origins`
    are the browser Origins allowed to connect (clients that send no Origin, such as bots,
    always may). With `token`, only clients that present it may connect; without one,
    `host` must be a loopback address (else ValueError). `current`: where the two
    generations of the API reply differently, reply as the current API does (else as the
    npm client 0.2.x expects). Stop with
    ``await server.close()``; the chat stays open.
    """
    server = ApiServer(
        chat,
        invitation_timeout=invitation_timeout,
        max_command=max_command,
        queue_size=queue_size,
        current=current,
    )
    await server.start(host, port, max_frame=max_frame, origins=origins, token=token)
    return server

"""The bot API's WebSocket server: a thin shell around `ApiHandler`.

``server = await serve_api(chat, "127.0.0.1", 5225)`` serves the simplex-chat CLI's
WebSocket API (docs/bot-api.md) until ``await server.close()``. Each connection's commands
run one after another, in the order they arrive; replies and events go out through one
queue per connection, so a client that reads slowly holds back only itself (and is
disconnected if it falls too far behind). While it serves, the server is the only reader
of ``chat.events``: it sends every event to every connected client.

There is no authentication: whoever can open the port controls the chat. Bind to a
loopback address. Browsers are refused unless their Origin is allowed (`origins`), so that
a web page cannot drive the chat through localhost.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Sequence

from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.exceptions import ConnectionClosed
from websockets.typing import Origin

from parley.api import commands
from parley.api import responses as r
from parley.api.handlers import ApiHandler
from parley.chat.controller import ChatController

log = logging.getLogger(__name__)

MAX_FRAME = 1 << 20  # larger frames close the connection (1009, message too big)
MAX_COMMAND = 256 << 10  # larger requests are answered with chatCmdError
QUEUE_SIZE = 1000  # frames waiting for a client before it is disconnected


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
    ) -> None:
        self.chat = chat
        self.handler = ApiHandler(chat, invitation_timeout)
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
    ) -> None:
        allowed: list[Origin | None] = [None, *(Origin(o) for o in origins)]
        self._server = await serve(
            self._serve,
            host,
            port,
            max_size=max_frame,
            origins=allowed,
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
            try:
                self._broadcast(await self.handler.event(event))
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("could not send chat event %r to bot API clients", event)


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
) -> ApiServer:
    """Serve the bot API for `chat` on host:port (port 0: any free port, see `.port`).

    The chat may be started already or not (the /_start command starts it). `origins`
    are the browser Origins allowed to connect (clients that send no Origin, such as bots,
    always may). Stop with ``await server.close()``; the chat stays open.
    """
    server = ApiServer(
        chat,
        invitation_timeout=invitation_timeout,
        max_command=max_command,
        queue_size=queue_size,
    )
    await server.start(host, port, max_frame=max_frame, origins=origins)
    return server

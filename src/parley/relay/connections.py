"""The relay's connections: listening, accepting within the limits (in all, per address,
shedding idle ones to make room), the TLS and protocol handshakes, reading blocks, closing
idle connections."""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import logging
import os
import socket
import ssl
import time

from parley.protocol import relay as p
from parley.relay.commands import Commands
from parley.relay.config import RelayConfig
from parley.relay.limits import address_key
from parley.relay.session import Session
from parley.relay.state import RelayStats

log = logging.getLogger(__name__)


class Connections:
    """The relay's open connections. Each transmission read goes to `commands.handle`; a
    session that ends goes to `commands.end_session`. `tls` and `ca_der` are set when the
    relay starts; `max_connections` is the limit in force (the configured one, lowered to
    fit the open files)."""

    def __init__(
        self,
        config: RelayConfig,
        stats: RelayStats,
        tasks: set[asyncio.Task[None]],
        commands: Commands,
    ) -> None:
        self.config = config
        self.stats = stats
        self.tasks = tasks
        self.commands = commands
        self.tls: ssl.SSLContext | None = None
        self.ca_der = b""
        self.max_connections = config.max_connections
        self.sessions: set[Session] = set()
        # accepted sockets still in their TLS handshake
        self.handshaking: set[socket.socket] = set()
        # connections (handshakes included) per address_key()
        self.per_address: dict[str, int] = {}
        self.listeners: list[socket.socket] = []
        self._acceptors: list[asyncio.Task[None]] = []
        self.stopping = False
        self._accept_log_next = 0.0  # when the next accept failure may be logged
        self._accept_errors_logged = 0
        self._room = 0  # connections admitted by `make_room` still to come
        self._next_shed = 0.0  # the next `make_room` scan, at the earliest

    def drop(self, s: Session) -> None:
        self.sessions.discard(s)
        self.stats.connections = len(self.sessions)
        self.commands.end_session(s)

    async def open(self) -> int:
        """Listen and accept (the relay accepts by itself, so that a connection is its own
        from the first byte: its TLS handshake runs in an `accept` task, which the relay's
        stop() can end); the port listened on."""
        self.stopping = False
        self.listeners = await self.listen()
        self._acceptors = [
            asyncio.create_task(self.accept_loop(sock), name="relay-accept")
            for sock in self.listeners
        ]
        return int(self.listeners[0].getsockname()[1])

    async def close(self) -> None:
        """Stop accepting; close every connection, those still in their TLS handshake too
        (their `accept` tasks, in `tasks`, are for the caller to cancel)."""
        self.stopping = True
        for t in self._acceptors:
            t.cancel()
        await asyncio.gather(*self._acceptors, return_exceptions=True)
        self._acceptors = []
        for sock in self.listeners:
            sock.close()
        self.listeners = []
        for conn in list(self.handshaking):
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)
        for s in list(self.sessions):
            s.close()

    def close_idle(self, now: float) -> None:
        """Close connections idle longer than `idle_timeout`, and those with no
        subscription that sent no command for `idle_unsubscribed_timeout`."""
        cfg = self.config
        for s in list(self.sessions):
            if now - s.last_active > cfg.idle_timeout:
                log.info("closing an idle connection")
                self.stats.count_closed("idle")
                s.close()
            elif not s.subscriptions and now - s.last_command > cfg.idle_unsubscribed_timeout:
                log.info("closing an idle connection with no subscription")
                self.stats.count_closed("idle_unsubscribed")
                s.close()

    async def listen(self) -> list[socket.socket]:
        """Listening sockets for `host` and `port`, bound as asyncio.start_server binds."""
        loop = asyncio.get_running_loop()
        infos = await loop.getaddrinfo(
            self.config.host or None,
            self.config.port,
            family=socket.AF_UNSPEC,
            type=socket.SOCK_STREAM,
            flags=socket.AI_PASSIVE,
        )
        sockets: list[socket.socket] = []
        try:
            for family, kind, proto, _, address in dict.fromkeys(infos):
                sock = socket.socket(family, kind, proto)
                sockets.append(sock)
                if os.name == "posix":
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                if family == socket.AF_INET6:
                    sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
                sock.bind(address)
                sock.listen(100)
                sock.setblocking(False)
        except BaseException:
            for sock in sockets:
                sock.close()
            raise
        if not sockets:
            raise OSError(f"no address to listen on for {self.config.host}")
        return sockets

    def accept_failed(self, e: OSError) -> None:
        """Count a failed accept(); log at most one line per interval, with the count."""
        self.stats.accept_errors += 1
        now = time.monotonic()
        if now < self._accept_log_next:
            return
        n = self.stats.accept_errors - self._accept_errors_logged
        self._accept_errors_logged = self.stats.accept_errors
        self._accept_log_next = now + self.config.accept_error_log_interval
        log.warning(
            "accepting connections failed %d time(s) since the last report: %s "
            "(next report in %g s at the earliest)",
            n,
            e,
            self.config.accept_error_log_interval,
        )

    async def accept_loop(self, listener: socket.socket) -> None:
        """Accept connections; refuse them once stopping, at `max_connections` (those in
        their handshake included) or at the limit per address; run each in an `accept`
        task."""
        loop = asyncio.get_running_loop()
        per_address_limit = self.config.max_connections_per_address
        while True:
            try:
                conn, peer = await loop.sock_accept(listener)
            except OSError as e:  # out of file descriptors, say: try again shortly
                self.accept_failed(e)
                await asyncio.sleep(0.1)
                continue
            if self.stopping:
                conn.close()
                return
            key = address_key(peer)
            count = self.per_address.get(key, 0)
            if per_address_limit and count >= per_address_limit:
                self.stats.connections_rejected += 1
                self.stats.connections_rejected_address += 1
                conn.close()
                continue
            if len(self.sessions) + len(self.handshaking) < self.max_connections:
                self._room = 0  # the room made earlier is free for all now
            elif not self.make_room():
                self.stats.connections_rejected += 1
                conn.close()
                continue
            self.per_address[key] = count + 1
            conn.setblocking(False)
            self.handshaking.add(conn)
            task = loop.create_task(self.accept(conn, key))
            self.tasks.add(task)
            task.add_done_callback(self.tasks.discard)

    def make_room(self) -> bool:
        """At `max_connections`: close idle connections that have no subscription, to let
        new ones in. One scan closes up to 1 % of the limit (the longest idle first) and
        admits as many; scans are at most 10 a second, so a flood of new connections cannot
        make the relay scan all the time."""
        if self._room > 0:
            self._room -= 1
            return True
        now = time.monotonic()
        if now < self._next_shed:
            return False
        self._next_shed = now + 0.1
        cutoff = now - self.config.shed_idle_after
        idle = [
            s
            for s in self.sessions
            if not s.subscriptions and not s.closed and s.last_command <= cutoff
        ]
        if not idle:
            return False
        victims = heapq.nsmallest(
            max(1, self.max_connections // 100), idle, key=lambda s: s.last_command
        )
        for s in victims:
            self.stats.count_closed("shed")
            s.close()
        self._room = len(victims) - 1
        return True

    async def accept(self, conn: socket.socket, key: str) -> None:
        try:
            await self.connection(conn)
        finally:
            left = self.per_address.get(key, 1) - 1
            if left > 0:
                self.per_address[key] = left
            else:
                self.per_address.pop(key, None)

    async def connection(self, conn: socket.socket) -> None:
        assert self.tls is not None
        loop = asyncio.get_running_loop()
        reader = asyncio.StreamReader(limit=p.BLOCK_SIZE * 4, loop=loop)
        protocol = asyncio.StreamReaderProtocol(reader, loop=loop)
        try:
            # (cancelled by stop(), or failing, it closes the connection)
            transport, _ = await loop.connect_accepted_socket(
                lambda: protocol,
                conn,
                ssl=self.tls,
                ssl_handshake_timeout=self.config.handshake_timeout,
            )
        except (ConnectionError, OSError, asyncio.CancelledError):
            conn.close()
            return
        finally:
            self.handshaking.discard(conn)
        if self.stopping:  # the handshake finished as the relay was stopping
            transport.abort()
            return
        writer = asyncio.StreamWriter(transport, protocol, reader, loop)
        session = Session(self.config, self.stats, reader, writer)
        self.sessions.add(session)
        self.stats.connections = len(self.sessions)
        self.stats.connections_total += 1
        writer_task: asyncio.Task[None] | None = None
        try:
            if not await self.handshake(session):
                return
            writer_task = asyncio.create_task(session.write_loop())
            await self.read_loop(session)
        except (ConnectionError, OSError, asyncio.IncompleteReadError, ssl.SSLError):
            pass
        except asyncio.CancelledError:
            pass
        except Exception:
            log.exception("relay connection failed")
        finally:
            session.close()
            if writer_task is not None:
                writer_task.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await writer_task
            self.drop(session)

    async def handshake(self, s: Session) -> bool:
        hello = p.ServerHello(
            p.MIN_VERSION, p.MAX_VERSION, s.session_id, s.session_public, self.ca_der
        )
        s.writer.write(p.encode_server_hello(hello))
        try:
            async with asyncio.timeout(self.config.handshake_timeout):
                await s.writer.drain()
                block = await s.reader.readexactly(p.BLOCK_SIZE)
            client = p.decode_client_hello(block)
        except (TimeoutError, p.ProtocolError):
            return False
        if p.MIN_VERSION <= client.version <= p.MAX_VERSION:
            return True
        await s.flush_and_close(p.Err(p.ErrorCode.SESSION))
        return False

    async def read_loop(self, s: Session) -> None:
        handle = self.commands.handle
        while not s.closed:
            block = await s.reader.readexactly(p.BLOCK_SIZE)
            s.last_active = time.monotonic()
            try:
                transmissions = p.decode_block(block)
            except p.ProtocolError:
                self.stats.count_closed("bad_block")
                await s.flush_and_close(p.Err(p.ErrorCode.BLOCK))
                return
            for raw in transmissions:
                handle(s, raw)
                if s.closing:
                    # the rest of the block is not looked at: its authenticators cost work
                    log.info("closing a connection after %d failed authenticators", s.auth_failures)
                    self.stats.count_closed("auth_failures")
                    await s.flush_and_close(None)
                    return

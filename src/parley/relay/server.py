"""The relay server: one-way queues over TLS, durable, with grouped commits.

The protocol logic lives in `parley.protocol.relay`; this module is the asyncio shell
around it plus the in-memory queue state that is written through to the store. Memory holds
the queues and a small header per stored message; bodies are in the store, with a bounded
cache of them (`BodyCache`) in memory.
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import hmac
import ipaddress
import itertools
import logging
import os
import secrets
import socket
import ssl
import time
from collections import OrderedDict, deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import msgspec
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from parley.protocol import relay as p
from parley.protocol.address import RelayAddress
from parley.protocol.relay_auth import derive_mac_key, verify
from parley.relay.config import RelayConfig
from parley.relay.identity import RelayIdentity, load_or_create_identity
from parley.relay.store import (
    AddMessage,
    CreateQueue,
    DeleteExpired,
    DeleteMessage,
    DeleteQueue,
    Done,
    GroupCommitter,
    MessageRecord,
    QueueRecord,
    QueueStore,
    SecureQueue,
    SqliteQueueStore,
    StoreOp,
    SuspendQueue,
)

log = logging.getLogger(__name__)

DB_FILE = "relay.db"

# bodies read from the store in one go when a queue's head is not in the cache
FETCH_AHEAD = 8


def open_file_limits() -> tuple[int, int] | None:
    """The (soft, hard) RLIMIT_NOFILE, or None where there is no such limit."""
    try:
        import resource
    except ImportError:  # pragma: no cover - not POSIX
        return None
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    return soft, hard


def raise_open_file_limit() -> tuple[int, int] | None:
    """Raise the soft open-file limit to the hard one; (old soft, new soft), or None."""
    try:
        import resource
    except ImportError:  # pragma: no cover - not POSIX
        return None
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = hard if hard != resource.RLIM_INFINITY else max(soft, 1 << 20)
    if soft != resource.RLIM_INFINITY and soft < target:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
        except (ValueError, OSError):
            return soft, soft
        return soft, target
    return soft, soft


def connection_budget(open_files: int | None) -> int | None:
    """Connections that fit in `open_files` descriptors, leaving room for everything else
    (listeners, the store, logs, the metrics endpoint, sockets being refused): 64 plus a
    tenth of the limit are kept back."""
    if open_files is None or open_files < 0:
        return None
    return max(1, open_files - 64 - open_files // 10)


def address_key(address: Any) -> str:
    """Connections are counted per IPv4 address and per IPv6 /64."""
    host = str(address[0]) if isinstance(address, tuple) and address else str(address)
    try:
        ip = ipaddress.ip_address(host.split("%", 1)[0])
    except ValueError:
        return host
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return str(ip.ipv4_mapped)
        return str(ipaddress.IPv6Network((ip, 64), strict=False))
    return host


class Stored(msgspec.Struct, frozen=True, gc=False):
    """What memory keeps of a stored message: everything but its body."""

    msg_id: bytes
    ts: int
    flags: int
    size: int


class BodyCache:
    """Message bodies by message id, the oldest dropped beyond `limit` bytes.

    Oldest first, not least recently used: a body is read when its message is delivered,
    and delivered messages are acknowledged and gone soon after, so recency of use says
    little; bodies of messages that wait long are the ones to drop."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.bytes = 0
        self._bodies: OrderedDict[bytes, bytes] = OrderedDict()

    def __len__(self) -> int:
        return len(self._bodies)

    def __contains__(self, msg_id: bytes) -> bool:
        return msg_id in self._bodies

    def get(self, msg_id: bytes) -> bytes | None:
        return self._bodies.get(msg_id)

    def put(self, msg_id: bytes, body: bytes) -> None:
        bodies = self._bodies
        if msg_id in bodies or len(body) > self.limit:
            return
        bodies[msg_id] = body
        self.bytes += len(body)
        while self.bytes > self.limit:
            _, dropped = bodies.popitem(last=False)
            self.bytes -= len(dropped)

    def discard(self, msg_id: bytes) -> None:
        body = self._bodies.pop(msg_id, None)
        if body is not None:
            self.bytes -= len(body)


def now_ms() -> int:
    return int(time.time() * 1000)


class RandomIds:
    """Random message ids cut from a larger buffer: one urandom call per 1024 ids."""

    def __init__(self, size: int = p.QUEUE_ID_SIZE, batch: int = 1024) -> None:
        self._size = size
        self._batch = batch
        self._buf = b""
        self._pos = 0

    def next(self) -> bytes:
        if self._pos >= len(self._buf):
            self._buf = os.urandom(self._size * self._batch)
            self._pos = 0
        start = self._pos
        self._pos += self._size
        return self._buf[start : self._pos]


@dataclass(slots=True, eq=False)
class QueueState:
    recipient_id: bytes
    sender_id: bytes
    recipient_key: bytes
    sender_key: bytes | None
    status: str
    messages: deque[Stored] = field(default_factory=deque)
    uncommitted: int = 0  # SENDs accepted, not yet committed
    subscriber: Session | None = None
    delivered: bool = False  # the head message was sent to the subscriber, awaiting ACK
    securing: bytes | None = None  # a KEY whose commit is in flight
    deleting: bool = False  # a DEL whose commit is in flight
    fetching: bool = False  # bodies are being read from the store
    # GETs waiting for the head's body to be read from the store
    gets: list[tuple[Session, p.Transmission]] = field(default_factory=list)


@dataclass
class RelayStats:
    connections: int = 0
    connections_total: int = 0
    # refused: at `max_connections` (all reasons counted here) ...
    connections_rejected: int = 0
    # ... of them, by the limit per address
    connections_rejected_address: int = 0
    # connections the relay closed, by reason: idle, idle_unsubscribed, shed (to make room
    # at max_connections), auth_failures, slow_reader, bad_block
    connections_closed: dict[str, int] = field(default_factory=dict)
    accept_errors: int = 0  # accept() failures (EMFILE, ENFILE, ...)
    max_connections: int = 0  # the limit in force (lowered to fit the open-file limit)
    queues: int = 0
    messages_stored: int = 0
    bytes_stored: int = 0  # body bytes of the messages stored
    cache_bytes: int = 0  # body bytes held in memory (the cache)
    messages_sent: int = 0
    messages_delivered: int = 0
    errors: dict[str, int] = field(default_factory=dict)
    # answers by command and result: "SEND:OK", "NEW:AUTH", "INVALID:CMD SYNTAX", ...
    commands: dict[str, int] = field(default_factory=dict)
    # authenticators that did not verify, and NEW passwords that did not match
    auth_failures: int = 0
    # unsigned SENDs to a queue already secured: a confirmation sent again after its OK was
    # lost, once the recipient had secured the queue. Answered `ERR CMD NO_AUTH` as ever
    # (the sender's agent reads that as "it got there"), but not counted in `errors`.
    repeated_confirmations: int = 0
    commits: int = 0
    operations_committed: int = 0


class Session:
    """One client connection: its TLS stream, session keys, output batching."""

    def __init__(
        self, relay: RelayServer, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        self.relay = relay
        self.reader = reader
        self.writer = writer
        self.session_id = secrets.token_bytes(32)
        self.session_key = X25519PrivateKey.generate()
        self.mac_keys: dict[bytes, bytes] = {}
        self.subscriptions: set[bytes] = set()
        self.last_active = time.monotonic()
        self.last_command = self.last_active  # the last block with a command other than PING
        self.auth_failures = 0
        self.closing = False  # closed once the current block is handled (auth failures)
        self.closed = False
        self._out: list[bytes] = []
        self._out_bytes = 0
        self._out_ready = asyncio.Event()

    @property
    def session_public(self) -> bytes:
        return self.session_key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)

    def authorized(self, key: bytes | None, t: p.Transmission) -> bool:
        if key is None or len(t.auth) != p.AUTH_SIZE:
            self.auth_failed()
            return False
        mac_key = self.mac_keys.get(key)
        if mac_key is not None:
            if verify(mac_key, self.session_id, t.signed, t.auth):
                return True
            self.auth_failed()
            return False
        # an X25519 and an HKDF (about 50 µs): every failure counts towards
        # `max_auth_failures`, so one connection cannot make the relay do many for nothing
        try:
            mac_key = derive_mac_key(self.session_key, key, self.session_id)
        except ValueError:
            self.auth_failed()
            return False
        if not verify(mac_key, self.session_id, t.signed, t.auth):
            self.auth_failed()
            return False
        # cached only once proven, so garbage authenticators cannot grow the cache
        self.mac_keys[key] = mac_key
        return True

    def auth_failed(self) -> None:
        self.auth_failures += 1
        self.relay.stats.auth_failures += 1
        if self.auth_failures >= self.relay.config.max_auth_failures:
            self.closing = True

    def answer(self, counter: str, corr_id: bytes, entity_id: bytes, resp: p.Response) -> None:
        """A successful answer, counted under `counter` ("SEND:OK", ...)."""
        commands = self.relay.stats.commands
        commands[counter] = commands.get(counter, 0) + 1
        self.send(corr_id, entity_id, resp)

    def send(self, corr_id: bytes, entity_id: bytes, resp: p.Response) -> None:
        if self.closed:
            return
        t = p.encode_response(corr_id, entity_id, resp)
        self._out.append(t)
        self._out_bytes += len(t)
        if self._out_bytes > self.relay.config.max_pending_output:
            log.warning("closing a client that does not read its responses")
            self.relay.count_closed("slow_reader")
            self.close()
            return
        self._out_ready.set()

    def error(self, kind: str, corr_id: bytes, entity_id: bytes, code: p.ErrorCode) -> None:
        """An ERR answer to a `kind` command ("SEND", ...; "INVALID" if unparsed)."""
        stats = self.relay.stats
        stats.errors[code.value] = stats.errors.get(code.value, 0) + 1
        counter = f"{kind}:{code.value}"
        stats.commands[counter] = stats.commands.get(counter, 0) + 1
        self.send(corr_id, entity_id, p.Err(code))

    def repeated_confirmation(self, corr_id: bytes, entity_id: bytes) -> None:
        """The same answer as `error(CMD_NO_AUTH)`, counted apart from the errors."""
        self.relay.stats.repeated_confirmations += 1
        commands = self.relay.stats.commands
        commands["SEND:REPEATED"] = commands.get("SEND:REPEATED", 0) + 1
        self.send(corr_id, entity_id, p.Err(p.ErrorCode.CMD_NO_AUTH))

    async def flush_and_close(self, error: p.Err | None) -> None:
        """Send what is queued (and a final error, for fatal protocol errors), then close."""
        out, self._out = self._out, []
        if error is not None:
            errors = self.relay.stats.errors
            errors[error.code.value] = errors.get(error.code.value, 0) + 1
            out.append(p.encode_transmission(b"", p.signed_part(b"", b"", p.encode_message(error))))
        with contextlib.suppress(ConnectionError, OSError, TimeoutError):
            self.writer.writelines(p.pack_blocks(out))
            async with asyncio.timeout(2):
                await self.writer.drain()
        self.close()

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            self._out_ready.set()
            self.writer.transport.abort()

    async def write_loop(self) -> None:
        try:
            while not self.closed:
                await self._out_ready.wait()
                self._out_ready.clear()
                if self.closed:
                    break
                out, self._out, self._out_bytes = self._out, [], 0
                if out:
                    self.writer.writelines(p.pack_blocks(out))
                    await self.writer.drain()
        except (ConnectionError, OSError):
            pass
        finally:
            self.close()


class RelayServer:
    """A relay. `await RelayServer(config).start()`, then `.address`; `await .stop()`."""

    def __init__(self, config: RelayConfig, store: QueueStore | None = None) -> None:
        self.config = config
        self.stats = RelayStats()
        self._store = store
        self.identity: RelayIdentity | None = None
        self._by_recipient: dict[bytes, QueueState] = {}
        self._by_sender: dict[bytes, QueueState] = {}
        self._sessions: set[Session] = set()
        # accepted sockets still in their TLS handshake
        self._handshaking: set[socket.socket] = set()
        # connections (handshakes included) per address_key()
        self._per_address: dict[str, int] = {}
        self._tls: ssl.SSLContext | None = None
        self._stopping = False
        self._listeners: list[socket.socket] = []
        self._acceptors: list[asyncio.Task[None]] = []
        self._committer: GroupCommitter | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._maintenance: asyncio.Task[None] | None = None
        self.port = config.port
        self._msg_ids = RandomIds()
        self.cache = BodyCache(config.cache_bytes)
        self._uncommitted_bytes = 0  # bodies of SENDs accepted, not yet committed
        self._password = config.create_password.encode() if config.create_password else None
        # the connection limit in force: `max_connections`, lowered to fit the open files
        self.max_connections = config.max_connections
        self.open_files: int | None = None  # the soft open-file limit seen at start
        self._accept_log_next = 0.0  # when the next accept failure may be logged
        self._accept_errors_logged = 0
        self._room = 0  # connections admitted by `_make_room` still to come
        self._next_shed = 0.0  # the next `_make_room` scan, at the earliest
        self._metrics: Any = None  # the metrics endpoint (metrics.MetricsServer), if on
        self.metrics_port: int | None = None

    # ------------------------------------------------------------ life cycle

    def snapshot(self) -> RelayStats:
        """A copy of the counters, with the store's commit counts filled in."""
        st = RelayStats(
            **{
                **self.stats.__dict__,
                "errors": dict(self.stats.errors),
                "commands": dict(self.stats.commands),
                "connections_closed": dict(self.stats.connections_closed),
            }
        )
        st.cache_bytes = self.cache.bytes
        st.max_connections = self.max_connections
        if self._committer is not None:
            st.commits = self._committer.commits
            st.operations_committed = self._committer.ops_committed
        return st

    @property
    def committer(self) -> GroupCommitter | None:
        return self._committer

    @property
    def address(self) -> RelayAddress:
        assert self.identity is not None, "relay not started"
        host = self.config.public_host or self.config.host
        return RelayAddress(
            self.identity.fingerprint,
            host,
            self.config.public_port or self.port,
            self.config.create_password or "",
        )

    async def start(self) -> None:
        store_dir = Path(self.config.store)
        self.identity = await asyncio.to_thread(load_or_create_identity, store_dir)
        self._limit_connections()
        if self._store is None and self.config.database_url:
            from parley.relay.postgres import PostgresQueueStore

            self._store = await PostgresQueueStore.open(self.config.database_url)
        if self._store is None:
            self._store = await SqliteQueueStore.open(store_dir / DB_FILE)
        await self._load()
        self._committer = GroupCommitter(self._store)
        self._committer.start()
        self._expire(now_ms())
        self._tls = self.identity.server_context()
        self._stopping = False
        # the relay accepts by itself, so that a connection is its own from the first byte:
        # its TLS handshake runs in an `_accept` task, which stop() can end
        self._listeners = await self._listen()
        self.port = self._listeners[0].getsockname()[1]
        self._acceptors = [
            asyncio.create_task(self._accept_loop(sock), name="relay-accept")
            for sock in self._listeners
        ]
        self._maintenance = asyncio.create_task(self._maintain(), name="relay-maintenance")
        if self.config.metrics_port is not None:
            from parley.relay.metrics import MetricsServer

            self._metrics = await MetricsServer.start(
                self, self.config.metrics_host, self.config.metrics_port
            )
            self.metrics_port = self._metrics.port
        log.info("relay listening at %s", self.address)

    def _limit_connections(self) -> None:
        limits = open_file_limits()
        self.open_files = limits[0] if limits is not None else None
        budget = connection_budget(self.open_files)
        configured = self.config.max_connections
        self.max_connections = min(configured, budget) if budget is not None else configured
        self.stats.max_connections = self.max_connections
        log.info(
            "open-file limit %s: at most %d connections (%d configured)",
            self.open_files,
            self.max_connections,
            configured,
        )

    async def stop(self) -> None:
        """Stop accepting, close every connection (those still in their TLS handshake
        too), commit what is pending, close the store."""
        self._stopping = True
        if self._metrics is not None:
            await self._metrics.close()
            self._metrics = None
        for t in self._acceptors:
            t.cancel()
        await asyncio.gather(*self._acceptors, return_exceptions=True)
        self._acceptors = []
        for sock in self._listeners:
            sock.close()
        self._listeners = []
        for conn in list(self._handshaking):  # their `_accept` tasks are cancelled below
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)
        for s in list(self._sessions):
            s.close()
        if self._maintenance is not None:
            self._maintenance.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._maintenance
        for t in list(self._tasks):
            t.cancel()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._committer is not None:
            await self._committer.stop()
            self._committer = None
        if self._store is not None:
            await self._store.close()
            self._store = None

    async def __aenter__(self) -> RelayServer:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    async def _load(self) -> None:
        assert self._store is not None
        queues, messages = await self._store.load()
        for q in queues:
            self._add_queue(
                QueueState(q.recipient_id, q.sender_id, q.recipient_key, q.sender_key, q.status)
            )
        for m in messages:
            qs = self._by_recipient.get(m.recipient_id)
            if qs is not None:
                qs.messages.append(Stored(m.msg_id, m.ts, m.flags, m.size))
                self.stats.messages_stored += 1
                self.stats.bytes_stored += m.size

    def _add_queue(self, q: QueueState) -> None:
        self._by_recipient[q.recipient_id] = q
        self._by_sender[q.sender_id] = q
        self.stats.queues = len(self._by_recipient)

    def count_closed(self, reason: str) -> None:
        closed = self.stats.connections_closed
        closed[reason] = closed.get(reason, 0) + 1

    async def _maintain(self) -> None:
        cfg = self.config
        shortest = min(cfg.idle_timeout, cfg.idle_unsubscribed_timeout)
        interval = min(cfg.expire_interval, max(shortest / 4, 0.05))
        next_expiry = time.monotonic() + cfg.expire_interval
        while True:
            await asyncio.sleep(interval)
            now = time.monotonic()
            for s in list(self._sessions):
                if now - s.last_active > cfg.idle_timeout:
                    log.info("closing an idle connection")
                    self.count_closed("idle")
                    s.close()
                elif not s.subscriptions and now - s.last_command > cfg.idle_unsubscribed_timeout:
                    log.info("closing an idle connection with no subscription")
                    self.count_closed("idle_unsubscribed")
                    s.close()
            if now >= next_expiry:
                next_expiry = now + cfg.expire_interval
                self._expire(now_ms())

    def _expire(self, now: int) -> None:
        """Drop messages older than the TTL from memory and (in one commit) from the store."""
        cutoff = now - int(self.config.message_ttl * 1000)
        dropped = 0
        for q in self._by_recipient.values():
            head_dropped = False
            while q.messages and q.messages[0].ts < cutoff:
                m = q.messages.popleft()
                self.cache.discard(m.msg_id)
                self.stats.bytes_stored -= m.size
                dropped += 1
                head_dropped = True
            if head_dropped:
                q.delivered = False
                self._deliver(q)
        self.stats.messages_stored -= dropped
        if dropped and self._committer is not None:
            log.info("expired %d messages", dropped)
        if self._committer is not None:
            self._committer.submit(DeleteExpired(cutoff))

    # ------------------------------------------------------------ connections

    async def _listen(self) -> list[socket.socket]:
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

    def _accept_failed(self, e: OSError) -> None:
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

    async def _accept_loop(self, listener: socket.socket) -> None:
        """Accept connections; refuse them once stopping, at `max_connections` (those in
        their handshake included) or at the limit per address; run each in an `_accept`
        task."""
        loop = asyncio.get_running_loop()
        per_address_limit = self.config.max_connections_per_address
        while True:
            try:
                conn, peer = await loop.sock_accept(listener)
            except OSError as e:  # out of file descriptors, say: try again shortly
                self._accept_failed(e)
                await asyncio.sleep(0.1)
                continue
            if self._stopping:
                conn.close()
                return
            key = address_key(peer)
            count = self._per_address.get(key, 0)
            if per_address_limit and count >= per_address_limit:
                self.stats.connections_rejected += 1
                self.stats.connections_rejected_address += 1
                conn.close()
                continue
            if len(self._sessions) + len(self._handshaking) < self.max_connections:
                self._room = 0  # the room made earlier is free for all now
            elif not self._make_room():
                self.stats.connections_rejected += 1
                conn.close()
                continue
            self._per_address[key] = count + 1
            conn.setblocking(False)
            self._handshaking.add(conn)
            task = loop.create_task(self._accept(conn, key))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    def _make_room(self) -> bool:
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
            for s in self._sessions
            if not s.subscriptions and not s.closed and s.last_command <= cutoff
        ]
        if not idle:
            return False
        victims = heapq.nsmallest(
            max(1, self.max_connections // 100), idle, key=lambda s: s.last_command
        )
        for s in victims:
            self.count_closed("shed")
            s.close()
        self._room = len(victims) - 1
        return True

    async def _accept(self, conn: socket.socket, key: str) -> None:
        try:
            await self._connection(conn)
        finally:
            left = self._per_address.get(key, 1) - 1
            if left > 0:
                self._per_address[key] = left
            else:
                self._per_address.pop(key, None)

    async def _connection(self, conn: socket.socket) -> None:
        assert self._tls is not None
        loop = asyncio.get_running_loop()
        reader = asyncio.StreamReader(limit=p.BLOCK_SIZE * 4, loop=loop)
        protocol = asyncio.StreamReaderProtocol(reader, loop=loop)
        try:
            # (cancelled by stop(), or failing, it closes the connection)
            transport, _ = await loop.connect_accepted_socket(
                lambda: protocol,
                conn,
                ssl=self._tls,
                ssl_handshake_timeout=self.config.handshake_timeout,
            )
        except (ConnectionError, OSError, asyncio.CancelledError):
            conn.close()
            return
        finally:
            self._handshaking.discard(conn)
        if self._stopping:  # the handshake finished as the relay was stopping
            transport.abort()
            return
        writer = asyncio.StreamWriter(transport, protocol, reader, loop)
        session = Session(self, reader, writer)
        self._sessions.add(session)
        self.stats.connections = len(self._sessions)
        self.stats.connections_total += 1
        writer_task: asyncio.Task[None] | None = None
        try:
            if not await self._handshake(session):
                return
            writer_task = asyncio.create_task(session.write_loop())
            await self._read_loop(session)
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
            self._drop_session(session)

    async def _handshake(self, s: Session) -> bool:
        assert self.identity is not None
        hello = p.ServerHello(
            p.MIN_VERSION, p.MAX_VERSION, s.session_id, s.session_public, self.identity.ca_der
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

    async def _read_loop(self, s: Session) -> None:
        while not s.closed:
            block = await s.reader.readexactly(p.BLOCK_SIZE)
            s.last_active = time.monotonic()
            try:
                transmissions = p.decode_block(block)
            except p.ProtocolError:
                self.count_closed("bad_block")
                await s.flush_and_close(p.Err(p.ErrorCode.BLOCK))
                return
            for raw in transmissions:
                self._handle(s, raw)
                if s.closing:
                    # the rest of the block is not looked at: its authenticators cost work
                    log.info("closing a connection after %d failed authenticators", s.auth_failures)
                    self.count_closed("auth_failures")
                    await s.flush_and_close(None)
                    return

    def _drop_session(self, s: Session) -> None:
        self._sessions.discard(s)
        self.stats.connections = len(self._sessions)
        for rid in s.subscriptions:
            q = self._by_recipient.get(rid)
            if q is not None and q.subscriber is s:
                q.subscriber = None
                q.delivered = False
        s.subscriptions.clear()

    # ------------------------------------------------------------ commands

    def _handle(self, s: Session, raw: bytes) -> None:
        try:
            t = p.decode_transmission(raw)
        except p.ProtocolError as e:
            s.error("INVALID", b"", b"", e.code)
            return
        try:
            cmd = p.decode_command(t.command)
        except p.ProtocolError as e:
            s.error("INVALID", t.corr_id, t.entity_id, e.code)
            return
        match cmd:
            case p.Send():
                s.last_command = s.last_active
                self._send(s, t, cmd)
            case p.Ack():
                s.last_command = s.last_active
                self._ack(s, t, cmd)
            case p.Ping():
                if t.entity_id or t.auth:
                    s.error("PING", t.corr_id, t.entity_id, p.ErrorCode.CMD_PROHIBITED)
                else:
                    s.answer("PING:OK", t.corr_id, b"", p.PONG)
            case p.New():
                s.last_command = s.last_active
                self._new(s, t, cmd)
            case _:
                s.last_command = s.last_active
                kind = _KIND[type(cmd)]
                q = self._recipient_queue(s, t, kind)
                if q is None:
                    return
                match cmd:
                    case p.Sub():
                        self._sub(s, t, q)
                    case p.Key():
                        self._key(s, t, q, cmd)
                    case p.Get():
                        self._get(s, t, q)
                    case p.Off():
                        self._off(s, t, q)
                    case p.Del():
                        self._del(s, t, q)

    def _recipient_queue(self, s: Session, t: p.Transmission, kind: str) -> QueueState | None:
        """The queue a recipient command is for, if it exists and the command is authorized."""
        if not t.entity_id:
            s.error(kind, t.corr_id, t.entity_id, p.ErrorCode.CMD_NO_ENTITY)
            return None
        if not t.auth:
            s.error(kind, t.corr_id, t.entity_id, p.ErrorCode.CMD_NO_AUTH)
            return None
        q = self._by_recipient.get(t.entity_id)
        if q is None or q.deleting:
            s.error(kind, t.corr_id, t.entity_id, p.ErrorCode.NO_QUEUE)
            return None
        if not s.authorized(q.recipient_key, t):
            s.error(kind, t.corr_id, t.entity_id, p.ErrorCode.AUTH)
            return None
        return q

    def _commit(self, op: StoreOp, done: Done | None = None) -> None:
        assert self._committer is not None
        self._committer.submit(op, done)

    def _new(self, s: Session, t: p.Transmission, cmd: p.New) -> None:
        if t.entity_id:
            s.error("NEW", t.corr_id, t.entity_id, p.ErrorCode.CMD_PROHIBITED)
            return
        if not t.auth:
            s.error("NEW", t.corr_id, b"", p.ErrorCode.CMD_NO_AUTH)
            return
        # the cheap checks first: the authenticator costs an X25519
        if self._password is not None and not hmac.compare_digest(cmd.password, self._password):
            s.auth_failed()
            s.error("NEW", t.corr_id, b"", p.ErrorCode.AUTH)
            return
        max_queues = self.config.max_queues
        if max_queues is not None and len(self._by_recipient) >= max_queues:
            s.error("NEW", t.corr_id, b"", p.ErrorCode.QUOTA)
            return
        if len(cmd.recipient_key) != p.KEY_SIZE or not s.authorized(cmd.recipient_key, t):
            s.error("NEW", t.corr_id, b"", p.ErrorCode.AUTH)
            return
        rid, sid = secrets.token_bytes(p.QUEUE_ID_SIZE), secrets.token_bytes(p.QUEUE_ID_SIZE)
        while rid in self._by_recipient or sid in self._by_sender or rid == sid:
            rid, sid = secrets.token_bytes(p.QUEUE_ID_SIZE), secrets.token_bytes(p.QUEUE_ID_SIZE)
        record = QueueRecord(rid, sid, cmd.recipient_key, None, "active", now_ms())
        q = QueueState(rid, sid, cmd.recipient_key, None, "active")
        self._add_queue(q)  # ids are unknown to anyone until IDS is sent after the commit

        def done(error: BaseException | None) -> None:
            if error is None:
                s.answer("NEW:OK", t.corr_id, b"", p.Ids(rid, sid))
            else:
                self._forget(q)
                s.error("NEW", t.corr_id, b"", p.ErrorCode.INTERNAL)

        self._commit(CreateQueue(record), done)

    def _forget(self, q: QueueState) -> None:
        self._by_recipient.pop(q.recipient_id, None)
        self._by_sender.pop(q.sender_id, None)
        self.stats.queues = len(self._by_recipient)
        self.stats.messages_stored -= len(q.messages)
        for m in q.messages:
            self.cache.discard(m.msg_id)
            self.stats.bytes_stored -= m.size
        q.messages.clear()
        if q.subscriber is not None:
            q.subscriber.subscriptions.discard(q.recipient_id)
            q.subscriber = None
        gets, q.gets = q.gets, []
        for s, t in gets:
            s.error("GET", t.corr_id, t.entity_id, p.ErrorCode.NO_QUEUE)

    def _sub(self, s: Session, t: p.Transmission, q: QueueState) -> None:
        old = q.subscriber
        if old is not None and old is not s:
            old.subscriptions.discard(q.recipient_id)
            old.send(b"", q.recipient_id, p.END)
        q.subscriber = s
        s.subscriptions.add(q.recipient_id)
        q.delivered = False
        s.answer("SUB:OK", t.corr_id, t.entity_id, p.OK)
        self._deliver(q)

    def _head_body(self, q: QueueState, fetched: dict[bytes, bytes] | None) -> bytes | None:
        msg_id = q.messages[0].msg_id
        body = self.cache.get(msg_id)
        if body is None and fetched is not None:
            body = fetched.get(msg_id)
        return body

    def _deliver(self, q: QueueState, fetched: dict[bytes, bytes] | None = None) -> None:
        """Push the head message to the subscriber unless one is already awaiting ACK (its
        body is read from the store first if it is not in the cache)."""
        s = q.subscriber
        if s is None or q.delivered or not q.messages:
            return
        head = q.messages[0]
        body = self.cache._bodies.get(head.msg_id)
        if body is None and fetched is not None:
            body = fetched.get(head.msg_id)
        if body is None:
            self._fetch(q)
            return
        q.delivered = True
        self.stats.messages_delivered += 1
        s.send(b"", q.recipient_id, p.Msg(head.msg_id, head.ts, head.flags, body))

    def _fetch(self, q: QueueState) -> None:
        """Read the bodies at the head of the queue from the store (once at a time)."""
        if q.fetching or self._store is None:
            return
        q.fetching = True
        task = asyncio.get_running_loop().create_task(self._read_bodies(q))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _read_bodies(self, q: QueueState) -> None:
        assert self._store is not None
        wanted = [
            m.msg_id
            for m in itertools.islice(q.messages, FETCH_AHEAD)
            if m.msg_id not in self.cache
        ]
        try:
            fetched = await self._store.read_bodies(q.recipient_id, wanted)
        except asyncio.CancelledError:
            q.fetching = False
            raise
        except Exception as e:
            q.fetching = False
            log.error("relay store read failed: %s", e)
            gets, q.gets = q.gets, []
            for s, t in gets:
                s.error("GET", t.corr_id, t.entity_id, p.ErrorCode.INTERNAL)
            return
        q.fetching = False
        if self._by_recipient.get(q.recipient_id) is not q:
            return
        for msg_id, body in fetched.items():
            self.cache.put(msg_id, body)
        # a message the store does not have (it cannot happen, but must not stall the queue)
        asked = set(wanted)
        while q.messages and q.messages[0].msg_id in asked and q.messages[0].msg_id not in fetched:
            lost = q.messages.popleft()
            log.error("relay store lost a message body; dropping the message")
            self.stats.messages_stored -= 1
            self.stats.bytes_stored -= lost.size
            q.delivered = False
        self._answer_gets(q, fetched)
        self._deliver(q, fetched)

    def _answer_gets(self, q: QueueState, fetched: dict[bytes, bytes] | None) -> None:
        gets, q.gets = q.gets, []
        for i, (s, t) in enumerate(gets):
            if s.closed:
                continue
            if not q.messages:
                s.error("GET", t.corr_id, t.entity_id, p.ErrorCode.NO_MSG)
                continue
            body = self._head_body(q, fetched)
            if body is None:  # the head changed meanwhile: read again
                q.gets = gets[i:] + q.gets
                self._fetch(q)
                return
            head = q.messages[0]
            q.delivered = True
            s.answer(
                "GET:OK", t.corr_id, t.entity_id, p.Msg(head.msg_id, head.ts, head.flags, body)
            )

    def _key(self, s: Session, t: p.Transmission, q: QueueState, cmd: p.Key) -> None:
        key = cmd.sender_key
        if len(key) != p.KEY_SIZE:
            s.error("KEY", t.corr_id, t.entity_id, p.ErrorCode.CMD_SYNTAX)
            return
        if q.sender_key not in (None, key) or q.securing not in (None, key):
            s.error("KEY", t.corr_id, t.entity_id, p.ErrorCode.AUTH)
            return
        if q.sender_key == key:
            s.answer("KEY:OK", t.corr_id, t.entity_id, p.OK)
            return
        # the key takes effect in memory only once it is committed; a repeat while the
        # first is in flight is answered after its own (later) commit
        q.securing = key

        def done(error: BaseException | None) -> None:
            if error is None:
                q.sender_key = key
                s.answer("KEY:OK", t.corr_id, t.entity_id, p.OK)
            else:
                s.error("KEY", t.corr_id, t.entity_id, p.ErrorCode.INTERNAL)
            if q.securing == key and (error is None or q.sender_key is None):
                q.securing = None

        self._commit(SecureQueue(q.recipient_id, key), done)

    def _get(self, s: Session, t: p.Transmission, q: QueueState) -> None:
        if not q.messages:
            s.error("GET", t.corr_id, t.entity_id, p.ErrorCode.NO_MSG)
            return
        q.gets.append((s, t))
        if q.fetching:  # answered when the read ends
            return
        if self._head_body(q, None) is not None:
            self._answer_gets(q, None)
        else:
            self._fetch(q)

    def _off(self, s: Session, t: p.Transmission, q: QueueState) -> None:
        def done(error: BaseException | None) -> None:
            if error is None:
                q.status = "off"
                s.answer("OFF:OK", t.corr_id, t.entity_id, p.OK)
            else:
                s.error("OFF", t.corr_id, t.entity_id, p.ErrorCode.INTERNAL)

        self._commit(SuspendQueue(q.recipient_id), done)

    def _del(self, s: Session, t: p.Transmission, q: QueueState) -> None:
        q.deleting = True  # SENDs from now on get NO_QUEUE; undone if the commit fails

        def done(error: BaseException | None) -> None:
            if error is None:
                self._forget(q)
                s.answer("DEL:OK", t.corr_id, t.entity_id, p.OK)
            else:
                q.deleting = False
                s.error("DEL", t.corr_id, t.entity_id, p.ErrorCode.INTERNAL)

        self._commit(DeleteQueue(q.recipient_id), done)

    def _send(self, s: Session, t: p.Transmission, cmd: p.Send) -> None:
        if not t.entity_id:
            s.error("SEND", t.corr_id, t.entity_id, p.ErrorCode.CMD_NO_ENTITY)
            return
        q = self._by_sender.get(t.entity_id)
        if q is None or q.deleting:
            s.error("SEND", t.corr_id, t.entity_id, p.ErrorCode.NO_QUEUE)
            return
        if q.sender_key is None:
            if t.auth:  # an unsecured queue takes only unauthenticated confirmations
                s.error("SEND", t.corr_id, t.entity_id, p.ErrorCode.AUTH)
                return
        elif not t.auth:  # only confirmations are unsigned: this one came again
            s.repeated_confirmation(t.corr_id, t.entity_id)
            return
        elif not s.authorized(q.sender_key, t):
            s.error("SEND", t.corr_id, t.entity_id, p.ErrorCode.AUTH)
            return
        if q.status != "active":
            s.error("SEND", t.corr_id, t.entity_id, p.ErrorCode.AUTH)
            return
        body = cmd.body
        size = len(body)
        if size > self.config.max_message_body:
            s.error("SEND", t.corr_id, t.entity_id, p.ErrorCode.LARGE_MSG)
            return
        if len(q.messages) + q.uncommitted >= self.config.quota:
            s.error("SEND", t.corr_id, t.entity_id, p.ErrorCode.QUOTA)
            return
        cap = self.config.max_stored_bytes
        if cap is not None and self.stats.bytes_stored + self._uncommitted_bytes + size > cap:
            s.error("SEND", t.corr_id, t.entity_id, p.ErrorCode.QUOTA)
            return
        stored = Stored(self._msg_ids.next(), now_ms(), cmd.flags, size)
        q.uncommitted += 1
        self._uncommitted_bytes += size
        self.stats.messages_sent += 1

        def done(error: BaseException | None) -> None:
            q.uncommitted -= 1
            self._uncommitted_bytes -= size
            if error is not None:
                s.error("SEND", t.corr_id, t.entity_id, p.ErrorCode.INTERNAL)
                return
            if self._by_recipient.get(q.recipient_id) is q:
                q.messages.append(stored)
                self.stats.messages_stored += 1
                self.stats.bytes_stored += size
                self.cache.put(stored.msg_id, body)
                self._deliver(q)
            s.answer("SEND:OK", t.corr_id, t.entity_id, p.OK)

        record = MessageRecord(q.recipient_id, stored.msg_id, stored.ts, stored.flags, body)
        self._commit(AddMessage(record), done)

    def _ack(self, s: Session, t: p.Transmission, cmd: p.Ack) -> None:
        q = self._recipient_queue(s, t, "ACK")
        if q is None:
            return
        if not q.messages or q.messages[0].msg_id != cmd.msg_id:
            s.error("ACK", t.corr_id, t.entity_id, p.ErrorCode.NO_MSG)
            return
        head = q.messages.popleft()
        self.cache.discard(head.msg_id)
        q.delivered = False
        self.stats.messages_stored -= 1
        self.stats.bytes_stored -= head.size
        # An ACK lost in a crash only means the message is delivered again, and receivers
        # dedupe by message id, so the ACK is answered without waiting for its commit.
        self._commit(DeleteMessage(q.recipient_id, cmd.msg_id))
        s.answer("ACK:OK", t.corr_id, t.entity_id, p.OK)
        self._deliver(q)


_KIND: dict[type, str] = {
    p.New: "NEW",
    p.Sub: "SUB",
    p.Key: "KEY",
    p.Send: "SEND",
    p.Ack: "ACK",
    p.Get: "GET",
    p.Off: "OFF",
    p.Del: "DEL",
    p.Ping: "PING",
}

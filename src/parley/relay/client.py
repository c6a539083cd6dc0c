"""The relay client used by agents: one TLS connection per relay, pinned by fingerprint.

Requests are matched to responses by correlation id and batched into blocks; pushed
messages, subscription ends and the connection going down and up arrive as events on a
queue. A lost connection is re-established with backoff and every subscription is renewed.

Nothing here may wait on a dead connection: a command for a connection that is already
closed fails at once (temporarily), every command on a live one is answered or times out,
and a connection lost at any moment fails what is pending on it. Subscriptions are
per connection: the client remembers which queues it wants (`wanted`) and which the relay
has confirmed on the current session (`subscriptions`); every wanted queue that is not
confirmed is subscribed again in the background, without holding up the reconnect.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import ssl
import time
from collections import deque
from collections.abc import Coroutine
from dataclasses import dataclass, field
from typing import Any, TypeVar

from parley.protocol import relay as p
from parley.protocol.address import RelayAddress
from parley.protocol.relay_auth import AuthKey, authenticator, derive_mac_key
from parley.relay.errors import (
    PermanentRelayError,
    RelayError,
    RelayIdentityMismatch,
    TemporaryRelayError,
    error_from_code,
)
from parley.relay.identity import IdentityError, client_context, verify_relay_certificate
from parley.retry import Backoff

log = logging.getLogger(__name__)


# ---------------------------------------------------------------- events


@dataclass(frozen=True)
class RelayUp:
    relay: RelayAddress


@dataclass(frozen=True)
class RelayDown:
    relay: RelayAddress
    reason: str


@dataclass(frozen=True)
class MessageReceived:
    relay: RelayAddress
    recipient_id: bytes
    message: p.Msg


@dataclass(frozen=True)
class SubscriptionEnded:
    """Another client subscribed to the queue (END: `error` is None), or the relay refused
    the subscription for good (`error`). After END the queue stays wanted: it is
    subscribed again on the next connection, or when `keep_subscribed` is called again."""

    relay: RelayAddress
    recipient_id: bytes
    error: RelayError | None = None


RelayEvent = RelayUp | RelayDown | MessageReceived | SubscriptionEnded


@dataclass
class ClientSettings:
    connect_timeout: float = 10.0
    command_timeout: float = 15.0
    ping_interval: float = 30.0
    reconnect: Backoff = field(default_factory=lambda: Backoff(0.5, 1.5, 30.0, 0.25))
    # while work waits for the relay (queues to subscribe, commands tried lately), it is
    # probed this often (±1/3), with a plain TCP connect before each TLS attempt, so that
    # the client is back within about this long of the relay's return, however long the
    # outage was; with nothing waiting the reconnect backoff alone decides
    probe_interval: float = 1.2
    demand_window: float = 120.0  # a command tried this recently counts as waiting work


class _Connection:
    """One live TLS session with a relay."""

    def __init__(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        hello: p.ServerHello,
    ) -> None:
        self.reader = reader
        self.writer = writer
        self.session_id = hello.session_id
        self.session_key = hello.session_key
        self.mac_keys: dict[bytes, bytes] = {}
        self.pending: dict[bytes, asyncio.Future[p.Response]] = {}
        self.deadlines: deque[tuple[float, bytes]] = deque()
        self.out: list[bytes] = []
        self.out_ready = asyncio.Event()
        self.closed = False
        self.last_received = time.monotonic()
        self.tasks: list[asyncio.Task[None]] = []
        # queues the relay confirmed (SUB answered OK) on this session, and SUBs under way
        self.subscribed: set[bytes] = set()
        self.subscribing: set[bytes] = set()

    def mac_key(self, key: AuthKey) -> bytes:
        mk = self.mac_keys.get(key.public)
        if mk is None:
            mk = derive_mac_key(key.private, self.session_key, self.session_id)
            self.mac_keys[key.public] = mk
        return mk

    def fail_pending(self, error: RelayError) -> None:
        for fut in self.pending.values():
            if not fut.done():
                fut.set_exception(error)
        self.pending.clear()


class RelayClient:
    """A client for one relay.

    `events` receives `RelayEvent`s; several clients may share one queue. Commands raise
    `TemporaryRelayError` (retry later) or `PermanentRelayError` (do not).
    """

    def __init__(
        self,
        address: RelayAddress | str,
        *,
        events: asyncio.Queue[RelayEvent] | None = None,
        settings: ClientSettings | None = None,
        connect_to: tuple[str, int] | None = None,
    ) -> None:
        self.address = address if isinstance(address, RelayAddress) else RelayAddress.parse(address)
        self._password = self.address.password.encode()  # for NEW on a relay that asks for it
        self.events: asyncio.Queue[RelayEvent] = events if events is not None else asyncio.Queue()
        self.settings = settings or ClientSettings()
        # where to open the TCP connection, if not the address itself (a proxy in tests)
        self.connect_to = connect_to
        self._conn: _Connection | None = None
        self._connect_lock = asyncio.Lock()
        self._subscriptions: dict[bytes, AuthKey] = {}  # wanted: renewed on every connection
        self._sub_errors: dict[bytes, RelayError] = {}  # the last failure to subscribe each
        self._reconnect_task: asyncio.Task[None] | None = None
        self._background: set[asyncio.Task[None]] = set()
        self._closed = False
        self._corr = 0
        self._last_demand = -float("inf")  # monotonic time a command found no connection
        self._hurry = asyncio.Event()  # work arrived while disconnected: stop backing off
        self._was_up = False
        self.reconnects = 0

    @property
    def connected(self) -> bool:
        return self._conn is not None and not self._conn.closed

    @property
    def subscriptions(self) -> frozenset[bytes]:
        """Queues the relay has confirmed as subscribed on the current connection."""
        conn = self._conn
        if conn is None or conn.closed:
            return frozenset()
        return frozenset(conn.subscribed)

    @property
    def wanted(self) -> frozenset[bytes]:
        """Queues this client keeps subscribed (across reconnects) until told otherwise."""
        return frozenset(self._subscriptions)

    def is_subscribed(self, recipient_id: bytes) -> bool:
        conn = self._conn
        return conn is not None and not conn.closed and recipient_id in conn.subscribed

    def subscription_error(self, recipient_id: bytes) -> RelayError | None:
        """Why the last attempt to subscribe `recipient_id` failed (None once it succeeds)."""
        return self._sub_errors.get(recipient_id)

    # ------------------------------------------------------------ connection

    async def connect(self) -> None:
        """Connect now if not connected (TemporaryRelayError if the relay is unreachable)."""
        if self._closed:
            raise TemporaryRelayError("client closed")
        if self.connected:
            return
        async with self._connect_lock:
            if self.connected:
                return
            conn = await self._open()
            self._conn = conn
            conn.tasks = [
                asyncio.create_task(self._read_loop(conn)),
                asyncio.create_task(self._write_loop(conn)),
                asyncio.create_task(self._ping_loop(conn)),
                asyncio.create_task(self._expire_loop(conn)),
            ]
        self._was_up = True
        self.events.put_nowait(RelayUp(self.address))
        # in the background: a connection lost during the renewal must not hold up connect()
        # (nor the reconnect loop that called it)
        self._resubscribe(conn)

    async def _open(self) -> _Connection:
        host, port = self.connect_to or (self.address.host, self.address.port)
        try:
            async with asyncio.timeout(self.settings.connect_timeout):
                reader, writer = await asyncio.open_connection(
                    host,
                    port,
                    ssl=client_context(),
                    server_hostname=None if self.connect_to else self.address.host,
                    limit=p.BLOCK_SIZE * 4,
                )
                try:
                    hello = p.decode_server_hello(await reader.readexactly(p.BLOCK_SIZE))
                    ssl_object = writer.get_extra_info("ssl_object")
                    leaf = ssl_object.getpeercert(binary_form=True) if ssl_object else None
                    if leaf is None:
                        raise RelayIdentityMismatch("relay presented no certificate")
                    verify_relay_certificate(self.address.fingerprint, hello.ca_certificate, leaf)
                    version = p.agree_version(hello.min_version, hello.max_version)
                    if version is None:
                        raise PermanentRelayError(p.ErrorCode.SESSION, "no common version")
                    writer.write(p.encode_client_hello(p.ClientHello(version)))
                    await writer.drain()
                except BaseException:
                    writer.transport.abort()
                    raise
        except IdentityError as e:
            raise RelayIdentityMismatch(str(e)) from e
        except p.ProtocolError as e:
            raise TemporaryRelayError(f"bad handshake: {e}") from e
        except TimeoutError as e:
            raise TemporaryRelayError("connect timeout") from e
        except (OSError, asyncio.IncompleteReadError, ssl.SSLError) as e:
            raise TemporaryRelayError(f"cannot connect: {e}") from e
        return _Connection(reader, writer, hello)

    def _resubscribe(self, conn: _Connection) -> None:
        for rid in list(self._subscriptions):
            self._ensure_subscribed(conn, rid)

    def _ensure_subscribed(self, conn: _Connection, rid: bytes) -> None:
        """Subscribe `rid` on `conn` in the background unless it is or is being subscribed."""
        if conn.closed or rid in conn.subscribed or rid in conn.subscribing:
            return
        conn.subscribing.add(rid)
        self._spawn(self._subscribe_on(conn, rid))

    async def _subscribe_on(self, conn: _Connection, rid: bytes) -> None:
        attempt = 0
        try:
            while not self._closed and not conn.closed:
                key = self._subscriptions.get(rid)
                if key is None:
                    return
                try:
                    await self._command(p.SUB, rid, key, conn)
                except PermanentRelayError as e:
                    if self._subscriptions.get(rid) is key:
                        self._subscriptions.pop(rid, None)
                    self._sub_errors[rid] = e
                    log.warning("relay %s refused a subscription: %s", self.address, e)
                    self.events.put_nowait(SubscriptionEnded(self.address, rid, e))
                    return
                except TemporaryRelayError as e:
                    # a timeout on a live connection, or the connection was lost (then the
                    # loop ends and the next connection subscribes it again)
                    self._sub_errors[rid] = e
                    attempt += 1
                    await asyncio.sleep(self.settings.reconnect.delay(attempt))
                    continue
                if rid in self._subscriptions:
                    conn.subscribed.add(rid)
                    self._sub_errors.pop(rid, None)
                return
        finally:
            conn.subscribing.discard(rid)

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.create_task(coro)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    def _lost(self, conn: _Connection, reason: str) -> None:
        if conn.closed:
            return
        conn.closed = True
        conn.writer.transport.abort()
        conn.fail_pending(TemporaryRelayError(f"connection lost: {reason}"))
        conn.out_ready.set()
        for t in conn.tasks:
            if t is not asyncio.current_task():
                t.cancel()
        if self._conn is conn:
            self._conn = None
        if self._was_up:
            self._was_up = False
            self.events.put_nowait(RelayDown(self.address, reason))
        # with nothing to do here the client stays disconnected until a command needs it
        if not self._closed and self._reconnect_task is None and self.work_waiting():
            self._reconnect_task = asyncio.create_task(self._reconnect_loop())

    def work_waiting(self) -> bool:
        """Queues to subscribe, or a command that found no connection lately."""
        recent = time.monotonic() - self._last_demand < self.settings.demand_window
        return bool(self._subscriptions) or recent

    def _demand(self) -> None:
        self._last_demand = time.monotonic()
        self._hurry.set()

    async def _pause(self, attempt: int) -> bool:
        """Wait before reconnect attempt `attempt`: the backoff, cut short to the probe
        interval while work waits. True if the wait was cut short (a probe is due)."""
        backoff = self.settings.reconnect.delay(attempt)
        probe = self.settings.probe_interval * random.uniform(2 / 3, 4 / 3)
        start = time.monotonic()
        while True:
            probing = self.work_waiting() and probe < backoff
            remaining = (probe if probing else backoff) - (time.monotonic() - start)
            if remaining <= 0 or self._closed or self.connected:
                return probing
            self._hurry.clear()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(remaining):
                    await self._hurry.wait()

    async def _reachable(self) -> bool:
        """A plain TCP connect, closed at once: far cheaper for a relay that is down, or
        just back and busy, than a TLS handshake."""
        host, port = self.connect_to or (self.address.host, self.address.port)
        try:
            async with asyncio.timeout(min(self.settings.connect_timeout, 2.0)):
                _, writer = await asyncio.open_connection(host, port)
        except (OSError, TimeoutError):
            return False
        writer.transport.abort()
        return True

    async def _reconnect_loop(self, immediate: bool = False) -> None:
        attempt = 0
        try:
            while not self._closed and not self.connected:
                if attempt and not self.work_waiting():
                    break  # nothing needs this relay any more: connect on the next command
                attempt += 1
                if not (immediate and attempt == 1):
                    probing = await self._pause(attempt)
                    if self._closed or self.connected:
                        break
                    if probing and not await self._reachable():
                        continue
                try:
                    await self.connect()
                    self.reconnects += 1
                except PermanentRelayError as e:
                    log.warning("relay %s: %s", self.address, e)
                except RelayError:
                    pass
                except Exception:  # a bug must not leave the client disconnected for good
                    log.exception("relay %s: connecting failed", self.address)
        finally:
            if self._reconnect_task is asyncio.current_task():
                self._reconnect_task = None

    async def close(self) -> None:
        self._closed = True
        for task in list(self._background):
            task.cancel()
        if self._reconnect_task is not None:
            self._reconnect_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reconnect_task
        conn = self._conn
        if conn is not None:
            self._lost(conn, "closed")
            await asyncio.gather(*conn.tasks, return_exceptions=True)

    def drop_connection(self) -> None:
        """Close the current connection as if the network failed (it will reconnect)."""
        if self._conn is not None:
            self._lost(self._conn, "dropped")

    # ------------------------------------------------------------ loops

    async def _read_loop(self, conn: _Connection) -> None:
        reason = "closed by relay"
        try:
            while True:
                block = await conn.reader.readexactly(p.BLOCK_SIZE)
                conn.last_received = time.monotonic()
                for raw in p.decode_block(block):
                    self._received(conn, raw)
        except asyncio.CancelledError:
            raise
        except (OSError, asyncio.IncompleteReadError, ssl.SSLError) as e:
            reason = f"network: {e.__class__.__name__}"
        except p.ProtocolError as e:
            reason = f"bad block from relay: {e}"
        self._lost(conn, reason)

    def _received(self, conn: _Connection, raw: bytes) -> None:
        try:
            t = p.decode_transmission(raw)
            resp = p.decode_response(t.command)
        except p.ProtocolError as e:
            log.warning("relay %s sent a bad transmission: %s", self.address, e)
            return
        if t.corr_id:
            fut = conn.pending.pop(t.corr_id, None)
            if fut is not None and not fut.done():
                fut.set_result(resp)
            return
        match resp:
            case p.Msg():
                self.events.put_nowait(MessageReceived(self.address, t.entity_id, resp))
            case p.End():
                # another client took the queue; it stays wanted (renewed on the next
                # connection or the next keep_subscribed), but is not ours on this session
                conn.subscribed.discard(t.entity_id)
                self.events.put_nowait(SubscriptionEnded(self.address, t.entity_id))
            case p.Err(code):
                log.warning("relay %s: error %s", self.address, code)
            case _:
                pass

    async def _write_loop(self, conn: _Connection) -> None:
        try:
            while not conn.closed:
                await conn.out_ready.wait()
                conn.out_ready.clear()
                out, conn.out = conn.out, []
                if out:
                    conn.writer.writelines(p.pack_blocks(out))
                    await conn.writer.drain()
        except asyncio.CancelledError:
            raise
        except (OSError, ssl.SSLError) as e:
            self._lost(conn, f"network: {e.__class__.__name__}")

    async def _expire_loop(self, conn: _Connection) -> None:
        """Fail commands that got no answer within `command_timeout` (temporary error)."""
        tick = max(0.01, min(1.0, self.settings.command_timeout / 10))
        while not conn.closed:
            await asyncio.sleep(tick)
            now = time.monotonic()
            # answered commands leave their deadline behind: drop those on the way too
            while conn.deadlines and (
                conn.deadlines[0][0] <= now or conn.deadlines[0][1] not in conn.pending
            ):
                deadline, corr_id = conn.deadlines.popleft()
                if deadline > now:
                    continue
                fut = conn.pending.pop(corr_id, None)
                if fut is not None and not fut.done():
                    fut.set_exception(TemporaryRelayError("command timeout"))

    async def _ping_loop(self, conn: _Connection) -> None:
        interval = self.settings.ping_interval
        while not conn.closed:
            await asyncio.sleep(interval)
            if time.monotonic() - conn.last_received < interval:
                continue
            try:
                await self._command(p.PING, b"", None, conn)
            except TemporaryRelayError:
                self._lost(conn, "ping timeout")
                return
            except RelayError:
                pass

    # ------------------------------------------------------------ commands

    async def _command(
        self, cmd: p.Command, entity_id: bytes, key: AuthKey | None, conn: _Connection | None = None
    ) -> p.Response:
        if conn is None:
            if not self.connected:
                self._demand()
                try:
                    await self.connect()
                except RelayError:
                    self.keep_connected(immediate=False)  # probe until it is back: UP
                    raise
            conn = self._conn
            if conn is None:
                raise TemporaryRelayError("not connected")
        if conn.closed:  # its pending commands were failed already: nothing would answer
            raise TemporaryRelayError("connection lost")
        self._corr += 1
        corr_id = self._corr.to_bytes(8, "big")
        signed = p.signed_part(corr_id, entity_id, p.encode_message(cmd))
        auth = authenticator(conn.mac_key(key), conn.session_id, signed) if key else b""
        t = p.encode_transmission(auth, signed)
        fut: asyncio.Future[p.Response] = asyncio.get_running_loop().create_future()
        conn.pending[corr_id] = fut
        # one timer task per connection expires commands (cheaper than a timer each)
        conn.deadlines.append((time.monotonic() + self.settings.command_timeout, corr_id))
        conn.out.append(t)
        conn.out_ready.set()
        resp = await fut
        if isinstance(resp, p.Err):
            raise error_from_code(resp.code)
        return resp

    async def create_queue(self, recipient_key: AuthKey) -> p.Ids:
        """NEW: a queue authenticated by `recipient_key`; returns its two ids."""
        resp = await self._command(p.New(recipient_key.public, self._password), b"", recipient_key)
        return _expect(resp, p.Ids)

    async def subscribe(self, recipient_id: bytes, key: AuthKey) -> None:
        """SUB now, and keep the queue subscribed after every reconnect until `unsubscribe`."""
        conn = await self._current()
        self._subscriptions[recipient_id] = key
        try:
            _expect(await self._command(p.SUB, recipient_id, key, conn), p.Ok)
        except PermanentRelayError as e:
            if self._subscriptions.get(recipient_id) is key:
                self._subscriptions.pop(recipient_id, None)
            self._sub_errors[recipient_id] = e
            raise
        if recipient_id in self._subscriptions:
            conn.subscribed.add(recipient_id)
            self._sub_errors.pop(recipient_id, None)

    async def renew(self, recipient_id: bytes, key: AuthKey) -> None:
        """SUB again now even if the client believes the queue is subscribed (the relay
        then pushes the queue's first message again, if it has one)."""
        await self.subscribe(recipient_id, key)

    def keep_subscribed(self, recipient_id: bytes, key: AuthKey) -> None:
        """Subscribe in the background and renew after every reconnect (no waiting, no errors).

        Nothing happens if the queue is subscribed on the current connection already. If the
        relay is unreachable the client keeps trying to connect, with backoff; a permanent
        refusal arrives as `SubscriptionEnded` with the error.
        """
        self._subscriptions[recipient_id] = key
        conn = self._conn
        if conn is not None and not conn.closed:
            self._ensure_subscribed(conn, recipient_id)
        else:
            self._hurry.set()
            self.keep_connected()

    async def _current(self) -> _Connection:
        if not self.connected:
            await self.connect()
        conn = self._conn
        if conn is None or conn.closed:
            raise TemporaryRelayError("not connected")
        return conn

    def keep_connected(self, immediate: bool = True) -> None:
        """Connect in the background, retrying with backoff until connected or closed (or,
        after the first attempt, until no work waits for this relay)."""
        if not self._closed and not self.connected and self._reconnect_task is None:
            self._reconnect_task = asyncio.create_task(self._reconnect_loop(immediate))

    def unsubscribe(self, recipient_id: bytes) -> None:
        """Stop renewing `recipient_id` (the relay is not told; DEL or another SUB ends it)."""
        self._subscriptions.pop(recipient_id, None)
        self._sub_errors.pop(recipient_id, None)
        if self._conn is not None:
            self._conn.subscribed.discard(recipient_id)

    async def secure(self, recipient_id: bytes, key: AuthKey, sender_key: bytes) -> None:
        _expect(await self._command(p.Key(sender_key), recipient_id, key), p.Ok)

    async def send(
        self, sender_id: bytes, key: AuthKey | None, body: bytes, flags: int = 0
    ) -> None:
        """SEND (unauthenticated when `key` is None: only to a queue not yet secured)."""
        _expect(await self._command(p.Send(flags, body), sender_id, key), p.Ok)

    async def ack(self, recipient_id: bytes, key: AuthKey, msg_id: bytes) -> None:
        _expect(await self._command(p.Ack(msg_id), recipient_id, key), p.Ok)

    async def get(self, recipient_id: bytes, key: AuthKey) -> p.Msg | None:
        try:
            resp = await self._command(p.GET, recipient_id, key)
        except PermanentRelayError as e:
            if e.code == p.ErrorCode.NO_MSG:
                return None
            raise
        return _expect(resp, p.Msg)

    async def suspend(self, recipient_id: bytes, key: AuthKey) -> None:
        _expect(await self._command(p.OFF, recipient_id, key), p.Ok)

    async def delete(self, recipient_id: bytes, key: AuthKey) -> None:
        _expect(await self._command(p.DEL, recipient_id, key), p.Ok)
        self.unsubscribe(recipient_id)

    async def ping(self) -> None:
        _expect(await self._command(p.PING, b"", None), p.Pong)


R = TypeVar("R", p.Ids, p.Msg, p.Ok, p.Pong)


def _expect(resp: p.Response, kind: type[R]) -> R:
    if not isinstance(resp, kind):
        raise PermanentRelayError(p.ErrorCode.CMD_SYNTAX, f"unexpected response {resp!r}")
    return resp

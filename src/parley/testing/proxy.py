"""A fault-injecting TCP proxy for testing deployments under bad networks.

:class:`FaultProxy` listens on a local port and forwards every accepted
connection (a *link*) to a target, usually a relay. It copies raw bytes in
both directions and never looks inside them, so TLS passes through untouched.
While links are running, a test can switch faults on and off:

* :meth:`FaultProxy.cut` aborts every current link at once;
* :meth:`FaultProxy.refuse` resets new connections as soon as they arrive;
* :meth:`FaultProxy.blackhole` silently drops bytes in both directions;
* :meth:`FaultProxy.delay` delivers every chunk late, keeping its order;
* :meth:`FaultProxy.cut_random` cuts a seeded random share of new links, after a
  uniformly or exponentially distributed time;
* :meth:`FaultProxy.refuse_random` resets a seeded random share of new connections;
* :meth:`FaultProxy.cancel_planned_cuts` cancels the random cuts planned so far;
* :meth:`FaultProxy.heal` switches every fault off.

Everything runs on the current asyncio event loop. The fault switches are
plain (synchronous) methods that take effect immediately, so a test can flip
them between two awaits without races.

Example::

    async with FaultProxy("127.0.0.1", relay_port, seed=1) as proxy:
        agent = await connect_agent(*proxy.address)
        proxy.cut()
        await wait_for_condition(lambda: agent.connected, message="no reconnect")
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import logging
import os
import random
import socket
import struct
from collections.abc import Coroutine
from dataclasses import dataclass, field, replace
from types import TracebackType
from typing import Any, Self, TypeVar

__all__ = ["FaultProxy", "ProxyStats"]

log = logging.getLogger(__name__)

_T = TypeVar("_T")

#: Largest chunk read from one side in one go.
CHUNK_SIZE = 64 * 1024
#: Chunks that may wait between reading one side and writing the other, per
#: direction. Together with :data:`CHUNK_SIZE` it bounds the memory a link
#: uses when one side reads more slowly than the other writes.
QUEUE_CHUNKS = 16


@dataclass(slots=True)
class ProxyStats:
    """Counters of a :class:`FaultProxy`, updated live as it runs.

    Use :meth:`snapshot` for a copy that no longer changes.
    """

    #: Connections that became links (refused ones are not counted here).
    links_accepted: int = 0
    #: Connections reset on arrival, by :meth:`FaultProxy.refuse` or at random.
    links_refused: int = 0
    #: The part of ``links_refused`` chosen by :meth:`FaultProxy.refuse_random`.
    random_refusals: int = 0
    #: Links aborted by :meth:`FaultProxy.cut` or by a random cut.
    links_cut: int = 0
    #: The part of ``links_cut`` done by :meth:`FaultProxy.cut_random`.
    random_cuts: int = 0
    #: Links closed because the target could not be reached.
    target_failures: int = 0
    #: Bytes delivered from clients to the target.
    bytes_up: int = 0
    #: Bytes delivered from the target to clients.
    bytes_down: int = 0
    #: Bytes thrown away by the blackhole (both directions).
    bytes_dropped: int = 0
    #: ``links_cut + links_refused``: every fault that hit a connection.
    faults_injected: int = 0

    def snapshot(self) -> ProxyStats:
        """Return an independent copy of the current values."""
        return replace(self)


class _End(enum.Enum):
    """How one direction of a link ended."""

    EOF = "eof"  # the sending side closed cleanly
    RESET = "reset"  # reading the sending side failed
    ERROR = "error"  # writing the receiving side failed


_Item = tuple[float, bytes | _End]  # (delivery time, chunk or end marker)


@dataclass(eq=False, slots=True)
class _Link:
    serial: int
    client_reader: asyncio.StreamReader
    client_writer: asyncio.StreamWriter
    target_writer: asyncio.StreamWriter | None = None
    task: asyncio.Task[None] | None = None
    cut_timer: asyncio.TimerHandle | None = None
    parts: set[asyncio.Task[Any]] = field(default_factory=set)
    closed: bool = False

    def abort(self) -> None:
        """Drop both connections at once, without flushing anything."""
        self.client_writer.transport.abort()
        if self.target_writer is not None:
            self.target_writer.transport.abort()

    def close(self) -> None:
        """Close both connections after flushing what is already written."""
        self.client_writer.close()
        if self.target_writer is not None:
            self.target_writer.close()


class FaultProxy:
    """Forward TCP connections to a target while injecting faults on demand.

    ``target_host``/``target_port`` is where links are forwarded to (see
    :meth:`retarget`). The proxy listens on ``listen_host``/``listen_port``;
    with the default port 0 the system picks a free one, readable from
    :attr:`port` after :meth:`start`. ``seed`` seeds the random generators
    used by :meth:`cut_random` and :meth:`refuse_random`, making their
    choices reproducible.
    ``connect_timeout`` bounds how long a link waits for the target to
    accept before it is closed.
    """

    def __init__(
        self,
        target_host: str,
        target_port: int,
        *,
        listen_host: str = "127.0.0.1",
        listen_port: int = 0,
        seed: int | None = None,
        connect_timeout: float = 10.0,
    ) -> None:
        self._target = (target_host, target_port)
        self._listen = (listen_host, listen_port)
        self._connect_timeout = connect_timeout
        self._rng = random.Random(seed)
        # refusals draw from their own generator: switching them on or off does not
        # change which links cut_random chooses among those accepted
        self._refuse_rng = random.Random(None if seed is None else f"refuse:{seed}")
        self._server: asyncio.Server | None = None
        self._bound: tuple[str, int] | None = None
        self._stopped = False
        self._links: dict[int, _Link] = {}
        self._serial = 0
        self._tasks: set[asyncio.Task[Any]] = set()
        # Fault modes.
        self._refusing = False
        self._blackholed = False
        self._flowing = asyncio.Event()  # set while not blackholed
        self._flowing.set()
        self._delay = 0.0
        self._cut_share = 0.0
        self._cut_after = (0.0, 1.0)
        self._cut_mean: float | None = None
        self._refuse_share = 0.0
        #: Live counters; see :class:`ProxyStats`.
        self.stats = ProxyStats()
        #: ``(link serial, seconds)`` for every link :meth:`cut_random` chose,
        #: in the order they were chosen. Serials count accepted links from 1.
        self.planned_cuts: list[tuple[int, float]] = []

    # -- lifecycle ---------------------------------------------------------

    async def start(self) -> None:
        """Bind the listening socket and start accepting connections."""
        if self._server is not None or self._stopped:
            raise RuntimeError("a FaultProxy can only be started once")
        host, port = self._listen
        loop = asyncio.get_running_loop()
        # Bind one socket ourselves: letting start_server resolve a name like
        # "localhost" could bind several sockets, each on its own port.
        family, kind, proto, _, sockaddr = (
            await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
        )[0]
        sock = socket.socket(family, kind, proto)
        try:
            if os.name == "posix":
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind(sockaddr)
            sock.setblocking(False)
            self._server = await asyncio.start_server(self._on_accept, sock=sock)
        except BaseException:
            sock.close()
            raise
        bound = sock.getsockname()
        self._bound = (str(bound[0]), int(bound[1]))
        log.debug("fault proxy listening on %s:%d -> %s:%d", *self._bound, *self._target)

    async def stop(self) -> None:
        """Stop listening, abort every link and wait for all internal tasks.

        Safe to call more than once, and before :meth:`start`.
        """
        if self._stopped:
            return
        self._stopped = True
        server, self._server = self._server, None
        if server is not None:
            server.close()
        for link in list(self._links.values()):
            self._kill(link)
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        if server is not None:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(5.0):
                    await server.wait_closed()
        log.debug("fault proxy stopped; stats %s", self.stats)

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    @property
    def port(self) -> int:
        """The bound listening port; it never changes while the proxy runs."""
        return self.address[1]

    @property
    def address(self) -> tuple[str, int]:
        """``(host, port)`` that clients should connect to."""
        if self._bound is None:
            raise RuntimeError("the proxy is not started")
        return self._bound

    @property
    def target(self) -> tuple[str, int]:
        """``(host, port)`` new links are forwarded to."""
        return self._target

    @property
    def links(self) -> int:
        """How many links are currently open."""
        return len(self._links)

    def retarget(self, host: str, port: int) -> None:
        """Forward new links to ``host:port``; existing links keep their target."""
        self._target = (host, port)

    # -- faults ------------------------------------------------------------

    def cut(self) -> int:
        """Abort every current link on both sides; return how many were cut.

        Both the client and the target see their connection end at once
        (EOF, or a reset if they had unread data). New connections are
        unaffected.
        """
        links = list(self._links.values())
        for link in links:
            self._kill(link)
        self.stats.links_cut += len(links)
        self.stats.faults_injected += len(links)
        if links:
            log.debug("cut %d link(s)", len(links))
        return len(links)

    def refuse(self, on: bool = True) -> None:
        """Reset new connections on arrival while ``on``; existing links go on.

        The listening socket stays open (so :attr:`port` never changes):
        the connection is accepted and immediately reset, so a client sees
        its connect or TLS handshake fail with a reset, or EOF on first read.
        Refused connections never reach the target.
        """
        self._refusing = on

    def blackhole(self, on: bool = True) -> None:
        """Drop all forwarded bytes while ``on``, like a silent partition.

        Links stay open, and new connections are accepted and connected to
        the target, but nothing is delivered in either direction. Bytes that
        would be delivered meanwhile are lost for good. A close by one side
        is held back as well and passed on once the blackhole is switched off.
        """
        self._blackholed = on
        if on:
            self._flowing.clear()
        else:
            self._flowing.set()

    def delay(self, seconds: float) -> None:
        """Deliver every chunk read from now on ``seconds`` late (0 for none).

        The delay is latency, not a throughput limit: reading continues while
        earlier chunks wait, and each direction keeps its byte order.
        """
        if not seconds >= 0:
            raise ValueError(f"delay must be >= 0, got {seconds!r}")
        self._delay = float(seconds)

    def cut_random(
        self,
        share: float,
        *,
        after: tuple[float, float] | None = None,
        mean: float | None = None,
        existing: bool = False,
    ) -> None:
        """Cut each new link with probability ``share`` after a random time.

        The time (seconds, counted from the moment the link is accepted) is
        drawn uniformly from ``after`` (by default ``(0.0, 1.0)``), or, with
        ``mean``, from an exponential distribution with that mean: most links
        then live a short while and a few much longer, like connections on a
        bad mobile network. ``cut_random(1.0, mean=1.0)`` cuts every new link
        after one second on average. Give ``after`` or ``mean``, not both.
        With ``existing``, the links open now are chosen the same way (in the
        order they arrived, their time counted from now), except those that
        already have a cut planned.

        Draws come from ``random.Random(seed)`` in the order links are
        accepted, so the same seed and the same sequence of connections cut
        the same links at the same offsets; see :attr:`planned_cuts`.
        ``share`` 0 stops choosing new links (cuts already planned still
        happen; :meth:`heal` cancels them).
        """
        if not 0.0 <= share <= 1.0:
            raise ValueError(f"share must be within [0, 1], got {share!r}")
        if after is not None and mean is not None:
            raise ValueError("give after or mean, not both")
        if mean is not None and not mean > 0.0:
            raise ValueError(f"mean must be positive, got {mean!r}")
        low, high = after if after is not None else (0.0, 1.0)
        if not 0.0 <= low <= high:
            raise ValueError(f"after must be (low, high) with 0 <= low <= high, got {after!r}")
        self._cut_share = float(share)
        self._cut_after = (float(low), float(high))
        self._cut_mean = None if mean is None else float(mean)
        if existing:
            for serial in sorted(self._links):
                link = self._links[serial]
                if not link.closed and link.cut_timer is None:
                    self._maybe_plan_cut(link)

    def refuse_random(self, share: float) -> None:
        """Reset each new connection on arrival with probability ``share``.

        Like :meth:`refuse`, but only for a random share of the connections:
        a client that tries again soon gets through after a try or two, as on
        a network that loses connection attempts. Draws come from a generator
        seeded from ``seed`` (its own, so that refusals do not change the
        draws of :meth:`cut_random`), one per connection that arrives while
        :meth:`refuse` is off, in arrival order. ``share`` 0 switches it off.
        Refusals count in :attr:`ProxyStats.links_refused` and
        :attr:`ProxyStats.random_refusals`.
        """
        if not 0.0 <= share <= 1.0:
            raise ValueError(f"share must be within [0, 1], got {share!r}")
        self._refuse_share = float(share)

    def cancel_planned_cuts(self) -> int:
        """Cancel the random cuts planned for open links; return how many.

        With ``cut_random(0)`` and ``refuse_random(0)`` before it, no random
        fault happens any more from this moment on (other faults stay as
        they are, unlike :meth:`heal`).
        """
        cancelled = 0
        for link in self._links.values():
            if link.cut_timer is not None:
                link.cut_timer.cancel()
                link.cut_timer = None
                cancelled += 1
        return cancelled

    def heal(self) -> None:
        """Switch every fault off: refusals, blackhole, delay and random cuts.

        Random cuts already planned for open links are cancelled too. Bytes
        already waiting out a delay are still delivered at their time.
        """
        self.refuse(False)
        self.refuse_random(0.0)
        self.blackhole(False)
        self.delay(0.0)
        self.cut_random(0.0)
        self.cancel_planned_cuts()

    # -- internals ---------------------------------------------------------

    def _spawn(self, coro: Coroutine[Any, Any, _T], name: str) -> asyncio.Task[_T]:
        task = asyncio.get_running_loop().create_task(coro, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    def _on_accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        # Called synchronously by the server for each new connection, so all
        # bookkeeping (and the random draws) happens in arrival order.
        if self._stopped:
            writer.transport.abort()
            return
        refused = self._refusing
        if not refused and self._refuse_share > 0.0:
            refused = self._refuse_rng.random() < self._refuse_share
            self.stats.random_refusals += int(refused)
        if refused:
            self.stats.links_refused += 1
            self.stats.faults_injected += 1
            _reset(writer)
            log.debug("refused a connection from %s", writer.get_extra_info("peername"))
            return
        self._serial += 1
        link = _Link(self._serial, reader, writer)
        self._links[link.serial] = link
        self.stats.links_accepted += 1
        self._maybe_plan_cut(link)
        link.task = self._spawn(self._run_link(link), f"fault-proxy-link-{link.serial}")

    def _maybe_plan_cut(self, link: _Link) -> None:
        if self._cut_share > 0.0 and self._rng.random() < self._cut_share:
            if self._cut_mean is not None:
                offset = self._rng.expovariate(1.0 / self._cut_mean)
            else:
                offset = self._rng.uniform(*self._cut_after)
            self.planned_cuts.append((link.serial, offset))
            link.cut_timer = asyncio.get_running_loop().call_later(offset, self._random_cut, link)

    def _random_cut(self, link: _Link) -> None:
        link.cut_timer = None
        if link.closed:
            return
        self._kill(link)
        self.stats.links_cut += 1
        self.stats.random_cuts += 1
        self.stats.faults_injected += 1
        log.debug("randomly cut link %d", link.serial)

    def _kill(self, link: _Link) -> None:
        """Abort a link right now and let its task wind down."""
        if link.closed:
            return
        link.closed = True
        self._links.pop(link.serial, None)
        if link.cut_timer is not None:
            link.cut_timer.cancel()
            link.cut_timer = None
        link.abort()
        if link.task is not None:
            link.task.cancel()

    async def _run_link(self, link: _Link) -> None:
        graceful = False
        try:
            host, port = self._target
            try:
                async with asyncio.timeout(self._connect_timeout):
                    target_reader, link.target_writer = await asyncio.open_connection(host, port)
            except (OSError, TimeoutError) as exc:
                self.stats.target_failures += 1
                log.debug("link %d: cannot reach %s:%d: %r", link.serial, host, port, exc)
                return
            up: asyncio.Queue[_Item] = asyncio.Queue(QUEUE_CHUNKS)
            down: asyncio.Queue[_Item] = asyncio.Queue(QUEUE_CHUNKS)
            name = f"fault-proxy-link-{link.serial}"
            link.parts = {
                self._spawn(self._read_side(link.client_reader, up), f"{name}-up-read"),
                self._spawn(self._read_side(target_reader, down), f"{name}-down-read"),
            }
            writers = {
                self._spawn(self._write_side(up, link.target_writer, True), f"{name}-up-write"),
                self._spawn(
                    self._write_side(down, link.client_writer, False), f"{name}-down-write"
                ),
            }
            link.parts |= writers
            done, _ = await asyncio.wait(writers, return_when=asyncio.FIRST_COMPLETED)
            graceful = all(task.result() is _End.EOF for task in done)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # never let a link failure escape
            log.debug("link %d failed: %r", link.serial, exc)
        finally:
            if not link.closed:
                link.closed = True
                self._links.pop(link.serial, None)
                if link.cut_timer is not None:
                    link.cut_timer.cancel()
                    link.cut_timer = None
                if graceful:
                    link.close()
                else:
                    link.abort()
            for part in link.parts:
                part.cancel()
            if link.parts:
                await asyncio.gather(*link.parts, return_exceptions=True)
            log.debug("link %d closed (%s)", link.serial, "graceful" if graceful else "aborted")

    async def _read_side(self, source: asyncio.StreamReader, queue: asyncio.Queue[_Item]) -> None:
        """Read one side into ``queue``, stamping each chunk with its due time."""
        loop = asyncio.get_running_loop()
        end = _End.EOF
        try:
            while data := await source.read(CHUNK_SIZE):
                await queue.put((loop.time() + self._delay, data))
        except Exception as exc:
            log.debug("read failed: %r", exc)
            end = _End.RESET
        await queue.put((loop.time() + self._delay, end))

    async def _write_side(
        self, queue: asyncio.Queue[_Item], dest: asyncio.StreamWriter, upward: bool
    ) -> _End:
        """Deliver ``queue`` to ``dest`` in order, each item at its due time.

        Returns how the direction ended; the link closes when the first of
        its two directions ends.
        """
        loop = asyncio.get_running_loop()
        try:
            while True:
                due, item = await queue.get()
                wait = due - loop.time()
                if wait > 0:
                    await asyncio.sleep(wait)
                if isinstance(item, _End):
                    await self._flowing.wait()  # a partition hides closes too
                    return item
                if self._blackholed:
                    self.stats.bytes_dropped += len(item)
                    continue
                dest.write(item)
                if upward:
                    self.stats.bytes_up += len(item)
                else:
                    self.stats.bytes_down += len(item)
                await dest.drain()  # backpressure: stop taking chunks while it is full
        except Exception as exc:
            log.debug("write failed: %r", exc)
            return _End.ERROR

    def __repr__(self) -> str:
        where = f"{self._bound[0]}:{self._bound[1]}" if self._bound else "unbound"
        return f"<FaultProxy {where} -> {self._target[0]}:{self._target[1]} links={self.links}>"


def _reset(writer: asyncio.StreamWriter) -> None:
    """Abort a connection so that the peer gets a TCP reset, not a clean EOF."""
    sock = writer.get_extra_info("socket")
    if sock is not None:
        linger = struct.pack("HH" if os.name == "nt" else "ii", 1, 0)
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, linger)
    writer.transport.abort()

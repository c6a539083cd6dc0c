"""Tests for parley.testing.proxy (FaultProxy) and parley.testing.waiting.

Everything runs over real sockets on 127.0.0.1 with an asyncio echo server as
the target. Tests wait for conditions with deadlines, never for fixed sleeps;
the only fixed timeouts are the short windows in which something must *not*
happen (a blackholed echo, a held close).
"""

from __future__ import annotations

import asyncio
import hashlib
import random
import socket
from collections.abc import AsyncIterator, Callable

import pytest

from parley.testing.proxy import FaultProxy, ProxyStats
from parley.testing.waiting import wait_for_condition

# How long we watch for something that must not happen.
QUIET = 0.2
# Upper bound for anything that must happen.
DEADLINE = 5.0


class EchoServer:
    """Echoes every byte back (optionally transformed) until the peer closes."""

    def __init__(self, transform: Callable[[bytes], bytes] = bytes) -> None:
        self.transform = transform
        self.connections = 0
        self.received = 0
        self.eofs = 0  # handlers that ended with a clean EOF from the peer
        self.resets = 0  # handlers that ended with a connection error
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self._tasks: set[asyncio.Task[object]] = set()

    @property
    def port(self) -> int:
        assert self._server is not None
        return int(self._server.sockets[0].getsockname()[1])

    @property
    def ended(self) -> int:
        return self.eofs + self.resets

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0)

    async def stop(self) -> None:
        assert self._server is not None
        self._server.close()
        for writer in self._writers:
            writer.transport.abort()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self._server.wait_closed()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        self._writers.add(writer)
        self.connections += 1
        try:
            while data := await reader.read(65536):
                self.received += len(data)
                writer.write(self.transform(data))
                await writer.drain()
            self.eofs += 1
        except ConnectionError:
            self.resets += 1
        finally:
            writer.close()
            self._writers.discard(writer)
            self._tasks.discard(task)


@pytest.fixture
async def echo() -> AsyncIterator[EchoServer]:
    server = EchoServer()
    await server.start()
    yield server
    await server.stop()


@pytest.fixture
async def proxy(echo: EchoServer) -> AsyncIterator[FaultProxy]:
    async with FaultProxy("127.0.0.1", echo.port, seed=1) as fault_proxy:
        yield fault_proxy


Conn = tuple[asyncio.StreamReader, asyncio.StreamWriter]


async def connect(proxy: FaultProxy) -> Conn:
    return await asyncio.open_connection(*proxy.address)


async def roundtrip(conn: Conn, payload: bytes = b"ping") -> bytes:
    reader, writer = conn
    writer.write(payload)
    await writer.drain()
    async with asyncio.timeout(DEADLINE):
        return await reader.readexactly(len(payload))


async def ended(reader: asyncio.StreamReader) -> bool:
    """Whether the connection ends (EOF or reset) before DEADLINE."""
    try:
        async with asyncio.timeout(DEADLINE):
            while await reader.read(65536):
                pass
    except ConnectionError:
        pass
    return True


async def close(conn: Conn) -> None:
    conn[1].close()


def proxy_tasks() -> list[asyncio.Task[object]]:
    return [t for t in asyncio.all_tasks() if t.get_name().startswith("fault-proxy")]


# -- forwarding -------------------------------------------------------------


async def test_bytes_pass_both_ways(proxy: FaultProxy, echo: EchoServer) -> None:
    conn = await connect(proxy)
    assert await roundtrip(conn, b"hello") == b"hello"
    assert await roundtrip(conn, b"again") == b"again"
    assert proxy.links == 1
    assert echo.connections == 1
    assert proxy.stats.bytes_up == 10
    assert proxy.stats.bytes_down == 10
    await close(conn)
    # Client close reaches the target and the link goes away.
    await wait_for_condition(lambda: echo.eofs == 1 and proxy.links == 0, timeout=DEADLINE)


async def test_target_close_reaches_client(echo: EchoServer) -> None:
    async with FaultProxy("127.0.0.1", echo.port) as proxy:
        reader, writer = await connect(proxy)
        await roundtrip((reader, writer))
        await echo.stop()  # aborts the target side of the link
        assert await ended(reader)
        await wait_for_condition(lambda: proxy.links == 0, timeout=DEADLINE)
        writer.close()
        await echo.start()  # the fixture stops it again


async def test_large_transfer_is_intact(proxy: FaultProxy) -> None:
    payload = random.Random(42).randbytes(6 * 1024 * 1024)
    reader, writer = await connect(proxy)

    async def send() -> None:
        view = memoryview(payload)
        for start in range(0, len(payload), 256 * 1024):
            writer.write(view[start : start + 256 * 1024])
            await writer.drain()

    async with asyncio.timeout(DEADLINE):
        sender = asyncio.create_task(send())
        received = await reader.readexactly(len(payload))
        await sender
    assert hashlib.sha256(received).digest() == hashlib.sha256(payload).digest()
    assert proxy.stats.bytes_up == len(payload)
    assert proxy.stats.bytes_down == len(payload)
    writer.close()


async def test_backpressure_bounds_buffering(proxy: FaultProxy) -> None:
    # The client writes without ever reading the echo: once every buffer on
    # the way is full, the proxy must stop reading instead of buffering more.
    total = 64 * 1024 * 1024
    block = bytes(1024 * 1024)
    _reader, writer = await connect(proxy)

    async def flood() -> None:
        for _ in range(total // len(block)):
            writer.write(block)
            await writer.drain()

    # Without backpressure all 64 MiB would be swallowed well within this
    # window (kernel socket buffers on loopback hold a few tens of MiB at most).
    with pytest.raises(TimeoutError):
        async with asyncio.timeout(0.5):
            await flood()
    assert proxy.links == 1
    writer.transport.abort()


async def test_unreachable_target_closes_client() -> None:
    # A bound socket that does not listen refuses connections.
    with socket.socket() as placeholder:
        placeholder.bind(("127.0.0.1", 0))
        port = placeholder.getsockname()[1]
        async with FaultProxy("127.0.0.1", port) as proxy:
            reader, writer = await connect(proxy)
            assert await ended(reader)
            writer.close()
            await wait_for_condition(lambda: proxy.links == 0, timeout=DEADLINE)
            assert proxy.stats.target_failures == 1
            assert proxy.stats.links_accepted == 1


async def test_retarget(proxy: FaultProxy, echo: EchoServer) -> None:
    other = EchoServer(transform=bytes.upper)
    await other.start()
    try:
        old = await connect(proxy)
        assert await roundtrip(old, b"abc") == b"abc"
        proxy.retarget("127.0.0.1", other.port)
        assert proxy.target == ("127.0.0.1", other.port)
        new = await connect(proxy)
        assert await roundtrip(new, b"abc") == b"ABC"
        # The existing link keeps its original target.
        assert await roundtrip(old, b"xyz") == b"xyz"
        assert (echo.connections, other.connections) == (1, 1)
        await close(old)
        await close(new)
    finally:
        await proxy.stop()
        await other.stop()


# -- faults -----------------------------------------------------------------


async def test_cut_closes_both_ends(proxy: FaultProxy, echo: EchoServer) -> None:
    conns = [await connect(proxy) for _ in range(3)]
    for conn in conns:
        await roundtrip(conn)
    assert proxy.cut() == 3
    assert proxy.links == 0
    for reader, _ in conns:
        assert await ended(reader)
    # The target sees every one of its connections end.
    await wait_for_condition(lambda: echo.ended == 3, timeout=DEADLINE)
    assert proxy.stats.links_cut == 3
    assert proxy.stats.faults_injected == 3
    # The proxy keeps working for new connections.
    fresh = await connect(proxy)
    assert await roundtrip(fresh, b"after") == b"after"
    assert proxy.cut() == 1
    assert proxy.cut() == 0
    assert proxy.stats.links_cut == 4
    for conn in [*conns, fresh]:
        await close(conn)


async def test_refuse_resets_new_connections_only(proxy: FaultProxy, echo: EchoServer) -> None:
    port = proxy.port
    existing = await connect(proxy)
    await roundtrip(existing)

    proxy.refuse()
    # The TCP connect itself may succeed; the connection is reset at once,
    # so the first read fails with a reset (or EOF) and never gets an echo.
    try:
        reader, writer = await connect(proxy)
        writer.write(b"ping")
        assert await ended(reader)
        writer.close()
    except ConnectionError:
        pass
    await wait_for_condition(lambda: proxy.stats.links_refused == 1, timeout=DEADLINE)
    assert echo.connections == 1  # the refused one never reached the target
    # The existing link is unaffected.
    assert await roundtrip(existing, b"still") == b"still"

    proxy.refuse(False)
    assert proxy.port == port
    again = await connect(proxy)
    assert await roundtrip(again, b"back") == b"back"
    assert proxy.stats.links_accepted == 2
    assert proxy.stats.faults_injected == 1
    await close(existing)
    await close(again)


async def test_blackhole_drops_and_heals(proxy: FaultProxy, echo: EchoServer) -> None:
    reader, writer = await connect(proxy)
    await roundtrip((reader, writer))

    proxy.blackhole()
    writer.write(b"lost")
    await writer.drain()
    with pytest.raises(TimeoutError):
        async with asyncio.timeout(QUIET):
            await reader.readexactly(1)
    # A connection opened during the blackhole is accepted but gets nothing.
    late_reader, late_writer = await connect(proxy)
    late_writer.write(b"late")
    with pytest.raises(TimeoutError):
        async with asyncio.timeout(QUIET):
            await late_reader.readexactly(1)
    assert echo.received == 4  # only the first ping ever reached the target
    assert proxy.links == 2

    proxy.heal()
    # Dropped bytes stay dropped; new bytes flow again on both links.
    assert await roundtrip((reader, writer), b"found") == b"found"
    assert await roundtrip((late_reader, late_writer), b"ok") == b"ok"
    assert proxy.stats.bytes_dropped == len(b"lost") + len(b"late")
    writer.close()
    late_writer.close()


async def test_blackhole_holds_closes_until_healed(proxy: FaultProxy, echo: EchoServer) -> None:
    reader, writer = await connect(proxy)
    await roundtrip((reader, writer))
    proxy.blackhole()
    writer.close()
    with pytest.raises(TimeoutError):
        await wait_for_condition(lambda: echo.ended == 1, timeout=QUIET)
    proxy.blackhole(False)
    await wait_for_condition(lambda: echo.ended == 1 and proxy.links == 0, timeout=DEADLINE)


async def test_delay_delays_and_keeps_order(proxy: FaultProxy) -> None:
    reader, writer = await connect(proxy)
    await roundtrip((reader, writer))
    loop = asyncio.get_running_loop()

    proxy.delay(0.1)
    started = loop.time()
    assert await roundtrip((reader, writer), b"slow") == b"slow"
    # Delayed on the way there and on the way back.
    assert loop.time() - started >= 0.2 - 0.005

    # Many small writes keep their order through the delay queues.
    parts = [f"{i:04d};".encode() for i in range(200)]
    for part in parts:
        writer.write(part)
        await writer.drain()
    async with asyncio.timeout(DEADLINE):
        echoed = await reader.readexactly(sum(map(len, parts)))
    assert echoed == b"".join(parts)

    proxy.delay(0)
    started = loop.time()
    await roundtrip((reader, writer))
    assert loop.time() - started < 0.1
    writer.close()


async def test_cut_random_cuts_after_offset(proxy: FaultProxy) -> None:
    loop = asyncio.get_running_loop()
    proxy.cut_random(1.0, after=(0.15, 0.2))
    started = loop.time()
    reader, writer = await connect(proxy)
    assert await roundtrip((reader, writer)) == b"ping"  # alive before the offset
    assert await ended(reader)
    assert loop.time() - started >= 0.15 - 0.005
    ((serial, offset),) = proxy.planned_cuts
    assert serial == 1
    assert 0.15 <= offset <= 0.2
    assert proxy.stats.random_cuts == 1
    assert proxy.stats.links_cut == 1
    assert proxy.stats.faults_injected == 1
    writer.close()


async def _random_cut_pattern(echo: EchoServer, seed: int, count: int) -> list[bool]:
    """Open ``count`` links one after another; report which ones were cut."""
    pattern: list[bool] = []
    async with FaultProxy("127.0.0.1", echo.port, seed=seed) as proxy:
        proxy.cut_random(0.3, after=(0.0, 0.0))
        for _ in range(count):
            reader, writer = await connect(proxy)
            writer.write(b"x")
            try:
                async with asyncio.timeout(DEADLINE):
                    data = await reader.read(1)
            except ConnectionError:
                data = b""
            pattern.append(data == b"")
            writer.close()
        planned = {serial for serial, _ in proxy.planned_cuts}
        # The observed cuts are exactly the planned ones.
        assert planned == {i + 1 for i, was_cut in enumerate(pattern) if was_cut}
        assert proxy.stats.random_cuts == len(planned)
        assert proxy.stats.links_accepted == count
    return pattern


async def test_cut_random_share_and_determinism(echo: EchoServer) -> None:
    first = await _random_cut_pattern(echo, seed=1234, count=200)
    assert 0.2 <= sum(first) / len(first) <= 0.4
    assert await _random_cut_pattern(echo, seed=1234, count=200) == first
    assert await _random_cut_pattern(echo, seed=99, count=200) != first


async def test_cut_random_same_seed_same_offsets(echo: EchoServer) -> None:
    plans = []
    for _ in range(2):
        async with FaultProxy("127.0.0.1", echo.port, seed=5) as proxy:
            proxy.cut_random(0.5, after=(30.0, 60.0))  # far beyond the test
            conns = [await connect(proxy) for _ in range(20)]
            await wait_for_condition(lambda: proxy.stats.links_accepted == 20, timeout=DEADLINE)
            plans.append(list(proxy.planned_cuts))
            for conn in conns:
                await close(conn)
    assert plans[0] == plans[1]
    assert plans[0]
    assert all(30.0 <= offset <= 60.0 for _, offset in plans[0])


async def test_cut_random_exponential_cuts_every_link(proxy: FaultProxy) -> None:
    proxy.cut_random(1.0, mean=0.05)
    conns = [await connect(proxy) for _ in range(5)]
    for reader, _ in conns:
        assert await ended(reader)
    await wait_for_condition(lambda: proxy.stats.random_cuts == 5, timeout=DEADLINE)
    assert [serial for serial, _ in proxy.planned_cuts] == [1, 2, 3, 4, 5]
    for conn in conns:
        await close(conn)


async def test_cut_random_existing_links(proxy: FaultProxy) -> None:
    conns = [await connect(proxy) for _ in range(3)]
    await wait_for_condition(lambda: proxy.links == 3, timeout=DEADLINE)
    proxy.cut_random(1.0, after=(30.0, 30.0))
    assert proxy.planned_cuts == []  # only new links by default
    proxy.cut_random(1.0, mean=0.05, existing=True)
    assert [serial for serial, _ in proxy.planned_cuts] == [1, 2, 3]
    for reader, _ in conns:
        assert await ended(reader)
    await wait_for_condition(lambda: proxy.stats.random_cuts == 3, timeout=DEADLINE)
    new = await connect(proxy)
    assert await ended(new[0])  # and the new ones
    proxy.cut_random(1.0, mean=30.0, existing=True)  # nothing open without a plan
    assert len(proxy.planned_cuts) == 4
    for conn in [*conns, new]:
        await close(conn)


async def test_cancel_planned_cuts_keeps_other_faults(proxy: FaultProxy) -> None:
    proxy.cut_random(1.0, after=(0.2, 0.2))
    conns = [await connect(proxy) for _ in range(3)]
    await wait_for_condition(lambda: len(proxy.planned_cuts) == 3, timeout=DEADLINE)
    proxy.cut_random(0.0)
    proxy.refuse()
    assert proxy.cancel_planned_cuts() == 3
    assert proxy.cancel_planned_cuts() == 0
    with pytest.raises(TimeoutError):  # watch past the planned time
        await wait_for_condition(lambda: proxy.links < 3, timeout=0.4)
    for conn in conns:
        assert await roundtrip(conn) == b"ping"
    try:  # refuse() is still on
        reader, writer = await connect(proxy)
        assert await ended(reader)
        writer.close()
    except ConnectionError:
        pass
    await wait_for_condition(lambda: proxy.stats.links_refused == 1, timeout=DEADLINE)
    assert proxy.stats.random_cuts == 0
    for conn in conns:
        await close(conn)


async def _exponential_plan(echo: EchoServer, seed: int, count: int) -> list[float]:
    async with FaultProxy("127.0.0.1", echo.port, seed=seed) as proxy:
        proxy.cut_random(1.0, mean=30.0)  # far beyond the test
        conns = [await connect(proxy) for _ in range(count)]
        await wait_for_condition(lambda: proxy.stats.links_accepted == count, timeout=DEADLINE)
        for conn in conns:
            await close(conn)
        return [offset for _, offset in proxy.planned_cuts]


async def test_cut_random_exponential_offsets(echo: EchoServer) -> None:
    offsets = await _exponential_plan(echo, seed=8, count=200)
    assert len(offsets) == 200
    assert 30.0 * 0.75 <= sum(offsets) / len(offsets) <= 30.0 * 1.25
    # an exponential distribution, not a window: short and long lives alike
    assert sum(o < 3.0 for o in offsets) >= 5  # P(X < mean/10) = 9.5%
    assert sum(o > 60.0 for o in offsets) >= 10  # P(X > 2 mean) = 13.5%
    assert await _exponential_plan(echo, seed=8, count=200) == offsets
    assert await _exponential_plan(echo, seed=9, count=200) != offsets


async def _refusal_pattern(
    echo: EchoServer, seed: int, count: int, share: float = 0.3
) -> tuple[list[bool], list[tuple[int, float]]]:
    """Open ``count`` connections one after another; report which were refused, and the
    cuts planned (far in the future) for the accepted ones."""
    pattern: list[bool] = []
    async with FaultProxy("127.0.0.1", echo.port, seed=seed) as proxy:
        proxy.refuse_random(share)
        proxy.cut_random(0.5, after=(30.0, 60.0))
        conns = []
        for _ in range(count):
            reader, writer = await connect(proxy)
            writer.write(b"x")
            try:
                async with asyncio.timeout(DEADLINE):
                    data = await reader.read(1)
            except ConnectionError:
                data = b""
            pattern.append(data == b"")
            conns.append((reader, writer))
        refused = sum(pattern)
        assert proxy.stats.links_refused == proxy.stats.random_refusals == refused
        assert proxy.stats.links_accepted == count - refused
        assert proxy.stats.faults_injected == refused
        assert echo.connections >= count - refused  # refused ones never reached it
        for conn in conns:
            await close(conn)
        return pattern, list(proxy.planned_cuts)


async def test_refuse_random_share_and_determinism(echo: EchoServer) -> None:
    first, cuts = await _refusal_pattern(echo, seed=77, count=200)
    assert 0.2 <= sum(first) / len(first) <= 0.4
    assert await _refusal_pattern(echo, seed=77, count=200) == (first, cuts)
    assert (await _refusal_pattern(echo, seed=78, count=200))[0] != first
    # the refusals draw from their own generator: the accepted links get the cuts they
    # would get without any refusal
    _, alone = await _refusal_pattern(echo, seed=77, count=200 - sum(first), share=0.0)
    assert alone == cuts


async def test_refuse_random_all_and_none(proxy: FaultProxy, echo: EchoServer) -> None:
    proxy.refuse_random(1.0)
    for _ in range(3):
        try:
            reader, writer = await connect(proxy)
            assert await ended(reader)
            writer.close()
        except ConnectionError:
            pass
    await wait_for_condition(lambda: proxy.stats.random_refusals == 3, timeout=DEADLINE)
    assert echo.connections == 0
    proxy.refuse_random(0.0)
    conn = await connect(proxy)
    assert await roundtrip(conn) == b"ping"
    # refuse() wins and draws nothing
    proxy.refuse_random(1.0)
    proxy.refuse()
    try:
        reader, writer = await connect(proxy)
        assert await ended(reader)
        writer.close()
    except ConnectionError:
        pass
    await wait_for_condition(lambda: proxy.stats.links_refused == 4, timeout=DEADLINE)
    assert proxy.stats.random_refusals == 3
    proxy.heal()  # switches random refusals off too
    again = await connect(proxy)
    assert await roundtrip(again) == b"ping"
    await close(conn)
    await close(again)


async def test_heal_turns_everything_off(proxy: FaultProxy) -> None:
    proxy.cut_random(1.0, after=(0.2, 0.2))
    conn = await connect(proxy)
    await wait_for_condition(lambda: proxy.planned_cuts != [], timeout=DEADLINE)
    proxy.refuse()
    proxy.blackhole()
    proxy.delay(1.0)
    proxy.heal()
    loop = asyncio.get_running_loop()
    started = loop.time()
    assert await roundtrip(conn) == b"ping"
    assert loop.time() - started < 1.0
    new = await connect(proxy)
    assert await roundtrip(new) == b"ping"
    # The planned random cut of the first link was cancelled by heal(), and
    # the second link was not chosen at all: watch past the planned time.
    with pytest.raises(TimeoutError):
        await wait_for_condition(lambda: proxy.links < 2, timeout=0.3)
    assert await roundtrip(conn) == b"ping"
    assert proxy.stats.faults_injected == 0
    await close(conn)
    await close(new)


async def test_stats_count_everything(proxy: FaultProxy) -> None:
    assert proxy.stats == ProxyStats()
    a = await connect(proxy)
    await roundtrip(a, b"12345")
    proxy.refuse()
    for _ in range(2):
        try:
            reader, writer = await connect(proxy)
            assert await ended(reader)
            writer.close()
        except ConnectionError:
            pass
    await wait_for_condition(lambda: proxy.stats.links_refused == 2, timeout=DEADLINE)
    proxy.refuse(False)
    b = await connect(proxy)
    await roundtrip(b, b"123")
    proxy.cut()
    snapshot = proxy.stats.snapshot()
    assert snapshot == ProxyStats(
        links_accepted=2,
        links_refused=2,
        links_cut=2,
        random_cuts=0,
        target_failures=0,
        bytes_up=8,
        bytes_down=8,
        bytes_dropped=0,
        faults_injected=4,
    )
    await close(a)
    await close(b)


async def test_argument_validation(proxy: FaultProxy) -> None:
    with pytest.raises(ValueError):
        proxy.delay(-1)
    with pytest.raises(ValueError):
        proxy.cut_random(1.5)
    with pytest.raises(ValueError):
        proxy.cut_random(0.5, after=(1.0, 0.5))
    with pytest.raises(ValueError):
        proxy.cut_random(0.5, mean=0.0)
    with pytest.raises(ValueError):
        proxy.cut_random(0.5, after=(0.0, 1.0), mean=1.0)
    with pytest.raises(ValueError):
        proxy.refuse_random(-0.1)
    with pytest.raises(ValueError):
        proxy.refuse_random(1.5)
    with pytest.raises(RuntimeError):
        await proxy.start()
    with pytest.raises(RuntimeError):
        _ = FaultProxy("127.0.0.1", 1).port


# -- lifecycle --------------------------------------------------------------


async def test_stop_leaves_no_tasks(echo: EchoServer) -> None:
    proxy = FaultProxy("127.0.0.1", echo.port, seed=3)
    await proxy.start()
    conns = [await connect(proxy) for _ in range(4)]
    for conn in conns:
        await roundtrip(conn)
    # Leave links in assorted states: waiting out a delay, holding a close
    # in the blackhole, and a random cut planned for later.
    proxy.cut_random(1.0, after=(30.0, 30.0))
    conns.append(await connect(proxy))
    proxy.delay(30.0)
    conns[0][1].write(b"queued")
    proxy.blackhole()
    conns[1][1].close()
    await wait_for_condition(lambda: proxy.links == 5, timeout=DEADLINE)
    assert proxy_tasks()

    await proxy.stop()
    assert proxy_tasks() == []
    assert proxy.links == 0
    for reader, _ in conns:
        assert await ended(reader)
    await wait_for_condition(lambda: echo.ended == 5, timeout=DEADLINE)
    with pytest.raises(OSError):
        await connect(proxy)
    await proxy.stop()  # idempotent
    for conn in conns:
        await close(conn)


async def test_async_with_form(echo: EchoServer) -> None:
    async with FaultProxy("127.0.0.1", echo.port) as proxy:
        host, port = proxy.address
        assert host == "127.0.0.1"
        assert port == proxy.port > 0
        conn = await connect(proxy)
        assert await roundtrip(conn) == b"ping"
    assert proxy_tasks() == []
    assert await ended(conn[0])
    await close(conn)


# -- wait_for_condition -----------------------------------------------------


async def test_wait_for_condition_returns_when_true() -> None:
    calls = 0

    def predicate() -> bool:
        nonlocal calls
        calls += 1
        return calls >= 3

    await wait_for_condition(predicate, timeout=DEADLINE, interval=0.001)
    assert calls == 3


async def test_wait_for_condition_accepts_async_predicates() -> None:
    event = asyncio.Event()

    async def is_set() -> bool:
        return event.is_set()

    asyncio.get_running_loop().call_soon(event.set)
    await wait_for_condition(is_set, timeout=DEADLINE)


async def test_wait_for_condition_times_out_with_message() -> None:
    with pytest.raises(TimeoutError, match="never happens"):
        await wait_for_condition(lambda: False, timeout=0.05, message="never happens")


async def test_wait_for_condition_bounds_hanging_predicates() -> None:
    async def hangs() -> bool:
        await asyncio.Event().wait()
        return True

    with pytest.raises(TimeoutError, match="condition not met"):
        await wait_for_condition(hangs, timeout=0.05)


async def test_wait_for_condition_propagates_predicate_errors() -> None:
    def broken() -> bool:
        raise TimeoutError("from the predicate")

    with pytest.raises(TimeoutError, match="from the predicate"):
        await wait_for_condition(broken, timeout=DEADLINE)

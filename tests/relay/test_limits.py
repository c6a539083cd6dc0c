"""Bounded resources: failed authenticators, the creation password, caps on queues and stored
bytes, connections per address, idle connections without subscriptions, shedding at the
connection limit, and accept failures that are logged without flooding."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import ssl
from pathlib import Path

import pytest

from parley.protocol import relay as p
from parley.protocol.address import RelayAddress
from parley.protocol.relay_auth import AuthKey
from parley.relay.client import MessageReceived, RelayClient
from parley.relay.errors import PermanentRelayError, TemporaryRelayError
from parley.relay.server import RelayServer, address_key, connection_budget
from parley.testing.waiting import wait_for_condition
from tests.relay.conftest import FAST, next_event, relay_config
from tests.relay.raw import RawConnection

REFUSED = (asyncio.IncompleteReadError, ConnectionError, ssl.SSLError)


async def round_trips(address: RelayAddress, n: int = 3) -> None:
    """A well-behaved client connects (retrying while it is refused) and echoes `n` messages."""
    c = RelayClient(address, settings=FAST)
    key = AuthKey.generate()
    ids: list[p.Ids] = []

    async def created() -> bool:
        with contextlib.suppress(TemporaryRelayError):
            ids.append(await c.create_queue(key))
        return bool(ids)

    try:
        await wait_for_condition(created, 20, interval=0.05)
        await c.subscribe(ids[0].recipient_id, key)
        for i in range(n):
            await c.send(ids[0].sender_id, None, b"ping %d" % i)
            ev = await next_event(c, MessageReceived, 10)
            assert ev.message.body == b"ping %d" % i
            await c.ack(ids[0].recipient_id, key, ev.message.msg_id)
    finally:
        await c.close()


def bogus_news(count: int) -> list[bytes]:
    """NEWs for fresh random keys with random authenticators: each costs the relay an X25519
    and an HKDF before it fails."""
    return [
        p.encode_transmission(
            os.urandom(32),
            p.signed_part(b"bogus%d" % i, b"", p.encode_message(p.New(os.urandom(32)))),
        )
        for i in range(1, count + 1)
    ]


async def test_failed_authenticators_close_the_connection(tmp_path: Path) -> None:
    """Blocks of NEWs with random authenticators: each attacking connection is closed at the
    limit, the rest of what it sent is never looked at, and a client's SENDs go on."""
    limit = 20
    async with RelayServer(relay_config(tmp_path, max_auth_failures=limit)) as relay:

        async def attack() -> int:
            raw = await RawConnection.open(relay.address)
            blocks = p.pack_blocks(bogus_news(1500))  # 8 blocks of ~190 NEWs
            answers = 0
            with contextlib.suppress(ConnectionError, OSError):
                raw.writer.writelines(blocks)
                await raw.writer.drain()
            with contextlib.suppress(ConnectionError, OSError, asyncio.IncompleteReadError):
                while True:
                    for _, resp in await raw.recv(10):
                        assert resp == p.Err(p.ErrorCode.AUTH)
                        answers += 1
            assert await raw.closed_by_peer()
            raw.close()
            return answers

        attackers = 6
        _, *answers = await asyncio.gather(
            round_trips(relay.address, 10), *(attack() for _ in range(attackers))
        )
        # every attacker got exactly `limit` answers before it was closed
        assert answers == [limit] * attackers
        assert relay.stats.auth_failures == limit * attackers
        assert relay.stats.connections_closed["auth_failures"] == attackers

        # fewer failures than the limit leave a connection open
        raw = await RawConnection.open(relay.address)
        await raw.send(*bogus_news(limit - 1))
        assert await raw.request(p.PING) == p.PONG
        raw.close()


async def test_creation_password(tmp_path: Path) -> None:
    config = relay_config(tmp_path / "a", create_password="open sesame")
    async with RelayServer(config) as relay:
        raw = await RawConnection.open(relay.address)
        key = AuthKey.generate()
        assert await raw.request(p.New(key.public), key=key) == p.Err(p.ErrorCode.AUTH)
        assert await raw.request(p.New(key.public, b"wrong"), key=key) == p.Err(p.ErrorCode.AUTH)
        ids = await raw.request(p.New(key.public, b"open sesame"), key=key)
        assert isinstance(ids, p.Ids)
        # the password only guards creation: the queue works as any other
        assert await raw.request(p.SUB, ids.recipient_id, key) == p.OK
        assert relay.stats.commands["NEW:AUTH"] == 2
        raw.close()
        # a client that sends no password is refused, for good
        c = RelayClient(str(relay.address), settings=FAST)  # the address without its password
        with pytest.raises(PermanentRelayError) as e:
            await c.create_queue(AuthKey.generate())
        assert e.value.code == p.ErrorCode.AUTH
        await c.close()
    # a relay without a password takes NEW with or without one
    async with RelayServer(relay_config(tmp_path / "b")) as relay:
        raw = await RawConnection.open(relay.address)
        key = AuthKey.generate()
        assert isinstance(await raw.request(p.New(key.public, b"any"), key=key), p.Ids)
        assert isinstance(await raw.request(p.New(key.public), key=key), p.Ids)
        raw.close()


async def test_caps_on_queues_and_stored_bytes(tmp_path: Path) -> None:
    config = relay_config(tmp_path, max_queues=2, max_stored_bytes=100)
    async with RelayServer(config) as relay:
        c = RelayClient(relay.address, settings=FAST)
        k1, k2 = AuthKey.generate(), AuthKey.generate()
        q1 = await c.create_queue(k1)
        await c.create_queue(k2)
        with pytest.raises(PermanentRelayError) as e:
            await c.create_queue(AuthKey.generate())
        assert e.value.code == p.ErrorCode.QUOTA

        await c.send(q1.sender_id, None, b"a" * 60)
        with pytest.raises(PermanentRelayError) as e:
            await c.send(q1.sender_id, None, b"b" * 60)
        assert e.value.code == p.ErrorCode.QUOTA
        await c.send(q1.sender_id, None, b"c" * 40)  # exactly at the cap
        assert relay.stats.bytes_stored == 100
        first = await c.get(q1.recipient_id, k1)
        assert first is not None
        await c.ack(q1.recipient_id, k1, first.msg_id)  # frees 60 bytes
        await c.send(q1.sender_id, None, b"d" * 60)

        await c.delete(q1.recipient_id, k1)  # frees a queue and its bytes
        assert relay.stats.bytes_stored == 0
        await c.create_queue(AuthKey.generate())
        assert relay.stats.commands["NEW:QUOTA"] == 1
        assert relay.stats.commands["SEND:QUOTA"] == 1
        await c.close()


async def test_connections_per_address(tmp_path: Path) -> None:
    config = relay_config(tmp_path, max_connections_per_address=3)
    async with RelayServer(config) as relay:
        crowd = [await RawConnection.open(relay.address, source="127.0.0.2") for _ in range(3)]
        with pytest.raises(REFUSED):
            await RawConnection.open(relay.address, source="127.0.0.2")
        assert relay.stats.connections_rejected_address == 1
        # another address is not affected
        other = await RawConnection.open(relay.address)
        assert await other.request(p.PING) == p.PONG
        # a closed connection makes room for its address again
        crowd.pop().close()
        await wait_for_condition(lambda: relay.connections.per_address.get("127.0.0.2") == 2, 5)
        crowd.append(await RawConnection.open(relay.address, source="127.0.0.2"))
        for conn in crowd:
            assert await conn.request(p.PING) == p.PONG
            conn.close()
        other.close()


def test_address_key() -> None:
    assert address_key(("192.0.2.7", 5223)) == "192.0.2.7"
    a = address_key(("2001:db8:1:2:aaaa::1", 5223, 0, 0))
    assert a == address_key(("2001:db8:1:2:bbbb::9", 1, 0, 0)) == "2001:db8:1:2::/64"
    assert a != address_key(("2001:db8:1:3::1", 1, 0, 0))
    assert address_key(("::ffff:192.0.2.7", 1, 0, 0)) == "192.0.2.7"


def test_connection_budget() -> None:
    assert connection_budget(None) is None
    assert connection_budget(256) == 256 - 64 - 25
    assert connection_budget(1024) == 1024 - 64 - 102
    assert connection_budget(10) == 1


async def test_idle_connections_without_subscriptions_close_sooner(tmp_path: Path) -> None:
    config = relay_config(tmp_path, idle_unsubscribed_timeout=0.3, idle_timeout=60)
    async with RelayServer(config) as relay:
        subscribed = await RawConnection.open(relay.address)
        key = AuthKey.generate()
        ids = await subscribed.request(p.New(key.public), key=key)
        assert isinstance(ids, p.Ids)
        assert await subscribed.request(p.SUB, ids.recipient_id, key) == p.OK

        pinger = await RawConnection.open(relay.address)

        async def pings_until_closed() -> bool:
            """PINGs do not keep a connection without subscriptions open."""
            for _ in range(200):
                try:
                    assert await pinger.request(p.PING) == p.PONG
                except REFUSED:
                    return True
                await asyncio.sleep(0.05)  # a client's pace, not a synchronisation
            return False

        assert await pings_until_closed()
        assert relay.stats.connections_closed["idle_unsubscribed"] >= 1
        # as idle as the pinger, but subscribed: still open
        assert await subscribed.request(p.PING) == p.PONG
        subscribed.close()


async def test_idle_connections_make_room_at_the_limit(tmp_path: Path) -> None:
    config = relay_config(tmp_path, max_connections=4, shed_idle_after=0.2)
    async with RelayServer(config) as relay:
        subscribed = await RawConnection.open(relay.address, source="127.0.0.3")
        key = AuthKey.generate()
        ids = await subscribed.request(p.New(key.public), key=key)
        assert isinstance(ids, p.Ids)
        assert await subscribed.request(p.SUB, ids.recipient_id, key) == p.OK
        idle = [await RawConnection.open(relay.address, source="127.0.0.2") for _ in range(3)]
        await wait_for_condition(lambda: relay.stats.connections == 4, 5)
        await round_trips(relay.address)  # gets in once the idle ones have been idle long enough
        assert relay.stats.connections_closed["shed"] >= 1
        assert await subscribed.request(p.PING) == p.PONG  # never shed: it has a subscription
        for conn in [subscribed, *idle]:
            conn.close()


async def test_accept_failures_are_logged_once_per_interval(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    relay = RelayServer(relay_config(tmp_path, accept_error_log_interval=3600))
    with caplog.at_level(logging.WARNING, logger="parley.relay.connections"):
        for _ in range(10_000):
            relay.connections.accept_failed(OSError(24, "Too many open files"))
    assert relay.stats.accept_errors == 10_000
    lines = [r for r in caplog.records if "accepting connections failed" in r.getMessage()]
    assert len(lines) == 1

"""Bad input gets ERR or closes that one connection; the relay keeps serving everyone else."""

from __future__ import annotations

import asyncio
import os
import random
import ssl
from pathlib import Path

import pytest

from parley.protocol import relay as p
from parley.protocol.relay_auth import AuthKey
from parley.relay.client import MessageReceived, RelayClient
from parley.relay.server import RelayServer
from parley.testing.waiting import wait_for_condition
from tests.relay.conftest import FAST, next_event, relay_config
from tests.relay.raw import RawConnection


async def echo_works(relay: RelayServer) -> None:
    """A well-behaved client can still do a full round trip."""
    c = RelayClient(relay.address, settings=FAST)
    key = AuthKey.generate()
    ids = await c.create_queue(key)
    await c.subscribe(ids.recipient_id, key)
    await c.send(ids.sender_id, None, b"still here")
    assert (await next_event(c, MessageReceived)).message.body == b"still here"
    await c.close()


async def test_malformed_block_closes_only_that_connection(relay: RelayServer) -> None:
    bystander = await RawConnection.open(relay.address)
    bad = await RawConnection.open(relay.address)
    await bad.send_raw(b"\xff\xff" + b"\x00" * (p.BLOCK_SIZE - 2))
    (_, resp), *_ = await bad.recv()
    assert resp == p.Err(p.ErrorCode.BLOCK)
    assert await bad.closed_by_peer()
    assert await bystander.request(p.PING) == p.PONG
    await echo_works(relay)


async def test_truncated_block_then_eof(relay: RelayServer) -> None:
    bad = await RawConnection.open(relay.address)
    await bad.send_raw(b"\x00\x10" + b"\x01" * 100)  # far less than a block
    bad.writer.write_eof() if bad.writer.can_write_eof() else None
    bad.close()
    await echo_works(relay)


@pytest.mark.parametrize(
    ("command", "code"),
    [
        (b"HACK", p.ErrorCode.CMD_SYNTAX),
        (b"SEND", p.ErrorCode.CMD_SYNTAX),
        (b"ACK \x10abc", p.ErrorCode.CMD_SYNTAX),
        (b"OK", p.ErrorCode.CMD_SYNTAX),
        (b"", p.ErrorCode.CMD_SYNTAX),
        (b"SUB", p.ErrorCode.CMD_NO_ENTITY),
        (b"SEND \x00hi", p.ErrorCode.CMD_NO_ENTITY),
    ],
)
async def test_bad_transmission_gets_err_and_connection_stays(
    relay: RelayServer, command: bytes, code: p.ErrorCode
) -> None:
    raw = await RawConnection.open(relay.address)
    assert await raw.request(command) == p.Err(code)
    assert await raw.request(p.PING) == p.PONG


async def test_missing_and_wrong_authenticators(relay: RelayServer) -> None:
    raw = await RawConnection.open(relay.address)
    key = AuthKey.generate()
    assert await raw.request(p.New(key.public)) == p.Err(p.ErrorCode.CMD_NO_AUTH)
    # NEW authenticated with a different key than the one it registers
    assert await raw.request(p.New(key.public), key=AuthKey.generate()) == p.Err(p.ErrorCode.AUTH)
    assert await raw.request(p.New(b"short"), key=key) == p.Err(p.ErrorCode.AUTH)
    ids = await raw.request(p.New(key.public), key=key)
    assert isinstance(ids, p.Ids)
    assert await raw.request(p.SUB, ids.recipient_id) == p.Err(p.ErrorCode.CMD_NO_AUTH)
    garbage = raw.transmission(p.SUB, ids.recipient_id, key)
    forged = p.encode_transmission(os.urandom(32), p.decode_transmission(garbage).signed)
    await raw.send(forged)
    (_, resp), *_ = await raw.recv()
    assert resp == p.Err(p.ErrorCode.AUTH)
    assert await raw.request(p.PING, key=key) == p.Err(p.ErrorCode.CMD_PROHIBITED)


async def test_oversized_body(relay: RelayServer) -> None:
    raw = await RawConnection.open(relay.address)
    key = AuthKey.generate()
    ids = await raw.request(p.New(key.public), key=key)
    assert isinstance(ids, p.Ids)
    big = p.Send(0, b"x" * (p.MAX_MESSAGE_BODY + 1))
    assert await raw.request(big, ids.sender_id) == p.Err(p.ErrorCode.LARGE_MSG)


async def test_silent_connections_are_dropped_and_flood_is_bounded(tmp_path: Path) -> None:
    config = relay_config(tmp_path, handshake_timeout=0.5, max_connections=20)
    async with RelayServer(config) as relay:
        flood = [await RawConnection.open(relay.address, client_hello=False) for _ in range(20)]
        # over the limit: closed at once, before the relay says hello
        with pytest.raises((asyncio.IncompleteReadError, ConnectionError, ssl.SSLError)):
            await RawConnection.open(relay.address, client_hello=False)
        # the silent ones time out of the handshake and make room again
        for conn in flood:
            assert await conn.closed_by_peer(5)
        await wait_for_condition(lambda: relay.stats.connections == 0, 5)
        assert relay.stats.connections_rejected >= 1
        await echo_works(relay)


async def test_idle_connections_are_closed(tmp_path: Path) -> None:
    async with RelayServer(relay_config(tmp_path, idle_timeout=0.3)) as relay:
        raw = await RawConnection.open(relay.address)
        assert await raw.request(p.PING) == p.PONG
        assert await raw.closed_by_peer(5)


async def test_fuzz_live_relay(relay: RelayServer) -> None:
    """Random and mutated blocks from many connections while a normal client keeps working."""
    seed = int.from_bytes(os.urandom(4), "big")
    rng = random.Random(seed)
    key = AuthKey.generate()
    c = RelayClient(relay.address, settings=FAST)
    ids = await c.create_queue(key)
    await c.subscribe(ids.recipient_id, key)
    decoy = await c.create_queue(AuthKey.generate())  # the attackers' valid templates aim here
    valid = [
        p.encode_transmission(b"", p.signed_part(b"1", decoy.sender_id, p.encode_message(cmd)))
        for cmd in (p.Send(0, b"fuzz"), p.PING, p.SUB, p.Ack(b"x" * 24), p.New(b"k" * 32))
    ]

    def mutated_block() -> bytes:
        kind = rng.randrange(4)
        if kind == 0:
            return rng.randbytes(p.BLOCK_SIZE)
        block = bytearray(p.pack_blocks(rng.sample(valid, rng.randint(1, len(valid))))[0])
        for _ in range(rng.randint(1, 6)):
            block[rng.randrange(0 if kind == 1 else 3, 200)] = rng.randrange(256)
        return bytes(block)

    async def attacker() -> None:
        conn = await RawConnection.open(relay.address)
        try:
            for _ in range(20):
                await conn.send_raw(mutated_block())
        except (ConnectionError, OSError):
            pass
        finally:
            conn.close()

    async def normal_traffic() -> list[bytes]:
        got: list[bytes] = []
        for i in range(30):
            await c.send(ids.sender_id, None, b"n%d" % i)
            ev = await next_event(c, MessageReceived, 10)
            await c.ack(ids.recipient_id, key, ev.message.msg_id)
            got.append(ev.message.body)
        return got

    try:
        results = await asyncio.gather(normal_traffic(), *(attacker() for _ in range(20)))
        assert results[0] == [b"n%d" % i for i in range(30)]
        await echo_works(relay)
    except BaseException:
        print(f"fuzz seed: {seed}")
        raise
    finally:
        await c.close()

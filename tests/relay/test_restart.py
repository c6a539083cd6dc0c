"""A relay restarted with messages waiting delivers every acknowledged message."""

from __future__ import annotations

import asyncio
from pathlib import Path

from parley.protocol.relay_auth import AuthKey
from parley.relay.client import MessageReceived, RelayClient, RelayDown, RelayUp
from parley.relay.server import RelayServer
from parley.testing.process import RelayProcess
from tests.relay.conftest import FAST, next_event, relay_config


async def receive_all(c: RelayClient, key: AuthKey, rid: bytes, count: int) -> list[bytes]:
    bodies: list[bytes] = []
    while len(bodies) < count:
        ev = await next_event(c, MessageReceived, 10)
        assert ev.recipient_id == rid
        bodies.append(ev.message.body)
        await c.ack(rid, key, ev.message.msg_id)
    return bodies


async def test_in_process_restart_keeps_queues_and_messages(tmp_path: Path) -> None:
    relay = RelayServer(relay_config(tmp_path))
    await relay.start()
    port = relay.port
    c = RelayClient(relay.address, settings=FAST)
    rkey, ids = AuthKey.generate(), None
    ids = await c.create_queue(rkey)
    await c.subscribe(ids.recipient_id, rkey)
    skey = AuthKey.generate()
    await c.secure(ids.recipient_id, rkey, skey.public)
    first = await asyncio.gather(*(c.send(ids.sender_id, skey, b"%03d" % i) for i in range(50)))
    assert len(first) == 50
    await relay.stop()
    await next_event(c, RelayDown)

    relay = RelayServer(relay_config(tmp_path, port=port))
    await relay.start()
    try:
        await next_event(c, RelayUp, 10)  # reconnected and resubscribed by itself
        assert await receive_all(c, rkey, ids.recipient_id, 50) == [b"%03d" % i for i in range(50)]
        await c.send(ids.sender_id, skey, b"after")  # the sender key survived too
        assert await receive_all(c, rkey, ids.recipient_id, 1) == [b"after"]
    finally:
        await c.close()
        await relay.stop()


async def test_sigkill_loses_no_acknowledged_message(tmp_path: Path) -> None:
    proc = RelayProcess(tmp_path / "relay")
    address = await proc.start()
    try:
        c = RelayClient(address, settings=FAST)
        rkey = AuthKey.generate()
        ids = await c.create_queue(rkey)
        skey = AuthKey.generate()
        await c.secure(ids.recipient_id, rkey, skey.public)
        # every one of these was answered OK, so every one must survive the SIGKILL
        await asyncio.gather(*(c.send(ids.sender_id, skey, b"%03d" % i) for i in range(100)))
        await proc.kill()
        await next_event(c, RelayDown)

        again = await proc.start()
        assert again == address  # same fingerprint, host and port
        await next_event(c, RelayUp, 15)
        await c.subscribe(ids.recipient_id, rkey)
        got = await receive_all(c, rkey, ids.recipient_id, 100)
        assert got == [b"%03d" % i for i in range(100)]
        assert await c.get(ids.recipient_id, rkey) is None
        await c.close()
    finally:
        await proc.kill()


async def test_acknowledged_messages_stay_gone_after_sigkill(tmp_path: Path) -> None:
    proc = RelayProcess(tmp_path / "relay")
    address = await proc.start()
    try:
        c = RelayClient(address, settings=FAST)
        rkey = AuthKey.generate()
        ids = await c.create_queue(rkey)
        for i in range(5):
            await c.send(ids.sender_id, None, b"%d" % i)
        await c.subscribe(ids.recipient_id, rkey)
        await receive_all(c, rkey, ids.recipient_id, 3)
        await c.ping()  # a round trip after the last ACK: its commit was queued before
        await proc.kill()
        await proc.start()
        await next_event(c, RelayUp, 15)
        # an ACK answered before its commit may be lost in a crash: then that message comes
        # again (receivers dedupe); the two never acknowledged must both come
        rest: list[bytes] = []
        while (msg := await c.get(ids.recipient_id, rkey)) is not None:
            rest.append(msg.body)
            await c.ack(ids.recipient_id, rkey, msg.msg_id)
        assert rest[-2:] == [b"3", b"4"]
        assert set(rest) <= {b"0", b"1", b"2", b"3", b"4"}
        await c.close()
    finally:
        await proc.kill()

"""Stored messages stay on disk: memory holds a bounded cache of bodies, not the stored volume."""

from __future__ import annotations

import asyncio
import gc
import tracemalloc
from pathlib import Path

from parley.protocol.relay_auth import AuthKey
from parley.relay.client import MessageReceived, RelayClient
from parley.relay.server import RelayServer, Stored
from tests.relay.conftest import FAST, next_event, relay_config

QUEUES = 40
PER_QUEUE = 128
BODY = 16_000
CACHE = 1024 * 1024


def body(q: int, i: int) -> bytes:
    head = b"%d/%d:" % (q, i)
    return head + bytes([q % 251]) * (BODY - len(head))


async def test_stored_volume_does_not_stay_in_memory(tmp_path: Path) -> None:
    store = tmp_path / "relay"
    keys = [AuthKey.generate() for _ in range(QUEUES)]
    async with RelayServer(relay_config(store, cache_bytes=CACHE)) as relay:
        c = RelayClient(relay.address, settings=FAST)
        queues = [await c.create_queue(k) for k in keys]

        async def fill(q: int) -> None:
            for i in range(PER_QUEUE):
                await c.send(queues[q].sender_id, None, body(q, i))
                assert relay.cache.bytes <= CACHE

        await asyncio.gather(*(fill(q) for q in range(QUEUES)))
        await c.close()
        st = relay.snapshot()
        assert st.messages_stored == QUEUES * PER_QUEUE
        assert st.bytes_stored == QUEUES * PER_QUEUE * BODY
        assert st.cache_bytes <= CACHE
        # what memory keeps per message is its header, never its body
        assert all(
            isinstance(m, Stored) and m.size == BODY
            for qs in relay.queues.by_recipient.values()
            for m in qs.messages
        )

    # a restart reads the headers only: 5,120 messages, 82 MB of bodies, far less memory
    gc.collect()
    tracemalloc.start()
    try:
        relay = RelayServer(relay_config(store, cache_bytes=CACHE))
        await relay.start()
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    try:
        print(f"memory allocated while loading {QUEUES * PER_QUEUE} messages: {peak} bytes")
        assert peak < 8 * 1024 * 1024
        assert relay.stats.messages_stored == QUEUES * PER_QUEUE
        assert relay.cache.bytes == 0

        # every message comes back, in order, read from disk through the bounded cache
        c = RelayClient(relay.address, settings=FAST)
        for q in (0, QUEUES - 1):
            ids = queues[q]
            await c.subscribe(ids.recipient_id, keys[q])
            for i in range(PER_QUEUE):
                ev = await next_event(c, MessageReceived)
                assert ev.message.body == body(q, i)
                await c.ack(ids.recipient_id, keys[q], ev.message.msg_id)
                assert relay.cache.bytes <= CACHE
        await c.close()
        assert relay.stats.messages_stored == (QUEUES - 2) * PER_QUEUE
        assert relay.stats.bytes_stored == (QUEUES - 2) * PER_QUEUE * BODY
    finally:
        await relay.stop()

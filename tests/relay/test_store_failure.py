"""A failed commit changes nothing: the client gets INTERNAL and memory stays as on disk."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import pytest

from parley.protocol import relay as p
from parley.protocol.relay_auth import AuthKey
from parley.relay.client import RelayClient
from parley.relay.errors import TemporaryRelayError
from parley.relay.server import DB_FILE, RelayServer
from parley.relay.store import MessageHeader, QueueRecord, SqliteQueueStore, StoreOp
from tests.relay.conftest import FAST, relay_config


class FlakyStore:
    """The real SQLite store, with commits that fail while `failing` is set, and reads of
    message bodies while `failing_reads` is set."""

    def __init__(self, inner: SqliteQueueStore) -> None:
        self.inner = inner
        self.failing = False
        self.failing_reads = False

    async def load(self) -> tuple[list[QueueRecord], list[MessageHeader]]:
        return await self.inner.load()

    async def read_bodies(
        self, recipient_id: bytes, msg_ids: Sequence[bytes]
    ) -> dict[bytes, bytes]:
        if self.failing_reads:
            raise OSError("I/O error")
        return await self.inner.read_bodies(recipient_id, msg_ids)

    async def apply(self, ops: Sequence[StoreOp]) -> None:
        if self.failing:
            raise OSError("disk full")
        await self.inner.apply(ops)

    async def close(self) -> None:
        await self.inner.close()


async def test_failed_commits_leave_queues_unchanged(tmp_path: Path) -> None:
    store = FlakyStore(await SqliteQueueStore.open(tmp_path / DB_FILE))
    async with RelayServer(relay_config(tmp_path), store=store) as relay:
        c = RelayClient(relay.address, settings=FAST)
        rkey = AuthKey.generate()
        ids = await c.create_queue(rkey)
        skey = AuthKey.generate()

        store.failing = True
        for call in (
            c.secure(ids.recipient_id, rkey, skey.public),
            c.suspend(ids.recipient_id, rkey),
            c.delete(ids.recipient_id, rkey),
            c.send(ids.sender_id, None, b"lost?"),
        ):
            with pytest.raises(TemporaryRelayError) as e:
                await call
            assert e.value.code == p.ErrorCode.INTERNAL
        store.failing = False

        # not secured, not suspended, not deleted, and the failed SEND is not stored
        assert await c.get(ids.recipient_id, rkey) is None
        await c.send(ids.sender_id, None, b"unsecured still")
        await c.secure(ids.recipient_id, rkey, skey.public)
        await c.send(ids.sender_id, skey, b"secured now")
        first = await c.get(ids.recipient_id, rkey)
        assert first is not None and first.body == b"unsecured still"
        await c.close()


async def test_failed_body_reads_answer_internal_and_recover(tmp_path: Path) -> None:
    """With no body cache every delivery reads the store: a failed read answers GET with
    INTERNAL and leaves the message in place; the next read delivers it."""
    store = FlakyStore(await SqliteQueueStore.open(tmp_path / DB_FILE))
    async with RelayServer(relay_config(tmp_path, cache_bytes=0), store=store) as relay:
        c = RelayClient(relay.address, settings=FAST)
        rkey = AuthKey.generate()
        ids = await c.create_queue(rkey)
        await c.send(ids.sender_id, None, b"on disk only")
        assert relay.cache.bytes == 0
        store.failing_reads = True
        with pytest.raises(TemporaryRelayError) as e:
            await c.get(ids.recipient_id, rkey)
        assert e.value.code == p.ErrorCode.INTERNAL
        store.failing_reads = False
        got = await c.get(ids.recipient_id, rkey)
        assert got is not None and got.body == b"on disk only"
        await c.close()

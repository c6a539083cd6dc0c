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
from parley.relay.store import MessageRecord, QueueRecord, SqliteQueueStore, StoreOp
from tests.relay.conftest import FAST, relay_config


class FlakyStore:
    """The real SQLite store, with commits that fail while `failing` is set."""

    def __init__(self, inner: SqliteQueueStore) -> None:
        self.inner = inner
        self.failing = False

    async def load(self) -> tuple[list[QueueRecord], list[MessageRecord]]:
        return await self.inner.load()

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

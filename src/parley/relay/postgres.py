"""PostgreSQL queue store for relays that serve many users (`pip install parley[postgres]`).

The same contract as the SQLite store: `load()` at start (queues and message headers), then
`apply(ops)` runs a batch of operations in one transaction (the relay groups commits),
`read_bodies()` reads message bodies that are not in the relay's cache, `close()`. The schema is
versioned in the `parley_schema` table; migrations run at open.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import msgspec

from parley.relay.store import (
    INSERT_QUEUE,
    SELECT_HEADERS,
    SELECT_QUEUES,
    AddMessage,
    CreateQueue,
    DeleteExpired,
    DeleteMessage,
    DeleteQueue,
    MessageHeader,
    QueueRecord,
    SecureQueue,
    StoreOp,
    SuspendQueue,
    first_schema,
)

MIGRATIONS = [first_schema("BYTEA", "BIGINT", "SMALLINT", "BIGSERIAL PRIMARY KEY")]

_ADD = (
    "INSERT INTO messages (recipient_id, msg_id, ts, flags, body) "
    "SELECT $1, $2, $3, $4, $5 WHERE EXISTS (SELECT 1 FROM queues WHERE recipient_id = $1)"
)


class PostgresQueueStore:
    def __init__(self, pool: Any) -> None:
        self._pool = pool

    @classmethod
    async def open(cls, dsn: str) -> PostgresQueueStore:
        try:
            import asyncpg
        except ImportError as e:  # pragma: no cover - depends on the installed extras
            raise RuntimeError("the PostgreSQL store needs: pip install 'parley[postgres]'") from e
        pool = await asyncpg.create_pool(dsn, min_size=1, max_size=4)
        async with pool.acquire() as conn, conn.transaction():
            await conn.execute("CREATE TABLE IF NOT EXISTS parley_schema (version INT NOT NULL)")
            await conn.execute("LOCK TABLE parley_schema IN EXCLUSIVE MODE")
            version = await conn.fetchval("SELECT max(version) FROM parley_schema") or 0
            if version > len(MIGRATIONS):
                raise RuntimeError(f"database schema version {version} is newer than parley")
            for v in range(version, len(MIGRATIONS)):
                await conn.execute(MIGRATIONS[v])
                await conn.execute("INSERT INTO parley_schema (version) VALUES ($1)", v + 1)
        return cls(pool)

    async def load(self) -> tuple[list[QueueRecord], list[MessageHeader]]:
        async with self._pool.acquire() as conn:
            queues = [
                QueueRecord(
                    bytes(r[0]),
                    bytes(r[1]),
                    bytes(r[2]),
                    bytes(r[3]) if r[3] is not None else None,
                    r[4],
                    r[5],
                )
                for r in await conn.fetch(SELECT_QUEUES)
            ]
            messages = [
                MessageHeader(bytes(r[0]), bytes(r[1]), r[2], r[3], r[4])
                for r in await conn.fetch(SELECT_HEADERS)
            ]
        return queues, messages

    async def read_bodies(
        self, recipient_id: bytes, msg_ids: Sequence[bytes]
    ) -> dict[bytes, bytes]:
        if not msg_ids:
            return {}
        async with self._pool.acquire() as conn:
            rows = await conn.fetch(
                "SELECT msg_id, body FROM messages WHERE recipient_id = $1 "
                "AND msg_id = ANY($2::bytea[])",
                recipient_id,
                list(msg_ids),
            )
        return {bytes(r[0]): bytes(r[1]) for r in rows}

    async def apply(self, ops: Sequence[StoreOp]) -> None:
        async with self._pool.acquire() as conn, conn.transaction():
            batch: list[tuple[bytes, bytes, int, int, bytes]] = []
            for op in ops:
                if isinstance(op, AddMessage):
                    m = op.message
                    batch.append((m.recipient_id, m.msg_id, m.ts, m.flags, m.body))
                    continue
                if batch:  # consecutive SENDs go in one round trip
                    await conn.executemany(_ADD, batch)
                    batch = []
                await _apply_one(conn, op)
            if batch:
                await conn.executemany(_ADD, batch)

    async def close(self) -> None:
        await self._pool.close()


async def _apply_one(conn: Any, op: StoreOp) -> None:
    match op:
        case DeleteMessage(rid, mid):
            await conn.execute(
                "DELETE FROM messages WHERE recipient_id = $1 AND msg_id = $2", rid, mid
            )
        case CreateQueue(q):
            await conn.execute(
                INSERT_QUEUE.format("$1, $2, $3, $4, $5, $6"), *msgspec.structs.astuple(q)
            )
        case SecureQueue(rid, key):
            await conn.execute(
                "UPDATE queues SET sender_key = $1 WHERE recipient_id = $2", key, rid
            )
        case SuspendQueue(rid):
            await conn.execute("UPDATE queues SET status = 'off' WHERE recipient_id = $1", rid)
        case DeleteQueue(rid):
            await conn.execute("DELETE FROM queues WHERE recipient_id = $1", rid)
        case DeleteExpired(before):
            await conn.execute("DELETE FROM messages WHERE ts < $1", before)
        case AddMessage():  # pragma: no cover - batched by apply()
            raise AssertionError("AddMessage is batched")

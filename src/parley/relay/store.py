"""Durable queue storage for the relay: SQLite (WAL) with grouped commits.

The relay keeps its queues and the headers of their messages in memory and writes every
change through a `GroupCommitter`: changes submitted while a commit is in flight are
written together in the next transaction, so a thousand SENDs cost a handful of fsyncs, and
each SEND is answered only after the transaction holding it has committed. Message bodies
live in the store; the relay keeps a bounded cache of them and reads the others back
(`read_bodies`) when it delivers them.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sqlite3
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Protocol

import msgspec

from parley.store import Database

log = logging.getLogger(__name__)


def first_schema(blob: str, integer: str, small: str, serial: str) -> str:
    """The relay's first schema in a dialect's column types (SQLite's, PostgreSQL's)."""
    return f"""
    CREATE TABLE queues (
        recipient_id {blob} PRIMARY KEY,
        sender_id {blob} NOT NULL UNIQUE,
        recipient_key {blob} NOT NULL,
        sender_key {blob},
        status TEXT NOT NULL DEFAULT 'active',
        created_at {integer} NOT NULL
    );
    CREATE TABLE messages (
        seq {serial},
        recipient_id {blob} NOT NULL REFERENCES queues(recipient_id) ON DELETE CASCADE,
        msg_id {blob} NOT NULL,
        ts {integer} NOT NULL,
        flags {small} NOT NULL,
        body {blob} NOT NULL
    );
    CREATE INDEX messages_by_queue ON messages(recipient_id, seq);
    CREATE INDEX messages_by_time ON messages(ts);
    """


MIGRATIONS = [first_schema("BLOB", "INTEGER", "INTEGER", "INTEGER PRIMARY KEY AUTOINCREMENT")]

# a QueueRecord's fields in order, to fill with the dialect's placeholders
INSERT_QUEUE = (
    "INSERT INTO queues (recipient_id, sender_id, recipient_key, sender_key, status, "
    "created_at) VALUES ({})"
)
# what load() reads, in every store (length() of a BLOB reads its size, not its content)
SELECT_QUEUES = (
    "SELECT recipient_id, sender_id, recipient_key, sender_key, status, created_at FROM queues"
)
SELECT_HEADERS = "SELECT recipient_id, msg_id, ts, flags, length(body) FROM messages ORDER BY seq"


class QueueRecord(msgspec.Struct):
    recipient_id: bytes
    sender_id: bytes
    recipient_key: bytes
    sender_key: bytes | None
    status: str
    created_at: int


class MessageRecord(msgspec.Struct):
    recipient_id: bytes
    msg_id: bytes
    ts: int
    flags: int
    body: bytes


class MessageHeader(msgspec.Struct, frozen=True, gc=False):
    """A stored message without its body: what the relay keeps in memory for each."""

    recipient_id: bytes
    msg_id: bytes
    ts: int
    flags: int
    size: int  # body length in bytes


# ---------------------------------------------------------------- store operations


class CreateQueue(msgspec.Struct):
    queue: QueueRecord


class SecureQueue(msgspec.Struct):
    recipient_id: bytes
    sender_key: bytes


class SuspendQueue(msgspec.Struct):
    recipient_id: bytes


class DeleteQueue(msgspec.Struct):
    recipient_id: bytes


class AddMessage(msgspec.Struct):
    message: MessageRecord


class DeleteMessage(msgspec.Struct):
    recipient_id: bytes
    msg_id: bytes


class DeleteExpired(msgspec.Struct):
    before_ts: int


StoreOp = (
    CreateQueue
    | SecureQueue
    | SuspendQueue
    | DeleteQueue
    | AddMessage
    | DeleteMessage
    | DeleteExpired
)


class QueueStore(Protocol):
    """What the relay needs from its storage (SQLite here, PostgreSQL in postgres.py)."""

    async def load(self) -> tuple[list[QueueRecord], list[MessageHeader]]:
        """Every queue, and every message's header in queue order (no bodies)."""
        ...

    async def read_bodies(
        self, recipient_id: bytes, msg_ids: Sequence[bytes]
    ) -> dict[bytes, bytes]:
        """The bodies of those of `msg_ids` that the queue still holds, by message id."""
        ...

    async def apply(self, ops: Sequence[StoreOp]) -> None: ...

    async def close(self) -> None: ...


class SqliteQueueStore:
    def __init__(self, db: Database) -> None:
        self._db = db

    @classmethod
    async def open(cls, path: Path) -> SqliteQueueStore:
        return cls(await Database.open(path, MIGRATIONS))

    async def load(self) -> tuple[list[QueueRecord], list[MessageHeader]]:
        def read(c: sqlite3.Connection) -> tuple[list[QueueRecord], list[MessageHeader]]:
            queues = [QueueRecord(*row) for row in c.execute(SELECT_QUEUES)]
            messages = [MessageHeader(*row) for row in c.execute(SELECT_HEADERS)]
            return queues, messages

        return await self._db.run(read)

    async def read_bodies(
        self, recipient_id: bytes, msg_ids: Sequence[bytes]
    ) -> dict[bytes, bytes]:
        ids = list(msg_ids)

        def read(c: sqlite3.Connection) -> dict[bytes, bytes]:
            marks = ",".join("?" * len(ids))
            rows = c.execute(
                f"SELECT msg_id, body FROM messages WHERE recipient_id = ? AND msg_id IN ({marks})",
                (recipient_id, *ids),
            )
            return {bytes(m): bytes(b) for m, b in rows}

        return await self._db.run(read) if ids else {}

    async def apply(self, ops: Sequence[StoreOp]) -> None:
        await self._db.run(lambda c: _apply(c, ops))

    async def close(self) -> None:
        await self._db.close()


_ADD = (
    # a queue deleted earlier in the same batch simply gets nothing
    "INSERT INTO messages (recipient_id, msg_id, ts, flags, body) "
    "SELECT ?, ?, ?, ?, ? WHERE EXISTS (SELECT 1 FROM queues WHERE recipient_id = ?)"
)
_DELETE = "DELETE FROM messages WHERE recipient_id = ? AND msg_id = ?"


def _apply(c: sqlite3.Connection, ops: Sequence[StoreOp]) -> None:
    # runs of SENDs and of ACKs go to executemany: one C loop instead of a call each
    adds: list[tuple[bytes, bytes, int, int, bytes, bytes]] = []
    deletes: list[tuple[bytes, bytes]] = []

    def flush() -> None:
        if adds:
            c.executemany(_ADD, adds)
            adds.clear()
        if deletes:
            c.executemany(_DELETE, deletes)
            deletes.clear()

    for op in ops:
        if isinstance(op, AddMessage):
            if deletes:
                flush()
            m = op.message
            adds.append((m.recipient_id, m.msg_id, m.ts, m.flags, m.body, m.recipient_id))
            continue
        if isinstance(op, DeleteMessage):
            if adds:
                flush()
            deletes.append((op.recipient_id, op.msg_id))
            continue
        flush()
        match op:
            case CreateQueue(q):
                c.execute(INSERT_QUEUE.format("?, ?, ?, ?, ?, ?"), msgspec.structs.astuple(q))
            case SecureQueue(rid, key):
                c.execute("UPDATE queues SET sender_key = ? WHERE recipient_id = ?", (key, rid))
            case SuspendQueue(rid):
                c.execute("UPDATE queues SET status = 'off' WHERE recipient_id = ?", (rid,))
            case DeleteQueue(rid):
                c.execute("DELETE FROM messages WHERE recipient_id = ?", (rid,))
                c.execute("DELETE FROM queues WHERE recipient_id = ?", (rid,))
            case DeleteExpired(before):
                c.execute("DELETE FROM messages WHERE ts < ?", (before,))
    flush()


Done = Callable[[BaseException | None], None]

# upper bounds (seconds) of the commit latency histogram (`GroupCommitter.latency`)
COMMIT_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class Histogram:
    """Counts of observations per bucket (the last one is +Inf), their sum and count."""

    __slots__ = ("bounds", "count", "counts", "total")

    def __init__(self, bounds: Sequence[float]) -> None:
        self.bounds = tuple(bounds)
        self.counts = [0] * (len(self.bounds) + 1)
        self.total = 0.0
        self.count = 0

    def observe(self, value: float) -> None:
        i = 0
        for bound in self.bounds:
            if value <= bound:
                break
            i += 1
        self.counts[i] += 1
        self.total += value
        self.count += 1


class GroupCommitter:
    """Batches store operations: at most one transaction in flight, the next one takes all.

    `submit(op, done)` queues an operation; `done(None)` is called, in submission order,
    once the transaction holding it has committed (`done(error)` if it failed).
    """

    def __init__(self, store: QueueStore) -> None:
        self._store = store
        self._ops: list[StoreOp] = []
        self._callbacks: list[Done | None] = []
        self._wake = asyncio.Event()
        self._idle = asyncio.Event()
        self._idle.set()
        self._task: asyncio.Task[None] | None = None
        self.commits = 0
        self.ops_committed = 0
        self.latency = Histogram(COMMIT_BUCKETS)  # seconds per committed transaction

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="relay-group-commit")

    def submit(self, op: StoreOp, done: Done | None = None) -> None:
        self._ops.append(op)
        self._callbacks.append(done)
        self._idle.clear()
        self._wake.set()

    async def flush(self) -> None:
        """Wait until everything submitted so far has been committed (or has failed)."""
        while self._ops or not self._idle.is_set():
            await self._idle.wait()

    async def stop(self) -> None:
        await self.flush()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def _run(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            if not self._ops:
                self._idle.set()
                continue
            ops, callbacks = self._ops, self._callbacks
            self._ops, self._callbacks = [], []
            error: BaseException | None = None
            try:
                started = time.perf_counter()
                await self._store.apply(ops)
                self.latency.observe(time.perf_counter() - started)
                self.commits += 1
                self.ops_committed += len(ops)
            except asyncio.CancelledError:
                raise
            except Exception as e:
                log.error("relay store commit of %d operations failed: %s", len(ops), e)
                error = e
            for cb in callbacks:
                if cb is not None:
                    try:
                        cb(error)
                    except Exception:
                        log.exception("commit callback failed")
            if self._ops:
                self._wake.set()
            else:
                self._idle.set()

"""SQLite on one dedicated thread, one transaction per call, migrations by user_version.

Every layer that persists something (relay, agent, chat) uses this executor. A call is a
plain function of a `sqlite3.Connection`; it runs on the database thread inside
`BEGIN IMMEDIATE ... COMMIT` and its result (or exception, after a rollback) comes back to
the awaiting coroutine. Because one thread owns the connection, calls are serialised and
never interleave inside a transaction.
"""

from __future__ import annotations

import asyncio
import os
import queue
import sqlite3
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from pathlib import Path
from typing import Any, TypeVar

T = TypeVar("T")

_Call = tuple[Callable[[sqlite3.Connection], Any], "Future[Any]"]


class DatabaseClosed(RuntimeError):
    """The database was closed before or while the call was made."""


def create_private_file(path: Path) -> None:
    """Create `path` readable and writable by its owner only, if it does not exist.

    SQLite gives its -wal and -shm files the mode of the main database file, so making the
    main file 0600 before SQLite opens it keeps all three private.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_CREAT | os.O_RDWR, 0o600)
    os.close(fd)


class Database:
    """An SQLite file owned by one thread; `await db.run(fn)` runs `fn(conn)` in a transaction."""

    def __init__(self, path: Path, conn: sqlite3.Connection) -> None:
        self.path = path
        self._conn = conn
        self._calls: queue.SimpleQueue[_Call | None] = queue.SimpleQueue()
        self._closed = False
        self._thread = threading.Thread(target=self._serve, name=f"sqlite:{path.name}", daemon=True)
        self._thread.start()

    @classmethod
    def open_sync(cls, path: str | Path, migrations: Sequence[str]) -> Database:
        """Open (creating privately if needed) and migrate the database at `path`."""
        p = Path(path)
        if str(p) != ":memory:":
            create_private_file(p)
        conn = sqlite3.connect(str(p), isolation_level=None, check_same_thread=False)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=FULL")
        conn.execute("PRAGMA foreign_keys=ON")
        conn.execute("PRAGMA busy_timeout=5000")
        migrate(conn, migrations)
        return cls(p, conn)

    @classmethod
    async def open(cls, path: str | Path, migrations: Sequence[str]) -> Database:
        return await asyncio.to_thread(cls.open_sync, path, migrations)

    def _serve(self) -> None:
        conn = self._conn
        while True:
            item = self._calls.get()
            if item is None:
                break
            fn, fut = item
            if not fut.set_running_or_notify_cancel():
                continue
            try:
                conn.execute("BEGIN IMMEDIATE")
                try:
                    result = fn(conn)
                except BaseException:
                    conn.execute("ROLLBACK")
                    raise
                conn.execute("COMMIT")
            except BaseException as e:
                fut.set_exception(e)
            else:
                fut.set_result(result)
        conn.close()

    def submit(self, fn: Callable[[sqlite3.Connection], T]) -> Future[T]:
        """Queue `fn` for the database thread; returns a concurrent future."""
        if self._closed:
            raise DatabaseClosed(str(self.path))
        fut: Future[T] = Future()
        self._calls.put((fn, fut))
        return fut

    async def run(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """Run `fn(conn)` in one transaction on the database thread."""
        return await asyncio.wrap_future(self.submit(fn))

    def run_sync(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """Blocking form of `run`, for code that is not in the event loop."""
        return self.submit(fn).result()

    async def close(self) -> None:
        await asyncio.to_thread(self.close_sync)

    def close_sync(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._calls.put(None)
        self._thread.join()


def migrate(conn: sqlite3.Connection, migrations: Sequence[str]) -> None:
    """Apply migrations[user_version:] in order, each in its own transaction."""
    current: int = conn.execute("PRAGMA user_version").fetchone()[0]
    if current > len(migrations):
        raise RuntimeError(
            f"database schema version {current} is newer than this program knows "
            f"({len(migrations)}); upgrade parley"
        )
    for version in range(current, len(migrations)):
        conn.execute("BEGIN IMMEDIATE")
        try:
            for statement in _split_sql(migrations[version]):
                conn.execute(statement)
            conn.execute(f"PRAGMA user_version = {version + 1}")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")


def _split_sql(script: str) -> list[str]:
    """Split a migration script into statements (executescript would commit on its own)."""
    statements: list[str] = []
    buf = ""
    for line in script.splitlines(keepends=True):
        buf += line
        if sqlite3.complete_statement(buf):
            if buf.strip():
                statements.append(buf.strip())
            buf = ""
    if buf.strip():
        statements.append(buf.strip())
    return statements


Row = tuple[Any, ...]

"""SQLite on one dedicated thread, each call atomic, migrations by user_version.

Every layer that persists something (relay, agent, chat) uses this executor. A call is a
plain function of a `sqlite3.Connection`; it runs on the database thread and its result (or
exception, after its changes were rolled back) comes back to the awaiting coroutine once its
changes are durable. Because one thread owns the connection, calls are serialised and never
interleave.

Group commit: the calls that are queued when the thread takes work (up to `GROUP_MAX`) run
one after another inside one `BEGIN IMMEDIATE ... COMMIT`, each in its own savepoint, so a
call that raises undoes only its own changes. One synced commit then covers them all, and no
result is handed back before it: a caller never sees a result whose changes could still be
lost. A lone call is simply its own transaction.

Private at rest: files are created 0600 (and existing ones set so), deleted content is
overwritten (`secure_delete`), and the write-ahead log is checkpointed and truncated every
few seconds and at close, so that what was cleared does not linger in old WAL frames. With
a key the file is encrypted with SQLCipher (the `encrypted` extra, `sqlcipher3-binary`).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import queue
import sqlite3
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from pathlib import Path
from typing import Any, TypeVar

T = TypeVar("T")

# a call and where its outcome goes: a concurrent future (`submit`), or an asyncio future
# (`schedule`, `run`) whose loop gets the outcomes of a whole group in one wake-up
_Call = tuple[Callable[[sqlite3.Connection], Any], "Future[Any] | asyncio.Future[Any]"]
_Outcome = tuple["Future[Any] | asyncio.Future[Any]", Any, BaseException | None]

# the write-ahead log is checkpointed and truncated at most this often (and at close)
CHECKPOINT_INTERVAL = 5.0
# at most this many queued calls share one commit
GROUP_MAX = 64


class DatabaseClosed(RuntimeError):
    """The database was closed before or while the call was made."""


class DatabaseKeyError(RuntimeError):
    """The database cannot be opened with the key given (or without one)."""


def create_private_file(path: Path) -> None:
    """Create `path` readable and writable by its owner only; make an existing one so.

    SQLite gives its -wal and -shm files the mode of the main database file, so making the
    main file 0600 before SQLite opens it keeps all three private. A parent directory made
    here is 0700.
    """
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    fd = os.open(path, os.O_CREAT | os.O_RDWR, 0o600)
    os.close(fd)
    for p in (path, path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm")):
        if p.exists() and p.stat().st_mode & 0o077:
            os.chmod(p, 0o600)


def private_directory(path: Path) -> None:
    """Make `path` (and missing parents) 0700; an existing one is made so too. Only for
    directories parley owns (a relay's store, the default chat data directory)."""
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    if path.stat().st_mode & 0o077:
        os.chmod(path, 0o700)


def _connect(path: Path, key: str | None) -> sqlite3.Connection:
    if key is None:
        return sqlite3.connect(str(path), isolation_level=None, check_same_thread=False)
    try:
        from sqlcipher3 import dbapi2 as sqlcipher
    except ImportError as e:
        raise DatabaseKeyError(
            "an encrypted database needs SQLCipher: pip install 'parley[encrypted]'"
        ) from e
    conn: sqlite3.Connection = sqlcipher.connect(
        str(path), isolation_level=None, check_same_thread=False
    )
    conn.execute("PRAGMA key = '" + key.replace("'", "''") + "'")
    return conn


def _check_readable(conn: sqlite3.Connection, path: Path, key: str | None) -> None:
    try:
        conn.execute("SELECT count(*) FROM sqlite_master").fetchone()
    except Exception as e:  # sqlite3 and sqlcipher3 each have their DatabaseError
        conn.close()
        if key is None:
            raise DatabaseKeyError(f"{path} is encrypted (or not a database): give its key") from e
        raise DatabaseKeyError(f"cannot open {path}: wrong key, or not a database") from e


class Database:
    """An SQLite file owned by one thread; `await db.run(fn)` runs `fn(conn)` in a transaction."""

    def __init__(self, path: Path, conn: sqlite3.Connection) -> None:
        self.path = path
        self._conn = conn
        self._last_checkpoint = time.monotonic()
        self._dirty = False  # committed since the last checkpoint
        self._calls: queue.SimpleQueue[_Call | None] = queue.SimpleQueue()
        self._closed = False
        self._thread = threading.Thread(target=self._serve, name=f"sqlite:{path.name}", daemon=True)
        self._thread.start()

    @classmethod
    def open_sync(
        cls, path: str | Path, migrations: Sequence[str], key: str | None = None
    ) -> Database:
        """Open (creating privately if needed) and migrate the database at `path`;
        encrypted with `key` (a passphrase) if one is given."""
        p = Path(path)
        if str(p) != ":memory:":
            create_private_file(p)
        conn = _connect(p, key)
        _check_readable(conn, p, key)
        conn.execute("PRAGMA secure_delete=ON")
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=FULL")
        conn.execute("PRAGMA foreign_keys=ON")
        conn.execute("PRAGMA busy_timeout=5000")
        migrate(conn, migrations)
        return cls(p, conn)

    @classmethod
    async def open(
        cls, path: str | Path, migrations: Sequence[str], key: str | None = None
    ) -> Database:
        return await asyncio.to_thread(cls.open_sync, path, migrations, key)

    def _serve(self) -> None:
        while True:
            try:
                item = self._calls.get(timeout=CHECKPOINT_INTERVAL if self._dirty else None)
            except queue.Empty:
                self._checkpoint()
                continue
            if item is None:
                break
            group, checkpoint, closing = self._take_group(item)
            if group:
                self._run_group(group)
            if closing:
                break
            if checkpoint is not None and _start(checkpoint[1]):
                self._checkpoint()  # outside any transaction
                _hand_back([(checkpoint[1], None, None)])
            if self._dirty and time.monotonic() - self._last_checkpoint > CHECKPOINT_INTERVAL:
                self._checkpoint()
        self._checkpoint()
        self._conn.close()

    def _take_group(self, first: _Call) -> tuple[list[_Call], _Call | None, bool]:
        """`first` and the calls queued behind it, up to a checkpoint call (returned apart,
        done after the group) or the close marker (then True)."""
        group: list[_Call] = []
        item: _Call | None = first
        while True:
            if item is None:
                return group, None, True
            if item[0] is _CHECKPOINT:
                return group, item, False
            if _start(item[1]):
                group.append(item)
            if len(group) >= GROUP_MAX:
                return group, None, False
            try:
                item = self._calls.get_nowait()
            except queue.Empty:
                return group, None, False

    def _run_group(self, group: list[_Call]) -> None:
        """Run the calls of `group` in one transaction, each in a savepoint (a lone call
        needs none); hand back their outcomes only once the transaction has committed."""
        conn = self._conn
        outcomes: list[_Outcome] = []
        alone = len(group) == 1
        try:
            conn.execute("BEGIN IMMEDIATE")
            for fn, fut in group:
                if not alone:
                    conn.execute("SAVEPOINT call")
                try:
                    result = fn(conn)
                except BaseException as e:
                    if alone:
                        conn.execute("ROLLBACK")
                    else:
                        conn.execute("ROLLBACK TO call")
                        conn.execute("RELEASE call")
                    outcomes.append((fut, None, e))
                else:
                    if not alone:
                        conn.execute("RELEASE call")
                    outcomes.append((fut, result, None))
            if conn.in_transaction:
                conn.execute("COMMIT")
                self._dirty = True
        except BaseException as e:  # BEGIN, COMMIT or a savepoint failed: nothing was kept
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            outcomes = [(fut, None, e) for _, fut in group]
        _hand_back(outcomes)

    def _checkpoint(self) -> None:
        """Copy the WAL into the database file and truncate it (database thread only)."""
        self._last_checkpoint = time.monotonic()
        self._dirty = False
        try:
            self._conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
        except Exception:  # a reader in another process may hold it up: next time
            self._dirty = True

    async def checkpoint(self) -> None:
        """Checkpoint and truncate the write-ahead log now."""
        await self.run(_CHECKPOINT)

    def submit(self, fn: Callable[[sqlite3.Connection], T]) -> Future[T]:
        """Queue `fn` for the database thread; returns a concurrent future."""
        if self._closed:
            raise DatabaseClosed(str(self.path))
        fut: Future[T] = Future()
        self._calls.put((fn, fut))
        return fut

    def schedule(self, fn: Callable[[sqlite3.Connection], T]) -> asyncio.Future[T]:
        """Queue `fn` for the database thread; returns a future of the running loop, done
        once `fn`'s changes have committed. Cancelling it before the call started skips it."""
        if self._closed:
            raise DatabaseClosed(str(self.path))
        fut: asyncio.Future[T] = asyncio.get_running_loop().create_future()
        self._calls.put((fn, fut))
        return fut

    async def run(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """Run `fn(conn)` atomically on the database thread; its result once committed."""
        return await self.schedule(fn)

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


def encrypt_file(path: str | Path, key: str) -> None:
    """Encrypt the plaintext database at `path` in place with `key` (no process may have it
    open). The plaintext copy is overwritten before it is removed."""
    p = Path(path)
    plain = sqlite3.connect(str(p), isolation_level=None)
    _check_readable(plain, p, None)  # plaintext, or it says so
    plain.execute("PRAGMA wal_checkpoint(TRUNCATE)")  # everything in the main file now
    plain.close()
    tmp = p.with_name(p.name + ".encrypting")
    tmp.unlink(missing_ok=True)
    create_private_file(tmp)
    try:
        from sqlcipher3 import dbapi2 as sqlcipher
    except ImportError as e:
        raise DatabaseKeyError(
            "an encrypted database needs SQLCipher: pip install 'parley[encrypted]'"
        ) from e
    src = sqlcipher.connect(str(p), isolation_level=None)
    try:
        version = src.execute("PRAGMA user_version").fetchone()[0]
        quoted = key.replace("'", "''")
        src.execute(f"ATTACH DATABASE ? AS encrypted KEY '{quoted}'", (str(tmp),))
        src.execute("SELECT sqlcipher_export('encrypted')")
        src.execute(f"PRAGMA encrypted.user_version = {int(version)}")
        src.execute("DETACH DATABASE encrypted")
    finally:
        src.close()
    size = p.stat().st_size
    with open(p, "r+b") as f:  # do not leave the plaintext pages on disk behind the rename
        f.write(b"\0" * size)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, p)


def _start(fut: Future[Any] | asyncio.Future[Any]) -> bool:
    """Mark a call as running; False if its caller cancelled it meanwhile."""
    if isinstance(fut, Future):
        return fut.set_running_or_notify_cancel()
    return not fut.cancelled()  # read from the database thread: at worst a wasted call


def _hand_back(outcomes: list[_Outcome]) -> None:
    """Deliver outcomes in order: concurrent futures at once, asyncio futures with one
    wake-up of each loop for all of its own."""
    by_loop: dict[asyncio.AbstractEventLoop, list[_Outcome]] = {}
    for outcome in outcomes:
        fut, result, error = outcome
        if isinstance(fut, Future):
            if error is None:
                fut.set_result(result)
            else:
                fut.set_exception(error)
        else:
            by_loop.setdefault(fut.get_loop(), []).append(outcome)
    for loop, mine in by_loop.items():
        with contextlib.suppress(RuntimeError):  # a closed loop: nobody waits any more
            loop.call_soon_threadsafe(_settle, mine)


def _settle(outcomes: list[_Outcome]) -> None:
    """In the loop: complete the asyncio futures of a group (unless cancelled)."""
    for fut, result, error in outcomes:
        if fut.done():
            continue
        if error is None:
            fut.set_result(result)
        else:
            fut.set_exception(error)


def _CHECKPOINT(conn: sqlite3.Connection) -> None:
    """A marker for the database thread: checkpoint instead of running a transaction."""


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

"""Group commit: calls queued together share one commit, each stays atomic, and no result is
handed back before the commit that makes it durable."""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Callable
from concurrent.futures import Future
from pathlib import Path

import pytest

from parley.store import Database
from parley.store.database import GROUP_MAX

SCHEMA = ["CREATE TABLE t (k TEXT PRIMARY KEY, v INTEGER NOT NULL)"]


class Boom(Exception):
    pass


def _open(tmp_path: Path) -> tuple[Database, list[str]]:
    db = Database.open_sync(tmp_path / "g.db", SCHEMA)
    statements: list[str] = []
    db.run_sync(lambda c: c.set_trace_callback(statements.append))
    return db, statements


def _hold(db: Database) -> tuple[threading.Event, Future[None]]:
    """Keep the database thread busy until the event is set, so that calls queue up."""
    release = threading.Event()
    started = threading.Event()

    def wait(c: sqlite3.Connection) -> None:
        started.set()
        release.wait(10)

    fut = db.submit(wait)
    assert started.wait(10)
    return release, fut


def _insert(k: str, v: int) -> Callable[[sqlite3.Connection], int]:
    def fn(c: sqlite3.Connection) -> int:
        c.execute("INSERT INTO t VALUES (?, ?)", (k, v))
        return v

    return fn


def _rows(path: Path) -> dict[str, int]:
    other = sqlite3.connect(path)
    try:
        return dict(other.execute("SELECT k, v FROM t").fetchall())
    finally:
        other.close()


def test_queued_calls_share_one_commit_and_a_failure_undoes_only_its_own(
    tmp_path: Path,
) -> None:
    db, statements = _open(tmp_path)
    try:
        release, held = _hold(db)
        statements.clear()

        def half_then_fail(c: sqlite3.Connection) -> None:
            c.execute("INSERT INTO t VALUES ('bad', 1)")
            raise Boom("refused")

        futs = [db.submit(_insert(f"k{i}", i)) for i in range(5)]
        bad = db.submit(half_then_fail)
        futs += [db.submit(_insert(f"k{i}", i)) for i in range(5, 10)]
        release.set()
        held.result(10)
        assert [f.result(10) for f in futs] == list(range(10))
        with pytest.raises(Boom):
            bad.result(10)
        # one for the call that held the thread, one for the eleven queued behind it
        assert statements.count("COMMIT") == 2, statements
        assert _rows(tmp_path / "g.db") == {f"k{i}": i for i in range(10)}
    finally:
        db.close_sync()


def test_a_result_is_handed_back_only_after_its_commit(tmp_path: Path) -> None:
    db, _ = _open(tmp_path)
    seen: list[dict[str, int]] = []
    try:
        release, held = _hold(db)
        futs = [db.submit(_insert(f"k{i}", i)) for i in range(3)]
        # runs on the database thread the moment the result is set
        all_seen = threading.Event()

        def look(_: Future[int]) -> None:
            seen.append(_rows(tmp_path / "g.db"))
            if len(seen) == len(futs):
                all_seen.set()

        for f in futs:
            f.add_done_callback(look)
        release.set()
        held.result(10)
        assert all_seen.wait(10)
        # another connection already saw every row of the group: it was committed
        assert seen == [{"k0": 0, "k1": 1, "k2": 2}] * 3
    finally:
        db.close_sync()


def test_a_group_is_bounded(tmp_path: Path) -> None:
    db, statements = _open(tmp_path)
    try:
        release, held = _hold(db)
        statements.clear()
        futs = [db.submit(_insert(f"a{i}", i)) for i in range(GROUP_MAX + 5)]
        futs.append(db.submit(_insert("before", 0)))
        checkpoint = db.submit(lambda c: None)
        release.set()
        held.result(10)
        for f in futs:
            f.result(10)
        checkpoint.result(10)
        # the held call's, then GROUP_MAX calls, then the remaining seven
        assert statements.count("COMMIT") == 3, statements
        assert len(_rows(tmp_path / "g.db")) == GROUP_MAX + 6
    finally:
        db.close_sync()


async def test_checkpoint_and_close_after_queued_calls(tmp_path: Path) -> None:
    db = await Database.open(tmp_path / "c.db", SCHEMA)
    futs = [db.submit(_insert(f"k{i}", i)) for i in range(20)]
    await db.checkpoint()
    futs += [db.submit(_insert(f"m{i}", i)) for i in range(20)]
    await db.close()
    assert all(f.result(1) is not None for f in futs)
    assert len(_rows(tmp_path / "c.db")) == 40


async def test_scheduled_calls_resolve_in_order_and_a_cancelled_one_is_skipped(
    tmp_path: Path,
) -> None:
    db = await Database.open(tmp_path / "s.db", SCHEMA)
    try:
        release, held = _hold(db)
        first = db.schedule(_insert("a", 1))
        dropped = db.schedule(_insert("b", 2))
        failing = db.schedule(lambda c: c.execute("INSERT INTO t VALUES ('a', 9)"))
        last = db.schedule(_insert("c", 3))
        dropped.cancel()
        release.set()
        held.result(10)
        assert await first == 1
        assert failing.done() and last.done()  # the group's outcomes came in one wake-up
        with pytest.raises(sqlite3.IntegrityError):
            await failing
        assert await last == 3
        assert _rows(tmp_path / "s.db") == {"a": 1, "c": 3}
    finally:
        await db.close()

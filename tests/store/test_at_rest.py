"""Data at rest: private files, cleared content gone from the files after a checkpoint,
encrypted databases that cannot be opened without their key."""

from __future__ import annotations

import os
import sqlite3
import stat
from pathlib import Path

import pytest

from parley.agent import events as ev
from parley.agent.agent import Agent
from parley.relay.server import RelayServer
from parley.store import Database, DatabaseKeyError, encrypt_file
from tests.agent.conftest import MakeAgent, connect_pair, expect

SCHEMA = ["CREATE TABLE notes (id INTEGER PRIMARY KEY, body BLOB)"]
SECRET = b"plaintext-that-must-not-linger-4b1d"


def files_of(db: Path) -> list[Path]:
    return [p for p in (db, Path(f"{db}-wal"), Path(f"{db}-shm")) if p.exists()]


def contains(db: Path, needle: bytes) -> bool:
    return any(needle in p.read_bytes() for p in files_of(db))


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_files_are_private_also_when_they_existed(tmp_path: Path) -> None:
    fresh = tmp_path / "new" / "a.db"
    Database.open_sync(fresh, SCHEMA).close_sync()
    assert mode(fresh) == 0o600
    assert mode(fresh.parent) == 0o700
    loose = tmp_path / "loose.db"
    sqlite3.connect(loose).close()
    os.chmod(loose, 0o644)
    db = Database.open_sync(loose, SCHEMA)
    try:
        db.run_sync(lambda c: c.execute("INSERT INTO notes (body) VALUES (x'00')"))
        assert all(mode(p) == 0o600 for p in files_of(loose))
    finally:
        db.close_sync()


async def test_cleared_content_is_gone_after_a_checkpoint(tmp_path: Path) -> None:
    path = tmp_path / "a.db"
    db = await Database.open(path, SCHEMA)
    try:
        await db.run(lambda c: c.execute("INSERT INTO notes (body) VALUES (?)", (SECRET,)))
        assert contains(path, SECRET)  # in the WAL (or the file) while it is there
        await db.run(lambda c: c.execute("UPDATE notes SET body = NULL"))
        await db.checkpoint()
        assert not contains(path, SECRET)
    finally:
        await db.close()


async def test_an_acknowledged_message_leaves_no_plaintext_in_the_agent(
    relay: RelayServer, make_agent: MakeAgent, tmp_path: Path
) -> None:
    addr = str(relay.address)
    a = await make_agent("a", [addr])
    b: Agent = await make_agent("b", [addr])
    a_conn, b_conn = await connect_pair(a, b)
    await a.send_message(a_conn, SECRET)
    _, msg = await expect(b, ev.Msg, b_conn)
    assert msg.body == SECRET
    await b.ack_message(b_conn, msg.msg_id)
    await b._db.checkpoint()
    assert not contains(tmp_path / "b.db", SECRET)


def test_an_encrypted_database_needs_its_key(tmp_path: Path) -> None:
    pytest.importorskip("sqlcipher3")
    path = tmp_path / "e.db"
    db = Database.open_sync(path, SCHEMA, key="correct horse")
    db.run_sync(lambda c: c.execute("INSERT INTO notes (body) VALUES (?)", (SECRET,)))
    db.close_sync()
    assert not contains(path, SECRET)
    with pytest.raises(DatabaseKeyError, match="give its key"):
        Database.open_sync(path, SCHEMA)
    with pytest.raises(DatabaseKeyError, match="wrong key"):
        Database.open_sync(path, SCHEMA, key="battery staple")
    db = Database.open_sync(path, SCHEMA, key="correct horse")
    try:
        assert db.run_sync(lambda c: c.execute("SELECT body FROM notes").fetchall()) == [(SECRET,)]
    finally:
        db.close_sync()


def test_an_existing_database_is_encrypted_in_place(tmp_path: Path) -> None:
    pytest.importorskip("sqlcipher3")
    path = tmp_path / "p.db"
    db = Database.open_sync(path, SCHEMA)
    db.run_sync(lambda c: c.execute("INSERT INTO notes (body) VALUES (?)", (SECRET,)))
    db.close_sync()
    assert contains(path, SECRET)
    encrypt_file(path, "it's a key")
    assert not contains(path, SECRET)
    assert mode(path) == 0o600
    with pytest.raises(DatabaseKeyError):
        Database.open_sync(path, SCHEMA)
    db = Database.open_sync(path, SCHEMA, key="it's a key")  # migrations already applied
    try:
        assert db.run_sync(lambda c: c.execute("SELECT count(*) FROM notes").fetchone()) == (1,)
    finally:
        db.close_sync()


async def test_an_agent_on_an_encrypted_database(
    relay: RelayServer, make_agent: MakeAgent, tmp_path: Path
) -> None:
    pytest.importorskip("sqlcipher3")
    addr = str(relay.address)
    a = await make_agent("a", [addr], database_key="k1")
    b = await make_agent("b", [addr], database_key="k2")
    a_conn, b_conn = await connect_pair(a, b)
    await a.send_message(a_conn, SECRET)
    _, msg = await expect(b, ev.Msg, b_conn)
    assert msg.body == SECRET
    await b.close()
    assert not contains(tmp_path / "b.db", SECRET)
    with pytest.raises(DatabaseKeyError):
        await make_agent("b", [addr])


def test_a_relay_store_directory_is_made_private(tmp_path: Path) -> None:
    from parley.relay.identity import load_or_create_identity

    store = tmp_path / "relay"
    store.mkdir(mode=0o755)
    os.chmod(store, 0o755)
    load_or_create_identity(store)
    assert mode(store) == 0o700

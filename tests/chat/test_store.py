"""The chat's store without relays: a real SQLite file; and where SQL may live."""

from __future__ import annotations

import re
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest

from parley.chat import store
from parley.chat.model import (
    CAT_INVITEE,
    CT_READY,
    G_ACTIVE,
    I_CONNECTED,
    I_SENT,
    K_MEMBER_GROUP,
    M_CONNECTED,
    SIDE_HOST,
)
from parley.store import Database

CHAT_SRC = Path(__file__).parents[2] / "src" / "parley" / "chat"


@pytest.fixture
def db(tmp_path: Path) -> Iterator[Database]:
    database = Database.open_sync(tmp_path / "chat.db", store.MIGRATIONS)
    yield database
    database.close_sync()


def test_sql_lives_only_in_the_store() -> None:
    for path in CHAT_SRC.glob("*.py"):
        if path.name != "store.py":
            text = path.read_text()
            assert not re.search(r"\.execute(many|script)?\(", text), path.name


def test_the_chat_imports_nothing_above_it() -> None:
    for path in CHAT_SRC.glob("*.py"):
        text = path.read_text()
        assert not re.search(r"parley\.(api|terminal|cli|demo|testing)\b", text), path.name


def test_only_named_columns_are_set(db: Database) -> None:
    def tx(c: sqlite3.Connection) -> None:
        conn = store.insert_connection(c, K_MEMBER_GROUP)
        store.set_connection(c, conn, **{"status = 'x' WHERE 1 --": "y"})

    with pytest.raises(AssertionError):
        db.run_sync(tx)


def test_a_host_pair_connects_in_either_order(db: Database) -> None:
    def tx(c: sqlite3.Connection) -> tuple[bool, bool, int]:
        user = store.insert_user(c, "alice", "")
        gid = store.insert_group(c, user.user_id, "team", "", G_ACTIVE)
        b, other = (
            store.insert_member(c, gid, f"id{n}", "member", CAT_INVITEE, M_CONNECTED, f"m{n}")
            for n in (1, 2)
        )
        store.insert_intro(c, gid, SIDE_HOST, b, other, I_SENT, "msg")
        before = store.host_pair_is_connected(c, other, b)
        store.host_pair_connected(c, other, b)  # said by the member introduced
        return before, store.host_pair_is_connected(c, b, other), store.host_intros_pending(c, b)

    assert db.run_sync(tx) == (False, True, 0)
    assert [i.status for i in db.run_sync(lambda c: store.intros_on_side(c, SIDE_HOST))] == [
        I_CONNECTED
    ]


def test_names_are_unique_per_user_and_freed_by_deletion(db: Database) -> None:
    def tx(c: sqlite3.Connection) -> list[str]:
        user = store.insert_user(c, "alice", "")
        first = store.insert_contact(c, user.user_id, "bob", "", CT_READY)
        store.insert_contact(c, user.user_id, "bob", "", CT_READY)
        store.tombstone_contact(c, first)
        store.insert_contact(c, user.user_id, "bob", "", CT_READY)
        return sorted(x.local_name for x in store.live_contacts(c, user.user_id))

    assert db.run_sync(tx) == ["bob", "bob_1"]

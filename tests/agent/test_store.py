"""The agent's store and rooms without relays: a real SQLite file, no network."""

from __future__ import annotations

import re
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest

from parley.agent import events as ev
from parley.agent import store
from parley.agent.model import ACCEPTED, CONFIRMATION, DuplicateCommand
from parley.agent.store import CommandArgs, SndQueueRow
from parley.store import Database

AGENT_SRC = Path(__file__).parents[2] / "src" / "parley" / "agent"


@pytest.fixture
def db(tmp_path: Path) -> Iterator[Database]:
    database = Database.open_sync(tmp_path / "agent.db", store.MIGRATIONS)
    yield database
    database.close_sync()


def test_sql_lives_only_in_the_store() -> None:
    for path in AGENT_SRC.glob("*.py"):
        if path.name != "store.py":
            text = path.read_text()
            assert not re.search(r"\.execute(many)?\(", text), path.name


def test_a_used_corr_id_is_refused(db: Database) -> None:
    def tx(c: sqlite3.Connection) -> None:
        store.insert_conn(c, "c1", "initiator", b"k", None)
        store.insert_command(c, "corr", "c1", "NEW", None, CommandArgs())

    db.run_sync(tx)
    with pytest.raises(DuplicateCommand):
        db.run_sync(lambda c: store.check_new_corr_id(c, "corr"))


def test_finished_command_keeps_its_event_until_acked(db: Database) -> None:
    def tx(c: sqlite3.Connection) -> None:
        store.insert_conn(c, "c1", "initiator", b"k", None)
        store.insert_command(c, "corr", "c1", "NEW", None, CommandArgs())
        store.insert_command(c, "int:1", "c1", "SECURE", None, CommandArgs(), internal=True)
        store.finish_command(c, "corr", ev.Inv("link"), internal=False)
        store.finish_command(c, "int:1", ev.Ok(), internal=True)

    db.run_sync(tx)
    assert db.run_sync(store.pending_commands) == []
    events = db.run_sync(store.unacknowledged_events)
    assert [(corr, ev.decode_event(data)) for corr, _, data in events] == [("corr", ev.Inv("link"))]
    db.run_sync(lambda c: store.delete_command(c, "corr", done_only=True))
    assert db.run_sync(store.unacknowledged_events) == []


def test_the_handshake_only_moves_forward(db: Database) -> None:
    def tx(c: sqlite3.Connection) -> None:
        store.insert_conn(c, "c1", "initiator", b"k", None)
        store.set_conn_status(c, "c1", "ready")
        store.insert_snd_queue(c, SndQueueRow("c1", "r", b"s", b"k", b"b", b"p", "active"))
        # a retried ALLOW ending after the HELLOs: nothing moves back
        store.advance_handshake(
            c, "c1", snd_queue="confirmed", conn_from=CONFIRMATION, conn_to=ACCEPTED
        )

    db.run_sync(tx)
    assert db.run_sync(store.connection_statuses) == [
        ("c1", "ready", None, "active", None, "initiator", "ok", 0)
    ]

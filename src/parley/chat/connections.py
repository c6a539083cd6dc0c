"""A chat connection's end: failed with a reason a person can read, or dropped."""

from __future__ import annotations

import sqlite3

from parley.chat import events as cev
from parley.chat import store, views
from parley.chat.effects import Effects
from parley.chat.model import C_DELETED, C_FAILED, C_READY


def fail(c: sqlite3.Connection, connection_id: int | None, reason: str) -> Effects:
    """Mark the connection failed with `reason` and say so (on its member, if it has one)."""
    fx = Effects()
    existing = store.connection(c, connection_id) if connection_id is not None else None
    if existing is None or existing.status in (C_DELETED, C_READY):
        # replaced already (a re-introduction), or it worked after all (an ERR of a
        # retry whose first attempt had gone through): nothing to report
        return fx
    store.set_connection(c, existing.connection_id, status=C_FAILED, last_error=reason)
    if existing.member_row is not None:
        store.set_member(c, existing.member_row, last_error=reason)
        m = store.member(c, existing.member_row)
        assert m is not None
        fx.events.append(
            cev.MemberFailed(views.group(c, m.group_id), views.member(c, m.member_row), reason)
        )
    else:
        fx.events.append(cev.ConnectionFailed(existing.connection_id, reason))
    return fx


def drop_member_connections(c: sqlite3.Connection, member_row: int, fx: Effects) -> None:
    """Delete the member's connections (their links are being replaced): here now, in the
    agent after the commit."""
    for conn in store.member_connections(c, member_row):
        store.set_connection(c, conn.connection_id, status=C_DELETED)
        if conn.agent_conn_id is not None:
            fx.deletes.append(conn.agent_conn_id)

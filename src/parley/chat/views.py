"""The views the chat gives its front ends (`parley.chat.events`), read from the store."""

from __future__ import annotations

import sqlite3
from typing import Any

from parley.chat import events as cev
from parley.chat import store
from parley.chat.model import K_MEMBER_GROUP


def user(u: store.UserRow) -> cev.User:
    return cev.User(u.user_id, u.display_name, u.full_name)


def contact(row: store.ContactRow) -> cev.Contact:
    return cev.Contact(row.contact_id, row.local_name, row.display_name, row.full_name, row.status)


def group(c: sqlite3.Connection, group_id: int) -> cev.Group:
    g = store.group_by_id(c, group_id)
    assert g is not None
    return cev.Group(g.group_id, g.local_name, g.display_name, g.full_name, g.status)


def member(c: sqlite3.Connection, member_row: int) -> cev.Member:
    m = store.member(c, member_row)
    assert m is not None
    conn = store.member_connection(c, member_row, K_MEMBER_GROUP)
    return cev.Member(
        m.group_id,
        m.member_row,
        m.member_id,
        m.display_name,
        m.full_name,
        m.role,
        m.category,
        m.status,
        conn.status if conn else None,
        m.last_error,
        m.contact_id,
    )


def item(c: sqlite3.Connection, item_id: int) -> cev.ChatItem:
    i = store.item(c, item_id)
    assert i is not None
    contact_row = store.contact_by_id(c, i.contact_id) if i.contact_id else None
    return cev.ChatItem(
        item_id,
        i.direction,
        i.text,
        i.status,
        i.created_at,
        contact(contact_row) if contact_row else None,
        group(c, i.group_id) if i.group_id else None,
        member(c, i.author_member) if i.author_member else None,
        i.shared_msg_id,
        i.content_type,
        i.edit > 0,
        i.deleted,
        member(c, i.deleted_by) if i.deleted_by else None,
        _quote(i),
        [cev.ReactionCount(e, n, mine) for e, n, mine in store.reaction_counts(c, item_id)],
    )


def _quote(i: store.ItemRow) -> cev.Quote | None:
    if i.quoted_msg_id is None:
        return None
    return cev.Quote(i.quoted_msg_id, i.quoted_text or "", bool(i.quoted_sent), i.quoted_item)


def connection(c: sqlite3.Connection, connection_id: int | None) -> str:
    """A connection in words, for the status of pending commands."""
    conn = store.connection(c, connection_id) if connection_id is not None else None
    if conn is None:
        return "?"
    if conn.contact_id is not None:
        row = store.contact_by_id(c, conn.contact_id)
        return f"contact {row.local_name if row else '?'}"
    if conn.member_row is not None:
        m = store.member(c, conn.member_row)
        g = store.group_by_id(c, m.group_id) if m else None
        kind = "group" if conn.kind == K_MEMBER_GROUP else "direct"
        if m and g:
            return f"#{g.local_name} member {m.display_name} ({kind})"
    return f"connection {conn.connection_id} ({conn.status})"


def agent_connection(c: sqlite3.Connection, agent_conn_id: str) -> str:
    conn = store.connection_by_agent_id(c, agent_conn_id)
    return connection(c, conn.connection_id if conn else None)


def open_commands(c: sqlite3.Connection) -> list[dict[str, Any]]:
    """The continuations still waiting, with their connections in words."""
    return [
        {
            "command_id": k.command_id,
            "function": k.function,
            "status": k.status,
            "connection": connection(c, k.connection_id),
            "created_at": k.created_at,
        }
        for k in store.open_commands(c)
    ]

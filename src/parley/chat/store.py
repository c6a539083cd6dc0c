"""The chat's SQLite schema and row types: users, contacts, groups, members, connections,
introductions, chat items and the continuations of agent commands.

Status values (docs/chat-protocol.md explains when each is set):

- connection: new, joined, requested, accepted, snd-ready, ready, failed, deleted
- member (simplex-chat's names): memInvited, memIntroduced, memIntroInvited, memAccepted,
  memAnnounced, memConnected, memComplete, memCreator, memLeft, memRemoved
- member category: user, invitee, host, pre, post
"""

from __future__ import annotations

import sqlite3
import time

import msgspec

MIGRATIONS = [
    """
    CREATE TABLE users (
        user_id INTEGER PRIMARY KEY,
        display_name TEXT NOT NULL,
        full_name TEXT NOT NULL DEFAULT '',
        active INTEGER NOT NULL DEFAULT 0,
        created_at REAL NOT NULL
    );
    CREATE TABLE contacts (
        contact_id INTEGER PRIMARY KEY,
        user_id INTEGER NOT NULL REFERENCES users(user_id),
        local_name TEXT NOT NULL,
        display_name TEXT NOT NULL,
        full_name TEXT NOT NULL DEFAULT '',
        status TEXT NOT NULL,
        created_at REAL NOT NULL,
        UNIQUE (user_id, local_name)
    );
    CREATE TABLE groups (
        group_id INTEGER PRIMARY KEY,
        user_id INTEGER NOT NULL REFERENCES users(user_id),
        local_name TEXT NOT NULL,
        display_name TEXT NOT NULL,
        full_name TEXT NOT NULL DEFAULT '',
        status TEXT NOT NULL,
        invitation TEXT,
        created_at REAL NOT NULL,
        UNIQUE (user_id, local_name)
    );
    CREATE TABLE members (
        member_row INTEGER PRIMARY KEY,
        group_id INTEGER NOT NULL REFERENCES groups(group_id) ON DELETE CASCADE,
        member_id TEXT NOT NULL,
        role TEXT NOT NULL,
        category TEXT NOT NULL,
        status TEXT NOT NULL,
        display_name TEXT NOT NULL,
        full_name TEXT NOT NULL DEFAULT '',
        contact_id INTEGER,
        last_error TEXT,
        created_at REAL NOT NULL,
        updated_at REAL NOT NULL,
        UNIQUE (group_id, member_id)
    );
    CREATE TABLE connections (
        connection_id INTEGER PRIMARY KEY,
        agent_conn_id TEXT UNIQUE,
        kind TEXT NOT NULL,
        contact_id INTEGER,
        member_row INTEGER REFERENCES members(member_row) ON DELETE CASCADE,
        status TEXT NOT NULL,
        link TEXT,
        last_error TEXT,
        created_at REAL NOT NULL,
        updated_at REAL NOT NULL
    );
    CREATE TABLE introductions (
        intro_id INTEGER PRIMARY KEY,
        group_id INTEGER NOT NULL REFERENCES groups(group_id) ON DELETE CASCADE,
        side TEXT NOT NULL,
        re_member INTEGER NOT NULL,
        to_member INTEGER NOT NULL,
        status TEXT NOT NULL,
        group_link TEXT,
        direct_link TEXT,
        msg_id TEXT NOT NULL,
        attempts INTEGER NOT NULL DEFAULT 1,
        last_error TEXT,
        created_at REAL NOT NULL,
        updated_at REAL NOT NULL
    );
    CREATE TABLE chat_items (
        item_id INTEGER PRIMARY KEY,
        user_id INTEGER NOT NULL,
        contact_id INTEGER,
        group_id INTEGER,
        author_member INTEGER,
        direction TEXT NOT NULL,
        shared_msg_id TEXT,
        text TEXT NOT NULL,
        status TEXT NOT NULL,
        created_at REAL NOT NULL
    );
    CREATE INDEX chat_items_by_chat ON chat_items(contact_id, group_id, item_id);
    CREATE TABLE item_deliveries (
        agent_conn_id TEXT NOT NULL,
        agent_msg_id INTEGER NOT NULL,
        item_id INTEGER NOT NULL REFERENCES chat_items(item_id) ON DELETE CASCADE,
        PRIMARY KEY (agent_conn_id, agent_msg_id)
    );
    CREATE TABLE received (
        scope TEXT NOT NULL,
        msg_id TEXT NOT NULL,
        received_at REAL NOT NULL,
        PRIMARY KEY (scope, msg_id)
    );
    CREATE TABLE pending_group_messages (
        id INTEGER PRIMARY KEY,
        member_row INTEGER NOT NULL REFERENCES members(member_row) ON DELETE CASCADE,
        body BLOB NOT NULL,
        item_id INTEGER,
        created_at REAL NOT NULL
    );
    CREATE TABLE outbox (
        id INTEGER PRIMARY KEY,
        agent_conn_id TEXT NOT NULL,
        body BLOB NOT NULL,
        item_id INTEGER,
        created_at REAL NOT NULL
    );
    CREATE TABLE commands (
        command_id TEXT PRIMARY KEY,
        user_id INTEGER NOT NULL,
        connection_id INTEGER,
        function TEXT NOT NULL,
        data TEXT NOT NULL,
        agent_call TEXT NOT NULL,
        status TEXT NOT NULL,
        result TEXT,
        created_at REAL NOT NULL,
        updated_at REAL NOT NULL
    );
    """,
    # the host's wait before re-introducing a pair (chosen, with jitter, at each introduction)
    """
    ALTER TABLE introductions ADD COLUMN retry_delay REAL;
    """,
]

# connection statuses
C_NEW = "new"
C_JOINED = "joined"
C_REQUESTED = "requested"
C_ACCEPTED = "accepted"
C_SND_READY = "snd-ready"
C_READY = "ready"
C_FAILED = "failed"
C_DELETED = "deleted"

# connection kinds
K_CONTACT = "contact"
K_MEMBER_GROUP = "member_group"
K_MEMBER_DIRECT = "member_direct"

# member statuses (simplex-chat's values)
M_INVITED = "memInvited"
M_INTRODUCED = "memIntroduced"
M_INTRO_INVITED = "memIntroInvited"
M_ACCEPTED = "memAccepted"
M_ANNOUNCED = "memAnnounced"
M_CONNECTED = "memConnected"
M_COMPLETE = "memComplete"
M_CREATOR = "memCreator"
M_LEFT = "memLeft"
M_REMOVED = "memRemoved"
ACTIVE_MEMBER = (M_CONNECTED, M_COMPLETE, M_CREATOR)

# member categories
CAT_USER = "user"
CAT_INVITEE = "invitee"
CAT_HOST = "host"
CAT_PRE = "pre"
CAT_POST = "post"


def now() -> float:
    return time.time()


class UserRow(msgspec.Struct):
    user_id: int
    display_name: str
    full_name: str


class ContactRow(msgspec.Struct):
    contact_id: int
    local_name: str
    display_name: str
    full_name: str
    status: str


class GroupRow(msgspec.Struct):
    group_id: int
    local_name: str
    display_name: str
    full_name: str
    status: str
    invitation: str | None


class MemberRow(msgspec.Struct):
    member_row: int
    group_id: int
    member_id: str
    role: str
    category: str
    status: str
    display_name: str
    full_name: str
    contact_id: int | None
    last_error: str | None


class ConnectionRow(msgspec.Struct):
    connection_id: int
    agent_conn_id: str | None
    kind: str
    contact_id: int | None
    member_row: int | None
    status: str
    link: str | None
    last_error: str | None


class IntroRow(msgspec.Struct):
    intro_id: int
    group_id: int
    side: str
    re_member: int
    to_member: int
    status: str
    group_link: str | None
    direct_link: str | None
    msg_id: str
    attempts: int
    last_error: str | None
    updated_at: float
    retry_delay: float | None  # (host) re-introduce after this long without progress
    created_at: float


class CommandRow(msgspec.Struct):
    command_id: str
    connection_id: int | None
    function: str
    data: str
    agent_call: str
    status: str


_MEMBER_COLS = (
    "member_row, group_id, member_id, role, category, status, display_name, full_name, "
    "contact_id, last_error"
)
_CONN_COLS = "connection_id, agent_conn_id, kind, contact_id, member_row, status, link, last_error"
_INTRO_COLS = (
    "intro_id, group_id, side, re_member, to_member, status, group_link, direct_link, msg_id, "
    "attempts, last_error, updated_at, retry_delay, created_at"
)


def active_user(c: sqlite3.Connection) -> UserRow | None:
    r = c.execute("SELECT user_id, display_name, full_name FROM users WHERE active = 1").fetchone()
    return UserRow(*r) if r else None


def contact_by_id(c: sqlite3.Connection, contact_id: int) -> ContactRow | None:
    r = c.execute(
        "SELECT contact_id, local_name, display_name, full_name, status FROM contacts "
        "WHERE contact_id = ?",
        (contact_id,),
    ).fetchone()
    return ContactRow(*r) if r else None


def contact_by_name(c: sqlite3.Connection, user_id: int, name: str) -> ContactRow | None:
    r = c.execute(
        "SELECT contact_id, local_name, display_name, full_name, status FROM contacts "
        "WHERE user_id = ? AND local_name = ? AND status != 'deleted'",
        (user_id, name),
    ).fetchone()
    return ContactRow(*r) if r else None


def group_by_id(c: sqlite3.Connection, group_id: int) -> GroupRow | None:
    r = c.execute(
        "SELECT group_id, local_name, display_name, full_name, status, invitation FROM groups "
        "WHERE group_id = ?",
        (group_id,),
    ).fetchone()
    return GroupRow(*r) if r else None


def group_by_name(c: sqlite3.Connection, user_id: int, name: str) -> GroupRow | None:
    r = c.execute(
        "SELECT group_id, local_name, display_name, full_name, status, invitation FROM groups "
        "WHERE user_id = ? AND local_name = ? AND status != 'deleted'",
        (user_id, name),
    ).fetchone()
    return GroupRow(*r) if r else None


def member(c: sqlite3.Connection, member_row: int) -> MemberRow | None:
    r = c.execute(f"SELECT {_MEMBER_COLS} FROM members WHERE member_row = ?", (member_row,))
    row = r.fetchone()
    return MemberRow(*row) if row else None


def member_by_id(c: sqlite3.Connection, group_id: int, member_id: str) -> MemberRow | None:
    r = c.execute(
        f"SELECT {_MEMBER_COLS} FROM members WHERE group_id = ? AND member_id = ?",
        (group_id, member_id),
    ).fetchone()
    return MemberRow(*r) if r else None


def members(c: sqlite3.Connection, group_id: int) -> list[MemberRow]:
    rows = c.execute(
        f"SELECT {_MEMBER_COLS} FROM members WHERE group_id = ? ORDER BY member_row", (group_id,)
    )
    return [MemberRow(*r) for r in rows]


def user_member(c: sqlite3.Connection, group_id: int) -> MemberRow:
    r = c.execute(
        f"SELECT {_MEMBER_COLS} FROM members WHERE group_id = ? AND category = 'user'",
        (group_id,),
    ).fetchone()
    assert r is not None, "every group has the user's own member row"
    return MemberRow(*r)


def connection(c: sqlite3.Connection, connection_id: int) -> ConnectionRow | None:
    r = c.execute(
        f"SELECT {_CONN_COLS} FROM connections WHERE connection_id = ?", (connection_id,)
    ).fetchone()
    return ConnectionRow(*r) if r else None


def connection_by_agent_id(c: sqlite3.Connection, agent_conn_id: str) -> ConnectionRow | None:
    r = c.execute(
        f"SELECT {_CONN_COLS} FROM connections WHERE agent_conn_id = ?", (agent_conn_id,)
    ).fetchone()
    return ConnectionRow(*r) if r else None


def member_connections(c: sqlite3.Connection, member_row: int) -> list[ConnectionRow]:
    rows = c.execute(
        f"SELECT {_CONN_COLS} FROM connections WHERE member_row = ? AND status != 'deleted' "
        "ORDER BY connection_id",
        (member_row,),
    )
    return [ConnectionRow(*r) for r in rows]


def member_connection(c: sqlite3.Connection, member_row: int, kind: str) -> ConnectionRow | None:
    for conn in member_connections(c, member_row):
        if conn.kind == kind:
            return conn
    return None


def contact_connection(c: sqlite3.Connection, contact_id: int) -> ConnectionRow | None:
    r = c.execute(
        f"SELECT {_CONN_COLS} FROM connections WHERE contact_id = ? AND kind = 'contact' "
        "AND status != 'deleted' ORDER BY connection_id DESC",
        (contact_id,),
    ).fetchone()
    return ConnectionRow(*r) if r else None


def intro(c: sqlite3.Connection, intro_id: int) -> IntroRow | None:
    r = c.execute(f"SELECT {_INTRO_COLS} FROM introductions WHERE intro_id = ?", (intro_id,))
    row = r.fetchone()
    return IntroRow(*row) if row else None


def intros(c: sqlite3.Connection, where: str, params: tuple[object, ...]) -> list[IntroRow]:
    rows = c.execute(f"SELECT {_INTRO_COLS} FROM introductions WHERE {where}", params)
    return [IntroRow(*r) for r in rows]


def insert_connection(
    c: sqlite3.Connection,
    kind: str,
    *,
    contact_id: int | None = None,
    member_row: int | None = None,
    status: str = C_NEW,
) -> int:
    t = now()
    cur = c.execute(
        "INSERT INTO connections (kind, contact_id, member_row, status, created_at, updated_at) "
        "VALUES (?, ?, ?, ?, ?, ?)",
        (kind, contact_id, member_row, status, t, t),
    )
    assert cur.lastrowid is not None
    return cur.lastrowid


def set_connection(c: sqlite3.Connection, connection_id: int, **fields: object) -> None:
    cols = ", ".join(f"{k} = ?" for k in fields)
    c.execute(
        f"UPDATE connections SET {cols}, updated_at = ? WHERE connection_id = ?",
        (*fields.values(), now(), connection_id),
    )


def set_member(c: sqlite3.Connection, member_row: int, **fields: object) -> None:
    cols = ", ".join(f"{k} = ?" for k in fields)
    c.execute(
        f"UPDATE members SET {cols}, updated_at = ? WHERE member_row = ?",
        (*fields.values(), now(), member_row),
    )


def set_intro(c: sqlite3.Connection, intro_id: int, **fields: object) -> None:
    cols = ", ".join(f"{k} = ?" for k in fields)
    c.execute(
        f"UPDATE introductions SET {cols}, updated_at = ? WHERE intro_id = ?",
        (*fields.values(), now(), intro_id),
    )


def insert_member(
    c: sqlite3.Connection,
    group_id: int,
    member_id: str,
    role: str,
    category: str,
    status: str,
    display_name: str,
    full_name: str = "",
    contact_id: int | None = None,
) -> int:
    t = now()
    cur = c.execute(
        "INSERT INTO members (group_id, member_id, role, category, status, display_name, "
        "full_name, contact_id, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (group_id, member_id, role, category, status, display_name, full_name, contact_id, t, t),
    )
    assert cur.lastrowid is not None
    return cur.lastrowid


def first_seen(c: sqlite3.Connection, scope: str, msg_id: str) -> bool:
    """Record that `msg_id` arrived in `scope`; False if it had arrived before."""
    cur = c.execute(
        "INSERT OR IGNORE INTO received (scope, msg_id, received_at) VALUES (?, ?, ?)",
        (scope, msg_id, now()),
    )
    return cur.rowcount == 1


def heard_since(c: sqlite3.Connection, group_id: int, member_id: str, since: float) -> bool:
    """Whether a message from the member (any, over its own connection) arrived after
    `since`."""
    r = c.execute(
        "SELECT 1 FROM received WHERE scope = ? AND received_at > ? LIMIT 1",
        (f"group:{group_id}:{member_id}", since),
    ).fetchone()
    return r is not None


def unique_name(c: sqlite3.Connection, table: str, user_id: int, wanted: str) -> str:
    """`wanted`, or `wanted_2`, `wanted_3`... if a live contact or group already has it."""
    name, n = wanted, 1
    while c.execute(
        f"SELECT 1 FROM {table} WHERE user_id = ? AND local_name = ?", (user_id, name)
    ).fetchone():
        n += 1
        name = f"{wanted}_{n}"
    return name

"""The chat's SQLite schema, the row types read from it, and every SQL statement of the chat.

Every function here runs on the database thread inside the transaction of one
`Database.run` call; the rooms compose them so that a state change commits together with
its outbox rows and its continuations. No other module of `parley.chat` executes SQL.
The status strings are in `parley.chat.model` (docs/chat-protocol.md explains when each is
set).
"""

from __future__ import annotations

import sqlite3
import time
from typing import TypeAlias

import msgspec

from parley.chat.model import (
    C_DELETED,
    C_FAILED,
    C_NEW,
    C_READY,
    CAT_HOST,
    CAT_INVITEE,
    CAT_POST,
    CAT_PRE,
    CAT_USER,
    CMD_DONE,
    CMD_FAILED,
    CMD_ISSUED,
    CMD_NEW,
    CT_DELETED,
    D_SND,
    FN_ALLOWED,
    G_DELETED,
    G_LEFT,
    G_REMOVED,
    GONE_MEMBER,
    I_CONNECTED,
    I_NEW,
    ITEM_ERROR,
    ITEM_RCVD,
    ITEM_RCVD_BAD,
    ITEM_RECEIVED,
    ITEM_SENDING,
    ITEM_SENT,
    K_CONTACT,
    K_MEMBER_GROUP,
    M_ACCEPTED,
    M_COMPLETE,
    M_CONNECTED,
    SIDE_HOST,
    SIDE_INVITEE,
    safe_name,
)

# How an item keeps what it quotes: the quoted item if we have it, its msgId, its text,
# whether the quoting side sent it.
ItemQuote: TypeAlias = tuple[int | None, str, str, bool]

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
    # long-term addresses: the user's contact address (group_id NULL) and group links;
    # the requests received on them; the id a requester keeps for an address
    """
    CREATE TABLE user_contact_links (
        link_id INTEGER PRIMARY KEY,
        user_id INTEGER NOT NULL REFERENCES users(user_id),
        group_id INTEGER REFERENCES groups(group_id) ON DELETE CASCADE,
        connection_id INTEGER NOT NULL,
        link TEXT,
        role TEXT,
        auto_accept INTEGER NOT NULL DEFAULT 0,
        welcome TEXT,
        status TEXT NOT NULL,
        created_at REAL NOT NULL,
        updated_at REAL NOT NULL
    );
    CREATE TABLE contact_requests (
        request_id INTEGER PRIMARY KEY,
        user_id INTEGER NOT NULL REFERENCES users(user_id),
        link_id INTEGER NOT NULL REFERENCES user_contact_links(link_id),
        agent_inv_id TEXT NOT NULL UNIQUE,
        x_contact_id TEXT,
        local_name TEXT NOT NULL,
        display_name TEXT NOT NULL,
        full_name TEXT NOT NULL DEFAULT '',
        contact_id INTEGER,
        welcome TEXT,
        status TEXT NOT NULL,
        created_at REAL NOT NULL,
        updated_at REAL NOT NULL
    );
    ALTER TABLE connections ADD COLUMN x_contact_id TEXT;
    """,
    # messages as users expect them (issue 11): delivery receipts (which agent message
    # first brought a chat message, which agent messages carried an item, the settings),
    # item kinds, edits with their history, deletion, quotes and reactions
    """
    ALTER TABLE received ADD COLUMN agent_conn_id TEXT;
    ALTER TABLE received ADD COLUMN agent_msg_id INTEGER;
    CREATE TABLE item_messages (
        agent_conn_id TEXT NOT NULL,
        agent_msg_id INTEGER NOT NULL,
        item_id INTEGER NOT NULL REFERENCES chat_items(item_id) ON DELETE CASCADE,
        receipt TEXT,
        PRIMARY KEY (agent_conn_id, agent_msg_id)
    );
    CREATE INDEX item_messages_by_item ON item_messages(item_id);
    ALTER TABLE users ADD COLUMN receipts_contacts INTEGER NOT NULL DEFAULT 1;
    ALTER TABLE users ADD COLUMN receipts_groups INTEGER NOT NULL DEFAULT 1;
    ALTER TABLE contacts ADD COLUMN send_receipts INTEGER;
    ALTER TABLE groups ADD COLUMN send_receipts INTEGER;
    ALTER TABLE chat_items ADD COLUMN content_type TEXT NOT NULL DEFAULT 'text';
    ALTER TABLE chat_items ADD COLUMN edit INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE chat_items ADD COLUMN deleted TEXT;
    ALTER TABLE chat_items ADD COLUMN deleted_by INTEGER;
    ALTER TABLE chat_items ADD COLUMN quoted_item INTEGER;
    ALTER TABLE chat_items ADD COLUMN quoted_msg_id TEXT;
    ALTER TABLE chat_items ADD COLUMN quoted_text TEXT;
    ALTER TABLE chat_items ADD COLUMN quoted_sent INTEGER;
    ALTER TABLE chat_items ADD COLUMN updated_at REAL;
    CREATE INDEX chat_items_by_msg ON chat_items(shared_msg_id);
    CREATE TABLE item_versions (
        item_id INTEGER NOT NULL REFERENCES chat_items(item_id) ON DELETE CASCADE,
        edit INTEGER NOT NULL,
        text TEXT NOT NULL,
        created_at REAL NOT NULL,
        PRIMARY KEY (item_id, edit)
    );
    CREATE TABLE item_reactions (
        item_id INTEGER NOT NULL REFERENCES chat_items(item_id) ON DELETE CASCADE,
        reactor TEXT NOT NULL,
        emoji TEXT NOT NULL,
        created_at REAL NOT NULL,
        PRIMARY KEY (item_id, reactor, emoji)
    );
    """,
    # any admin hosts newcomers (issue 10): who introduced each member to us (the member
    # that sent x.grp.mem.intro, .new or .fwd about it); before, that was always our host
    """
    ALTER TABLE members ADD COLUMN introduced_by INTEGER;
    UPDATE members SET introduced_by = (
        SELECT h.member_row FROM members h
        WHERE h.group_id = members.group_id AND h.category = 'host'
    ) WHERE category IN ('pre', 'post');
    """,
    # the agent's ratchet re-synchronisation as the chat last showed it, per connection:
    # its state and how many completed re-negotiations have their item (reconciled at
    # start with the agent's connection statuses, so an RSYNC event lost in a crash is not)
    """
    ALTER TABLE connections ADD COLUMN rsync_state TEXT NOT NULL DEFAULT 'ok';
    ALTER TABLE connections ADD COLUMN rsync_done INTEGER NOT NULL DEFAULT 0;
    """,
    # edits, deletions, moderations and reactions that came before the group message they
    # refer to (a forward can overtake a direct message): held until it arrives, in order
    """
    CREATE TABLE held_changes (
        id INTEGER PRIMARY KEY,
        group_id INTEGER NOT NULL REFERENCES groups(group_id) ON DELETE CASCADE,
        shared_msg_id TEXT NOT NULL,
        author_member_id TEXT NOT NULL,
        sender_row INTEGER NOT NULL REFERENCES members(member_row) ON DELETE CASCADE,
        body BLOB NOT NULL,
        created_at REAL NOT NULL
    );
    CREATE INDEX held_changes_by_msg ON held_changes(group_id, shared_msg_id);
    """,
    # a sent group item's delivery to each member (sending, sent, rcvd, rcvd-bad-hash,
    # error with its reason); the item's own status is derived from them
    """
    CREATE TABLE item_member_status (
        item_id INTEGER NOT NULL REFERENCES chat_items(item_id) ON DELETE CASCADE,
        member_row INTEGER NOT NULL REFERENCES members(member_row) ON DELETE CASCADE,
        status TEXT NOT NULL,
        reason TEXT NOT NULL DEFAULT '',
        updated_at REAL NOT NULL,
        PRIMARY KEY (item_id, member_row)
    );
    """,
    # full deletion: a received deletion for everyone removes the item instead of marking
    # it; the user's default (off) and each contact's and group's own (NULL: the default)
    """
    ALTER TABLE users ADD COLUMN full_delete INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE contacts ADD COLUMN full_delete INTEGER;
    ALTER TABLE groups ADD COLUMN full_delete INTEGER;
    """,
    # (host) which side of an introduced pair said itself that it connected: a member's
    # message sent before it knew the other is passed on until that member says so
    """
    ALTER TABLE introductions ADD COLUMN re_con INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE introductions ADD COLUMN to_con INTEGER NOT NULL DEFAULT 0;
    """,
]


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
    introduced_by: int | None  # (pre, post) the member who introduced it to us


class HeldChangeRow(msgspec.Struct):
    """A received change of a group message we do not have yet (`body`: the encoded
    x.msg.update, x.msg.del or x.msg.react from member `sender_row`)."""

    id: int
    group_id: int
    shared_msg_id: str
    author_member_id: str
    sender_row: int
    body: bytes
    created_at: float


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


class LinkRow(msgspec.Struct):
    """A long-term link: the user's contact address (group_id None) or a group's link."""

    link_id: int
    user_id: int
    group_id: int | None
    connection_id: int
    link: str | None
    role: str | None
    auto_accept: bool
    welcome: str | None
    status: str
    created_at: float


class RequestRow(msgspec.Struct):
    request_id: int
    user_id: int
    link_id: int
    agent_inv_id: str
    x_contact_id: str | None
    local_name: str
    display_name: str
    full_name: str
    contact_id: int | None
    welcome: str | None
    status: str
    created_at: float


class CommandRow(msgspec.Struct):
    command_id: str
    user_id: int
    connection_id: int | None
    function: str
    data: str
    agent_call: str
    status: str
    created_at: float


class ItemRow(msgspec.Struct):
    item_id: int
    direction: str
    text: str
    status: str
    created_at: float
    contact_id: int | None
    group_id: int | None
    author_member: int | None
    shared_msg_id: str | None
    content_type: str
    edit: int
    deleted: str | None
    deleted_by: int | None
    quoted_item: int | None
    quoted_msg_id: str | None
    quoted_text: str | None
    quoted_sent: int | None
    user_id: int


class OutboxRow(msgspec.Struct):
    id: int
    agent_conn_id: str
    body: bytes
    item_id: int | None


_USER_COLS = "user_id, display_name, full_name"
_CONTACT_COLS = "contact_id, local_name, display_name, full_name, status"
_GROUP_COLS = "group_id, local_name, display_name, full_name, status, invitation"
_MEMBER_COLS = (
    "member_row, group_id, member_id, role, category, status, display_name, full_name, "
    "contact_id, last_error, introduced_by"
)
_CONN_COLS = "connection_id, agent_conn_id, kind, contact_id, member_row, status, link, last_error"
_INTRO_COLS = (
    "intro_id, group_id, side, re_member, to_member, status, group_link, direct_link, msg_id, "
    "attempts, last_error, updated_at, retry_delay, created_at"
)
_COMMAND_COLS = "command_id, user_id, connection_id, function, data, agent_call, status, created_at"
_ITEM_COLS = (
    "item_id, direction, text, status, created_at, contact_id, group_id, author_member, "
    "shared_msg_id, content_type, edit, deleted, deleted_by, quoted_item, quoted_msg_id, "
    "quoted_text, quoted_sent, user_id"
)
_LINK_COLS = (
    "link_id, user_id, group_id, connection_id, link, role, auto_accept, welcome, status, "
    "created_at"
)
_REQUEST_COLS = (
    "request_id, user_id, link_id, agent_inv_id, x_contact_id, local_name, display_name, "
    "full_name, contact_id, welcome, status, created_at"
)
# the columns the `set_*` helpers may change (callers name them as keywords)
_CONN_FIELDS = frozenset(
    {
        "agent_conn_id",
        "contact_id",
        "status",
        "link",
        "last_error",
        "x_contact_id",
        "kind",
        "member_row",
    }
)
_LINK_FIELDS = frozenset({"link", "role", "auto_accept", "welcome", "status"})
_REQUEST_FIELDS = frozenset({"status", "contact_id", "welcome"})
_MEMBER_FIELDS = frozenset(
    {"status", "display_name", "full_name", "last_error", "role", "introduced_by"}
)
_INTRO_FIELDS = frozenset({"status", "group_link", "direct_link", "last_error"})
_GONE = tuple(GONE_MEMBER)


def _set(
    c: sqlite3.Connection,
    table: str,
    key: str,
    allowed: frozenset[str],
    row: object,
    fields: dict[str, object],
) -> None:
    assert fields and set(fields) <= allowed, f"{table}: cannot set {sorted(fields)}"
    cols = ", ".join(f"{k} = ?" for k in fields)
    c.execute(
        f"UPDATE {table} SET {cols}, updated_at = ? WHERE {key} = ?",
        (*fields.values(), now(), row),
    )


# ---------------------------------------------------------------- users


def active_user(c: sqlite3.Connection) -> UserRow | None:
    r = c.execute(f"SELECT {_USER_COLS} FROM users WHERE active = 1").fetchone()
    return UserRow(*r) if r else None


def user_by_id(c: sqlite3.Connection, user_id: int) -> UserRow | None:
    r = c.execute(f"SELECT {_USER_COLS} FROM users WHERE user_id = ?", (user_id,)).fetchone()
    return UserRow(*r) if r else None


def insert_user(c: sqlite3.Connection, display_name: str, full_name: str) -> UserRow:
    """A new user profile, which becomes the active one."""
    c.execute("UPDATE users SET active = 0")
    cur = c.execute(
        "INSERT INTO users (display_name, full_name, active, created_at) VALUES (?, ?, 1, ?)",
        (display_name, full_name, now()),
    )
    assert cur.lastrowid is not None
    return UserRow(cur.lastrowid, display_name, full_name)


def unique_name(
    c: sqlite3.Connection, table: str, user_id: int, wanted: str, exclude: int | None = None
) -> str:
    """`wanted` (escaped, see `safe_name`), or `wanted_1`, `wanted_2`... if a contact or
    group already has it (as simplex-chat names them); `exclude`: the row being renamed."""
    assert table in ("contacts", "groups")
    key = "contact_id" if table == "contacts" else "group_id"
    wanted = safe_name(wanted)
    name, n = wanted, 0
    while c.execute(
        f"SELECT 1 FROM {table} WHERE user_id = ? AND local_name = ? AND {key} IS NOT ?",
        (user_id, name, exclude),
    ).fetchone():
        n += 1
        name = f"{wanted}_{n}"
    return name


def unique_member_name(
    c: sqlite3.Connection, group_id: int, wanted: str, exclude: int | None = None
) -> str:
    """The name a member is shown by in its group: `wanted` (escaped), or `wanted_1`,
    `wanted_2`... if another member has it (`exclude`: the member being renamed); a
    member's x.grp.mem.info does not change it, and its x.info never takes another
    member's name."""
    wanted = safe_name(wanted)
    name, n = wanted, 0
    while c.execute(
        "SELECT 1 FROM members WHERE group_id = ? AND display_name = ? AND member_row IS NOT ?",
        (group_id, name, exclude),
    ).fetchone():
        n += 1
        name = f"{wanted}_{n}"
    return name


def set_user_profile(
    c: sqlite3.Connection, user_id: int, display_name: str, full_name: str
) -> None:
    c.execute(
        "UPDATE users SET display_name = ?, full_name = ? WHERE user_id = ?",
        (display_name, full_name, user_id),
    )


def set_contact_profile(
    c: sqlite3.Connection, contact_id: int, user_id: int, display_name: str, full_name: str
) -> None:
    """The contact's new profile; its local name follows, unique among contacts."""
    local = unique_name(c, "contacts", user_id, display_name, exclude=contact_id)
    c.execute(
        "UPDATE contacts SET local_name = ?, display_name = ?, full_name = ? WHERE contact_id = ?",
        (local, display_name, full_name, contact_id),
    )


def set_group_profile(
    c: sqlite3.Connection, group_id: int, user_id: int, display_name: str, full_name: str
) -> None:
    """The group's new profile; its local name follows, unique among groups."""
    local = unique_name(c, "groups", user_id, display_name, exclude=group_id)
    c.execute(
        "UPDATE groups SET local_name = ?, display_name = ?, full_name = ? WHERE group_id = ?",
        (local, display_name, full_name, group_id),
    )


# ---------------------------------------------------------------- contacts


def contact_by_id(c: sqlite3.Connection, contact_id: int) -> ContactRow | None:
    r = c.execute(
        f"SELECT {_CONTACT_COLS} FROM contacts WHERE contact_id = ?", (contact_id,)
    ).fetchone()
    return ContactRow(*r) if r else None


def contact_by_name(c: sqlite3.Connection, user_id: int, name: str) -> ContactRow | None:
    r = c.execute(
        f"SELECT {_CONTACT_COLS} FROM contacts "
        "WHERE user_id = ? AND local_name = ? AND status != ?",
        (user_id, name, CT_DELETED),
    ).fetchone()
    return ContactRow(*r) if r else None


def live_contacts(c: sqlite3.Connection, user_id: int) -> list[ContactRow]:
    rows = c.execute(
        f"SELECT {_CONTACT_COLS} FROM contacts WHERE user_id = ? AND status != ? "
        "ORDER BY local_name",
        (user_id, CT_DELETED),
    )
    return [ContactRow(*r) for r in rows]


def insert_contact(
    c: sqlite3.Connection, user_id: int, display_name: str, full_name: str, status: str
) -> int:
    local = unique_name(c, "contacts", user_id, display_name)
    cur = c.execute(
        "INSERT INTO contacts (user_id, local_name, display_name, full_name, status, "
        "created_at) VALUES (?, ?, ?, ?, ?, ?)",
        (user_id, local, display_name, full_name, status, now()),
    )
    assert cur.lastrowid is not None
    return cur.lastrowid


def set_contact_status(c: sqlite3.Connection, contact_id: int, status: str) -> None:
    c.execute("UPDATE contacts SET status = ? WHERE contact_id = ?", (status, contact_id))


def tombstone_contact(c: sqlite3.Connection, contact_id: int) -> None:
    """Deleted: its name (`name#id`) is free again for a new contact."""
    c.execute(
        "UPDATE contacts SET status = ?, local_name = local_name || '#' || contact_id "
        "WHERE contact_id = ?",
        (CT_DELETED, contact_id),
    )


# ---------------------------------------------------------------- groups


def group_by_id(c: sqlite3.Connection, group_id: int) -> GroupRow | None:
    r = c.execute(f"SELECT {_GROUP_COLS} FROM groups WHERE group_id = ?", (group_id,)).fetchone()
    return GroupRow(*r) if r else None


def group_by_name(c: sqlite3.Connection, user_id: int, name: str) -> GroupRow | None:
    r = c.execute(
        f"SELECT {_GROUP_COLS} FROM groups WHERE user_id = ? AND local_name = ? AND status != ?",
        (user_id, name, G_DELETED),
    ).fetchone()
    return GroupRow(*r) if r else None


def live_group_ids(c: sqlite3.Connection, user_id: int) -> list[int]:
    rows = c.execute(
        "SELECT group_id FROM groups WHERE user_id = ? AND status != ? ORDER BY local_name",
        (user_id, G_DELETED),
    )
    return [r[0] for r in rows]


def insert_group(
    c: sqlite3.Connection,
    user_id: int,
    display_name: str,
    full_name: str,
    status: str,
    invitation: str | None = None,
) -> int:
    local = unique_name(c, "groups", user_id, display_name)
    cur = c.execute(
        "INSERT INTO groups (user_id, local_name, display_name, full_name, status, invitation, "
        "created_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
        (user_id, local, display_name, full_name, status, invitation, now()),
    )
    assert cur.lastrowid is not None
    return cur.lastrowid


def set_group_status(c: sqlite3.Connection, group_id: int, status: str) -> None:
    c.execute("UPDATE groups SET status = ? WHERE group_id = ?", (status, group_id))


def tombstone_group(c: sqlite3.Connection, group_id: int) -> None:
    """Deleted: its name (`name#id`) is free again for a new group."""
    c.execute(
        "UPDATE groups SET status = ?, local_name = local_name || '#' || group_id "
        "WHERE group_id = ?",
        (G_DELETED, group_id),
    )


# ---------------------------------------------------------------- members


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


def _member_in(c: sqlite3.Connection, group_id: int, category: str) -> MemberRow | None:
    r = c.execute(
        f"SELECT {_MEMBER_COLS} FROM members WHERE group_id = ? AND category = ?",
        (group_id, category),
    ).fetchone()
    return MemberRow(*r) if r else None


def user_member(c: sqlite3.Connection, group_id: int) -> MemberRow:
    m = _member_in(c, group_id, CAT_USER)
    assert m is not None, "every group has the user's own member row"
    return m


def host_member(c: sqlite3.Connection, group_id: int) -> MemberRow | None:
    """(a member) who invited us."""
    return _member_in(c, group_id, CAT_HOST)


def current_member_of_contact(c: sqlite3.Connection, group_id: int, contact_id: int) -> bool:
    """Whether the contact is a member of the group that has not left or been removed."""
    r = c.execute(
        "SELECT 1 FROM members WHERE group_id = ? AND contact_id = ? AND status NOT IN (?, ?)",
        (group_id, contact_id, *_GONE),
    ).fetchone()
    return r is not None


def unconnected_pre_members(c: sqlite3.Connection, group_id: int) -> int:
    """(newcomer) how many members introduced to us are not connected yet."""
    r = c.execute(
        "SELECT count(*) FROM members WHERE group_id = ? AND category = ? "
        "AND status NOT IN (?, ?, ?, ?)",
        (group_id, CAT_PRE, M_CONNECTED, M_COMPLETE, *_GONE),
    ).fetchone()
    return int(r[0])


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
    introduced_by: int | None = None,
) -> int:
    t = now()
    display_name = unique_member_name(c, group_id, display_name)
    cur = c.execute(
        "INSERT INTO members (group_id, member_id, role, category, status, display_name, "
        "full_name, contact_id, introduced_by, created_at, updated_at) "
        "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (
            group_id,
            member_id,
            role,
            category,
            status,
            display_name,
            full_name,
            contact_id,
            introduced_by,
            t,
            t,
        ),
    )
    assert cur.lastrowid is not None
    return cur.lastrowid


def set_member(c: sqlite3.Connection, member_row: int, **fields: object) -> None:
    _set(c, "members", "member_row", _MEMBER_FIELDS, member_row, fields)


# ---------------------------------------------------------------- connections


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


def connection_and_user(
    c: sqlite3.Connection, agent_conn_id: str
) -> tuple[ConnectionRow, UserRow] | None:
    """The chat's connection for an agent connection, and the active user; None without
    either (an event for a connection the chat does not know)."""
    conn = connection_by_agent_id(c, agent_conn_id)
    user = active_user(c)
    return (conn, user) if conn is not None and user is not None else None


def member_connections(c: sqlite3.Connection, member_row: int) -> list[ConnectionRow]:
    rows = c.execute(
        f"SELECT {_CONN_COLS} FROM connections WHERE member_row = ? AND status != ? "
        "ORDER BY connection_id",
        (member_row, C_DELETED),
    )
    return [ConnectionRow(*r) for r in rows]


def member_connection(c: sqlite3.Connection, member_row: int, kind: str) -> ConnectionRow | None:
    for conn in member_connections(c, member_row):
        if conn.kind == kind:
            return conn
    return None


def contact_connection(c: sqlite3.Connection, contact_id: int) -> ConnectionRow | None:
    r = c.execute(
        f"SELECT {_CONN_COLS} FROM connections WHERE contact_id = ? AND kind = ? "
        "AND status != ? ORDER BY connection_id DESC",
        (contact_id, K_CONTACT, C_DELETED),
    ).fetchone()
    return ConnectionRow(*r) if r else None


def contact_agent_conns(c: sqlite3.Connection, contact_id: int) -> list[str]:
    rows = c.execute(
        "SELECT agent_conn_id FROM connections WHERE contact_id = ? AND kind = ? "
        "AND agent_conn_id IS NOT NULL AND status != ?",
        (contact_id, K_CONTACT, C_DELETED),
    )
    return [r[0] for r in rows]


def delete_contact_connections(c: sqlite3.Connection, contact_id: int) -> None:
    c.execute(
        "UPDATE connections SET status = ? WHERE contact_id = ? AND kind = ?",
        (C_DELETED, contact_id, K_CONTACT),
    )


def delete_agent_connection(c: sqlite3.Connection, agent_conn_id: str) -> None:
    c.execute(
        "UPDATE connections SET status = ? WHERE agent_conn_id = ?", (C_DELETED, agent_conn_id)
    )


def ready_group_conns(c: sqlite3.Connection, group_id: int) -> list[str]:
    """Agent ids of the ready group connections to the members still in the group."""
    rows = c.execute(
        "SELECT x.agent_conn_id FROM connections x JOIN members m USING (member_row) "
        "WHERE m.group_id = ? AND x.kind = ? AND x.status = ? "
        "AND m.status NOT IN (?, ?) ORDER BY m.member_row",
        (group_id, K_MEMBER_GROUP, C_READY, *_GONE),
    )
    return [r[0] for r in rows]


def group_agent_conns(c: sqlite3.Connection, group_id: int) -> list[str]:
    """Agent ids of all the group's member connections not deleted."""
    rows = c.execute(
        "SELECT x.agent_conn_id FROM connections x JOIN members m USING (member_row) "
        "WHERE m.group_id = ? AND x.agent_conn_id IS NOT NULL AND x.status != ?",
        (group_id, C_DELETED),
    )
    return [r[0] for r in rows]


def host_agent_conn(c: sqlite3.Connection, group_id: int) -> str | None:
    """(a member) the ready group connection with the host."""
    r = c.execute(
        "SELECT x.agent_conn_id FROM connections x JOIN members m USING (member_row) "
        "WHERE m.group_id = ? AND m.category = ? AND x.kind = ? AND x.status = ?",
        (group_id, CAT_HOST, K_MEMBER_GROUP, C_READY),
    ).fetchone()
    return r[0] if r else None


def unsettled_connections(c: sqlite3.Connection) -> list[tuple[str, str]]:
    """(agent id, status) of the connections with an agent id still under way."""
    rows = c.execute(
        "SELECT agent_conn_id, status FROM connections WHERE agent_conn_id IS NOT NULL "
        "AND status NOT IN (?, ?, ?)",
        (C_READY, C_DELETED, C_FAILED),
    )
    return [(r[0], r[1]) for r in rows]


def rsync_shown(c: sqlite3.Connection) -> dict[str, tuple[str, int]]:
    """Agent connection -> (re-synchronisation state, completed re-negotiations) as the
    chat last showed them, for the connections that are not deleted."""
    rows = c.execute(
        "SELECT agent_conn_id, rsync_state, rsync_done FROM connections "
        "WHERE agent_conn_id IS NOT NULL AND status != ?",
        (C_DELETED,),
    )
    return {r[0]: (r[1], int(r[2])) for r in rows}


def reset_rsync_done(c: sqlite3.Connection, agent_conn_id: str, done: int) -> None:
    """The agent counts fewer re-negotiations than shown (its database went back to a
    copy): count from the agent's number again."""
    c.execute(
        "UPDATE connections SET rsync_done = ? WHERE agent_conn_id = ?", (done, agent_conn_id)
    )


def show_rsync(c: sqlite3.Connection, agent_conn_id: str, state: str, done: int) -> bool:
    """Record the re-synchronisation state shown; True if `done` counts a re-negotiation
    not shown before (its item is to be made, once)."""
    cur = c.execute(
        "UPDATE connections SET rsync_done = ? WHERE agent_conn_id = ? AND rsync_done < ?",
        (done, agent_conn_id, done),
    )
    c.execute(
        "UPDATE connections SET rsync_state = ? WHERE agent_conn_id = ?", (state, agent_conn_id)
    )
    return cur.rowcount == 1


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
    _set(c, "connections", "connection_id", _CONN_FIELDS, connection_id, fields)


def connection_x_contact_id(c: sqlite3.Connection, link: str) -> str | None:
    """The id we sent with an earlier request to the contact address `link`, if any."""
    r = c.execute(
        "SELECT x_contact_id FROM connections WHERE link = ? AND x_contact_id IS NOT NULL "
        "ORDER BY connection_id DESC",
        (link,),
    ).fetchone()
    return r[0] if r else None


# ---------------------------------------------------------------- addresses and group links


def _link_row(r: tuple[object, ...] | None) -> LinkRow | None:
    if r is None:
        return None
    row = LinkRow(*r)  # type: ignore[arg-type]
    row.auto_accept = bool(row.auto_accept)
    return row


def insert_contact_link(
    c: sqlite3.Connection,
    user_id: int,
    connection_id: int,
    status: str,
    group_id: int | None = None,
    role: str | None = None,
) -> int:
    t = now()
    cur = c.execute(
        "INSERT INTO user_contact_links (user_id, group_id, connection_id, role, status, "
        "created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
        (user_id, group_id, connection_id, role, status, t, t),
    )
    assert cur.lastrowid is not None
    return cur.lastrowid


def contact_link(c: sqlite3.Connection, link_id: int) -> LinkRow | None:
    r = c.execute(f"SELECT {_LINK_COLS} FROM user_contact_links WHERE link_id = ?", (link_id,))
    return _link_row(r.fetchone())


def user_address(c: sqlite3.Connection, user_id: int, dead: str) -> LinkRow | None:
    """The user's contact address, unless its status is `dead`."""
    r = c.execute(
        f"SELECT {_LINK_COLS} FROM user_contact_links WHERE user_id = ? AND group_id IS NULL "
        "AND status != ? ORDER BY link_id DESC",
        (user_id, dead),
    )
    return _link_row(r.fetchone())


def group_link(c: sqlite3.Connection, group_id: int, dead: str) -> LinkRow | None:
    """The group's link, unless its status is `dead`."""
    r = c.execute(
        f"SELECT {_LINK_COLS} FROM user_contact_links WHERE group_id = ? AND status != ? "
        "ORDER BY link_id DESC",
        (group_id, dead),
    )
    return _link_row(r.fetchone())


def contact_link_by_connection(c: sqlite3.Connection, connection_id: int) -> LinkRow | None:
    r = c.execute(
        f"SELECT {_LINK_COLS} FROM user_contact_links WHERE connection_id = ?", (connection_id,)
    )
    return _link_row(r.fetchone())


def set_contact_link(c: sqlite3.Connection, link_id: int, **fields: object) -> None:
    _set(c, "user_contact_links", "link_id", _LINK_FIELDS, link_id, fields)


def insert_contact_request(
    c: sqlite3.Connection,
    user_id: int,
    link_id: int,
    agent_inv_id: str,
    x_contact_id: str | None,
    display_name: str,
    full_name: str,
    status: str,
    contact_id: int | None = None,
) -> int:
    """A request received on an address, named uniquely among contacts and pending
    requests (`alice`, `alice_2`...)."""
    display_name = safe_name(display_name)
    name, n = display_name, 0
    while c.execute(
        "SELECT 1 FROM contacts WHERE user_id = ? AND local_name = ? UNION "
        "SELECT 1 FROM contact_requests WHERE user_id = ? AND local_name = ? AND status = ?",
        (user_id, name, user_id, name, status),
    ).fetchone():
        n += 1
        name = f"{display_name}_{n}"
    t = now()
    cur = c.execute(
        "INSERT INTO contact_requests (user_id, link_id, agent_inv_id, x_contact_id, "
        "local_name, display_name, full_name, contact_id, status, created_at, updated_at) "
        "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (
            user_id,
            link_id,
            agent_inv_id,
            x_contact_id,
            name,
            display_name,
            full_name,
            contact_id,
            status,
            t,
            t,
        ),
    )
    assert cur.lastrowid is not None
    return cur.lastrowid


def contact_request(c: sqlite3.Connection, request_id: int) -> RequestRow | None:
    r = c.execute(
        f"SELECT {_REQUEST_COLS} FROM contact_requests WHERE request_id = ?", (request_id,)
    ).fetchone()
    return RequestRow(*r) if r else None


def contact_request_by_inv(c: sqlite3.Connection, agent_inv_id: str) -> RequestRow | None:
    r = c.execute(
        f"SELECT {_REQUEST_COLS} FROM contact_requests WHERE agent_inv_id = ?", (agent_inv_id,)
    ).fetchone()
    return RequestRow(*r) if r else None


def contact_requests_with_status(
    c: sqlite3.Connection, user_id: int, status: str
) -> list[RequestRow]:
    rows = c.execute(
        f"SELECT {_REQUEST_COLS} FROM contact_requests WHERE user_id = ? AND status = ? "
        "ORDER BY request_id",
        (user_id, status),
    )
    return [RequestRow(*r) for r in rows]


def contact_of_x_contact_id(
    c: sqlite3.Connection, user_id: int, link_id: int, x_contact_id: str
) -> int | None:
    """A live contact made from an earlier request with this id on the same address."""
    r = c.execute(
        "SELECT r.contact_id FROM contact_requests r JOIN contacts k USING (contact_id) "
        "WHERE r.user_id = ? AND r.link_id = ? AND r.x_contact_id = ? AND k.status != ? "
        "ORDER BY r.request_id DESC",
        (user_id, link_id, x_contact_id, CT_DELETED),
    ).fetchone()
    return r[0] if r else None


def set_contact_request(c: sqlite3.Connection, request_id: int, **fields: object) -> None:
    _set(c, "contact_requests", "request_id", _REQUEST_FIELDS, request_id, fields)


def take_welcome(c: sqlite3.Connection, contact_id: int) -> str | None:
    """The welcome message waiting for the contact's connection, once (then it is gone)."""
    r = c.execute(
        "SELECT request_id, welcome FROM contact_requests WHERE contact_id = ? "
        "AND welcome IS NOT NULL ORDER BY request_id DESC",
        (contact_id,),
    ).fetchone()
    if r is None:
        return None
    c.execute("UPDATE contact_requests SET welcome = NULL WHERE request_id = ?", (r[0],))
    return str(r[1])


# ---------------------------------------------------------------- introductions


def intro(c: sqlite3.Connection, intro_id: int) -> IntroRow | None:
    r = c.execute(f"SELECT {_INTRO_COLS} FROM introductions WHERE intro_id = ?", (intro_id,))
    row = r.fetchone()
    return IntroRow(*row) if row else None


def intros_on_side(c: sqlite3.Connection, side: str) -> list[IntroRow]:
    rows = c.execute(
        f"SELECT {_INTRO_COLS} FROM introductions WHERE side = ? ORDER BY intro_id", (side,)
    )
    return [IntroRow(*r) for r in rows]


def host_intros_unconnected(c: sqlite3.Connection) -> list[IntroRow]:
    """(host) the introductions whose pair has not connected yet."""
    rows = c.execute(
        f"SELECT {_INTRO_COLS} FROM introductions WHERE side = ? AND status != ?",
        (SIDE_HOST, I_CONNECTED),
    )
    return [IntroRow(*r) for r in rows]


def host_intros_of_pair(c: sqlite3.Connection, newcomer: int, other: int) -> list[IntroRow]:
    """(host) the introductions of `other` to the newcomer."""
    rows = c.execute(
        f"SELECT {_INTRO_COLS} FROM introductions WHERE side = ? AND re_member = ? "
        "AND to_member = ?",
        (SIDE_HOST, newcomer, other),
    )
    return [IntroRow(*r) for r in rows]


def invitee_intros_of(c: sqlite3.Connection, member_row: int) -> list[IntroRow]:
    """(newcomer) our introductions to the member."""
    rows = c.execute(
        f"SELECT {_INTRO_COLS} FROM introductions WHERE side = ? AND to_member = ?",
        (SIDE_INVITEE, member_row),
    )
    return [IntroRow(*r) for r in rows]


def invitee_intros_with_links(c: sqlite3.Connection, group_id: int | None) -> list[IntroRow]:
    """(newcomer) introductions (of one group, or of all) whose two links exist and whose
    x.grp.mem.inv is not sent yet."""
    sql = (
        f"SELECT {_INTRO_COLS} FROM introductions WHERE side = ? AND status = ? "
        "AND group_link IS NOT NULL AND direct_link IS NOT NULL"
    )
    params: tuple[object, ...] = (SIDE_INVITEE, I_NEW)
    if group_id is not None:
        sql += " AND group_id = ?"
        params += (group_id,)
    rows = c.execute(sql + " ORDER BY intro_id", params)
    return [IntroRow(*r) for r in rows]


def insert_intro(
    c: sqlite3.Connection,
    group_id: int,
    side: str,
    re_member: int,
    to_member: int,
    status: str,
    msg_id: str,
    attempts: int = 1,
    retry_delay: float | None = None,
) -> int:
    t = now()
    cur = c.execute(
        "INSERT INTO introductions (group_id, side, re_member, to_member, status, msg_id, "
        "attempts, retry_delay, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (group_id, side, re_member, to_member, status, msg_id, attempts, retry_delay, t, t),
    )
    assert cur.lastrowid is not None
    return cur.lastrowid


def set_intro(c: sqlite3.Connection, intro_id: int, **fields: object) -> None:
    _set(c, "introductions", "intro_id", _INTRO_FIELDS, intro_id, fields)


def delete_intro(c: sqlite3.Connection, intro_id: int) -> None:
    c.execute("DELETE FROM introductions WHERE intro_id = ?", (intro_id,))


def delete_invitee_intros_of(c: sqlite3.Connection, member_row: int) -> None:
    c.execute(
        "DELETE FROM introductions WHERE side = ? AND to_member = ?", (SIDE_INVITEE, member_row)
    )


def invitee_intros_connected(c: sqlite3.Connection, member_row: int) -> None:
    """(newcomer) we connected to the member."""
    c.execute(
        "UPDATE introductions SET status = ? WHERE side = ? AND to_member = ?",
        (I_CONNECTED, SIDE_INVITEE, member_row),
    )


_HOST_PAIR = "side = ? AND ((re_member = ? AND to_member = ?) OR (re_member = ? AND to_member = ?))"


def host_pair_connected(c: sqlite3.Connection, a: int, b: int) -> None:
    """(host) member `a` said it connected to member `b`."""
    c.execute(
        "UPDATE introductions SET status = ?, updated_at = ?, "
        "re_con = CASE WHEN re_member = ? THEN 1 ELSE re_con END, "
        f"to_con = CASE WHEN to_member = ? THEN 1 ELSE to_con END WHERE {_HOST_PAIR}",
        (I_CONNECTED, now(), a, a, SIDE_HOST, a, b, b, a),
    )


def host_pair_introduced(c: sqlite3.Connection, a: int, b: int) -> bool:
    """(host) whether we introduced members `a` and `b` to each other (either way)."""
    r = c.execute(
        f"SELECT 1 FROM introductions WHERE {_HOST_PAIR}", (SIDE_HOST, a, b, b, a)
    ).fetchone()
    return r is not None


def host_pair_is_connected(c: sqlite3.Connection, a: int, b: int) -> bool:
    r = c.execute(
        f"SELECT 1 FROM introductions WHERE status = ? AND {_HOST_PAIR}",
        (I_CONNECTED, SIDE_HOST, a, b, b, a),
    ).fetchone()
    return r is not None


def host_partners_unconnected(
    c: sqlite3.Connection, member_row: int, until_it_says: bool = False
) -> list[int]:
    """(host) the members we introduced `member_row` to, or it to, whose pair has not
    connected yet: we pass its messages on to them. `until_it_says`: until `member_row`
    itself said it connected (a message it sent before then may not have gone to the
    other directly: it may not have known the other yet), not only the other side."""
    rows = c.execute(
        "SELECT DISTINCT CASE WHEN re_member = ? THEN to_member ELSE re_member END "
        "FROM introductions WHERE side = ? AND (re_member = ? OR to_member = ?) "
        "AND (status != ? OR (? AND CASE WHEN re_member = ? THEN re_con ELSE to_con END = 0))",
        (member_row, SIDE_HOST, member_row, member_row, I_CONNECTED, until_it_says, member_row),
    )
    return sorted(r[0] for r in rows)


def member_in_groups_of(c: sqlite3.Connection, user_id: int, member_id: str) -> list[int]:
    """The live groups (not left, removed or deleted) of the user in which a member
    (ourselves included) has this id."""
    rows = c.execute(
        "SELECT DISTINCT g.group_id FROM groups g JOIN members m USING (group_id) "
        "WHERE g.user_id = ? AND m.member_id = ? AND g.status NOT IN (?, ?, ?) "
        "ORDER BY g.group_id",
        (user_id, member_id, G_LEFT, G_REMOVED, G_DELETED),
    )
    return [r[0] for r in rows]


def host_intros_pending(c: sqlite3.Connection, newcomer: int) -> int:
    """(host) how many introductions to the newcomer have not connected."""
    r = c.execute(
        "SELECT count(*) FROM introductions WHERE side = ? AND re_member = ? AND status != ?",
        (SIDE_HOST, newcomer, I_CONNECTED),
    ).fetchone()
    return int(r[0])


# ---------------------------------------------------------------- received messages


def first_seen(
    c: sqlite3.Connection,
    scope: str,
    msg_id: str,
    agent_msg: tuple[str, int] | None = None,
) -> bool:
    """Record that `msg_id` arrived in `scope` (in agent message `agent_msg`, (agent
    connection, agent message id), when given); False if it had arrived before."""
    conn, amid = agent_msg if agent_msg is not None else (None, None)
    cur = c.execute(
        "INSERT OR IGNORE INTO received (scope, msg_id, received_at, agent_conn_id, "
        "agent_msg_id) VALUES (?, ?, ?, ?, ?)",
        (scope, msg_id, now(), conn, amid),
    )
    return cur.rowcount == 1


def first_brought_by(
    c: sqlite3.Connection, scope: str, msg_id: str, agent_msg: tuple[str, int]
) -> bool:
    """Whether `msg_id` in `scope` first arrived in this very agent message (shown again
    after a restart), not in another copy (a duplicate)."""
    r = c.execute(
        "SELECT agent_conn_id, agent_msg_id FROM received WHERE scope = ? AND msg_id = ?",
        (scope, msg_id),
    ).fetchone()
    return r is not None and (r[0], r[1]) == agent_msg


def was_seen(c: sqlite3.Connection, scope: str, msg_id: str) -> bool:
    """Whether `msg_id` arrived in `scope` before."""
    sql = "SELECT 1 FROM received WHERE scope = ? AND msg_id = ?"
    return c.execute(sql, (scope, msg_id)).fetchone() is not None


def first_came_forwarded(c: sqlite3.Connection, scope: str, msg_id: str) -> bool:
    """Whether `msg_id` in `scope` first arrived inside a host's forward (recorded with no
    agent message of its own)."""
    r = c.execute(
        "SELECT agent_conn_id FROM received WHERE scope = ? AND msg_id = ?", (scope, msg_id)
    ).fetchone()
    return r is not None and r[0] is None


def member_scope(group_id: int, member_id: str) -> str:
    """The `received` scope of messages from a group member."""
    return f"group:{group_id}:{member_id}"


def heard_since(c: sqlite3.Connection, group_id: int, member_id: str, since: float) -> bool:
    """Whether a message from the member (any, over its own connection) arrived after
    `since`."""
    r = c.execute(
        "SELECT 1 FROM received WHERE scope = ? AND received_at > ? LIMIT 1",
        (member_scope(group_id, member_id), since),
    ).fetchone()
    return r is not None


# ---------------------------------------------------------------- chat items


def insert_item(
    c: sqlite3.Connection,
    user_id: int,
    direction: str,
    text: str,
    shared_msg_id: str | None,
    *,
    contact_id: int | None = None,
    group_id: int | None = None,
    author: int | None = None,
    content_type: str = "text",
    quote: ItemQuote | None = None,
) -> int:
    """A message sent (`D_SND`: sending) or received (`D_RCV`), with its quote if any."""
    status = ITEM_SENDING if direction == D_SND else ITEM_RECEIVED
    q_item, q_msg, q_text, q_sent = quote if quote else (None, None, None, None)
    cur = c.execute(
        "INSERT INTO chat_items (user_id, contact_id, group_id, author_member, direction, "
        "shared_msg_id, text, status, created_at, content_type, quoted_item, quoted_msg_id, "
        "quoted_text, quoted_sent) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (
            user_id,
            contact_id,
            group_id,
            author,
            direction,
            shared_msg_id,
            text,
            status,
            now(),
            content_type,
            q_item,
            q_msg,
            q_text,
            None if q_sent is None else int(q_sent),
        ),
    )
    assert cur.lastrowid is not None
    return cur.lastrowid


def item(c: sqlite3.Connection, item_id: int) -> ItemRow | None:
    r = c.execute(f"SELECT {_ITEM_COLS} FROM chat_items WHERE item_id = ?", (item_id,)).fetchone()
    return ItemRow(*r) if r else None


def last_item_ids(
    c: sqlite3.Connection,
    count: int,
    *,
    user_id: int,
    contact_id: int | None = None,
    group_id: int | None = None,
) -> list[int]:
    """The ids of the last `count` items of a contact, of a group, or of all the user's
    chats, oldest first."""
    if contact_id is not None:
        column, value = "contact_id", contact_id
    elif group_id is not None:
        column, value = "group_id", group_id
    else:
        column, value = "user_id", user_id
    rows = c.execute(
        f"SELECT item_id FROM chat_items WHERE {column} = ? ORDER BY item_id DESC LIMIT ?",
        (value, count),
    )
    return [r[0] for r in reversed(rows.fetchall())]


def item_deliveries(c: sqlite3.Connection) -> list[tuple[str, int, int]]:
    """(agent connection, agent message id, item) of the sent items waiting for SENT."""
    rows = c.execute("SELECT agent_conn_id, agent_msg_id, item_id FROM item_deliveries")
    return [(r[0], r[1], r[2]) for r in rows]


def settle_delivery(
    c: sqlite3.Connection, agent_conn_id: str, agent_msg_id: int, status: str
) -> int | None:
    """The agent sent a message (or gave up): its item gets `status` (unless it was sent
    already). Returns the item, or None if the message carried none."""
    r = c.execute(
        "SELECT item_id FROM item_deliveries WHERE agent_conn_id = ? AND agent_msg_id = ?",
        (agent_conn_id, agent_msg_id),
    ).fetchone()
    if r is None:
        return None
    c.execute(
        "UPDATE chat_items SET status = ? WHERE item_id = ? AND status NOT IN (?, ?, ?)",
        (status, r[0], ITEM_SENT, ITEM_RCVD, ITEM_RCVD_BAD),
    )
    c.execute(
        "DELETE FROM item_deliveries WHERE agent_conn_id = ? AND agent_msg_id = ?",
        (agent_conn_id, agent_msg_id),
    )
    return int(r[0])


# ---------------------------------------------------------------- held group messages


def hold_for_connecting_members(
    c: sqlite3.Connection, group_id: int, body: bytes, item_id: int | None
) -> None:
    """Keep a group message for each member we are still connecting to: introduced ones
    (pre, post), and (the host) an invitee that joined whose connection is not ready yet."""
    rows = c.execute(
        "SELECT m.member_row FROM members m WHERE m.group_id = ? "
        "AND (m.category IN (?, ?) OR (m.category = ? AND m.status = ?)) "
        "AND m.status NOT IN (?, ?) AND NOT EXISTS ("
        "SELECT 1 FROM connections x WHERE x.member_row = m.member_row "
        "AND x.kind = ? AND x.status = ?)",
        (group_id, CAT_PRE, CAT_POST, CAT_INVITEE, M_ACCEPTED, *_GONE, K_MEMBER_GROUP, C_READY),
    ).fetchall()
    for (member_row,) in rows:
        c.execute(
            "INSERT INTO pending_group_messages (member_row, body, item_id, created_at) "
            "VALUES (?, ?, ?, ?)",
            (member_row, body, item_id, now()),
        )


def take_held(c: sqlite3.Connection, member_row: int) -> list[tuple[bytes, int | None]]:
    """(body, item) of the messages kept for the member, oldest first; no longer kept."""
    rows = c.execute(
        "SELECT id, body, item_id FROM pending_group_messages WHERE member_row = ? ORDER BY id",
        (member_row,),
    ).fetchall()
    c.execute("DELETE FROM pending_group_messages WHERE member_row = ?", (member_row,))
    return [(body, item_id) for _, body, item_id in rows]


# ---------------------------------------------------------------- outbox


def insert_outbox(
    c: sqlite3.Connection, agent_conn_id: str, body: bytes, item_id: int | None = None
) -> int:
    cur = c.execute(
        "INSERT INTO outbox (agent_conn_id, body, item_id, created_at) VALUES (?, ?, ?, ?)",
        (agent_conn_id, body, item_id, now()),
    )
    assert cur.lastrowid is not None
    return cur.lastrowid


def outbox_ids(c: sqlite3.Connection, agent_conn_id: str | None = None) -> list[int]:
    """The outbox, in order (of one agent connection, if given)."""
    if agent_conn_id is None:
        return [r[0] for r in c.execute("SELECT id FROM outbox ORDER BY id")]
    rows = c.execute("SELECT id FROM outbox WHERE agent_conn_id = ? ORDER BY id", (agent_conn_id,))
    return [r[0] for r in rows]


def outbox_row(c: sqlite3.Connection, outbox_id: int) -> OutboxRow | None:
    r = c.execute(
        "SELECT id, agent_conn_id, body, item_id FROM outbox WHERE id = ?", (outbox_id,)
    ).fetchone()
    return OutboxRow(*r) if r else None


def outbox_rows(c: sqlite3.Connection, outbox_ids: list[int]) -> list[OutboxRow]:
    """The rows of `outbox_ids` still in the outbox, in that order."""
    rows = (outbox_row(c, outbox_id) for outbox_id in outbox_ids)
    return [row for row in rows if row is not None]


def outbox_refused(c: sqlite3.Connection, row: OutboxRow) -> int | None:
    """The agent refused the message for good: off the outbox, its item (if it has one and
    was not sent to anyone yet) fails. Returns the item."""
    c.execute("DELETE FROM outbox WHERE id = ?", (row.id,))
    if row.item_id is None:
        return None
    c.execute(
        "UPDATE chat_items SET status = ? WHERE item_id = ? AND status NOT IN (?, ?, ?)",
        (ITEM_ERROR, row.item_id, ITEM_SENT, ITEM_RCVD, ITEM_RCVD_BAD),
    )
    return int(row.item_id)


def outbox_sent(c: sqlite3.Connection, row: OutboxRow, agent_msg_id: int | None) -> None:
    """The agent has the message (`agent_msg_id`), or refused it (None): off the outbox;
    an item waits for the agent's SENT."""
    c.execute("DELETE FROM outbox WHERE id = ?", (row.id,))
    if agent_msg_id is not None and row.item_id is not None:
        c.execute(
            "INSERT OR IGNORE INTO item_deliveries (agent_conn_id, agent_msg_id, item_id) "
            "VALUES (?, ?, ?)",
            (row.agent_conn_id, agent_msg_id, row.item_id),
        )
        c.execute(
            "INSERT OR IGNORE INTO item_messages (agent_conn_id, agent_msg_id, item_id) "
            "VALUES (?, ?, ?)",
            (row.agent_conn_id, agent_msg_id, row.item_id),
        )


# ---------------------------------------------------------------- continuations


def insert_command(
    c: sqlite3.Connection,
    command_id: str,
    user_id: int,
    connection_id: int | None,
    function: str,
    data: str,
    agent_call: str,
) -> None:
    t = now()
    c.execute(
        "INSERT INTO commands (command_id, user_id, connection_id, function, data, "
        "agent_call, status, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (command_id, user_id, connection_id, function, data, agent_call, CMD_NEW, t, t),
    )


def command(c: sqlite3.Connection, command_id: str) -> CommandRow | None:
    r = c.execute(
        f"SELECT {_COMMAND_COLS} FROM commands WHERE command_id = ?", (command_id,)
    ).fetchone()
    return CommandRow(*r) if r else None


def commands_to_issue(c: sqlite3.Connection, command_ids: list[str]) -> list[CommandRow]:
    """The commands of `command_ids` not issued yet, in that order."""
    rows = (command(c, command_id) for command_id in command_ids)
    return [row for row in rows if row is not None and row.status == CMD_NEW]


def unissued_command_ids(c: sqlite3.Connection) -> list[str]:
    rows = c.execute(
        "SELECT command_id FROM commands WHERE status = ? ORDER BY created_at", (CMD_NEW,)
    )
    return [r[0] for r in rows]


def open_commands(c: sqlite3.Connection) -> list[CommandRow]:
    """The continuations still waiting: not issued, or issued and not completed."""
    rows = c.execute(
        f"SELECT {_COMMAND_COLS} FROM commands WHERE status IN (?, ?) ORDER BY created_at",
        (CMD_NEW, CMD_ISSUED),
    )
    return [CommandRow(*r) for r in rows]


def allow_under_way(c: sqlite3.Connection, connection_id: int) -> bool:
    """Whether the connection's confirmation was allowed already (an ALLOW stored)."""
    r = c.execute(
        "SELECT 1 FROM commands WHERE connection_id = ? AND function = ?",
        (connection_id, FN_ALLOWED),
    ).fetchone()
    return r is not None


def mark_issued(c: sqlite3.Connection, command_id: str) -> None:
    c.execute(
        "UPDATE commands SET status = ?, updated_at = ? WHERE command_id = ? AND status = ?",
        (CMD_ISSUED, now(), command_id, CMD_NEW),
    )


def finish_command(c: sqlite3.Connection, command_id: str, ok: bool, result: str) -> None:
    c.execute(
        "UPDATE commands SET status = ?, result = ?, updated_at = ? WHERE command_id = ?",
        (CMD_DONE if ok else CMD_FAILED, result, now(), command_id),
    )


# ---------------------------------------------------------------- items: receipts, edits,
# deletion, reactions


def item_of_message(c: sqlite3.Connection, agent_conn_id: str, agent_msg_id: int) -> int | None:
    """The item an agent message we sent carried, if any (kept after SENT, for receipts)."""
    sql = "SELECT item_id FROM item_messages WHERE agent_conn_id = ? AND agent_msg_id = ?"
    r = c.execute(sql, (agent_conn_id, agent_msg_id)).fetchone()
    return int(r[0]) if r else None


def set_item_receipt(
    c: sqlite3.Connection, agent_conn_id: str, agent_msg_id: int, status: str
) -> bool:
    """A receipt for one agent message of an item. False if this message had a receipt
    before (a repeat)."""
    cur = c.execute(
        "UPDATE item_messages SET receipt = ? WHERE agent_conn_id = ? AND agent_msg_id = ? "
        "AND receipt IS NULL",
        (status, agent_conn_id, agent_msg_id),
    )
    return cur.rowcount == 1


def set_item_status(c: sqlite3.Connection, item_id: int, status: str) -> None:
    c.execute("UPDATE chat_items SET status = ? WHERE item_id = ?", (status, item_id))


def track_member_deliveries(c: sqlite3.Connection, item_id: int) -> None:
    """A group item was sent: each member it goes to (an outbox row on the member's
    connection, or kept for a member we are still connecting to) is `sending`."""
    t = now()
    c.execute(
        "INSERT OR IGNORE INTO item_member_status (item_id, member_row, status, updated_at) "
        "SELECT o.item_id, x.member_row, ?, ? FROM outbox o "
        "JOIN connections x ON x.agent_conn_id = o.agent_conn_id "
        "WHERE o.item_id = ? AND x.member_row IS NOT NULL "
        "UNION SELECT item_id, member_row, ?, ? FROM pending_group_messages WHERE item_id = ?",
        (ITEM_SENDING, t, item_id, ITEM_SENDING, t, item_id),
    )


def member_delivery(
    c: sqlite3.Connection, item_id: int, agent_conn_id: str
) -> tuple[int, str] | None:
    """(member, status) of the group item's delivery on the member's connection, if it
    has one."""
    r = c.execute(
        "SELECT s.member_row, s.status FROM item_member_status s "
        "JOIN connections x ON x.member_row = s.member_row "
        "WHERE s.item_id = ? AND x.agent_conn_id = ?",
        (item_id, agent_conn_id),
    ).fetchone()
    return (int(r[0]), str(r[1])) if r else None


def set_member_delivery(
    c: sqlite3.Connection, item_id: int, member_row: int, status: str, reason: str
) -> None:
    c.execute(
        "UPDATE item_member_status SET status = ?, reason = ?, updated_at = ? "
        "WHERE item_id = ? AND member_row = ?",
        (status, reason, now(), item_id, member_row),
    )


def member_deliveries(c: sqlite3.Connection, item_id: int) -> list[tuple[int, str, str, str]]:
    """(member, delivery status, reason, the member's status) of a sent group item, in the
    order of the members."""
    rows = c.execute(
        "SELECT s.member_row, s.status, s.reason, m.status FROM item_member_status s "
        "JOIN members m USING (member_row) WHERE s.item_id = ? ORDER BY s.member_row",
        (item_id,),
    )
    return [(int(r[0]), r[1], r[2], r[3]) for r in rows]


def receipt_count(c: sqlite3.Connection, item_id: int) -> tuple[int, int]:
    """(agent messages of the item with a receipt, all its agent messages)."""
    r = c.execute(
        "SELECT COUNT(receipt), COUNT(*) FROM item_messages WHERE item_id = ?", (item_id,)
    ).fetchone()
    return int(r[0]), int(r[1])


def receipt_settings(c: sqlite3.Connection, user_id: int) -> tuple[bool, bool]:
    """The user's (contacts, groups) receipt settings."""
    r = c.execute(
        "SELECT receipts_contacts, receipts_groups FROM users WHERE user_id = ?", (user_id,)
    ).fetchone()
    return bool(r[0]), bool(r[1])


def set_user_receipts(c: sqlite3.Connection, user_id: int, kind: str, on: bool) -> None:
    column = {"contacts": "receipts_contacts", "groups": "receipts_groups"}[kind]
    c.execute(f"UPDATE users SET {column} = ? WHERE user_id = ?", (int(on), user_id))


def chat_receipts(
    c: sqlite3.Connection, *, contact_id: int | None = None, group_id: int | None = None
) -> bool | None:
    """A contact's or group's own receipt setting; None: the user's default."""
    key: int | None
    if contact_id is not None:
        sql, key = "SELECT send_receipts FROM contacts WHERE contact_id = ?", contact_id
    else:
        sql, key = "SELECT send_receipts FROM groups WHERE group_id = ?", group_id
    r = c.execute(sql, (key,)).fetchone()
    return None if r is None or r[0] is None else bool(r[0])


def set_chat_receipts(
    c: sqlite3.Connection,
    on: bool | None,
    *,
    contact_id: int | None = None,
    group_id: int | None = None,
) -> None:
    value = None if on is None else int(on)
    if contact_id is not None:
        c.execute("UPDATE contacts SET send_receipts = ? WHERE contact_id = ?", (value, contact_id))
    else:
        c.execute("UPDATE groups SET send_receipts = ? WHERE group_id = ?", (value, group_id))


def clear_chat_receipts(c: sqlite3.Connection, user_id: int, kind: str) -> None:
    """Every contact (or group) of the user follows the user's setting again."""
    table = {"contacts": "contacts", "groups": "groups"}[kind]
    c.execute(f"UPDATE {table} SET send_receipts = NULL WHERE user_id = ?", (user_id,))


def full_delete_on(
    c: sqlite3.Connection, user_id: int, *, contact_id: int | None, group_id: int | None
) -> bool:
    """Whether a received deletion for everyone removes items in this chat: its own
    setting, else the user's."""
    own = None
    if contact_id is not None:
        sql, key = "SELECT full_delete FROM contacts WHERE contact_id = ?", contact_id
        own = c.execute(sql, (key,)).fetchone()
    elif group_id is not None:
        own = c.execute("SELECT full_delete FROM groups WHERE group_id = ?", (group_id,)).fetchone()
    if own is not None and own[0] is not None:
        return bool(own[0])
    r = c.execute("SELECT full_delete FROM users WHERE user_id = ?", (user_id,)).fetchone()
    return bool(r and r[0])


def set_full_delete(
    c: sqlite3.Connection,
    on: bool | None,
    *,
    user_id: int | None = None,
    contact_id: int | None = None,
    group_id: int | None = None,
) -> None:
    """The user's default (`user_id`), or a contact's or group's own (None: the default)."""
    value = None if on is None else int(on)
    if user_id is not None:
        c.execute("UPDATE users SET full_delete = ? WHERE user_id = ?", (int(bool(on)), user_id))
    elif contact_id is not None:
        c.execute("UPDATE contacts SET full_delete = ? WHERE contact_id = ?", (value, contact_id))
    else:
        c.execute("UPDATE groups SET full_delete = ? WHERE group_id = ?", (value, group_id))


def active_member_count(c: sqlite3.Connection, group_id: int) -> int:
    r = c.execute(
        f"SELECT COUNT(*) FROM members WHERE group_id = ? AND status NOT IN "
        f"({', '.join('?' for _ in _GONE)})",
        (group_id, *_GONE),
    ).fetchone()
    return int(r[0])


def item_by_msg(
    c: sqlite3.Connection,
    shared_msg_id: str,
    *,
    contact_id: int | None = None,
    group_id: int | None = None,
) -> ItemRow | None:
    """The item with this shared msgId in a contact's or a group's chat."""
    value: int | None
    if contact_id is not None:
        column, value = "contact_id", contact_id
    else:
        column, value = "group_id", group_id
    r = c.execute(
        f"SELECT {_ITEM_COLS} FROM chat_items WHERE {column} = ? AND shared_msg_id = ? "
        "ORDER BY item_id LIMIT 1",
        (value, shared_msg_id),
    ).fetchone()
    return ItemRow(*r) if r else None


def edit_item(c: sqlite3.Connection, item_id: int, edit: int, text: str) -> bool:
    """Keep version `edit` of the item's text; the item shows it if it is the newest.
    False if this version was known already (a repeated edit)."""
    cur = c.execute(
        "INSERT OR IGNORE INTO item_versions (item_id, edit, text, created_at) VALUES (?, ?, ?, ?)",
        (item_id, edit, text, now()),
    )
    if cur.rowcount == 0:
        return False
    c.execute(
        "UPDATE chat_items SET text = ?, edit = ?, updated_at = ? WHERE item_id = ? AND edit < ?",
        (text, edit, now(), item_id, edit),
    )
    return True


def keep_original(c: sqlite3.Connection, item_id: int, text: str, created_at: float) -> None:
    """The text before the first edit, as version 0 of the history."""
    c.execute(
        "INSERT OR IGNORE INTO item_versions (item_id, edit, text, created_at) VALUES (?, 0, ?, ?)",
        (item_id, text, created_at),
    )


def item_versions(c: sqlite3.Connection, item_id: int) -> list[tuple[int, str, float]]:
    """(edit, text, when) of every version of the item, the original (0) first."""
    return c.execute(
        "SELECT edit, text, created_at FROM item_versions WHERE item_id = ? ORDER BY edit",
        (item_id,),
    ).fetchall()


def mark_item_deleted(c: sqlite3.Connection, item_id: int, how: str, by: int | None = None) -> bool:
    """Mark the item deleted (`how`: "deleted" or "moderated"); False if it was already."""
    cur = c.execute(
        "UPDATE chat_items SET deleted = ?, deleted_by = ?, updated_at = ? "
        "WHERE item_id = ? AND deleted IS NULL",
        (how, by, now(), item_id),
    )
    return cur.rowcount == 1


def delete_item(c: sqlite3.Connection, item_id: int) -> None:
    """Remove the item and everything about it."""
    for table in (
        "item_versions",
        "item_reactions",
        "item_messages",
        "item_deliveries",
        "item_member_status",
    ):
        c.execute(f"DELETE FROM {table} WHERE item_id = ?", (item_id,))
    c.execute("UPDATE chat_items SET quoted_item = NULL WHERE quoted_item = ?", (item_id,))
    c.execute("DELETE FROM chat_items WHERE item_id = ?", (item_id,))


def set_reaction(c: sqlite3.Connection, item_id: int, reactor: str, emoji: str, add: bool) -> bool:
    """Add or remove one reaction of `reactor`; False if nothing changed."""
    if add:
        cur = c.execute(
            "INSERT OR IGNORE INTO item_reactions (item_id, reactor, emoji, created_at) "
            "VALUES (?, ?, ?, ?)",
            (item_id, reactor, emoji, now()),
        )
    else:
        cur = c.execute(
            "DELETE FROM item_reactions WHERE item_id = ? AND reactor = ? AND emoji = ?",
            (item_id, reactor, emoji),
        )
    return cur.rowcount == 1


def reactions_of(c: sqlite3.Connection, item_id: int, reactor: str) -> list[str]:
    rows = c.execute(
        "SELECT emoji FROM item_reactions WHERE item_id = ? AND reactor = ? ORDER BY created_at",
        (item_id, reactor),
    )
    return [r[0] for r in rows]


def reaction_counts(c: sqlite3.Connection, item_id: int) -> list[tuple[str, int, bool]]:
    """(emoji, how many, whether the user is among them) per emoji, the first added first."""
    rows = c.execute(
        "SELECT emoji, COUNT(*), MAX(reactor = 'user') FROM item_reactions WHERE item_id = ? "
        "GROUP BY emoji ORDER BY MIN(created_at)",
        (item_id,),
    )
    return [(r[0], int(r[1]), bool(r[2])) for r in rows]


# ---------------------------------------------------------------- held changes

_HELD_COLS = "id, group_id, shared_msg_id, author_member_id, sender_row, body, created_at"


def hold_change(
    c: sqlite3.Connection,
    group_id: int,
    shared_msg_id: str,
    author_member_id: str,
    sender_row: int,
    body: bytes,
) -> None:
    c.execute(
        "INSERT INTO held_changes (group_id, shared_msg_id, author_member_id, sender_row, "
        "body, created_at) VALUES (?, ?, ?, ?, ?, ?)",
        (group_id, shared_msg_id, author_member_id, sender_row, body, now()),
    )


def held_changes(c: sqlite3.Connection, group_id: int) -> list[HeldChangeRow]:
    """The changes held in the group, oldest first."""
    rows = c.execute(
        f"SELECT {_HELD_COLS} FROM held_changes WHERE group_id = ? ORDER BY id", (group_id,)
    )
    return [HeldChangeRow(*r) for r in rows]


def take_held_changes(
    c: sqlite3.Connection, group_id: int, shared_msg_id: str
) -> list[HeldChangeRow]:
    """The changes held for message `shared_msg_id` of the group, oldest first; no longer
    held."""
    rows = c.execute(
        f"SELECT {_HELD_COLS} FROM held_changes WHERE group_id = ? AND shared_msg_id = ? "
        "ORDER BY id",
        (group_id, shared_msg_id),
    ).fetchall()
    c.execute(
        "DELETE FROM held_changes WHERE group_id = ? AND shared_msg_id = ?",
        (group_id, shared_msg_id),
    )
    return [HeldChangeRow(*r) for r in rows]


def take_stale_held_changes(
    c: sqlite3.Connection, before: float, group_id: int | None = None, keep: int | None = None
) -> list[HeldChangeRow]:
    """The held changes older than `before` (of one group, if given) and, with `keep`, the
    oldest beyond the newest `keep` of that group; no longer held."""
    if group_id is None:
        sql, args = f"SELECT {_HELD_COLS} FROM held_changes WHERE created_at < ?", [before]
    else:
        sql = (
            f"SELECT {_HELD_COLS} FROM held_changes WHERE group_id = ? AND (created_at < ? "
            "OR id NOT IN (SELECT id FROM held_changes WHERE group_id = ? ORDER BY id DESC "
            "LIMIT ?))"
        )
        args = [group_id, before, group_id, -1 if keep is None else keep]
    rows = [HeldChangeRow(*r) for r in c.execute(sql + " ORDER BY id", args).fetchall()]
    c.executemany("DELETE FROM held_changes WHERE id = ?", [(r.id,) for r in rows])
    return rows

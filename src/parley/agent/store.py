"""The agent's SQLite schema, the row types read from it, and every SQL statement of the agent.

Every function here runs on the database thread inside the transaction of one
`Database.run` call; the agent composes them so that a step's effects, the end of its
command and the event it produces commit together. No other module of `parley.agent`
executes SQL.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable
from typing import Any, TypeVar

import msgspec

from parley.agent import events as ev
from parley.agent.model import DELETED, NEW, AgentError, DuplicateCommand

_R = TypeVar("_R")

MIGRATIONS = [
    """
    CREATE TABLE relays (
        address TEXT PRIMARY KEY,
        added_at REAL NOT NULL
    );
    CREATE TABLE connections (
        conn_id TEXT PRIMARY KEY,
        role TEXT NOT NULL,
        status TEXT NOT NULL,
        x3dh_private BLOB,
        invitation TEXT,
        ratchet BLOB,
        snd_msg_id INTEGER NOT NULL DEFAULT 0,
        snd_prev_hash BLOB NOT NULL DEFAULT x'',
        rcv_msg_id INTEGER NOT NULL DEFAULT 0,
        rcv_prev_hash BLOB NOT NULL DEFAULT x'',
        last_rcv_internal_id INTEGER NOT NULL DEFAULT 0,
        peer_info BLOB,
        created_at REAL NOT NULL,
        updated_at REAL NOT NULL
    );
    CREATE TABLE rcv_queues (
        conn_id TEXT PRIMARY KEY REFERENCES connections(conn_id) ON DELETE CASCADE,
        relay TEXT NOT NULL,
        recipient_id BLOB NOT NULL,
        sender_id BLOB NOT NULL,
        recipient_key BLOB NOT NULL,
        box_private BLOB NOT NULL,
        peer_box_public BLOB,
        peer_sender_key BLOB,
        status TEXT NOT NULL,
        last_relay_msg_id BLOB
    );
    CREATE UNIQUE INDEX rcv_queues_by_id ON rcv_queues(relay, recipient_id);
    CREATE TABLE snd_queues (
        conn_id TEXT PRIMARY KEY REFERENCES connections(conn_id) ON DELETE CASCADE,
        relay TEXT NOT NULL,
        sender_id BLOB NOT NULL,
        sender_key BLOB NOT NULL,
        box_private BLOB NOT NULL,
        peer_box_public BLOB NOT NULL,
        status TEXT NOT NULL
    );
    CREATE TABLE confirmations (
        conf_id TEXT PRIMARY KEY,
        conn_id TEXT NOT NULL REFERENCES connections(conn_id) ON DELETE CASCADE,
        reply_queue BLOB NOT NULL,
        info BLOB NOT NULL,
        status TEXT NOT NULL,
        created_at REAL NOT NULL
    );
    CREATE TABLE commands (
        seq INTEGER PRIMARY KEY AUTOINCREMENT,
        corr_id TEXT NOT NULL UNIQUE,
        conn_id TEXT NOT NULL,
        kind TEXT NOT NULL,
        relay TEXT,
        args BLOB NOT NULL,
        internal INTEGER NOT NULL DEFAULT 0,
        status TEXT NOT NULL DEFAULT 'pending',
        attempts INTEGER NOT NULL DEFAULT 0,
        last_error TEXT,
        next_try REAL NOT NULL,
        event BLOB,
        created_at REAL NOT NULL,
        updated_at REAL NOT NULL
    );
    CREATE TABLE deliveries (
        conn_id TEXT NOT NULL REFERENCES connections(conn_id) ON DELETE CASCADE,
        msg_id INTEGER NOT NULL,
        internal INTEGER NOT NULL,
        envelope BLOB NOT NULL,
        status TEXT NOT NULL DEFAULT 'pending',
        attempts INTEGER NOT NULL DEFAULT 0,
        last_error TEXT,
        next_try REAL NOT NULL,
        expires_at REAL NOT NULL,
        created_at REAL NOT NULL,
        PRIMARY KEY (conn_id, msg_id)
    );
    CREATE TABLE rcv_messages (
        conn_id TEXT NOT NULL REFERENCES connections(conn_id) ON DELETE CASCADE,
        msg_id INTEGER NOT NULL,
        sender_msg_id INTEGER NOT NULL,
        relay_msg_id BLOB NOT NULL,
        body BLOB,
        integrity TEXT NOT NULL,
        status TEXT NOT NULL,
        received_at REAL NOT NULL,
        PRIMARY KEY (conn_id, msg_id)
    );
    """,
    # invitation requests received on contact addresses (REQ), answered by
    # accept_contact (a JOIN of the requester's invitation) or reject_contact
    """
    CREATE TABLE contact_requests (
        inv_id TEXT PRIMARY KEY,
        conn_id TEXT NOT NULL REFERENCES connections(conn_id) ON DELETE CASCADE,
        invitation TEXT NOT NULL,
        info BLOB NOT NULL,
        status TEXT NOT NULL,
        accepted_conn TEXT,
        created_at REAL NOT NULL,
        UNIQUE (conn_id, invitation)
    );
    """,
    # delivery receipts: what each received message hashed to and whether a receipt was
    # sent for it; received receipts are stored as rcv_messages of kind 'rcvd' (shown to
    # the client until acked); the hash of each message we sent, to check receipts against
    """
    ALTER TABLE rcv_messages ADD COLUMN kind TEXT NOT NULL DEFAULT 'msg';
    ALTER TABLE rcv_messages ADD COLUMN msg_hash BLOB;
    ALTER TABLE rcv_messages ADD COLUMN receipt INTEGER NOT NULL DEFAULT 0;
    CREATE TABLE snd_messages (
        conn_id TEXT NOT NULL REFERENCES connections(conn_id) ON DELETE CASCADE,
        msg_id INTEGER NOT NULL,
        msg_hash BLOB NOT NULL,
        receipt TEXT,
        PRIMARY KEY (conn_id, msg_id)
    );
    """,
    # ratchet re-synchronisation: the state (ok, required, started, agreed) and our new
    # X3DH private keys while our ratchet key message waits for the peer's answer
    """
    ALTER TABLE connections ADD COLUMN rsync_state TEXT NOT NULL DEFAULT 'ok';
    ALTER TABLE connections ADD COLUMN rsync_private BLOB;
    """,
    # how many re-synchronisations of the connection completed (its RSYNC ok carries it,
    # and the connection's status reports it: a client that lost the event catches up)
    """
    ALTER TABLE connections ADD COLUMN rsync_done INTEGER NOT NULL DEFAULT 0;
    """,
]


class CommandArgs(msgspec.Struct):
    """A command's inputs, including the keys made when it was created.

    Keys are generated once, when the command is stored, so a retry after any failure
    reuses the same keys (and the same encrypted confirmation, once made).
    """

    recipient_key: bytes | None = None
    box_private: bytes | None = None
    sender_key: bytes | None = None
    snd_box_private: bytes | None = None
    info: bytes = b""
    conf_id: str = ""
    msg_id: int = 0
    stage: int = 0
    envelope: bytes | None = None
    uncertain: bool = False  # an earlier attempt may have reached the relay
    once: bool = False  # the synchronous API: one attempt, no retries
    contact_link: str = ""  # JOIN through a contact address: the address's link


class CommandRow(msgspec.Struct):
    seq: int
    corr_id: str
    conn_id: str
    kind: str
    relay: str | None
    args: CommandArgs
    internal: bool
    attempts: int
    last_error: str | None
    next_try: float
    created_at: float


class ConnRow(msgspec.Struct):
    conn_id: str
    role: str
    status: str
    x3dh_private: bytes | None
    invitation: str | None
    ratchet: bytes | None
    snd_msg_id: int
    snd_prev_hash: bytes
    rcv_msg_id: int
    rcv_prev_hash: bytes
    last_rcv_internal_id: int
    rsync_state: str = "ok"
    rsync_private: bytes | None = None
    rsync_done: int = 0


class RcvQueueRow(msgspec.Struct):
    conn_id: str
    relay: str
    recipient_id: bytes
    sender_id: bytes
    recipient_key: bytes
    box_private: bytes
    peer_box_public: bytes | None
    peer_sender_key: bytes | None
    status: str
    last_relay_msg_id: bytes | None


class SndQueueRow(msgspec.Struct):
    conn_id: str
    relay: str
    sender_id: bytes
    sender_key: bytes
    box_private: bytes
    peer_box_public: bytes
    status: str


class DeliveryRow(msgspec.Struct):
    conn_id: str
    msg_id: int
    internal: bool
    envelope: bytes
    attempts: int
    last_error: str | None
    next_try: float
    expires_at: float


_args_decoder = msgspec.msgpack.Decoder(CommandArgs)


def encode_args(args: CommandArgs) -> bytes:
    return msgspec.msgpack.encode(args)


def decode_args(data: bytes) -> CommandArgs:
    return _args_decoder.decode(data)


def now() -> float:
    return time.time()


_CONN_COLS = (
    "conn_id, role, status, x3dh_private, invitation, ratchet, snd_msg_id, snd_prev_hash, "
    "rcv_msg_id, rcv_prev_hash, last_rcv_internal_id, rsync_state, rsync_private, rsync_done"
)
_RCV_COLS = (
    "conn_id, relay, recipient_id, sender_id, recipient_key, box_private, peer_box_public, "
    "peer_sender_key, status, last_relay_msg_id"
)
_SND_COLS = "conn_id, relay, sender_id, sender_key, box_private, peer_box_public, status"
_CMD_COLS = (
    "seq, corr_id, conn_id, kind, relay, args, internal, attempts, last_error, next_try, created_at"
)


def _exists(c: sqlite3.Connection, sql: str, params: tuple[object, ...]) -> bool:
    return c.execute(sql, params).fetchone() is not None


def _first(c: sqlite3.Connection, sql: str, params: tuple[object, ...]) -> Any:
    """The first column of the first row, or None if there is no row."""
    row = c.execute(sql, params).fetchone()
    return row[0] if row else None


def _one(c: sqlite3.Connection, row: Callable[..., _R], sql: str, *params: Any) -> _R | None:
    """The first row `sql` selects, as a `row`; None if there is none."""
    r = c.execute(sql, params).fetchone()
    return row(*r) if r else None


def get_conn(c: sqlite3.Connection, conn_id: str) -> ConnRow | None:
    return _one(c, ConnRow, f"SELECT {_CONN_COLS} FROM connections WHERE conn_id = ?", conn_id)


def get_rcv_queue(c: sqlite3.Connection, conn_id: str) -> RcvQueueRow | None:
    return _one(c, RcvQueueRow, f"SELECT {_RCV_COLS} FROM rcv_queues WHERE conn_id = ?", conn_id)


def get_snd_queue(c: sqlite3.Connection, conn_id: str) -> SndQueueRow | None:
    return _one(c, SndQueueRow, f"SELECT {_SND_COLS} FROM snd_queues WHERE conn_id = ?", conn_id)


def all_rcv_queues(c: sqlite3.Connection) -> list[RcvQueueRow]:
    return [RcvQueueRow(*r) for r in c.execute(f"SELECT {_RCV_COLS} FROM rcv_queues")]


def find_rcv_queue(c: sqlite3.Connection, relay: str, recipient_id: bytes) -> RcvQueueRow | None:
    sql = f"SELECT {_RCV_COLS} FROM rcv_queues WHERE relay = ? AND recipient_id = ?"
    return _one(c, RcvQueueRow, sql, relay, recipient_id)


def rcv_queues_with_status(c: sqlite3.Connection) -> list[tuple[RcvQueueRow, str]]:
    """Every receive queue with the status of its connection."""
    cols = ", ".join(f"r.{col.strip()}" for col in _RCV_COLS.split(","))
    rows = c.execute(
        f"SELECT {cols}, c.status FROM rcv_queues r JOIN connections c USING (conn_id)"
    )
    return [(RcvQueueRow(*r[:-1]), r[-1]) for r in rows]


def command_from_row(r: tuple[object, ...]) -> CommandRow:
    seq, corr, conn, kind, relay, args, internal, attempts, err, next_try, created = r
    return CommandRow(
        seq,  # type: ignore[arg-type]
        corr,  # type: ignore[arg-type]
        conn,  # type: ignore[arg-type]
        kind,  # type: ignore[arg-type]
        relay,  # type: ignore[arg-type]
        decode_args(args),  # type: ignore[arg-type]
        bool(internal),
        attempts,  # type: ignore[arg-type]
        err,  # type: ignore[arg-type]
        next_try,  # type: ignore[arg-type]
        created,  # type: ignore[arg-type]
    )


def pending_commands(c: sqlite3.Connection) -> list[CommandRow]:
    rows = c.execute(
        f"SELECT {_CMD_COLS} FROM commands WHERE status = 'pending' ORDER BY seq"
    ).fetchall()
    return [command_from_row(r) for r in rows]


def insert_command(
    c: sqlite3.Connection,
    corr_id: str,
    conn_id: str,
    kind: str,
    relay: str | None,
    args: CommandArgs,
    internal: bool = False,
) -> CommandRow:
    t = now()
    cur = c.execute(
        "INSERT INTO commands (corr_id, conn_id, kind, relay, args, internal, next_try, "
        "created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (corr_id, conn_id, kind, relay, encode_args(args), int(internal), t, t, t),
    )
    assert cur.lastrowid is not None
    return CommandRow(cur.lastrowid, corr_id, conn_id, kind, relay, args, internal, 0, None, t, t)


def set_conn_status(c: sqlite3.Connection, conn_id: str, status: str) -> None:
    c.execute(
        "UPDATE connections SET status = ?, updated_at = ? WHERE conn_id = ?",
        (status, now(), conn_id),
    )


# ---------------------------------------------------------------- start-up


def add_relays(c: sqlite3.Connection, relays: list[str]) -> None:
    for relay in relays:
        c.execute("INSERT OR IGNORE INTO relays (address, added_at) VALUES (?, ?)", (relay, now()))


def unacknowledged_events(c: sqlite3.Connection) -> list[tuple[str, str, bytes]]:
    """(corr id, conn id, encoded event) of every completed, unacknowledged client command."""
    return c.execute(
        "SELECT corr_id, conn_id, event FROM commands WHERE status = 'done' "
        "AND internal = 0 ORDER BY seq"
    ).fetchall()


def pending_confirmations(c: sqlite3.Connection) -> list[tuple[str, str, bytes]]:
    """(conf id, conn id, info) of every confirmation waiting for allow."""
    return c.execute(
        "SELECT conf_id, conn_id, info FROM confirmations WHERE status = 'pending' "
        "ORDER BY created_at"
    ).fetchall()


def unacknowledged_messages(
    c: sqlite3.Connection,
) -> list[tuple[str, int, int, bytes, str, str]]:
    """(conn id, msg id, sender msg id, body, integrity, kind) of every message (kind
    'msg') and receipt (kind 'rcvd') not acked yet."""
    return c.execute(
        "SELECT conn_id, msg_id, sender_msg_id, body, integrity, kind FROM rcv_messages "
        "WHERE status = 'received' ORDER BY received_at, msg_id"
    ).fetchall()


# ---------------------------------------------------------------- connections


def insert_conn(
    c: sqlite3.Connection, conn_id: str, role: str, x3dh_private: bytes, invitation: str | None
) -> None:
    t = now()
    c.execute(
        "INSERT INTO connections (conn_id, role, status, x3dh_private, invitation, created_at, "
        "updated_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
        (conn_id, role, NEW, x3dh_private, invitation, t, t),
    )


def live_conn(c: sqlite3.Connection, conn_id: str) -> ConnRow:
    """The connection, unless it is unknown or deleted (AgentError)."""
    conn = get_conn(c, conn_id)
    if conn is None or conn.status == DELETED:
        raise AgentError(f"no connection {conn_id}")
    return conn


def connection_statuses(
    c: sqlite3.Connection,
) -> list[tuple[str, str, str | None, str | None, bytes | None, str, str, int]]:
    """(conn id, status, rcv queue status, snd queue status, peer info, role, rsync state,
    completed re-synchronisations), oldest first."""
    return c.execute(
        "SELECT c.conn_id, c.status, r.status, s.status, c.peer_info, c.role, "
        "c.rsync_state, c.rsync_done "
        "FROM connections c "
        "LEFT JOIN rcv_queues r ON r.conn_id = c.conn_id "
        "LEFT JOIN snd_queues s ON s.conn_id = c.conn_id ORDER BY c.created_at"
    ).fetchall()


def get_peer_info(c: sqlite3.Connection, conn_id: str) -> bytes | None:
    info: bytes | None = c.execute(
        "SELECT peer_info FROM connections WHERE conn_id = ?", (conn_id,)
    ).fetchone()[0]
    return info


def set_invited(c: sqlite3.Connection, conn_id: str, status: str, link: str) -> None:
    c.execute(
        "UPDATE connections SET status = ?, invitation = ?, updated_at = ? WHERE conn_id = ?",
        (status, link, now(), conn_id),
    )


def set_ratchet(c: sqlite3.Connection, conn_id: str, ratchet: bytes) -> None:
    c.execute("UPDATE connections SET ratchet = ? WHERE conn_id = ?", (ratchet, conn_id))


def start_ratchet(c: sqlite3.Connection, conn_id: str, ratchet: bytes) -> None:
    """The ratchet is agreed: store it and forget the X3DH private keys."""
    c.execute(
        "UPDATE connections SET ratchet = ?, x3dh_private = NULL, updated_at = ? WHERE conn_id = ?",
        (ratchet, now(), conn_id),
    )


def set_peer_info(c: sqlite3.Connection, conn_id: str, info: bytes) -> None:
    c.execute("UPDATE connections SET peer_info = ? WHERE conn_id = ?", (info, conn_id))


def advance_send_chain(
    c: sqlite3.Connection, conn_id: str, ratchet: bytes, msg_id: int, prev_hash: bytes, t: float
) -> None:
    c.execute(
        "UPDATE connections SET ratchet = ?, snd_msg_id = ?, snd_prev_hash = ?, updated_at = ? "
        "WHERE conn_id = ?",
        (ratchet, msg_id, prev_hash, t, conn_id),
    )


def advance_receive_chain(
    c: sqlite3.Connection, conn_id: str, msg_id: int, prev_hash: bytes
) -> None:
    c.execute(
        "UPDATE connections SET rcv_msg_id = ?, rcv_prev_hash = ?, updated_at = ? "
        "WHERE conn_id = ?",
        (msg_id, prev_hash, now(), conn_id),
    )


def advance_handshake(
    c: sqlite3.Connection, conn_id: str, *, snd_queue: str, conn_from: str, conn_to: str
) -> None:
    """Move the send queue from `new` and the connection from `conn_from`, never back."""
    c.execute(
        "UPDATE snd_queues SET status = ? WHERE conn_id = ? AND status = 'new'",
        (snd_queue, conn_id),
    )
    c.execute(
        "UPDATE connections SET status = ?, updated_at = ? WHERE conn_id = ? AND status = ?",
        (conn_to, now(), conn_id, conn_from),
    )


def delete_conn(c: sqlite3.Connection, conn_id: str) -> None:
    """Delete the connection; its queues, messages and deliveries go with it (cascade)."""
    c.execute("DELETE FROM connections WHERE conn_id = ?", (conn_id,))


def conns_on_relay(c: sqlite3.Connection, relay: str) -> list[str]:
    """Every connection with a queue on `relay`, sorted."""
    rows = c.execute(
        "SELECT conn_id FROM rcv_queues WHERE relay = ? UNION "
        "SELECT conn_id FROM snd_queues WHERE relay = ?",
        (relay, relay),
    )
    return sorted(r[0] for r in rows)


# ---------------------------------------------------------------- queues


def insert_rcv_queue(c: sqlite3.Connection, q: RcvQueueRow) -> None:
    c.execute(
        "INSERT INTO rcv_queues (conn_id, relay, recipient_id, sender_id, recipient_key, "
        "box_private, status) VALUES (?, ?, ?, ?, ?, ?, ?)",
        (q.conn_id, q.relay, q.recipient_id, q.sender_id, q.recipient_key, q.box_private, q.status),
    )


def insert_snd_queue(c: sqlite3.Connection, q: SndQueueRow) -> None:
    c.execute(
        "INSERT OR REPLACE INTO snd_queues (conn_id, relay, sender_id, sender_key, box_private, "
        "peer_box_public, status) VALUES (?, ?, ?, ?, ?, ?, ?)",
        (q.conn_id, q.relay, q.sender_id, q.sender_key, q.box_private, q.peer_box_public, q.status),
    )


def set_rcv_queue_status(
    c: sqlite3.Connection, conn_id: str, status: str, *, only_from: str | None = None
) -> None:
    """Set the receive queue's status (only if it is `only_from` now, when given)."""
    if only_from is None:
        c.execute("UPDATE rcv_queues SET status = ? WHERE conn_id = ?", (status, conn_id))
    else:
        c.execute(
            "UPDATE rcv_queues SET status = ? WHERE conn_id = ? AND status = ?",
            (status, conn_id, only_from),
        )


def confirm_rcv_queue(
    c: sqlite3.Connection, conn_id: str, peer_box_public: bytes, peer_sender_key: bytes
) -> None:
    c.execute(
        "UPDATE rcv_queues SET status = 'confirmed', peer_box_public = ?, "
        "peer_sender_key = ? WHERE conn_id = ?",
        (peer_box_public, peer_sender_key, conn_id),
    )


def set_last_relay_msg_id(c: sqlite3.Connection, conn_id: str, relay_msg_id: bytes) -> None:
    c.execute(
        "UPDATE rcv_queues SET last_relay_msg_id = ? WHERE conn_id = ?", (relay_msg_id, conn_id)
    )


def set_snd_queue_status(c: sqlite3.Connection, conn_id: str, status: str) -> None:
    c.execute("UPDATE snd_queues SET status = ? WHERE conn_id = ?", (status, conn_id))


# ---------------------------------------------------------------- confirmations


def insert_confirmation(
    c: sqlite3.Connection, conf_id: str, conn_id: str, reply_queue: bytes, info: bytes
) -> None:
    c.execute(
        "INSERT INTO confirmations (conf_id, conn_id, reply_queue, info, status, "
        "created_at) VALUES (?, ?, ?, ?, 'pending', ?)",
        (conf_id, conn_id, reply_queue, info, now()),
    )


def has_confirmation(c: sqlite3.Connection, conf_id: str, conn_id: str) -> bool:
    sql = "SELECT status FROM confirmations WHERE conf_id = ? AND conn_id = ?"
    return _exists(c, sql, (conf_id, conn_id))


def confirmation_reply_queue(c: sqlite3.Connection, conf_id: str) -> bytes:
    """The joiner's reply queue (encoded) named in confirmation `conf_id`."""
    reply: bytes | None = _first(
        c, "SELECT reply_queue FROM confirmations WHERE conf_id = ?", (conf_id,)
    )
    if reply is None:
        raise AgentError(f"no confirmation {conf_id}")
    return reply


def accept_confirmation(c: sqlite3.Connection, conf_id: str) -> None:
    c.execute("UPDATE confirmations SET status = 'accepted' WHERE conf_id = ?", (conf_id,))


# ---------------------------------------------------------------- contact requests


def insert_contact_request(
    c: sqlite3.Connection, inv_id: str, conn_id: str, invitation: str, info: bytes
) -> bool:
    """Store a request received on a contact address; False if it came before (a retry)."""
    cur = c.execute(
        "INSERT OR IGNORE INTO contact_requests (inv_id, conn_id, invitation, info, status, "
        "created_at) VALUES (?, ?, ?, ?, 'pending', ?)",
        (inv_id, conn_id, invitation, info, now()),
    )
    return cur.rowcount == 1


def contact_request(c: sqlite3.Connection, inv_id: str) -> tuple[str, str, str] | None:
    """(address conn id, the requester's invitation, status) of request `inv_id`."""
    row: tuple[str, str, str] | None = c.execute(
        "SELECT conn_id, invitation, status FROM contact_requests WHERE inv_id = ?", (inv_id,)
    ).fetchone()
    return row


def set_contact_request(
    c: sqlite3.Connection, inv_id: str, status: str, accepted_conn: str | None = None
) -> None:
    c.execute(
        "UPDATE contact_requests SET status = ?, accepted_conn = ? WHERE inv_id = ?",
        (status, accepted_conn, inv_id),
    )


def pending_contact_requests(c: sqlite3.Connection) -> list[tuple[str, str, bytes]]:
    """(inv id, address conn id, info) of every request not answered yet, oldest first."""
    return c.execute(
        "SELECT inv_id, conn_id, info FROM contact_requests WHERE status = 'pending' "
        "ORDER BY created_at"
    ).fetchall()


# ---------------------------------------------------------------- commands


def check_new_corr_id(c: sqlite3.Connection, corr_id: str) -> None:
    if not corr_id:
        raise AgentError("a corr id is required")
    if _exists(c, "SELECT 1 FROM commands WHERE corr_id = ?", (corr_id,)):
        raise DuplicateCommand(f"corr id already used: {corr_id}")


def has_pending_command(c: sqlite3.Connection, conn_id: str, kind: str) -> bool:
    sql = "SELECT 1 FROM commands WHERE conn_id = ? AND kind = ? AND status = 'pending'"
    return _exists(c, sql, (conn_id, kind))


def pending_commands_of(c: sqlite3.Connection, conn_id: str) -> list[tuple[str, bool]]:
    """(corr id, internal) of every pending command of the connection."""
    return [
        (corr, bool(internal))
        for corr, internal in c.execute(
            "SELECT corr_id, internal FROM commands WHERE conn_id = ? AND status = 'pending'",
            (conn_id,),
        )
    ]


def mark_synchronous(c: sqlite3.Connection, cmd: CommandRow) -> None:
    """Store that `cmd` is a synchronous call's: internal, one attempt (`args.once`)."""
    c.execute(
        "UPDATE commands SET args = ?, internal = 1 WHERE corr_id = ?",
        (encode_args(cmd.args), cmd.corr_id),
    )


def save_command_args(c: sqlite3.Connection, cmd: CommandRow) -> None:
    """Store the command's arguments and relay after an intermediate step."""
    c.execute(
        "UPDATE commands SET args = ?, relay = ?, updated_at = ? WHERE corr_id = ?",
        (encode_args(cmd.args), cmd.relay, now(), cmd.corr_id),
    )


def save_command_retry(c: sqlite3.Connection, cmd: CommandRow) -> None:
    """Store the attempts, last error, next try, arguments and relay of a pending command."""
    c.execute(
        "UPDATE commands SET attempts = ?, last_error = ?, next_try = ?, args = ?, "
        "relay = ?, updated_at = ? WHERE corr_id = ? AND status = 'pending'",
        (
            cmd.attempts,
            cmd.last_error,
            cmd.next_try,
            encode_args(cmd.args),
            cmd.relay,
            now(),
            cmd.corr_id,
        ),
    )


def finish_command(c: sqlite3.Connection, corr_id: str, event: ev.Event, internal: bool) -> None:
    """End a command: an internal one is deleted, a client's keeps its event until acked."""
    if internal:
        c.execute("DELETE FROM commands WHERE corr_id = ?", (corr_id,))
    else:
        c.execute(
            "UPDATE commands SET status = 'done', event = ?, updated_at = ? WHERE corr_id = ?",
            (ev.encode_event(event), now(), corr_id),
        )


def delete_command(c: sqlite3.Connection, corr_id: str, done_only: bool = False) -> None:
    if done_only:
        c.execute("DELETE FROM commands WHERE corr_id = ? AND status = 'done'", (corr_id,))
    else:
        c.execute("DELETE FROM commands WHERE corr_id = ?", (corr_id,))


# ---------------------------------------------------------------- deliveries


def insert_delivery(
    c: sqlite3.Connection,
    conn_id: str,
    msg_id: int,
    internal: bool,
    envelope: bytes,
    t: float,
    expires_at: float,
) -> None:
    c.execute(
        "INSERT INTO deliveries (conn_id, msg_id, internal, envelope, next_try, expires_at, "
        "created_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
        (conn_id, msg_id, int(internal), envelope, t, expires_at, t),
    )


def next_delivery(
    c: sqlite3.Connection, conn_id: str
) -> tuple[DeliveryRow | None, SndQueueRow | None, ConnRow | None]:
    """The connection's first pending delivery, its send queue and the connection."""
    r = c.execute(
        "SELECT conn_id, msg_id, internal, envelope, attempts, last_error, next_try, expires_at "
        "FROM deliveries WHERE conn_id = ? AND status = 'pending' ORDER BY msg_id LIMIT 1",
        (conn_id,),
    ).fetchone()
    row = DeliveryRow(r[0], r[1], bool(r[2]), *r[3:]) if r else None
    return row, get_snd_queue(c, conn_id), get_conn(c, conn_id)


def deliveries_with_status(
    c: sqlite3.Connection, status: str
) -> list[tuple[str, int, int, str | None, float, float]]:
    """(conn id, msg id, attempts, last error, next try, expires at), by connection and id."""
    return c.execute(
        "SELECT conn_id, msg_id, attempts, last_error, next_try, expires_at "
        "FROM deliveries WHERE status = ? ORDER BY conn_id, msg_id",
        (status,),
    ).fetchall()


def conns_with_pending_deliveries(c: sqlite3.Connection) -> list[str]:
    return [
        r[0] for r in c.execute("SELECT DISTINCT conn_id FROM deliveries WHERE status = 'pending'")
    ]


def forget_failed_deliveries(c: sqlite3.Connection, created_before: float) -> None:
    c.execute(
        "DELETE FROM deliveries WHERE status = 'failed' AND created_at < ?", (created_before,)
    )


def failed_deliveries(c: sqlite3.Connection) -> list[tuple[str, int, str | None]]:
    """(conn id, msg id, reason) of every failed client delivery, oldest first."""
    return c.execute(
        "SELECT conn_id, msg_id, last_error FROM deliveries WHERE status = 'failed' "
        "AND internal = 0 ORDER BY created_at"
    ).fetchall()


def hurry_deliveries_to(c: sqlite3.Connection, relay: str, t: float) -> list[str]:
    """Deliveries to `relay` waiting for their retry timer are due at `t`; their connections."""
    rows = c.execute(
        "SELECT DISTINCT d.conn_id FROM deliveries d JOIN snd_queues s USING (conn_id) "
        "WHERE s.relay = ? AND d.status = 'pending' AND d.next_try > ?",
        (relay, t),
    ).fetchall()
    c.execute(
        "UPDATE deliveries SET next_try = ? WHERE status = 'pending' AND next_try > ? "
        "AND conn_id IN (SELECT conn_id FROM snd_queues WHERE relay = ?)",
        (t, t, relay),
    )
    return [r[0] for r in rows]


def save_delivery_retry(
    c: sqlite3.Connection, row: DeliveryRow, attempts: int, error: str, next_try: float
) -> None:
    c.execute(
        "UPDATE deliveries SET attempts = ?, last_error = ?, next_try = ? "
        "WHERE conn_id = ? AND msg_id = ? AND envelope = ?",
        (attempts, error, next_try, row.conn_id, row.msg_id, row.envelope),
    )


def mark_delivery_failed(c: sqlite3.Connection, row: DeliveryRow, reason: str) -> None:
    """The delivery failed for good: keep the row (without its envelope) to report it."""
    c.execute(
        "UPDATE deliveries SET status = 'failed', last_error = ?, envelope = x'' "
        "WHERE conn_id = ? AND msg_id = ? AND envelope = ?",
        (reason, row.conn_id, row.msg_id, row.envelope),
    )


def mark_delivered(c: sqlite3.Connection, row: DeliveryRow) -> None:
    # by its envelope too: a ratchet re-agreement may have dropped this row while it was
    # being sent and reused its id for another (a ratchet key message)
    c.execute(
        "DELETE FROM deliveries WHERE conn_id = ? AND msg_id = ? AND envelope = ?",
        (row.conn_id, row.msg_id, row.envelope),
    )


def delete_deliveries(c: sqlite3.Connection, conn_id: str) -> None:
    c.execute("DELETE FROM deliveries WHERE conn_id = ?", (conn_id,))


# ---------------------------------------------------------------- received messages


def has_rcv_message(c: sqlite3.Connection, conn_id: str, msg_id: int) -> bool:
    sql = "SELECT status FROM rcv_messages WHERE conn_id = ? AND msg_id = ?"
    return _exists(c, sql, (conn_id, msg_id))


def rcv_message_relay_id(c: sqlite3.Connection, conn_id: str, msg_id: int) -> bytes | None:
    """The relay's id of received message `msg_id` (what ACK names), if it is known."""
    sql = "SELECT relay_msg_id FROM rcv_messages WHERE conn_id = ? AND msg_id = ?"
    relay_msg_id: bytes | None = _first(c, sql, (conn_id, msg_id))
    return relay_msg_id


def rcv_message_status(c: sqlite3.Connection, conn_id: str, relay_msg_id: bytes) -> str | None:
    """The status of the message the relay calls `relay_msg_id`, if one was stored."""
    sql = "SELECT status FROM rcv_messages WHERE conn_id = ? AND relay_msg_id = ?"
    status: str | None = _first(c, sql, (conn_id, relay_msg_id))
    return status


def insert_rcv_message(
    c: sqlite3.Connection,
    conn_id: str,
    msg_id: int,
    sender_msg_id: int,
    relay_msg_id: bytes,
    body: bytes,
    integrity: str,
    *,
    kind: str = "msg",
    msg_hash: bytes | None = None,
) -> None:
    """Store a received message (status `received`) and make `msg_id` the connection's last."""
    c.execute(
        "INSERT INTO rcv_messages (conn_id, msg_id, sender_msg_id, relay_msg_id, "
        "body, integrity, status, received_at, kind, msg_hash) VALUES (?, ?, ?, ?, ?, ?, "
        "'received', ?, ?, ?)",
        (conn_id, msg_id, sender_msg_id, relay_msg_id, body, integrity, now(), kind, msg_hash),
    )
    c.execute(
        "UPDATE connections SET last_rcv_internal_id = ? WHERE conn_id = ?", (msg_id, conn_id)
    )


def mark_acked(c: sqlite3.Connection, conn_id: str, msg_id: int) -> None:
    """The client acknowledged the message: keep its ids, forget its body."""
    c.execute(
        "UPDATE rcv_messages SET status = 'acked', body = NULL WHERE conn_id = ? AND msg_id = ?",
        (conn_id, msg_id),
    )


# ---------------------------------------------------------------- delivery receipts


def receipt_owed(c: sqlite3.Connection, conn_id: str, msg_id: int) -> tuple[int, bytes] | None:
    """(sender msg id, hash) of received message `msg_id` if a receipt may be sent for it:
    a client message, not acked yet, with no receipt sent before. Marks it as sent."""
    r = c.execute(
        "SELECT sender_msg_id, msg_hash FROM rcv_messages WHERE conn_id = ? AND msg_id = ? "
        "AND kind = 'msg' AND status = 'received' AND receipt = 0 AND msg_hash IS NOT NULL",
        (conn_id, msg_id),
    ).fetchone()
    if r is None:
        return None
    c.execute(
        "UPDATE rcv_messages SET receipt = 1 WHERE conn_id = ? AND msg_id = ?", (conn_id, msg_id)
    )
    return int(r[0]), bytes(r[1])


def insert_snd_message(c: sqlite3.Connection, conn_id: str, msg_id: int, msg_hash: bytes) -> None:
    """The hash of a client message we sent, to check its receipt against."""
    c.execute(
        "INSERT OR REPLACE INTO snd_messages (conn_id, msg_id, msg_hash) VALUES (?, ?, ?)",
        (conn_id, msg_id, msg_hash),
    )


def snd_message_hash(c: sqlite3.Connection, conn_id: str, msg_id: int) -> bytes | None:
    sql = "SELECT msg_hash FROM snd_messages WHERE conn_id = ? AND msg_id = ?"
    value: bytes | None = _first(c, sql, (conn_id, msg_id))
    return value


def set_snd_receipt(c: sqlite3.Connection, conn_id: str, msg_id: int, status: str) -> None:
    c.execute(
        "UPDATE snd_messages SET receipt = ? WHERE conn_id = ? AND msg_id = ?",
        (status, conn_id, msg_id),
    )


# ---------------------------------------------------------------- ratchet re-synchronisation


def set_rsync(
    c: sqlite3.Connection,
    conn_id: str,
    state: str,
    private: bytes | None = None,
    ratchet: bytes | None = None,
) -> None:
    """The re-synchronisation state, our pending keys (None: forgotten), and (when given)
    the newly agreed ratchet."""
    if ratchet is None:
        c.execute(
            "UPDATE connections SET rsync_state = ?, rsync_private = ?, updated_at = ? "
            "WHERE conn_id = ?",
            (state, private, now(), conn_id),
        )
    else:
        c.execute(
            "UPDATE connections SET rsync_state = ?, rsync_private = ?, ratchet = ?, "
            "updated_at = ? WHERE conn_id = ?",
            (state, private, ratchet, now(), conn_id),
        )


def rsync_completed(c: sqlite3.Connection, conn_id: str) -> int:
    """One more re-synchronisation of the connection completed; returns how many did."""
    c.execute("UPDATE connections SET rsync_done = rsync_done + 1 WHERE conn_id = ?", (conn_id,))
    done: int = c.execute(
        "SELECT rsync_done FROM connections WHERE conn_id = ?", (conn_id,)
    ).fetchone()[0]
    return done


def next_raw_delivery_id(c: sqlite3.Connection, conn_id: str) -> int:
    """An id for a delivery outside the message sequence (a ratchet key message): below
    every other, so that it goes first."""
    low = _first(c, "SELECT MIN(msg_id) FROM deliveries WHERE conn_id = ?", (conn_id,))
    return min(0, low or 0) - 1


def drop_pending_deliveries(c: sqlite3.Connection, conn_id: str) -> list[int]:
    """Forget the deliveries not sent yet (encrypted under a ratchet that is gone);
    returns the ids of the client's among them."""
    ids = [
        r[0]
        for r in c.execute(
            "SELECT msg_id FROM deliveries WHERE conn_id = ? AND status = 'pending' "
            "AND internal = 0 ORDER BY msg_id",
            (conn_id,),
        )
    ]
    c.execute("DELETE FROM deliveries WHERE conn_id = ? AND status = 'pending'", (conn_id,))
    return ids


def restart_chains(c: sqlite3.Connection, conn_id: str, rcv_msg_id: int) -> None:
    """After a ratchet re-agreement: fresh hash chains both ways, and the peer's next
    message expected after `rcv_msg_id`."""
    c.execute(
        "UPDATE connections SET snd_prev_hash = x'', rcv_prev_hash = x'', rcv_msg_id = ? "
        "WHERE conn_id = ?",
        (rcv_msg_id, conn_id),
    )

"""The agent's SQLite schema and the row types read from it.

Every function here runs on the database thread inside the transaction of one
`Database.run` call; the agent composes them so that a step's effects, the end of its
command and the event it produces commit together.
"""

from __future__ import annotations

import sqlite3
import time

import msgspec

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


_args_encoder = msgspec.msgpack.Encoder()
_args_decoder = msgspec.msgpack.Decoder(CommandArgs)


def encode_args(args: CommandArgs) -> bytes:
    return _args_encoder.encode(args)


def decode_args(data: bytes) -> CommandArgs:
    return _args_decoder.decode(data)


def now() -> float:
    return time.time()


_CONN_COLS = (
    "conn_id, role, status, x3dh_private, invitation, ratchet, snd_msg_id, snd_prev_hash, "
    "rcv_msg_id, rcv_prev_hash, last_rcv_internal_id"
)
_RCV_COLS = (
    "conn_id, relay, recipient_id, sender_id, recipient_key, box_private, peer_box_public, "
    "peer_sender_key, status, last_relay_msg_id"
)
_SND_COLS = "conn_id, relay, sender_id, sender_key, box_private, peer_box_public, status"
_CMD_COLS = (
    "seq, corr_id, conn_id, kind, relay, args, internal, attempts, last_error, next_try, created_at"
)


def get_conn(c: sqlite3.Connection, conn_id: str) -> ConnRow | None:
    row = c.execute(f"SELECT {_CONN_COLS} FROM connections WHERE conn_id = ?", (conn_id,))
    r = row.fetchone()
    return ConnRow(*r) if r else None


def get_rcv_queue(c: sqlite3.Connection, conn_id: str) -> RcvQueueRow | None:
    r = c.execute(f"SELECT {_RCV_COLS} FROM rcv_queues WHERE conn_id = ?", (conn_id,)).fetchone()
    return RcvQueueRow(*r) if r else None


def get_snd_queue(c: sqlite3.Connection, conn_id: str) -> SndQueueRow | None:
    r = c.execute(f"SELECT {_SND_COLS} FROM snd_queues WHERE conn_id = ?", (conn_id,)).fetchone()
    return SndQueueRow(*r) if r else None


def all_rcv_queues(c: sqlite3.Connection) -> list[RcvQueueRow]:
    return [RcvQueueRow(*r) for r in c.execute(f"SELECT {_RCV_COLS} FROM rcv_queues")]


def find_rcv_queue(c: sqlite3.Connection, relay: str, recipient_id: bytes) -> RcvQueueRow | None:
    r = c.execute(
        f"SELECT {_RCV_COLS} FROM rcv_queues WHERE relay = ? AND recipient_id = ?",
        (relay, recipient_id),
    ).fetchone()
    return RcvQueueRow(*r) if r else None


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

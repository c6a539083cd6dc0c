"""Ratchet re-synchronisation: when a connection can no longer decrypt, the two agents
agree new keys through the same queues, ON THE DATABASE THREAD (like `receive`).

States (`connections.rsync_state`): ok, required (a message could not be decrypted),
started (our new X3DH keys sent in a `K` queue message, waiting for the answer), agreed
(new ratchet made, waiting for the peer's first message under it), then ok again; each
completed re-negotiation counts in `connections.rsync_done`.

1. A side calls `start` (the chat does on "required", or the user asks): fresh X3DH keys,
   kept in the row, sent as `RatchetKey(x3dh, reply=False, next_msg_id)` boxed with the
   send queue's box keys (which still work: only the ratchet broke).
2. The peer answers in `on_key`: its own keys (`reply=True`), then a HELLO under the new
   ratchet, which it makes at once as the ratchet's sending side (the joiner's role).
3. The starter, on the answer, makes the ratchet as the receiving side (the initiator's
   role); on the HELLO it is `ok` and answers with a HELLO, which makes the peer `ok`.

When both start at once, the one with the lower public keys waits for the other's
answer and ignores its start. Both sides drop the deliveries still encrypted under the
old ratchet (MERR for the client's) and continue the message ids where the peer says, with
a fresh hash chain, so no gap or duplicate is reported for the re-agreement itself. Each
step is one transaction; a repeated or stale `K` changes nothing.
"""

from __future__ import annotations

import logging
import sqlite3

from parley.agent import delivery, store
from parley.agent import events as ev
from parley.agent.model import READY, AgentError, EncryptionRenegotiating
from parley.agent.store import ConnRow, RcvQueueRow
from parley.crypto import (
    RatchetState,
    X3DHKeyPair,
    X3DHPublic,
    init_initiator,
    init_joiner,
    initiator_agree,
    joiner_agree,
    queue_box,
)
from parley.protocol import agent as ap

log = logging.getLogger(__name__)

OK = "ok"
REQUIRED = "required"
STARTED = "started"
AGREED = "agreed"


def start(c: sqlite3.Connection, conn_id: str, ttl: float, force: bool = False) -> list[ev.Event]:
    """Send new keys to the peer (idempotent: a sync under way is left alone unless
    `force`). Returns the events to emit."""
    conn = store.live_conn(c, conn_id)
    if conn.status != READY:
        raise AgentError(f"connection {conn_id} is {conn.status}, not ready")
    if conn.rsync_state in (STARTED, AGREED) and not force:
        return []
    own = X3DHKeyPair.generate()
    store.set_rsync(c, conn_id, STARTED, own.to_bytes())
    _send_key(c, conn, own, reply=False, ttl=ttl)
    return [ev.RSync(STARTED)]


def _send_key(
    c: sqlite3.Connection, conn: ConnRow, own: X3DHKeyPair, *, reply: bool, ttl: float
) -> None:
    key = ap.RatchetKey(own.public().to_bytes(), reply, conn.snd_msg_id + 1)
    delivery.enqueue_raw(c, conn.conn_id, ap.encode_ratchet_key(key), ttl=ttl)


def decrypt_failed(
    c: sqlite3.Connection, conn: ConnRow, reason: str, out_events: list[ev.Event]
) -> None:
    """A message could not be decrypted: re-synchronisation is required (once)."""
    if conn.rsync_state == OK:
        store.set_rsync(c, conn.conn_id, REQUIRED)
        out_events.append(ev.RSync(REQUIRED, reason))
        log.warning(
            "connection %s cannot decrypt (%s): ratchet sync required", conn.conn_id, reason
        )


def on_key(
    c: sqlite3.Connection,
    conn: ConnRow,
    rq: RcvQueueRow,
    qm: ap.QueueMessage,
    ttl: float,
    out_events: list[ev.Event],
) -> bool:
    """A `K` message. Returns True if delivery must be kicked."""
    if rq.peer_box_public is None or conn.status != READY:
        raise AgentError("ratchet key before the connection is ready")
    plain = queue_box(rq.box_private, rq.peer_box_public).decrypt(qm.box_ciphertext)
    key = ap.decode_ratchet_key(plain)
    peer = X3DHPublic.from_bytes(key.x3dh)
    if key.reply:
        if conn.rsync_state != STARTED or conn.rsync_private is None:
            log.info("stale ratchet key answer on %s ignored", conn.conn_id)
            return False
        own = X3DHKeyPair.from_bytes(conn.rsync_private)
        state = init_initiator(initiator_agree(own, peer), own)
        _agreed(c, conn, state, key.next_msg_id, out_events)
        return False
    own = X3DHKeyPair.generate()
    if conn.rsync_state == STARTED and conn.rsync_private is not None:
        own = X3DHKeyPair.from_bytes(conn.rsync_private)
        if own.public().to_bytes() < key.x3dh:
            log.info(
                "both sides started a ratchet sync on %s: waiting for the answer", conn.conn_id
            )
            return False
    state = init_joiner(joiner_agree(own, peer), peer)
    _agreed(c, conn, state, key.next_msg_id, out_events)
    fresh = store.get_conn(c, conn.conn_id)
    assert fresh is not None
    _send_key(c, fresh, own, reply=True, ttl=ttl)
    delivery.enqueue(c, fresh, ap.Hello(), internal=True, ttl=ttl)
    return True


def _agreed(
    c: sqlite3.Connection,
    conn: ConnRow,
    state: RatchetState,
    peer_next_msg_id: int,
    out_events: list[ev.Event],
) -> None:
    for msg_id in store.drop_pending_deliveries(c, conn.conn_id):
        out_events.append(ev.MErr(msg_id, "encryption was re-negotiated before it was sent"))
    store.set_rsync(c, conn.conn_id, AGREED, None, state.to_bytes())
    store.restart_chains(c, conn.conn_id, max(peer_next_msg_id - 1, 0))
    out_events.append(ev.RSync(AGREED))


def decrypted(c: sqlite3.Connection, conn: ConnRow, ttl: float, out_events: list[ev.Event]) -> bool:
    """A message decrypted under the ratchet: an agreed sync is complete. Returns True if
    delivery must be kicked (our HELLO in answer)."""
    if conn.rsync_state not in (AGREED, REQUIRED):
        return False
    store.set_rsync(c, conn.conn_id, OK)
    if conn.rsync_state == REQUIRED:  # it decrypts again after all
        out_events.append(ev.RSync(OK, "decrypting again without re-negotiation"))
        return False
    out_events.append(ev.RSync(OK, done=store.rsync_completed(c, conn.conn_id)))
    fresh = store.get_conn(c, conn.conn_id)
    assert fresh is not None
    delivery.enqueue(c, fresh, ap.Hello(), internal=True, ttl=ttl)
    return True


def check_can_send(conn: ConnRow) -> None:
    """Refuse a client message while our keys wait for the peer (it could not be read)."""
    if conn.rsync_state == STARTED:
        raise EncryptionRenegotiating("encryption is being re-negotiated: send again when done")
    agreed = conn.rsync_state == AGREED and conn.ratchet is not None
    if agreed and conn.ratchet is not None and not RatchetState.from_bytes(conn.ratchet).can_send:
        raise EncryptionRenegotiating("encryption is being re-negotiated: send again when done")

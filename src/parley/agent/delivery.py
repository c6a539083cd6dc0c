"""Delivery: messages stored encrypted, sent in order by one worker per connection.

`enqueue` runs on the database thread, inside the transaction that decides to send (a
client's `send_message`, a HELLO of the handshake). The worker of the connection sends the
stored envelopes one by one, retries temporary errors (and QUOTA, on a slower curve),
reports SENT or MERR, and marks the send queue active when a HELLO got through.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import sqlite3

from parley.agent import events as ev
from parley.agent import store
from parley.agent.book import CommandBook
from parley.agent.model import DELETED, READY, AgentConfig, AgentError
from parley.agent.relays import RelayPool
from parley.agent.store import ConnRow, DeliveryRow, SndQueueRow, now
from parley.crypto import RatchetState, queue_box, ratchet_encrypt
from parley.protocol import agent as ap
from parley.protocol.relay import ErrorCode
from parley.protocol.relay_auth import AuthKey
from parley.relay.errors import PermanentRelayError, TemporaryRelayError
from parley.retry import Backoff


def enqueue(
    c: sqlite3.Connection,
    conn: ConnRow,
    content: ap.Hello | ap.UserMessage | ap.Receipt,
    *,
    internal: bool,
    ttl: float,
) -> int:
    """Encrypt the next message of `conn` and store it for delivery (database thread)."""
    snd = store.get_snd_queue(c, conn.conn_id)
    if snd is None or conn.ratchet is None:
        raise AgentError(f"connection {conn.conn_id} has no send queue yet")
    msg_id = conn.snd_msg_id + 1
    encoded = ap.encode_agent_message(ap.Sequenced(msg_id, conn.snd_prev_hash, content))
    state, rmsg = ratchet_encrypt(RatchetState.from_bytes(conn.ratchet), encoded, ap.RATCHET_PAD)
    box = queue_box(snd.box_private, snd.peer_box_public)
    envelope = ap.encode_message(box.encrypt(rmsg, ap.BOX_PAD))
    t = now()
    msg_hash = ap.message_hash(encoded)
    store.advance_send_chain(c, conn.conn_id, state.to_bytes(), msg_id, msg_hash, t)
    if isinstance(content, ap.UserMessage):
        store.insert_snd_message(c, conn.conn_id, msg_id, msg_hash)
    store.insert_delivery(c, conn.conn_id, msg_id, internal, envelope, t, t + ttl)
    return msg_id


def enqueue_raw(c: sqlite3.Connection, conn_id: str, payload: bytes, *, ttl: float) -> None:
    """Store a ratchet key message (`K`: boxed, outside the ratchet) for delivery, ahead
    of the connection's other deliveries (database thread)."""
    snd = store.get_snd_queue(c, conn_id)
    if snd is None:
        raise AgentError(f"connection {conn_id} has no send queue")
    box = queue_box(snd.box_private, snd.peer_box_public)
    envelope = ap.encode_ratchet_key_message(box.encrypt(payload, ap.BOX_PAD))
    t = now()
    msg_id = store.next_raw_delivery_id(c, conn_id)
    store.insert_delivery(c, conn_id, msg_id, True, envelope, t, t + ttl)


class Delivery:
    """The delivery workers, one per connection with something to send."""

    def __init__(
        self, book: CommandBook, relays: RelayPool, config: AgentConfig, rng: random.Random
    ) -> None:
        self._book = book
        self._relays = relays
        self._config = config
        self._rng = rng
        self.tasks: dict[str, asyncio.Task[None]] = {}
        self._wake: dict[str, asyncio.Event] = {}
        self.closed = False

    def kick(self, conn_id: str) -> None:
        """Something is due on `conn_id`: wake its worker, or start one."""
        wake = self._wake.setdefault(conn_id, asyncio.Event())
        wake.set()
        task = self.tasks.get(conn_id)
        if task is None or task.done():
            self.tasks[conn_id] = asyncio.create_task(
                self._deliver(conn_id), name=f"agent-deliver-{conn_id}"
            )

    async def wait_delivered(self, conn_id: str, timeout: float) -> bool:
        task = self.tasks.get(conn_id)
        if task is None or task.done():
            return True
        done, _ = await asyncio.wait({task}, timeout=timeout)
        return bool(done)

    async def _deliver(self, conn_id: str) -> None:
        wake = self._wake.setdefault(conn_id, asyncio.Event())
        after: DeliveryRow | None = None  # delivered, to be marked with the next read
        while not self.closed:
            wake.clear()
            row, snd, conn = await self._next(conn_id, after)
            after = None
            if row is None or snd is None or conn is None or conn.status == DELETED:
                self.tasks.pop(conn_id, None)
                return
            t = now()
            if t >= row.expires_at:
                await self._failed(row, "not delivered within its time to live")
                continue
            if row.next_try > t:
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(min(row.next_try, row.expires_at) - t):
                        await wake.wait()
                continue
            try:
                await self._relays.client(snd.relay).send(
                    snd.sender_id, AuthKey.from_bytes(snd.sender_key), row.envelope
                )
            except TemporaryRelayError as e:
                await self._retry(row, str(e), self._config.retry)
                continue
            except PermanentRelayError as e:
                if e.code == ErrorCode.QUOTA:
                    await self._retry(row, str(e), self._config.quota_retry)
                elif e.code == ErrorCode.AUTH and row.internal:
                    # HELLO before the peer secured its queue: it will, so try again
                    await self._retry(row, str(e), self._config.retry)
                else:
                    await self._failed(row, str(e))
                continue
            after = row
        if after is not None:  # closing: marked now, or sent again after the restart
            with contextlib.suppress(Exception):
                await self._next(conn_id, after)

    async def _next(
        self, conn_id: str, delivered: DeliveryRow | None
    ) -> tuple[DeliveryRow | None, SndQueueRow | None, ConnRow | None]:
        """The connection's next delivery; first, in the same transaction, the one that
        has just been delivered is marked so (SENT, or CON after a HELLO, once committed)."""
        if delivered is None:
            return await self._book.db.run(lambda c: store.next_delivery(c, conn_id))

        def tx(
            c: sqlite3.Connection,
        ) -> tuple[bool, tuple[DeliveryRow | None, SndQueueRow | None, ConnRow | None]]:
            return _mark_delivered(c, delivered), store.next_delivery(c, conn_id)

        connected, following = await self._book.db.run(tx)
        if not delivered.internal:
            self._book.emit("", conn_id, ev.Sent(delivered.msg_id))
        if connected:
            self._book.emit("", conn_id, ev.Con())
        return following

    async def _retry(self, row: DeliveryRow, error: str, backoff: Backoff) -> None:
        attempts = row.attempts + 1
        next_try = now() + backoff.delay(attempts, self._rng)
        await self._book.db.run(
            lambda c: store.save_delivery_retry(c, row, attempts, error, next_try)
        )

    async def _failed(self, row: DeliveryRow, reason: str) -> None:
        await self._book.db.run(lambda c: store.mark_delivery_failed(c, row, reason))
        self._book.emit("", row.conn_id, ev.MErr(row.msg_id, reason))



def _mark_delivered(c: sqlite3.Connection, row: DeliveryRow) -> bool:
    """The relay has `row`; True if that made the connection ready (a HELLO got through
    and our receive queue is active too)."""
    store.mark_delivered(c, row)
    if not row.internal:
        return False
    store.set_snd_queue_status(c, row.conn_id, "active")
    conn, rq = store.get_conn(c, row.conn_id), store.get_rcv_queue(c, row.conn_id)
    if conn and rq and rq.status == "active" and conn.status not in (READY, DELETED):
        store.set_conn_status(c, row.conn_id, READY)
        return True
    return False

"""What the relay holds in memory: queues, message headers, a cache of bodies, counters.

Memory holds the queues and a small header per stored message (`Stored`); bodies are in
the store, with a bounded cache of them (`BodyCache`) in memory. `Queues` finds a queue by
either of its ids and keeps the counters of what is stored in step.
"""

from __future__ import annotations

import os
import time
from collections import OrderedDict, deque
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import msgspec

from parley.protocol import relay as p
from parley.relay.store import MessageHeader, QueueRecord

if TYPE_CHECKING:
    from parley.relay.session import Session


class Stored(msgspec.Struct, frozen=True, gc=False):
    """What memory keeps of a stored message: everything but its body."""

    msg_id: bytes
    ts: int
    flags: int
    size: int


class BodyCache:
    """Message bodies by message id, the oldest dropped beyond `limit` bytes.

    Oldest first, not least recently used: a body is read when its message is delivered,
    and delivered messages are acknowledged and gone soon after, so recency of use says
    little; bodies of messages that wait long are the ones to drop."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.bytes = 0
        self._bodies: OrderedDict[bytes, bytes] = OrderedDict()

    def __len__(self) -> int:
        return len(self._bodies)

    def __contains__(self, msg_id: bytes) -> bool:
        return msg_id in self._bodies

    def get(self, msg_id: bytes) -> bytes | None:
        return self._bodies.get(msg_id)

    def put(self, msg_id: bytes, body: bytes) -> None:
        bodies = self._bodies
        if msg_id in bodies or len(body) > self.limit:
            return
        bodies[msg_id] = body
        self.bytes += len(body)
        while self.bytes > self.limit:
            _, dropped = bodies.popitem(last=False)
            self.bytes -= len(dropped)

    def discard(self, msg_id: bytes) -> None:
        body = self._bodies.pop(msg_id, None)
        if body is not None:
            self.bytes -= len(body)


def now_ms() -> int:
    return int(time.time() * 1000)


class RandomIds:
    """Random message ids cut from a larger buffer: one urandom call per 1024 ids."""

    def __init__(self, size: int = p.QUEUE_ID_SIZE, batch: int = 1024) -> None:
        self._size = size
        self._batch = batch
        self._buf = b""
        self._pos = 0

    def next(self) -> bytes:
        if self._pos >= len(self._buf):
            self._buf = os.urandom(self._size * self._batch)
            self._pos = 0
        start = self._pos
        self._pos += self._size
        return self._buf[start : self._pos]


@dataclass(slots=True, eq=False)
class QueueState:
    recipient_id: bytes
    sender_id: bytes
    recipient_key: bytes
    sender_key: bytes | None
    status: str
    messages: deque[Stored] = field(default_factory=deque)
    uncommitted: int = 0  # SENDs accepted, not yet committed
    subscriber: Session | None = None
    delivered: bool = False  # the head message was sent to the subscriber, awaiting ACK
    securing: bytes | None = None  # a KEY whose commit is in flight
    deleting: bool = False  # a DEL whose commit is in flight
    fetching: bool = False  # bodies are being read from the store
    # GETs waiting for the head's body to be read from the store
    gets: list[tuple[Session, p.Transmission]] = field(default_factory=list)


@dataclass
class RelayStats:
    connections: int = 0
    connections_total: int = 0
    # refused: at `max_connections` (all reasons counted here) ...
    connections_rejected: int = 0
    # ... of them, by the limit per address
    connections_rejected_address: int = 0
    # connections the relay closed, by reason: idle, idle_unsubscribed, shed (to make room
    # at max_connections), auth_failures, slow_reader, bad_block
    connections_closed: dict[str, int] = field(default_factory=dict)
    accept_errors: int = 0  # accept() failures (EMFILE, ENFILE, ...)
    max_connections: int = 0  # the limit in force (lowered to fit the open-file limit)
    queues: int = 0
    messages_stored: int = 0
    bytes_stored: int = 0  # body bytes of the messages stored
    cache_bytes: int = 0  # body bytes held in memory (the cache)
    messages_sent: int = 0
    messages_delivered: int = 0
    errors: dict[str, int] = field(default_factory=dict)
    # answers by command and result: "SEND:OK", "NEW:AUTH", "INVALID:CMD SYNTAX", ...
    commands: dict[str, int] = field(default_factory=dict)
    # authenticators that did not verify, and NEW passwords that did not match
    auth_failures: int = 0
    # unsigned SENDs to a queue already secured: a confirmation sent again after its OK was
    # lost, once the recipient had secured the queue. Answered `ERR CMD NO_AUTH` as ever
    # (the sender's agent reads that as "it got there"), but not counted in `errors`.
    repeated_confirmations: int = 0
    commits: int = 0
    operations_committed: int = 0

    def count_closed(self, reason: str) -> None:
        closed = self.connections_closed
        closed[reason] = closed.get(reason, 0) + 1

    def copy(self) -> RelayStats:
        """A copy that later counting does not change."""
        return RelayStats(
            **{
                **self.__dict__,
                "errors": dict(self.errors),
                "commands": dict(self.commands),
                "connections_closed": dict(self.connections_closed),
            }
        )


class Queues:
    """The queues by recipient id and by sender id, with the counters of what is stored."""

    def __init__(self, stats: RelayStats, cache: BodyCache) -> None:
        self.stats = stats
        self.cache = cache
        self.by_recipient: dict[bytes, QueueState] = {}
        self.by_sender: dict[bytes, QueueState] = {}

    def __len__(self) -> int:
        return len(self.by_recipient)

    def load(self, queues: list[QueueRecord], messages: list[MessageHeader]) -> None:
        """Fill memory from what the store loaded at start."""
        for q in queues:
            self.add(
                QueueState(q.recipient_id, q.sender_id, q.recipient_key, q.sender_key, q.status)
            )
        for m in messages:
            qs = self.by_recipient.get(m.recipient_id)
            if qs is not None:
                qs.messages.append(Stored(m.msg_id, m.ts, m.flags, m.size))
                self.stats.messages_stored += 1
                self.stats.bytes_stored += m.size

    def add(self, q: QueueState) -> None:
        self.by_recipient[q.recipient_id] = q
        self.by_sender[q.sender_id] = q
        self.stats.queues = len(self.by_recipient)

    def is_current(self, q: QueueState) -> bool:
        """Whether `q` is still the queue under its recipient id (not deleted meanwhile)."""
        return self.by_recipient.get(q.recipient_id) is q

    def forget(self, q: QueueState) -> None:
        """Drop a deleted queue: its messages, its subscription, the GETs waiting on it."""
        self.by_recipient.pop(q.recipient_id, None)
        self.by_sender.pop(q.sender_id, None)
        self.stats.queues = len(self.by_recipient)
        self.stats.messages_stored -= len(q.messages)
        for m in q.messages:
            self.cache.discard(m.msg_id)
            self.stats.bytes_stored -= m.size
        q.messages.clear()
        if q.subscriber is not None:
            q.subscriber.subscriptions.discard(q.recipient_id)
            q.subscriber = None
        gets, q.gets = q.gets, []
        for s, t in gets:
            s.error("GET", t.corr_id, t.entity_id, p.ErrorCode.NO_QUEUE)

    def unsubscribe(self, s: Session) -> None:
        """A closed connection's subscriptions end; their heads are delivered again later."""
        for rid in s.subscriptions:
            q = self.by_recipient.get(rid)
            if q is not None and q.subscriber is s:
                q.subscriber = None
                q.delivered = False
        s.subscriptions.clear()

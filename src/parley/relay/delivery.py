"""Delivery: pushing each queue's head message to its subscriber, answering GETs, reading
bodies the cache does not hold from the store, expiring old messages."""

from __future__ import annotations

import asyncio
import itertools
import logging

from parley.protocol import relay as p
from parley.relay.session import Session
from parley.relay.state import BodyCache, Queues, QueueState, RelayStats
from parley.relay.store import QueueStore

log = logging.getLogger(__name__)

# bodies read from the store in one go when a queue's head is not in the cache
FETCH_AHEAD = 8


class Delivery:
    """Sends queue heads out. `store` is set while the relay runs; reads from it run in
    tasks kept in `tasks` (the relay's, which stop() cancels)."""

    def __init__(
        self,
        stats: RelayStats,
        queues: Queues,
        cache: BodyCache,
        tasks: set[asyncio.Task[None]],
    ) -> None:
        self.stats = stats
        self.queues = queues
        self.cache = cache
        self.tasks = tasks
        self.store: QueueStore | None = None

    def head_body(self, q: QueueState, fetched: dict[bytes, bytes] | None) -> bytes | None:
        msg_id = q.messages[0].msg_id
        body = self.cache.get(msg_id)
        if body is None and fetched is not None:
            body = fetched.get(msg_id)
        return body

    def deliver(self, q: QueueState, fetched: dict[bytes, bytes] | None = None) -> None:
        """Push the head message to the subscriber unless one is already awaiting ACK (its
        body is read from the store first if it is not in the cache)."""
        s = q.subscriber
        if s is None or q.delivered or not q.messages:
            return
        head = q.messages[0]
        body = self.cache._bodies.get(head.msg_id)
        if body is None and fetched is not None:
            body = fetched.get(head.msg_id)
        if body is None:
            self.fetch(q)
            return
        q.delivered = True
        self.stats.messages_delivered += 1
        s.send(b"", q.recipient_id, p.Msg(head.msg_id, head.ts, head.flags, body))

    def get(self, s: Session, t: p.Transmission, q: QueueState) -> None:
        """GET: the head message, answered now or once its body is read."""
        if not q.messages:
            s.error("GET", t.corr_id, t.entity_id, p.ErrorCode.NO_MSG)
            return
        q.gets.append((s, t))
        if q.fetching:  # answered when the read ends
            return
        if self.head_body(q, None) is not None:
            self.answer_gets(q, None)
        else:
            self.fetch(q)

    def fetch(self, q: QueueState) -> None:
        """Read the bodies at the head of the queue from the store (once at a time)."""
        if q.fetching or self.store is None:
            return
        q.fetching = True
        task = asyncio.get_running_loop().create_task(self.read_bodies(q))
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    async def read_bodies(self, q: QueueState) -> None:
        assert self.store is not None
        wanted = [
            m.msg_id
            for m in itertools.islice(q.messages, FETCH_AHEAD)
            if m.msg_id not in self.cache
        ]
        try:
            fetched = await self.store.read_bodies(q.recipient_id, wanted)
        except asyncio.CancelledError:
            q.fetching = False
            raise
        except Exception as e:
            q.fetching = False
            log.error("relay store read failed: %s", e)
            gets, q.gets = q.gets, []
            for s, t in gets:
                s.error("GET", t.corr_id, t.entity_id, p.ErrorCode.INTERNAL)
            return
        q.fetching = False
        if not self.queues.is_current(q):
            return
        for msg_id, body in fetched.items():
            self.cache.put(msg_id, body)
        # a message the store does not have (it cannot happen, but must not stall the queue)
        asked = set(wanted)
        while q.messages and q.messages[0].msg_id in asked and q.messages[0].msg_id not in fetched:
            lost = q.messages.popleft()
            log.error("relay store lost a message body; dropping the message")
            self.stats.messages_stored -= 1
            self.stats.bytes_stored -= lost.size
            q.delivered = False
        self.answer_gets(q, fetched)
        self.deliver(q, fetched)

    def answer_gets(self, q: QueueState, fetched: dict[bytes, bytes] | None) -> None:
        gets, q.gets = q.gets, []
        for i, (s, t) in enumerate(gets):
            if s.closed:
                continue
            if not q.messages:
                s.error("GET", t.corr_id, t.entity_id, p.ErrorCode.NO_MSG)
                continue
            body = self.head_body(q, fetched)
            if body is None:  # the head changed meanwhile: read again
                q.gets = gets[i:] + q.gets
                self.fetch(q)
                return
            head = q.messages[0]
            q.delivered = True
            s.answer(
                "GET:OK", t.corr_id, t.entity_id, p.Msg(head.msg_id, head.ts, head.flags, body)
            )

    def expire(self, cutoff: int) -> int:
        """Drop messages older than `cutoff` (ms) from memory; how many were dropped. (The
        caller deletes them from the store.)"""
        dropped = 0
        for q in self.queues.by_recipient.values():
            head_dropped = False
            while q.messages and q.messages[0].ts < cutoff:
                m = q.messages.popleft()
                self.cache.discard(m.msg_id)
                self.stats.bytes_stored -= m.size
                dropped += 1
                head_dropped = True
            if head_dropped:
                q.delivered = False
                self.deliver(q)
        self.stats.messages_stored -= dropped
        return dropped

"""Inbound: the receive queues the agent keeps subscribed, the relay events, the safety net.

The pump takes what the relay clients report (messages, UP, DOWN, END) in one task; each
message is processed in one transaction by `receive.receive` on the database thread, then
acknowledged to its relay in the background (a client's message once the client acknowledges
it: `send_ack_early`). The safety net (`subscriptions.SafetyNet`
decides when) checks queues at their relays with GET and renews their subscriptions.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections import defaultdict
from typing import NamedTuple

from parley.agent import events as ev
from parley.agent import receive, store
from parley.agent.book import CommandBook
from parley.agent.delivery import Delivery
from parley.agent.model import DELETED, READY, AgentConfig, PendingSubscription, RelayState
from parley.agent.relays import RelayPool
from parley.agent.store import RcvQueueRow, now
from parley.agent.subscriptions import Finding, SafetyNet
from parley.agent.tasks import Tasks
from parley.loops import failure_logged
from parley.protocol.relay import Msg as RelayMsg
from parley.protocol.relay_auth import AuthKey
from parley.relay.client import MessageReceived, RelayDown, RelayUp, SubscriptionEnded
from parley.relay.errors import RelayError

log = logging.getLogger(__name__)


class _Started(NamedTuple):
    """A received message whose transaction is queued on the database thread."""

    relay: str
    rid: bytes
    conn_id: str
    relay_msg_id: bytes
    outcome: asyncio.Future[receive.Received]


class _Unacked(NamedTuple):
    """The message a relay waits to have acknowledged before it delivers a queue's next."""

    msg_id: int  # the agent's id of it (what the client acknowledges)
    relay: str
    rid: bytes
    recipient_key: bytes
    relay_msg_id: bytes


class Inbound:
    def __init__(
        self,
        book: CommandBook,
        relays: RelayPool,
        delivery: Delivery,
        config: AgentConfig,
        rng: random.Random,
        tasks: Tasks,
    ) -> None:
        self._book = book
        self._relays = relays
        self._delivery = delivery
        self._config = config
        self._rng = rng
        self._tasks = tasks
        self.index: dict[tuple[str, bytes], str] = {}  # (relay, recipient id) -> conn id
        self.net = SafetyNet(config.net)
        self.taken_over: set[tuple[str, bytes]] = set()  # END: another client subscribed
        # received messages whose transactions are queued, in arrival order (bounded)
        self._received: asyncio.Queue[_Started] = asyncio.Queue(maxsize=256)
        self._unacked: dict[str, _Unacked] = {}  # by conn id: at most one per receive queue
        self._acks_sent: dict[tuple[str, int], asyncio.Task[None]] = {}  # (conn id, msg id)

    # ------------------------------------------------------------ the queues

    def watch(self, rq: RcvQueueRow) -> None:
        """Index a receive queue and keep it subscribed (also across reconnects)."""
        self.index[(rq.relay, rq.recipient_id)] = rq.conn_id
        self._relays.subscribe(rq.relay, rq.recipient_id, AuthKey.from_bytes(rq.recipient_key))

    def unwatch(self, relay: str, rid: bytes) -> None:
        conn_id = self.index.pop((relay, rid), None)
        if conn_id is not None:
            self._unacked.pop(conn_id, None)
            for key in [k for k in self._acks_sent if k[0] == conn_id]:
                del self._acks_sent[key]
        self.taken_over.discard((relay, rid))
        self.net.forget((relay, rid))
        self._relays.client(relay).unsubscribe(rid)

    # ------------------------------------------------------------ relay events

    async def pump(self) -> None:
        await asyncio.gather(self._read_relay_events(), self._finish_received())

    async def _read_relay_events(self) -> None:
        while True:
            event = await self._relays.events.get()
            with failure_logged(log, "handling relay event %r failed", event):
                match event:
                    case MessageReceived(relay, rid, msg):
                        # its transaction is queued now; the next message need not wait
                        # for the commit (they share one), `_finish_received` takes it up
                        started = await self._start_message(str(relay), rid, msg)
                        if started is not None:
                            await self._received.put(started)
                    case RelayUp(relay):
                        await self._on_relay_up(str(relay))
                    case RelayDown(relay, _):
                        conns = await self._conns_on(str(relay))
                        self._book.emit("", "", ev.Down(str(relay), conns))
                    case SubscriptionEnded(relay, rid, error):
                        # the safety net subscribes the queue again at its next pass
                        conn_id = self.index.get((str(relay), rid))
                        if conn_id is not None:
                            if error is None:
                                self.taken_over.add((str(relay), rid))
                            log.warning(
                                "subscription of %s on %s ended: %s",
                                conn_id,
                                relay,
                                error or "another client subscribed",
                            )
                            self._book.emit("", conn_id, ev.End())

    async def _finish_received(self) -> None:
        """Finish the received messages in the order they arrived, once committed."""
        while True:
            started = await self._received.get()
            try:
                await self._finish_message(started)
            except asyncio.CancelledError:
                raise
            except Exception:
                # the relay waits for an ACK that will not come: let the safety net check
                # the queue at its next pass
                self.net.suspect((started.relay, started.rid), time.monotonic())
                log.exception("receiving a message on %s failed", started.relay)

    async def _conns_on(self, relay: str) -> list[str]:
        return await self._book.db.run(lambda c: store.conns_on_relay(c, relay))

    async def _on_relay_up(self, relay: str) -> None:
        t = now()
        self._book.hurry(relay, t)
        conns = await self._conns_on(relay)
        # deliveries to this relay waiting for their retry timer go now
        for conn_id in await self._book.db.run(lambda c: store.hurry_deliveries_to(c, relay, t)):
            self._delivery.kick(conn_id)
        self._book.emit("", "", ev.Up(relay, conns))

    async def on_message(self, relay: str, rid: bytes, msg: RelayMsg) -> bool:
        """Process one message from a relay; True if the agent had not received it before."""
        started = await self._start_message(relay, rid, msg)
        return started is not None and await self._finish_message(started)

    async def _start_message(self, relay: str, rid: bytes, msg: RelayMsg) -> _Started | None:
        """Queue the transaction that receives `msg` (None: not for one of our queues)."""
        key = (relay, rid)
        conn_id = self.index.get(key)
        if conn_id is None:
            rq = await self._book.db.run(lambda c: store.find_rcv_queue(c, relay, rid))
            if rq is None:
                # not ours (any more): stop renewing it; the relay keeps the message
                log.warning("message for an unknown queue on %s: unsubscribed", relay)
                self._relays.client(relay).unsubscribe(rid)
                return None
            self.watch(rq)
            conn_id = rq.conn_id
        self.taken_over.discard(key)
        self.net.received(key, time.monotonic())
        ttl = self._config.message_ttl
        cid = conn_id
        outcome = self._book.db.schedule(lambda c: receive.receive(c, cid, msg, ttl))
        return _Started(relay, rid, conn_id, msg.msg_id, outcome)

    async def _finish_message(self, started: _Started) -> bool:
        """Once the message's transaction has committed: its events, commands and ACK."""
        outcome = await started.outcome
        relay, conn_id = started.relay, started.conn_id
        rq = outcome.queue
        if outcome.new and not outcome.ack and rq is not None:
            for e in outcome.events:
                if isinstance(e, ev.Msg | ev.Rcvd):
                    self._unacked[conn_id] = _Unacked(
                        e.msg_id, relay, rq.recipient_id, rq.recipient_key, started.relay_msg_id
                    )
        for e in outcome.events:
            self._book.emit("", conn_id, e)
        for cmd in outcome.commands:
            self._book.register(cmd)
        if outcome.kick_delivery:
            self._delivery.kick(conn_id)
        if outcome.ack:
            assert rq is not None
            # in the background: a slow relay must not hold up messages from the others
            self._tasks.spawn(self._ack_relay(relay, rq, started.relay_msg_id))
        return outcome.new

    def send_ack_early(self, conn_id: str, msg_id: int) -> asyncio.Task[None] | None:
        """The client acknowledges message `msg_id`: if its relay waits for that, send the
        ACK now, while the acknowledgement commits, not after (the queue's next message
        comes a commit sooner). An ACK whose acknowledgement is lost in a crash does no harm:
        the message is stored, shown again after the restart and acknowledged again (NO_MSG)."""
        unacked = self._unacked.get(conn_id)
        if unacked is None or unacked.msg_id != msg_id:
            return None
        del self._unacked[conn_id]
        key = AuthKey.from_bytes(unacked.recipient_key)
        return self._tasks.spawn(
            self._relays.client(unacked.relay).ack(unacked.rid, key, unacked.relay_msg_id)
        )

    def leave_for_step(self, conn_id: str, msg_id: int, sent: asyncio.Task[None]) -> None:
        """The ACK command of `msg_id` takes the ACK sent early (`ack_sent`), not a new one."""
        self._acks_sent[(conn_id, msg_id)] = sent

    def ack_sent(self, conn_id: str, msg_id: int) -> asyncio.Task[None] | None:
        """The ACK left for the step of `msg_id` (taken: asked once)."""
        return self._acks_sent.pop((conn_id, msg_id), None)

    async def _ack_relay(self, relay: str, rq: RcvQueueRow, relay_msg_id: bytes) -> None:
        try:
            await self._relays.client(relay).ack(
                rq.recipient_id, AuthKey.from_bytes(rq.recipient_key), relay_msg_id
            )
        except RelayError as e:  # the relay delivers it again; we dedupe and ack again
            log.info("ack to %s failed: %s", relay, e)

    # ------------------------------------------------------------ safety net

    async def net_loop(self) -> None:
        while True:
            await asyncio.sleep(self._config.net.interval * self._rng.uniform(0.75, 1.25))
            with failure_logged(log, "checking subscriptions failed"):
                await self.check_subscriptions()

    async def check_subscriptions(self, everything: bool = False) -> int:
        """One pass of the safety net (see `Agent.check_subscriptions`)."""
        found_before = self.net.found
        t = time.monotonic()
        due: list[tuple[RcvQueueRow, AuthKey]] = []
        for rq, conn_status in await self._book.db.run(store.rcv_queues_with_status):
            if conn_status == DELETED:
                continue
            key = AuthKey.from_bytes(rq.recipient_key)
            client = self._relays.client(rq.relay)
            client.keep_subscribed(rq.recipient_id, key)  # after END or a refusal: again
            self.index.setdefault((rq.relay, rq.recipient_id), rq.conn_id)
            if not client.connected:
                continue  # the reconnect renews every subscription
            expecting = conn_status != READY or rq.status != "active"
            if everything or self.net.due((rq.relay, rq.recipient_id), expecting, t):
                due.append((rq, key))
        for i in range(0, len(due), 32):  # a bounded number of checks in flight
            await asyncio.gather(*(self._check_queue(rq, key) for rq, key in due[i : i + 32]))
        self.net.pass_done(now())
        return self.net.found - found_before

    async def _check_queue(self, rq: RcvQueueRow, key: AuthKey) -> None:
        qk = (rq.relay, rq.recipient_id)
        client = self._relays.client(rq.relay)
        seen = self.net.seen(qk)
        try:
            msg = await client.get(rq.recipient_id, key)
            held = client.is_subscribed(rq.recipient_id)
            await client.renew(rq.recipient_id, key)
            self.taken_over.discard(qk)
            finding = None
            # a message pushed meanwhile was received normally: the GET's copy is then old
            fresh = msg is not None and self.net.seen(qk) == seen
            if fresh and msg is not None and await self.on_message(rq.relay, rq.recipient_id, msg):
                finding = Finding(rq.conn_id, rq.relay, now())
                log.warning(
                    "safety net: a message waited on %s for connection %s", rq.relay, rq.conn_id
                )
            self.net.checked(qk, time.monotonic(), renewed=not held, found=finding)
        except RelayError as e:
            self.net.failed(qk, time.monotonic(), str(e))

    # ------------------------------------------------------------ status

    def subscription_report(self) -> tuple[list[PendingSubscription], list[RelayState]]:
        subs: list[PendingSubscription] = []
        per_relay: dict[str, list[bytes]] = defaultdict(list)
        for (relay, rid), conn_id in sorted(self.index.items()):
            per_relay[relay].append(rid)
            client = self._relays.client(relay)
            if client.is_subscribed(rid):
                continue
            error = client.subscription_error(rid)
            if not client.connected:
                state = "relay down"
            elif (relay, rid) in self.taken_over:
                state = "taken over"
            elif rid not in client.wanted:
                state = "refused"
            else:
                state = "subscribing"
            subs.append(PendingSubscription(conn_id, relay, state, str(error) if error else None))
        relays = [
            RelayState(
                str(c.address),
                c.connected,
                len(per_relay.get(str(c.address), [])),
                len(c.subscriptions),
                c.reconnects,
            )
            for c in self._relays.clients()
        ]
        return subs, relays

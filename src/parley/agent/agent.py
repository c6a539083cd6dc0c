"""The agent: duplex encrypted connections made of relay queues, run as durable commands.

Every network step is a row in the `commands` table, written before the call returns and
executed by a scheduler that retries temporary failures forever (with backoff and jitter)
and ends permanent ones with ERR. Completion events are stored on the command row and
replayed after a restart until the client acknowledges them with `ack_command_event`.
Messages are stored encrypted on `send_message` and delivered by one worker per
connection, in order, with the same retry policy.

This module is the front: the life cycle and the public calls. The rooms behind it:
`book` (commands in flight, completion, waiters), `scheduler` (workers per relay, retries),
`steps` (what NEW, JOIN, ALLOW, SECURE, ACK and DEL do), `inbound` (relay events, the
subscriptions and their safety net), `receive` (one received message, on the database
thread), `delivery` (sending in order), `store` (every SQL statement), `model` (the
types and errors re-exported here).
"""

from __future__ import annotations

import asyncio
import functools
import logging
import random
import sqlite3
from collections.abc import AsyncIterator, Callable

from parley.agent import delivery, ratchet_sync, receive, steps, store
from parley.agent import events as ev
from parley.agent.book import CommandBook
from parley.agent.delivery import Delivery
from parley.agent.inbound import Inbound
from parley.agent.model import (
    ACCEPTED,
    CHOOSE_RELAY,
    CONFIRMATION,
    DELETED,
    INVITED,
    JOINED,
    NEW,
    READY,
    ROLE_CONTACT,
    AgentConfig,
    AgentError,
    ConnectionStatus,
    DuplicateCommand,
    PendingCommand,
    PendingDelivery,
    PendingReport,
    PendingSubscription,
    RelayState,
    check_size,
    new_id,
)
from parley.agent.relays import RelayPool
from parley.agent.scheduler import Scheduler
from parley.agent.store import MIGRATIONS, CommandArgs, CommandRow, RcvQueueRow
from parley.agent.tasks import Tasks
from parley.crypto import X3DHKeyPair, generate_box_keypair
from parley.protocol import agent as ap
from parley.protocol.address import RelayAddress
from parley.protocol.relay_auth import AuthKey
from parley.store import Database, DatabaseClosed

log = logging.getLogger(__name__)

__all__ = [
    "ACCEPTED",
    "CHOOSE_RELAY",
    "CONFIRMATION",
    "DELETED",
    "INVITED",
    "JOINED",
    "NEW",
    "READY",
    "ROLE_CONTACT",
    "Agent",
    "AgentConfig",
    "AgentError",
    "ConnectionStatus",
    "DuplicateCommand",
    "PendingCommand",
    "PendingDelivery",
    "PendingReport",
    "PendingSubscription",
    "RelayState",
]


def join_args(info: bytes, contact_link: str = "") -> CommandArgs:
    """A JOIN's arguments: fresh keys for the queue it makes and the one it sends to."""
    return CommandArgs(
        recipient_key=AuthKey.generate().to_bytes(),
        box_private=generate_box_keypair().private,
        sender_key=AuthKey.generate().to_bytes(),
        snd_box_private=generate_box_keypair().private,
        info=info,
        contact_link=contact_link,
    )


class Agent:
    """`agent = await Agent.open(config)`; then the API below; `await agent.close()`."""

    def __init__(self, config: AgentConfig, db: Database) -> None:
        # addresses are compared as strings everywhere: keep one spelling of each
        parsed = [RelayAddress.parse(r) for r in config.relays]
        config.relays = [str(a) for a in parsed]
        passwords = {str(a): a.password for a in parsed if a.password}
        self.config = config
        self._db = db
        self._rng = random.Random(config.seed)
        self._relays = RelayPool(config.client, passwords)
        self._tasks = Tasks()
        self._book = CommandBook(db)
        self._delivery = Delivery(self._book, self._relays, config, self._rng)
        self._inbound = Inbound(
            self._book, self._relays, self._delivery, config, self._rng, self._tasks
        )
        env = steps.StepEnv(self._book, self._relays, config, self._inbound, self._delivery)
        self._scheduler = Scheduler(
            self._book, config, self._rng, self._tasks, functools.partial(steps.run_step, env)
        )
        self._closed = False

    # ------------------------------------------------------------ life cycle

    @classmethod
    async def open(cls, config: AgentConfig) -> Agent:
        if not config.relays:
            raise AgentError("configure at least one relay")
        db = await Database.open(config.database, MIGRATIONS, config.database_key)
        agent = cls(config, db)
        await agent._start()
        return agent

    async def _start(self) -> None:
        retention = self.config.failed_retention
        relays = self.config.relays

        def load(
            c: sqlite3.Connection,
        ) -> tuple[list[CommandRow], list[ev.AgentEvent], list[RcvQueueRow], list[str]]:
            store.add_relays(c, relays)
            replay: list[ev.AgentEvent] = []
            for corr, conn, data in store.unacknowledged_events(c):
                replay.append(ev.AgentEvent(corr, conn, ev.decode_event(data)))
            for conf_id, conn, info in store.pending_confirmations(c):
                replay.append(ev.AgentEvent("", conn, ev.Conf(conf_id, info)))
            for inv_id, conn, info in store.pending_contact_requests(c):
                replay.append(ev.AgentEvent("", conn, ev.Req(inv_id, info)))
            for conn, mid, smid, body, integrity, kind in store.unacknowledged_messages(c):
                if kind == "rcvd":
                    replay.append(ev.AgentEvent("", conn, receive.rcvd_event(mid, body)))
                else:
                    replay.append(ev.AgentEvent("", conn, ev.Msg(mid, smid, body, integrity)))
            # a failure is reported again after a restart (the first report may have been
            # lost with the process); old ones are forgotten
            store.forget_failed_deliveries(c, store.now() - retention)
            for conn, mid, reason in store.failed_deliveries(c):
                replay.append(ev.AgentEvent("", conn, ev.MErr(mid, reason or "failed")))
            pending_deliveries = store.conns_with_pending_deliveries(c)
            return store.pending_commands(c), replay, store.all_rcv_queues(c), pending_deliveries

        commands, replay, queues, deliveries = await self._db.run(load)
        for cmd in commands:
            if cmd.args.once:  # a synchronous call whose caller is gone
                await self._db.run(functools.partial(store.delete_command, corr_id=cmd.corr_id))
                continue
            self._book.commands[cmd.corr_id] = cmd
        for e in replay:
            self._book.events.put_nowait(e)
        self._tasks.start(self._scheduler.run(), "agent-commands")
        self._tasks.start(self._inbound.pump(), "agent-relay-events")
        self._tasks.start(self._inbound.net_loop(), "agent-safety-net")
        for q in queues:
            self._inbound.watch(q)
        for conn_id in deliveries:
            self._delivery.kick(conn_id)

    async def close(self) -> None:
        """Stop workers and close relay connections; pending work resumes on the next open."""
        if self._closed:
            return
        self._closed = self._delivery.closed = True
        tasks = [*self._tasks.all(), *self._delivery.tasks.values()]
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._book.close()
        await self._relays.close()
        await self._db.close()

    async def __aenter__(self) -> Agent:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    # ------------------------------------------------------------ events

    async def next_event(self, timeout: float | None = None) -> ev.AgentEvent:
        async with asyncio.timeout(timeout):
            return await self._book.events.get()

    async def events(self) -> AsyncIterator[ev.AgentEvent]:
        while True:
            yield await self._book.events.get()

    # ------------------------------------------------------------ asynchronous commands

    async def create_connection_async(self, corr_id: str, contact: bool = False) -> str:
        """Start making a connection with an invitation link; INV(link) arrives later.

        With `contact`, a contact address: a link many can join, each join reported as
        REQ (answer with `accept_contact_async` or `reject_contact`)."""
        conn_id = new_id()
        x3dh = X3DHKeyPair.generate()
        box = generate_box_keypair()
        args = CommandArgs(recipient_key=AuthKey.generate().to_bytes(), box_private=box.private)
        role = ROLE_CONTACT if contact else "initiator"

        def tx(c: sqlite3.Connection) -> CommandRow:
            store.insert_conn(c, conn_id, role, x3dh.to_bytes(), None)
            return store.insert_command(c, corr_id, conn_id, "NEW", None, args)

        await self._book.add(corr_id, tx)
        return conn_id

    async def join_connection_async(self, corr_id: str, link: str, info: bytes) -> str:
        """Start joining through a link; OK arrives once the joiner confirmed.

        Through a contact address, the joiner makes its own invitation and sends it with
        `info` to the address (OK once sent); the owner's agent reports it as REQ, and
        if the owner accepts, CONF arrives on this connection as for an invitation."""
        try:
            target = ap.check_link(link)
        except ap.EnvelopeError as e:
            raise AgentError(str(e)) from e
        check_size(info, ap.MAX_INFO_SIZE)
        conn_id = new_id()
        x3dh = X3DHKeyPair.generate()
        contact = isinstance(target, ap.ContactAddress)
        args = join_args(info, link.strip() if contact else "")

        def tx(c: sqlite3.Connection) -> CommandRow:
            if contact:  # we make the invitation the address's owner joins
                store.insert_conn(c, conn_id, "initiator", x3dh.to_bytes(), None)
            else:
                store.insert_conn(c, conn_id, "joiner", x3dh.to_bytes(), link.strip())
            return store.insert_command(c, corr_id, conn_id, "JOIN", None, args)

        await self._book.add(corr_id, tx)
        return conn_id

    async def accept_contact_async(self, corr_id: str, inv_id: str, info: bytes) -> str:
        """Accept the contact request `inv_id` (REQ): join the requester's invitation with
        `info`; returns the new connection's id; OK follows as for `join_connection_async`,
        then INFO and CON."""
        check_size(info, ap.MAX_INFO_SIZE)
        conn_id = new_id()
        x3dh = X3DHKeyPair.generate()
        args = join_args(info)

        def tx(c: sqlite3.Connection) -> CommandRow:
            req = store.contact_request(c, inv_id)
            if req is None:
                raise AgentError(f"no contact request {inv_id}")
            address, invitation, status = req
            if status != "pending":
                raise AgentError(f"contact request {inv_id} is {status} already")
            store.live_conn(c, address)
            store.insert_conn(c, conn_id, "joiner", x3dh.to_bytes(), invitation)
            store.set_contact_request(c, inv_id, "accepted", conn_id)
            return store.insert_command(c, corr_id, conn_id, "JOIN", None, args)

        await self._book.add(corr_id, tx)
        return conn_id

    async def reject_contact(self, inv_id: str) -> None:
        """Reject the contact request `inv_id`: it is forgotten (the requester hears
        nothing; a repeat of the same request stays rejected)."""

        def tx(c: sqlite3.Connection) -> None:
            req = store.contact_request(c, inv_id)
            if req is None:
                raise AgentError(f"no contact request {inv_id}")
            if req[2] == "accepted":
                raise AgentError(f"contact request {inv_id} is accepted already")
            store.set_contact_request(c, inv_id, "rejected")

        await self._db.run(tx)

    async def allow_connection_async(
        self, corr_id: str, conn_id: str, conf_id: str, info: bytes
    ) -> None:
        """Accept the joiner's confirmation `conf_id`; OK arrives once ours is sent."""
        check_size(info, ap.MAX_INFO_SIZE)

        def tx(c: sqlite3.Connection) -> CommandRow:
            conn = store.live_conn(c, conn_id)
            if not store.has_confirmation(c, conf_id, conn_id):
                raise AgentError(f"no confirmation {conf_id} on connection {conn_id}")
            if conn.status != CONFIRMATION or store.has_pending_command(c, conn_id, "ALLOW"):
                raise AgentError(f"connection {conn_id} is {conn.status}: nothing to allow")
            rq = store.get_rcv_queue(c, conn_id)
            assert rq is not None
            args = CommandArgs(
                sender_key=AuthKey.generate().to_bytes(),
                snd_box_private=generate_box_keypair().private,
                info=info,
                conf_id=conf_id,
            )
            return store.insert_command(c, corr_id, conn_id, "ALLOW", rq.relay, args)

        await self._book.add(corr_id, tx)

    async def ack_message_async(
        self,
        corr_id: str,
        conn_id: str,
        msg_id: int,
        receipt: bool = False,
        event: bool = True,
    ) -> None:
        """Acknowledge a received message (or receipt): the relay may then deliver the
        next one. With `receipt`, the client stored the message: a delivery receipt goes
        back to the sender in the same transaction (once per message; never for one
        acknowledged before), and the sender gets RCVD.

        With `event=False` the client gets no OK to acknowledge back: the ACK goes to the
        relay at once, the call returns once the message is marked (one transaction), and
        only an ACK that could not be sent becomes a command afterwards (internal, retried,
        seen in `pending`). Should that command be lost (the agent closed or crashed
        first), the relay pushes the message again at the next subscription, and it is
        acknowledged at once as one the client acknowledged."""
        ttl = self.config.message_ttl
        kick = False

        def client_ack(c: sqlite3.Connection) -> str:
            """The checks and the receipt owed; the queue's relay."""
            nonlocal kick
            conn = store.live_conn(c, conn_id)
            if not store.has_rcv_message(c, conn_id, msg_id):
                raise AgentError(f"no message {msg_id} on connection {conn_id}")
            rq = store.get_rcv_queue(c, conn_id)
            assert rq is not None
            owed = store.receipt_owed(c, conn_id, msg_id) if receipt else None
            if owed is not None and conn.status == READY:
                delivery.enqueue(c, conn, ap.Receipt(*owed), internal=True, ttl=ttl)
                kick = True
            return rq.relay

        def command(c: sqlite3.Connection) -> CommandRow:
            args = CommandArgs(msg_id=msg_id)
            relay = client_ack(c)
            return store.insert_command(c, corr_id, conn_id, "ACK", relay, args, internal=not event)

        def marked(c: sqlite3.Connection) -> None:
            client_ack(c)
            store.mark_acked(c, conn_id, msg_id)

        sent = self._inbound.send_ack_early(conn_id, msg_id)
        if sent is not None and not event:
            await self._db.run(marked)
            sent.add_done_callback(functools.partial(self._unless_acked, corr_id, command))
        else:
            if sent is not None:
                self._inbound.leave_for_step(conn_id, msg_id, sent)
            try:
                await self._book.add(corr_id, command)
            except BaseException:
                self._inbound.ack_sent(conn_id, msg_id)  # no command took it: forget it
                raise
        if kick:
            self._delivery.kick(conn_id)

    def _unless_acked(
        self,
        corr_id: str,
        command: Callable[[sqlite3.Connection], CommandRow],
        sent: asyncio.Task[None],
    ) -> None:
        """An ACK sent at an `event=False` acknowledgement ended: if it did not reach the
        relay, a command sends it (unless the agent is closing)."""
        if self._closed or steps.acknowledged(sent):
            return
        self._tasks.spawn(self._add_logged(corr_id, command))

    async def _add_logged(
        self, corr_id: str, command: Callable[[sqlite3.Connection], CommandRow]
    ) -> None:
        try:
            await self._book.add(corr_id, command)
        except (AgentError, DatabaseClosed) as e:  # e.g. the connection was deleted since
            log.info("ACK %s not retried: %s", corr_id, e)

    async def delete_connection_async(self, corr_id: str, conn_id: str) -> None:
        """Delete the connection and its queue; pending commands for it end with ERR."""
        book = self._book

        def tx(c: sqlite3.Connection) -> tuple[CommandRow, list[tuple[str, bool]]]:
            store.check_new_corr_id(c, corr_id)
            store.live_conn(c, conn_id)
            cancelled = [
                (corr, internal)
                for corr, internal in store.pending_commands_of(c, conn_id)
                if corr not in book.running
            ]
            err = ev.Err("connection deleted", "DELETED")
            for corr, internal in cancelled:
                store.finish_command(c, corr, err, internal)
            store.set_conn_status(c, conn_id, DELETED)
            store.delete_deliveries(c, conn_id)
            rq = store.get_rcv_queue(c, conn_id)
            relay = rq.relay if rq else None
            cmd = store.insert_command(c, corr_id, conn_id, "DEL", relay, CommandArgs())
            return cmd, cancelled

        def registered(result: tuple[CommandRow, list[tuple[str, bool]]]) -> None:
            cmd, cancelled = result
            for corr, internal in cancelled:
                book.commands.pop(corr, None)
                book.completed(corr, conn_id, ev.Err("connection deleted", "DELETED"), internal)
            book.register(cmd)

        await book.commit_then(tx, registered)

    async def ack_command_event(self, corr_id: str) -> None:
        """The client has durably handled the completion event of `corr_id`: forget it."""
        await self._db.run(lambda c: store.delete_command(c, corr_id, done_only=True))

    # ------------------------------------------------------------ synchronous forms

    async def create_connection(self) -> tuple[str, str]:
        """Make a connection now (one attempt): returns (conn_id, invitation link)."""
        corr = "sync:" + new_id()
        conn_id = await self.create_connection_async(corr)
        result = await self._book.wait_once(corr)
        assert isinstance(result, ev.Inv)
        return conn_id, result.link

    async def join_connection(self, link: str, info: bytes) -> str:
        corr = "sync:" + new_id()
        conn_id = await self.join_connection_async(corr, link, info)
        await self._book.wait_once(corr)
        return conn_id

    async def allow_connection(self, conn_id: str, conf_id: str, info: bytes) -> None:
        corr = "sync:" + new_id()
        await self.allow_connection_async(corr, conn_id, conf_id, info)
        await self._book.wait_once(corr)

    async def ack_message(self, conn_id: str, msg_id: int, receipt: bool = False) -> None:
        corr = "sync:" + new_id()
        await self.ack_message_async(corr, conn_id, msg_id, receipt)
        await self._book.wait_once(corr)

    async def delete_connection(self, conn_id: str) -> None:
        corr = "sync:" + new_id()
        await self.delete_connection_async(corr, conn_id)
        await self._book.wait_once(corr)

    # ------------------------------------------------------------ messages

    async def send_message(self, conn_id: str, body: bytes) -> int:
        """Store `body` for delivery and return its message id; SENT or MERR follows."""
        check_size(body)
        ttl = self.config.message_ttl

        def tx(c: sqlite3.Connection) -> int:
            conn = store.live_conn(c, conn_id)
            if conn.status != READY:
                raise AgentError(f"connection {conn_id} is {conn.status}, not ready")
            ratchet_sync.check_can_send(conn)
            return delivery.enqueue(c, conn, ap.UserMessage(body), internal=False, ttl=ttl)

        return await self._book.commit_then(tx, lambda _: self._delivery.kick(conn_id))

    async def synchronize_ratchet(self, conn_id: str, force: bool = False) -> str:
        """Re-agree the connection's keys with the peer (after RSYNC "required"): our new
        keys go out through the same queues; RSYNC "agreed", then "ok", follow. A sync
        under way is left alone unless `force`. Returns the state."""
        ttl = self.config.message_ttl

        def tx(c: sqlite3.Connection) -> tuple[list[ev.Event], str]:
            events = ratchet_sync.start(c, conn_id, ttl, force)
            conn = store.get_conn(c, conn_id)
            assert conn is not None
            return events, conn.rsync_state

        def then(result: tuple[list[ev.Event], str]) -> None:
            for e in result[0]:
                self._book.emit("", conn_id, e)
            self._delivery.kick(conn_id)

        _, state = await self._book.commit_then(tx, then)
        return state

    async def ratchet_state(self, conn_id: str) -> str | None:
        """The connection's re-synchronisation state (ok, required, started, agreed)."""
        conn = await self._db.run(lambda c: store.get_conn(c, conn_id))
        return conn.rsync_state if conn else None

    async def wait_delivered(self, conn_id: str, timeout: float) -> bool:
        """Wait until nothing is pending for delivery on `conn_id`; False on timeout."""
        return await self._delivery.wait_delivered(conn_id, timeout)

    # ------------------------------------------------------------ status

    async def subscribe_all(self) -> list[ConnectionStatus]:
        """Subscribe every receive queue (again) and return every connection's status."""

        def read(c: sqlite3.Connection) -> tuple[list[ConnectionStatus], list[RcvQueueRow]]:
            statuses = [ConnectionStatus(*r) for r in store.connection_statuses(c)]
            return statuses, store.all_rcv_queues(c)

        statuses, queues = await self._db.run(read)
        for q in queues:
            self._inbound.watch(q)
        return statuses

    async def connection_status(self, conn_id: str) -> ConnectionStatus | None:
        def read(c: sqlite3.Connection) -> ConnectionStatus | None:
            conn = store.get_conn(c, conn_id)
            if conn is None:
                return None
            rq, sq = store.get_rcv_queue(c, conn_id), store.get_snd_queue(c, conn_id)
            return ConnectionStatus(
                conn_id,
                conn.status,
                rq.status if rq else None,
                sq.status if sq else None,
                store.get_peer_info(c, conn_id),
                conn.role,
                conn.rsync_state,
                conn.rsync_done,
            )

        return await self._db.run(read)

    async def pending(self) -> PendingReport:
        """Every pending command and delivery with its attempts, last error and next try."""

        def read(c: sqlite3.Connection) -> PendingReport:
            commands = [
                PendingCommand(
                    cmd.corr_id,
                    cmd.conn_id,
                    cmd.kind,
                    cmd.relay,
                    cmd.attempts,
                    cmd.last_error,
                    cmd.next_try,
                )
                for cmd in store.pending_commands(c)
                if not cmd.args.once
            ]

            def deliveries(status: str) -> list[PendingDelivery]:
                return [PendingDelivery(*r) for r in store.deliveries_with_status(c, status)]

            return PendingReport(commands, deliveries("pending"), deliveries("failed"))

        report = await self._db.run(read)
        subs, relays = self._inbound.subscription_report()
        return PendingReport(
            report.commands,
            report.deliveries,
            report.failed,
            subs,
            relays,
            self._inbound.net.report(),
        )

    async def check_subscriptions(self, everything: bool = False) -> int:
        """One pass of the safety net: every receive queue in use is kept subscribed, and
        those that are due (or all, with `everything`) are checked at their relay: GET
        (a waiting message is received as if pushed), then SUB on the current session.
        Returns how many messages were found waiting."""
        return await self._inbound.check_subscriptions(everything)

"""The agent: duplex encrypted connections made of relay queues, run as durable commands.

Every network step is a row in the `commands` table, written before the call returns and
executed by a scheduler that retries temporary failures forever (with backoff and jitter)
and ends permanent ones with ERR. Completion events are stored on the command row and
replayed after a restart until the client acknowledges them with `ack_command_event`.
Messages are stored encrypted on `send_message` and delivered by one worker per
connection, in order, with the same retry policy.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import random
import secrets
import sqlite3
import time
from collections import defaultdict
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

import msgspec

from parley.agent import events as ev
from parley.agent.relays import RelayPool
from parley.agent.store import (
    MIGRATIONS,
    CommandArgs,
    CommandRow,
    ConnRow,
    DeliveryRow,
    RcvQueueRow,
    SndQueueRow,
    all_rcv_queues,
    encode_args,
    find_rcv_queue,
    get_conn,
    get_rcv_queue,
    get_snd_queue,
    insert_command,
    now,
    pending_commands,
    rcv_queues_with_status,
    set_conn_status,
)
from parley.agent.subscriptions import Finding, NetPolicy, SafetyNet, SafetyNetReport
from parley.crypto import (
    CryptoError,
    DuplicateMessage,
    QueueBox,
    RatchetState,
    X3DHKeyPair,
    X3DHPublic,
    generate_box_keypair,
    init_initiator,
    init_joiner,
    initiator_agree,
    joiner_agree,
    ratchet_decrypt,
    ratchet_encrypt,
)
from parley.crypto.x25519 import public_key as public_from_private
from parley.protocol import agent as ap
from parley.protocol.address import RelayAddress
from parley.protocol.relay import ErrorCode
from parley.protocol.relay import Msg as RelayMsg
from parley.protocol.relay_auth import AuthKey
from parley.relay.client import (
    ClientSettings,
    MessageReceived,
    RelayDown,
    RelayUp,
    SubscriptionEnded,
)
from parley.relay.errors import PermanentRelayError, RelayError, TemporaryRelayError
from parley.retry import Backoff
from parley.store import Database

log = logging.getLogger(__name__)

T = TypeVar("T")

# connection statuses, in the order a connection normally goes through them
NEW = "new"  # NEW or JOIN still pending: no queues yet
INVITED = "invited"  # initiator: queue made, invitation link issued
CONFIRMATION = "confirmation"  # initiator: the joiner confirmed, waiting for allow
JOINED = "joined"  # joiner: confirmation sent, waiting for the initiator
ACCEPTED = "accepted"  # initiator: allowed, waiting for HELLO
READY = "ready"  # both queues active (CON)
DELETED = "deleted"

CHOOSE_RELAY = "*"  # the worker of commands that choose their relay (NEW, JOIN)


class AgentError(Exception):
    """A call the agent refuses at once: unknown connection, bad link, wrong state."""


class DuplicateCommand(AgentError):
    """A command with this corr id exists already (it was issued before, e.g. before a crash)."""


@dataclass
class AgentConfig:
    database: Path
    relays: list[str]
    retry: Backoff = field(default_factory=lambda: Backoff(1.0, 1.5, 60.0, 0.25))
    quota_retry: Backoff = field(default_factory=lambda: Backoff(30.0, 1.5, 3600.0, 0.25))
    message_ttl: float = 2 * 24 * 3600.0
    failed_retention: float = 7 * 24 * 3600.0
    commands_per_relay: int = 8
    client: ClientSettings = field(default_factory=ClientSettings)
    # when receive queues are checked at their relays (the subscription safety net)
    net: NetPolicy = field(default_factory=NetPolicy)
    seed: int | None = None


@dataclass(frozen=True)
class ConnectionStatus:
    conn_id: str
    status: str
    rcv_queue: str | None  # status of the receive queue, if there is one
    snd_queue: str | None
    peer_info: bytes | None = None  # the other side's connection info (from CONF or INFO)
    role: str = ""  # "initiator" (made the link) or "joiner"


@dataclass(frozen=True)
class PendingCommand:
    corr_id: str
    conn_id: str
    kind: str
    relay: str | None
    attempts: int
    last_error: str | None
    next_try: float


@dataclass(frozen=True)
class PendingDelivery:
    conn_id: str
    msg_id: int
    attempts: int
    last_error: str | None
    next_try: float
    expires_at: float


@dataclass(frozen=True)
class PendingSubscription:
    """A receive queue that is not subscribed at its relay on the current session."""

    conn_id: str
    relay: str
    state: str  # "relay down", "subscribing", "taken over" (END), "refused"
    last_error: str | None


@dataclass(frozen=True)
class RelayState:
    relay: str
    connected: bool
    queues: int  # receive queues kept subscribed there
    subscribed: int  # ... confirmed by the relay on the current session
    reconnects: int


@dataclass(frozen=True)
class PendingReport:
    commands: list[PendingCommand]
    deliveries: list[PendingDelivery]
    # deliveries that failed for good (MERR), kept `failed_retention` seconds to be seen
    failed: list[PendingDelivery] = field(default_factory=list)
    subscriptions: list[PendingSubscription] = field(default_factory=list)
    relays: list[RelayState] = field(default_factory=list)
    net: SafetyNetReport | None = None


def _new_id() -> str:
    return secrets.token_urlsafe(12)


class Agent:
    """`agent = await Agent.open(config)`; then the API below; `await agent.close()`."""

    def __init__(self, config: AgentConfig, db: Database) -> None:
        # addresses are compared as strings everywhere: keep one spelling of each
        config.relays = [str(RelayAddress.parse(r)) for r in config.relays]
        self.config = config
        self._db = db
        self._rng = random.Random(config.seed)
        self._events: asyncio.Queue[ev.AgentEvent] = asyncio.Queue()
        self._relays = RelayPool(config.client)
        self._commands: dict[str, CommandRow] = {}
        self._running: set[str] = set()
        self._running_per_worker: dict[str, int] = defaultdict(int)
        self._waiters: dict[str, asyncio.Future[ev.Event]] = {}
        self._wake = asyncio.Event()
        self._delivery_tasks: dict[str, asyncio.Task[None]] = {}
        self._delivery_wake: dict[str, asyncio.Event] = {}
        self._rcv_index: dict[tuple[str, bytes], str] = {}
        self._net = SafetyNet(config.net)
        self._taken_over: set[tuple[str, bytes]] = set()  # END: another client subscribed
        self._tasks: list[asyncio.Task[None]] = []
        self._closed = False

    # ------------------------------------------------------------ life cycle

    @classmethod
    async def open(cls, config: AgentConfig) -> Agent:
        if not config.relays:
            raise AgentError("configure at least one relay")
        db = await Database.open(config.database, MIGRATIONS)
        agent = cls(config, db)
        await agent._start()
        return agent

    async def _start(self) -> None:
        def load(
            c: sqlite3.Connection,
        ) -> tuple[list[CommandRow], list[ev.AgentEvent], list[RcvQueueRow], list[str]]:
            for relay in self.config.relays:
                c.execute(
                    "INSERT OR IGNORE INTO relays (address, added_at) VALUES (?, ?)", (relay, now())
                )
            replay: list[ev.AgentEvent] = []
            for corr, conn, data in c.execute(
                "SELECT corr_id, conn_id, event FROM commands WHERE status = 'done' "
                "AND internal = 0 ORDER BY seq"
            ):
                replay.append(ev.AgentEvent(corr, conn, ev.decode_event(data)))
            for conf_id, conn, info in c.execute(
                "SELECT conf_id, conn_id, info FROM confirmations WHERE status = 'pending' "
                "ORDER BY created_at"
            ):
                replay.append(ev.AgentEvent("", conn, ev.Conf(conf_id, info)))
            for conn, mid, smid, body, integrity in c.execute(
                "SELECT conn_id, msg_id, sender_msg_id, body, integrity FROM rcv_messages "
                "WHERE status = 'received' ORDER BY received_at, msg_id"
            ):
                replay.append(ev.AgentEvent("", conn, ev.Msg(mid, smid, body, integrity)))
            # a failure is reported again after a restart (the first report may have been
            # lost with the process); old ones are forgotten
            c.execute(
                "DELETE FROM deliveries WHERE status = 'failed' AND created_at < ?",
                (now() - self.config.failed_retention,),
            )
            for conn, mid, reason in c.execute(
                "SELECT conn_id, msg_id, last_error FROM deliveries WHERE status = 'failed' "
                "AND internal = 0 ORDER BY created_at"
            ):
                replay.append(ev.AgentEvent("", conn, ev.MErr(mid, reason or "failed")))
            pending_deliveries = [
                r[0]
                for r in c.execute(
                    "SELECT DISTINCT conn_id FROM deliveries WHERE status = 'pending'"
                )
            ]
            return pending_commands(c), replay, all_rcv_queues(c), pending_deliveries

        commands, replay, queues, deliveries = await self._db.run(load)
        for cmd in commands:
            if cmd.args.once:  # a synchronous call whose caller is gone
                await self._db.run(functools.partial(_delete_command, corr_id=cmd.corr_id))
                continue
            self._commands[cmd.corr_id] = cmd
        for e in replay:
            self._events.put_nowait(e)
        self._tasks.append(asyncio.create_task(self._schedule(), name="agent-commands"))
        self._tasks.append(asyncio.create_task(self._pump(), name="agent-relay-events"))
        self._tasks.append(asyncio.create_task(self._net_loop(), name="agent-safety-net"))
        for q in queues:
            self._watch(q)
        for conn_id in deliveries:
            self._kick_delivery(conn_id)

    async def close(self) -> None:
        """Stop workers and close relay connections; pending work resumes on the next open."""
        if self._closed:
            return
        self._closed = True
        tasks = [*self._tasks, *self._delivery_tasks.values()]
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        for fut in self._waiters.values():
            if not fut.done():
                fut.set_exception(AgentError("agent closed"))
        await self._relays.close()
        await self._db.close()

    async def __aenter__(self) -> Agent:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    # ------------------------------------------------------------ events

    async def next_event(self, timeout: float | None = None) -> ev.AgentEvent:
        async with asyncio.timeout(timeout):
            return await self._events.get()

    async def events(self) -> AsyncIterator[ev.AgentEvent]:
        while True:
            yield await self._events.get()

    def _emit(self, corr_id: str, conn_id: str, event: ev.Event) -> None:
        self._events.put_nowait(ev.AgentEvent(corr_id, conn_id, event))

    # ------------------------------------------------------------ asynchronous commands

    async def create_connection_async(self, corr_id: str) -> str:
        """Start making a connection with an invitation link; INV(link) arrives later."""
        conn_id = _new_id()
        x3dh = X3DHKeyPair.generate()
        box = generate_box_keypair()
        args = CommandArgs(recipient_key=AuthKey.generate().to_bytes(), box_private=box.private)

        def tx(c: sqlite3.Connection) -> CommandRow:
            _insert_conn(c, conn_id, "initiator", x3dh.to_bytes(), None)
            return insert_command(c, corr_id, conn_id, "NEW", None, args)

        await self._add_command(corr_id, tx)
        return conn_id

    async def join_connection_async(self, corr_id: str, link: str, info: bytes) -> str:
        """Start joining through an invitation link; OK arrives once the joiner confirmed."""
        try:
            ap.decode_invitation_link(link)
        except ap.EnvelopeError as e:
            raise AgentError(str(e)) from e
        _check_size(info, ap.MAX_INFO_SIZE)
        conn_id = _new_id()
        x3dh = X3DHKeyPair.generate()
        args = CommandArgs(
            recipient_key=AuthKey.generate().to_bytes(),
            box_private=generate_box_keypair().private,
            sender_key=AuthKey.generate().to_bytes(),
            snd_box_private=generate_box_keypair().private,
            info=info,
        )

        def tx(c: sqlite3.Connection) -> CommandRow:
            _insert_conn(c, conn_id, "joiner", x3dh.to_bytes(), link.strip())
            return insert_command(c, corr_id, conn_id, "JOIN", None, args)

        await self._add_command(corr_id, tx)
        return conn_id

    async def allow_connection_async(
        self, corr_id: str, conn_id: str, conf_id: str, info: bytes
    ) -> None:
        """Accept the joiner's confirmation `conf_id`; OK arrives once ours is sent."""
        _check_size(info, ap.MAX_INFO_SIZE)

        def tx(c: sqlite3.Connection) -> CommandRow:
            conn = _live_conn(c, conn_id)
            row = c.execute(
                "SELECT status FROM confirmations WHERE conf_id = ? AND conn_id = ?",
                (conf_id, conn_id),
            ).fetchone()
            if row is None:
                raise AgentError(f"no confirmation {conf_id} on connection {conn_id}")
            if conn.status != CONFIRMATION or _has_pending(c, conn_id, "ALLOW"):
                raise AgentError(f"connection {conn_id} is {conn.status}: nothing to allow")
            rq = get_rcv_queue(c, conn_id)
            assert rq is not None
            args = CommandArgs(
                sender_key=AuthKey.generate().to_bytes(),
                snd_box_private=generate_box_keypair().private,
                info=info,
                conf_id=conf_id,
            )
            return insert_command(c, corr_id, conn_id, "ALLOW", rq.relay, args)

        await self._add_command(corr_id, tx)

    async def ack_message_async(self, corr_id: str, conn_id: str, msg_id: int) -> None:
        """Acknowledge a received message: the relay may then deliver the next one."""

        def tx(c: sqlite3.Connection) -> CommandRow:
            _live_conn(c, conn_id)
            row = c.execute(
                "SELECT status FROM rcv_messages WHERE conn_id = ? AND msg_id = ?",
                (conn_id, msg_id),
            ).fetchone()
            if row is None:
                raise AgentError(f"no message {msg_id} on connection {conn_id}")
            rq = get_rcv_queue(c, conn_id)
            assert rq is not None
            return insert_command(c, corr_id, conn_id, "ACK", rq.relay, CommandArgs(msg_id=msg_id))

        await self._add_command(corr_id, tx)

    async def delete_connection_async(self, corr_id: str, conn_id: str) -> None:
        """Delete the connection and its queue; pending commands for it end with ERR."""

        def tx(c: sqlite3.Connection) -> tuple[CommandRow, list[tuple[str, bool]]]:
            _check_new_corr_id(c, corr_id)
            _live_conn(c, conn_id)
            cancelled = [
                (corr, bool(internal))
                for corr, internal in c.execute(
                    "SELECT corr_id, internal FROM commands WHERE conn_id = ? AND "
                    "status = 'pending'",
                    (conn_id,),
                )
                if corr not in self._running
            ]
            err = ev.Err("connection deleted", "DELETED")
            for corr, internal in cancelled:
                _finish(c, corr, err, internal)
            set_conn_status(c, conn_id, DELETED)
            c.execute("DELETE FROM deliveries WHERE conn_id = ?", (conn_id,))
            rq = get_rcv_queue(c, conn_id)
            cmd = insert_command(
                c, corr_id, conn_id, "DEL", rq.relay if rq else None, CommandArgs()
            )
            return cmd, cancelled

        def registered(result: tuple[CommandRow, list[tuple[str, bool]]]) -> None:
            cmd, cancelled = result
            for corr, internal in cancelled:
                self._commands.pop(corr, None)
                self._completed(corr, conn_id, ev.Err("connection deleted", "DELETED"), internal)
            self._commands[cmd.corr_id] = cmd
            self._wake.set()

        await self._commit_then(tx, registered)

    async def ack_command_event(self, corr_id: str) -> None:
        """The client has durably handled the completion event of `corr_id`: forget it."""
        await self._db.run(lambda c: _delete_command(c, corr_id, done_only=True))

    # ------------------------------------------------------------ synchronous forms

    async def create_connection(self) -> tuple[str, str]:
        """Make a connection now (one attempt): returns (conn_id, invitation link)."""
        corr = "sync:" + _new_id()
        conn_id = await self.create_connection_async(corr)
        result = await self._wait_once(corr)
        assert isinstance(result, ev.Inv)
        return conn_id, result.link

    async def join_connection(self, link: str, info: bytes) -> str:
        corr = "sync:" + _new_id()
        conn_id = await self.join_connection_async(corr, link, info)
        await self._wait_once(corr)
        return conn_id

    async def allow_connection(self, conn_id: str, conf_id: str, info: bytes) -> None:
        corr = "sync:" + _new_id()
        await self.allow_connection_async(corr, conn_id, conf_id, info)
        await self._wait_once(corr)

    async def ack_message(self, conn_id: str, msg_id: int) -> None:
        corr = "sync:" + _new_id()
        await self.ack_message_async(corr, conn_id, msg_id)
        await self._wait_once(corr)

    async def delete_connection(self, conn_id: str) -> None:
        corr = "sync:" + _new_id()
        await self.delete_connection_async(corr, conn_id)
        await self._wait_once(corr)

    async def _wait_once(self, corr_id: str) -> ev.Event:
        fut = self._waiters.get(corr_id)
        if fut is None:
            raise AgentError("unknown synchronous command")
        try:
            result = await fut
        finally:
            self._waiters.pop(corr_id, None)
        if isinstance(result, ev.Err):
            raise AgentError(result.reason)
        return result

    async def _add_command(
        self, corr_id: str, tx: Callable[[sqlite3.Connection], CommandRow]
    ) -> None:
        def run(c: sqlite3.Connection) -> CommandRow:
            _check_new_corr_id(c, corr_id)
            cmd = tx(c)
            if cmd.corr_id.startswith("sync:"):
                cmd.args.once = True
                cmd.internal = True
                c.execute(
                    "UPDATE commands SET args = ?, internal = 1 WHERE corr_id = ?",
                    (encode_args(cmd.args), cmd.corr_id),
                )
            return cmd

        def registered(cmd: CommandRow) -> None:
            if cmd.args.once:
                self._waiters[cmd.corr_id] = asyncio.get_running_loop().create_future()
            self._commands[cmd.corr_id] = cmd
            self._wake.set()

        await self._commit_then(run, registered)

    async def _commit_then(
        self, tx: Callable[[sqlite3.Connection], T], then: Callable[[T], None]
    ) -> T:
        """Run `tx`; once it has committed, `then(result)` runs even if the caller was
        cancelled meanwhile (otherwise a committed command would wait for a restart)."""
        fut = asyncio.wrap_future(self._db.submit(tx))

        def done(f: asyncio.Future[T]) -> None:
            if not f.cancelled() and f.exception() is None:
                then(f.result())

        fut.add_done_callback(done)
        return await asyncio.shield(fut)

    # ------------------------------------------------------------ messages

    async def send_message(self, conn_id: str, body: bytes) -> int:
        """Store `body` for delivery and return its message id; SENT or MERR follows."""
        _check_size(body)

        def tx(c: sqlite3.Connection) -> int:
            conn = _live_conn(c, conn_id)
            if conn.status != READY:
                raise AgentError(f"connection {conn_id} is {conn.status}, not ready")
            return self._enqueue_delivery(c, conn, ap.UserMessage(body), internal=False)

        return await self._commit_then(tx, lambda _: self._kick_delivery(conn_id))

    def _enqueue_delivery(
        self,
        c: sqlite3.Connection,
        conn: ConnRow,
        content: ap.Hello | ap.UserMessage,
        internal: bool,
    ) -> int:
        snd = get_snd_queue(c, conn.conn_id)
        if snd is None or conn.ratchet is None:
            raise AgentError(f"connection {conn.conn_id} has no send queue yet")
        msg_id = conn.snd_msg_id + 1
        encoded = ap.encode_agent_message(ap.Sequenced(msg_id, conn.snd_prev_hash, content))
        state, rmsg = ratchet_encrypt(
            RatchetState.from_bytes(conn.ratchet), encoded, ap.RATCHET_PAD
        )
        box = QueueBox(snd.box_private, snd.peer_box_public)
        envelope = ap.encode_message(box.encrypt(rmsg, ap.BOX_PAD))
        t = now()
        c.execute(
            "UPDATE connections SET ratchet = ?, snd_msg_id = ?, snd_prev_hash = ?, updated_at = ? "
            "WHERE conn_id = ?",
            (state.to_bytes(), msg_id, ap.message_hash(encoded), t, conn.conn_id),
        )
        c.execute(
            "INSERT INTO deliveries (conn_id, msg_id, internal, envelope, next_try, expires_at, "
            "created_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
            (conn.conn_id, msg_id, int(internal), envelope, t, t + self.config.message_ttl, t),
        )
        return msg_id

    async def wait_delivered(self, conn_id: str, timeout: float) -> bool:
        """Wait until nothing is pending for delivery on `conn_id`; False on timeout."""
        task = self._delivery_tasks.get(conn_id)
        if task is None or task.done():
            return True
        done, _ = await asyncio.wait({task}, timeout=timeout)
        return bool(done)

    # ------------------------------------------------------------ status

    async def subscribe_all(self) -> list[ConnectionStatus]:
        """Subscribe every receive queue (again) and return every connection's status."""

        def read(c: sqlite3.Connection) -> tuple[list[ConnectionStatus], list[RcvQueueRow]]:
            rows = c.execute(
                "SELECT c.conn_id, c.status, r.status, s.status, c.peer_info, c.role "
                "FROM connections c "
                "LEFT JOIN rcv_queues r ON r.conn_id = c.conn_id "
                "LEFT JOIN snd_queues s ON s.conn_id = c.conn_id ORDER BY c.created_at"
            ).fetchall()
            return [ConnectionStatus(*r) for r in rows], all_rcv_queues(c)

        statuses, queues = await self._db.run(read)
        for q in queues:
            self._watch(q)
        return statuses

    async def connection_status(self, conn_id: str) -> ConnectionStatus | None:
        def read(c: sqlite3.Connection) -> ConnectionStatus | None:
            conn = get_conn(c, conn_id)
            if conn is None:
                return None
            rq, sq = get_rcv_queue(c, conn_id), get_snd_queue(c, conn_id)
            info = c.execute("SELECT peer_info FROM connections WHERE conn_id = ?", (conn_id,))
            return ConnectionStatus(
                conn_id,
                conn.status,
                rq.status if rq else None,
                sq.status if sq else None,
                info.fetchone()[0],
                conn.role,
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
                for cmd in pending_commands(c)
                if not cmd.args.once
            ]

            def deliveries(status: str) -> list[PendingDelivery]:
                return [
                    PendingDelivery(*r)
                    for r in c.execute(
                        "SELECT conn_id, msg_id, attempts, last_error, next_try, expires_at "
                        "FROM deliveries WHERE status = ? ORDER BY conn_id, msg_id",
                        (status,),
                    )
                ]

            return PendingReport(commands, deliveries("pending"), deliveries("failed"))

        report = await self._db.run(read)
        subs, relays = self._subscription_report()
        report.subscriptions.extend(subs)
        report.relays.extend(relays)
        return PendingReport(
            report.commands,
            report.deliveries,
            report.failed,
            report.subscriptions,
            report.relays,
            self._net.report(),
        )

    def _subscription_report(self) -> tuple[list[PendingSubscription], list[RelayState]]:
        subs: list[PendingSubscription] = []
        per_relay: dict[str, list[bytes]] = defaultdict(list)
        for (relay, rid), conn_id in sorted(self._rcv_index.items()):
            per_relay[relay].append(rid)
            client = self._relays.client(relay)
            if client.is_subscribed(rid):
                continue
            error = client.subscription_error(rid)
            if not client.connected:
                state = "relay down"
            elif (relay, rid) in self._taken_over:
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

    # ------------------------------------------------------------ scheduler

    async def _schedule(self) -> None:
        while True:
            t = now()
            wait: float | None = None
            seen_conns: set[str] = set()
            for cmd in sorted(self._commands.values(), key=lambda x: x.seq):
                first_for_conn = cmd.conn_id not in seen_conns
                seen_conns.add(cmd.conn_id)
                if not first_for_conn or cmd.corr_id in self._running:
                    continue
                if cmd.next_try > t:
                    delay = cmd.next_try - t
                    wait = delay if wait is None else min(wait, delay)
                    continue
                worker = cmd.relay or CHOOSE_RELAY
                if self._running_per_worker[worker] >= self.config.commands_per_relay:
                    continue
                self._running.add(cmd.corr_id)
                self._running_per_worker[worker] += 1
                task = asyncio.create_task(self._run(cmd, worker))
                self._tasks.append(task)
                task.add_done_callback(self._forget_task)
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(wait):
                    await self._wake.wait()

    def _forget_task(self, task: asyncio.Task[None]) -> None:
        with contextlib.suppress(ValueError):
            self._tasks.remove(task)

    async def _run(self, cmd: CommandRow, worker: str) -> None:
        try:
            await self._execute(cmd)
        except TemporaryRelayError as e:
            await self._retry_later(cmd, str(e))
        except (PermanentRelayError, AgentError, CryptoError, ap.EnvelopeError) as e:
            code = e.code.value if isinstance(e, PermanentRelayError) and e.code else ""
            await self._fail(cmd, str(e), code)
        except asyncio.CancelledError:
            raise
        except Exception as e:
            log.exception("command %s %s failed", cmd.kind, cmd.corr_id)
            await self._fail(cmd, f"internal error: {e!r}", "INTERNAL")
        finally:
            self._running.discard(cmd.corr_id)
            self._running_per_worker[worker] -= 1
            self._wake.set()

    async def _retry_later(self, cmd: CommandRow, error: str) -> None:
        if cmd.args.once:
            await self._fail(cmd, error, "TEMPORARY")
            return
        cmd.attempts += 1
        cmd.last_error = error
        cmd.next_try = now() + self.config.retry.delay(cmd.attempts, self._rng)
        await self._db.run(
            lambda c: c.execute(
                "UPDATE commands SET attempts = ?, last_error = ?, next_try = ?, args = ?, "
                "relay = ?, updated_at = ? WHERE corr_id = ? AND status = 'pending'",
                (
                    cmd.attempts,
                    error,
                    cmd.next_try,
                    encode_args(cmd.args),
                    cmd.relay,
                    now(),
                    cmd.corr_id,
                ),
            )
        )

    async def _fail(self, cmd: CommandRow, reason: str, code: str) -> None:
        log.info("command %s %s failed: %s", cmd.kind, cmd.corr_id, reason)
        await self._complete(cmd, ev.Err(reason, code))

    async def _complete(
        self,
        cmd: CommandRow,
        event: ev.Event,
        effects: Callable[[sqlite3.Connection], None] | None = None,
    ) -> None:
        """Commit `effects`, the end of the command and its event in one transaction."""

        def tx(c: sqlite3.Connection) -> None:
            if effects is not None:
                effects(c)
            _finish(c, cmd.corr_id, event, cmd.internal)

        await self._db.run(tx)
        self._commands.pop(cmd.corr_id, None)
        self._completed(cmd.corr_id, cmd.conn_id, event, cmd.internal)

    def _completed(self, corr_id: str, conn_id: str, event: ev.Event, internal: bool) -> None:
        fut = self._waiters.get(corr_id)
        if fut is not None:
            if not fut.done():
                fut.set_result(event)
        elif not internal:
            self._emit(corr_id, conn_id, event)

    def _pick_relay(self, cmd: CommandRow) -> str:
        relays = self.config.relays
        return relays[cmd.attempts % len(relays)]

    async def _save_progress(
        self, cmd: CommandRow, tx: Callable[[sqlite3.Connection], object]
    ) -> None:
        """Commit an intermediate step together with the command's updated arguments."""

        def run(c: sqlite3.Connection) -> None:
            tx(c)
            c.execute(
                "UPDATE commands SET args = ?, relay = ?, updated_at = ? WHERE corr_id = ?",
                (encode_args(cmd.args), cmd.relay, now(), cmd.corr_id),
            )

        await self._db.run(run)

    # ------------------------------------------------------------ command steps

    async def _execute(self, cmd: CommandRow) -> None:
        match cmd.kind:
            case "NEW":
                await self._exec_new(cmd)
            case "JOIN":
                await self._exec_join(cmd)
            case "ALLOW":
                await self._exec_allow(cmd)
            case "SECURE":
                await self._exec_secure(cmd)
            case "ACK":
                await self._exec_ack(cmd)
            case "DEL":
                await self._exec_delete(cmd)
            case _:
                raise AgentError(f"unknown command kind {cmd.kind}")

    async def _exec_new(self, cmd: CommandRow) -> None:
        a = cmd.args
        assert a.recipient_key is not None and a.box_private is not None
        conn = await self._db.run(lambda c: _live_conn(c, cmd.conn_id))
        assert conn.x3dh_private is not None
        relay = self._pick_relay(cmd)
        key = AuthKey.from_bytes(a.recipient_key)
        ids = await self._relays.client(relay).create_queue(key)
        x3dh = X3DHKeyPair.from_bytes(conn.x3dh_private)
        queue = ap.QueueAddress(relay, ids.sender_id, public_from_private(a.box_private))
        link = ap.encode_invitation_link(
            ap.Invitation(ap.MIN_AGENT_VERSION, ap.AGENT_VERSION, queue, x3dh.public().to_bytes())
        )
        rq = RcvQueueRow(
            cmd.conn_id,
            relay,
            ids.recipient_id,
            ids.sender_id,
            a.recipient_key,
            a.box_private,
            None,
            None,
            "new",
            None,
        )

        def effects(c: sqlite3.Connection) -> None:
            _insert_rcv_queue(c, rq)
            c.execute(
                "UPDATE connections SET status = ?, invitation = ?, updated_at = ? "
                "WHERE conn_id = ?",
                (INVITED, link, now(), cmd.conn_id),
            )

        await self._complete(cmd, ev.Inv(link), effects)
        self._watch(rq)

    async def _exec_join(self, cmd: CommandRow) -> None:
        a = cmd.args
        assert a.recipient_key and a.box_private and a.sender_key and a.snd_box_private
        conn, rq = await self._db.run(
            lambda c: (_live_conn(c, cmd.conn_id), get_rcv_queue(c, cmd.conn_id))
        )
        assert conn.invitation is not None
        inv = ap.decode_invitation_link(conn.invitation)
        if rq is None:  # step 1: the reply queue, made once and reused by every retry
            relay = self._pick_relay(cmd)
            ids = await self._relays.client(relay).create_queue(AuthKey.from_bytes(a.recipient_key))
            rq = RcvQueueRow(
                cmd.conn_id,
                relay,
                ids.recipient_id,
                ids.sender_id,
                a.recipient_key,
                a.box_private,
                None,
                None,
                "new",
                None,
            )
            new_rq = rq
            await self._save_progress(cmd, lambda c: _insert_rcv_queue(c, new_rq))
            self._watch(rq)
        if a.envelope is None:  # step 2: the confirmation, encrypted once
            assert conn.x3dh_private is not None
            own = X3DHKeyPair.from_bytes(conn.x3dh_private)
            peer = X3DHPublic.from_bytes(inv.x3dh)
            state = init_joiner(joiner_agree(own, peer), peer)
            reply = ap.QueueAddress(rq.relay, rq.sender_id, public_from_private(rq.box_private))
            plain = ap.encode_agent_message(ap.JoinConfirmation(reply, a.info))
            state, rmsg = ratchet_encrypt(state, plain, ap.RATCHET_PAD)
            sender_key = AuthKey.from_bytes(a.sender_key)
            body = ap.ConfirmationBody(sender_key.public, own.public().to_bytes(), rmsg)
            box = QueueBox(a.snd_box_private, inv.queue.box_public)
            ct = box.encrypt(ap.encode_confirmation_body(body), ap.BOX_PAD)
            a.envelope = ap.encode_confirmation(public_from_private(a.snd_box_private), ct)
            sq = SndQueueRow(
                cmd.conn_id,
                inv.queue.relay,
                inv.queue.sender_id,
                a.sender_key,
                a.snd_box_private,
                inv.queue.box_public,
                "new",
            )

            def step2(c: sqlite3.Connection) -> None:
                c.execute(
                    "UPDATE connections SET ratchet = ? WHERE conn_id = ?",
                    (state.to_bytes(), cmd.conn_id),
                )
                _insert_snd_queue(c, sq)

            await self._save_progress(cmd, step2)
        await self._send_confirmation(cmd, inv.queue.relay, inv.queue.sender_id, a.envelope)

        def effects(c: sqlite3.Connection) -> None:
            # a retried JOIN can end after the connection went further (even to CON):
            # statuses only ever move forward
            _advance(c, cmd.conn_id, snd_queue="confirmed", conn_from=NEW, conn_to=JOINED)

        await self._complete(cmd, ev.Ok(), effects)

    async def _send_confirmation(
        self, cmd: CommandRow, relay: str, sender_id: bytes, envelope: bytes
    ) -> None:
        """SEND an unauthenticated confirmation; an AUTH after an uncertain try means it got there.

        A confirmation whose OK was lost (a timeout, or the process killed while waiting)
        may already have been accepted, and the queue secured with our key, so a repeat
        gets AUTH: the earlier one arrived. The attempt is noted before it is made.
        """
        if not cmd.args.uncertain:
            cmd.args.uncertain = True
            await self._save_progress(cmd, lambda c: None)
        try:
            await self._relays.client(relay).send(sender_id, None, envelope)
        except PermanentRelayError as e:
            # the queue is secured now: an unsigned SEND gets CMD NO_AUTH (or AUTH)
            secured = e.code in (ErrorCode.AUTH, ErrorCode.CMD_NO_AUTH)
            if not (secured and cmd.args.uncertain):
                raise

    async def _exec_allow(self, cmd: CommandRow) -> None:
        a = cmd.args
        assert a.sender_key and a.snd_box_private
        conn, rq, conf = await self._db.run(
            lambda c: (
                _live_conn(c, cmd.conn_id),
                get_rcv_queue(c, cmd.conn_id),
                _get_confirmation(c, a.conf_id),
            )
        )
        assert rq is not None and rq.peer_sender_key is not None
        reply = ap.decode_queue_address(conf)
        if a.stage == 0:  # step 1: secure our queue with the joiner's key
            await self._relays.client(rq.relay).secure(
                rq.recipient_id, AuthKey.from_bytes(rq.recipient_key), rq.peer_sender_key
            )
            a.stage, cmd.relay = 1, reply.relay
            await self._save_progress(
                cmd,
                lambda c: c.execute(
                    "UPDATE rcv_queues SET status = 'secured' WHERE conn_id = ?", (cmd.conn_id,)
                ),
            )
        if a.envelope is None:  # step 2: our confirmation, encrypted once
            assert conn.ratchet is not None
            plain = ap.encode_agent_message(ap.AllowConfirmation(a.info))
            state, rmsg = ratchet_encrypt(
                RatchetState.from_bytes(conn.ratchet), plain, ap.RATCHET_PAD
            )
            body = ap.ConfirmationBody(AuthKey.from_bytes(a.sender_key).public, None, rmsg)
            box = QueueBox(a.snd_box_private, reply.box_public)
            ct = box.encrypt(ap.encode_confirmation_body(body), ap.BOX_PAD)
            a.envelope = ap.encode_confirmation(public_from_private(a.snd_box_private), ct)
            sq = SndQueueRow(
                cmd.conn_id,
                reply.relay,
                reply.sender_id,
                a.sender_key,
                a.snd_box_private,
                reply.box_public,
                "new",
            )

            def step2(c: sqlite3.Connection) -> None:
                c.execute(
                    "UPDATE connections SET ratchet = ? WHERE conn_id = ?",
                    (state.to_bytes(), cmd.conn_id),
                )
                _insert_snd_queue(c, sq)

            await self._save_progress(cmd, step2)
        await self._send_confirmation(cmd, reply.relay, reply.sender_id, a.envelope)

        def effects(c: sqlite3.Connection) -> None:
            c.execute(
                "UPDATE confirmations SET status = 'accepted' WHERE conf_id = ?", (a.conf_id,)
            )
            # a retried ALLOW can end after the HELLOs made the connection ready
            _advance(
                c, cmd.conn_id, snd_queue="confirmed", conn_from=CONFIRMATION, conn_to=ACCEPTED
            )

        await self._complete(cmd, ev.Ok(), effects)

    async def _exec_secure(self, cmd: CommandRow) -> None:
        """The joiner, after INFO: secure the reply queue, then say HELLO."""
        rq = await self._db.run(lambda c: get_rcv_queue(c, cmd.conn_id))
        assert rq is not None and rq.peer_sender_key is not None
        await self._relays.client(rq.relay).secure(
            rq.recipient_id, AuthKey.from_bytes(rq.recipient_key), rq.peer_sender_key
        )

        def effects(c: sqlite3.Connection) -> None:
            c.execute(
                "UPDATE rcv_queues SET status = 'secured' WHERE conn_id = ? "
                "AND status = 'confirmed'",
                (cmd.conn_id,),
            )
            conn = _live_conn(c, cmd.conn_id)
            if conn.snd_msg_id == 0:
                self._enqueue_delivery(c, conn, ap.Hello(), internal=True)

        await self._complete(cmd, ev.Ok(), effects)
        self._kick_delivery(cmd.conn_id)

    async def _exec_ack(self, cmd: CommandRow) -> None:
        def read(c: sqlite3.Connection) -> tuple[RcvQueueRow | None, bytes | None]:
            row = c.execute(
                "SELECT relay_msg_id FROM rcv_messages WHERE conn_id = ? AND msg_id = ?",
                (cmd.conn_id, cmd.args.msg_id),
            ).fetchone()
            return get_rcv_queue(c, cmd.conn_id), row[0] if row else None

        rq, relay_msg_id = await self._db.run(read)
        if rq is not None and relay_msg_id is not None:
            try:
                await self._relays.client(rq.relay).ack(
                    rq.recipient_id, AuthKey.from_bytes(rq.recipient_key), relay_msg_id
                )
            except PermanentRelayError as e:
                if e.code != ErrorCode.NO_MSG:  # NO_MSG: acknowledged before
                    raise

        def effects(c: sqlite3.Connection) -> None:
            c.execute(
                "UPDATE rcv_messages SET status = 'acked', body = NULL WHERE conn_id = ? "
                "AND msg_id = ?",
                (cmd.conn_id, cmd.args.msg_id),
            )

        await self._complete(cmd, ev.Ok(), effects)

    async def _exec_delete(self, cmd: CommandRow) -> None:
        rq = await self._db.run(lambda c: get_rcv_queue(c, cmd.conn_id))
        if rq is not None:
            try:
                await self._relays.client(rq.relay).delete(
                    rq.recipient_id, AuthKey.from_bytes(rq.recipient_key)
                )
            except PermanentRelayError as e:
                if e.code not in (ErrorCode.NO_QUEUE, ErrorCode.AUTH):
                    raise
            self._unwatch(rq.relay, rq.recipient_id)

        def effects(c: sqlite3.Connection) -> None:
            c.execute("DELETE FROM connections WHERE conn_id = ?", (cmd.conn_id,))

        await self._complete(cmd, ev.Ok(), effects)

    # ------------------------------------------------------------ receiving

    def _watch(self, rq: RcvQueueRow) -> None:
        """Index a receive queue and keep it subscribed (also across reconnects)."""
        self._rcv_index[(rq.relay, rq.recipient_id)] = rq.conn_id
        self._relays.subscribe(rq.relay, rq.recipient_id, AuthKey.from_bytes(rq.recipient_key))

    def _unwatch(self, relay: str, rid: bytes) -> None:
        self._rcv_index.pop((relay, rid), None)
        self._taken_over.discard((relay, rid))
        self._net.forget((relay, rid))
        self._relays.client(relay).unsubscribe(rid)

    async def _pump(self) -> None:
        while True:
            event = await self._relays.events.get()
            try:
                match event:
                    case MessageReceived(relay, rid, msg):
                        try:
                            await self._on_message(str(relay), rid, msg)
                        except Exception:
                            # the relay waits for an ACK that will not come: let the safety
                            # net check the queue at its next pass
                            self._net.suspect((str(relay), rid), time.monotonic())
                            raise
                    case RelayUp(relay):
                        await self._on_relay_up(str(relay))
                    case RelayDown(relay, _):
                        conns = await self._conns_on(str(relay))
                        self._emit("", "", ev.Down(str(relay), conns))
                    case SubscriptionEnded(relay, rid, error):
                        # the safety net subscribes the queue again at its next pass
                        conn_id = self._rcv_index.get((str(relay), rid))
                        if conn_id is not None:
                            if error is None:
                                self._taken_over.add((str(relay), rid))
                            log.warning(
                                "subscription of %s on %s ended: %s",
                                conn_id,
                                relay,
                                error or "another client subscribed",
                            )
                            self._emit("", conn_id, ev.End())
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("handling relay event %r failed", event)

    async def _conns_on(self, relay: str) -> list[str]:
        def read(c: sqlite3.Connection) -> list[str]:
            rows = c.execute(
                "SELECT conn_id FROM rcv_queues WHERE relay = ? UNION "
                "SELECT conn_id FROM snd_queues WHERE relay = ?",
                (relay, relay),
            )
            return sorted(r[0] for r in rows)

        return await self._db.run(read)

    async def _on_relay_up(self, relay: str) -> None:
        t = now()
        for cmd in self._commands.values():
            if cmd.relay in (relay, None) and cmd.next_try > t:
                cmd.next_try = t
        self._wake.set()
        conns = await self._conns_on(relay)

        def due_now(c: sqlite3.Connection) -> list[str]:
            # deliveries to this relay waiting for their retry timer go now
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

        for conn_id in await self._db.run(due_now):
            self._kick_delivery(conn_id)
        self._emit("", "", ev.Up(relay, conns))

    async def _on_message(self, relay: str, rid: bytes, msg: RelayMsg) -> bool:
        """Process one message from a relay; True if the agent had not received it before."""
        key = (relay, rid)
        conn_id = self._rcv_index.get(key)
        if conn_id is None:
            rq = await self._db.run(lambda c: find_rcv_queue(c, relay, rid))
            if rq is None:
                # not ours (any more): stop renewing it; the relay keeps the message
                log.warning("message for an unknown queue on %s: unsubscribed", relay)
                self._relays.client(relay).unsubscribe(rid)
                return False
            self._watch(rq)
            conn_id = rq.conn_id
        self._taken_over.discard(key)
        self._net.received(key, time.monotonic())
        outcome = await self._db.run(lambda c: self._receive(c, conn_id, msg))
        for e in outcome.events:
            self._emit("", conn_id, e)
        for cmd in outcome.commands:
            self._commands[cmd.corr_id] = cmd
            self._wake.set()
        if outcome.kick_delivery:
            self._kick_delivery(conn_id)
        if outcome.ack:
            rq = outcome.queue
            assert rq is not None
            # in the background: a slow relay must not hold up messages from the others
            task = asyncio.create_task(self._ack_relay(relay, rq, msg.msg_id))
            self._tasks.append(task)
            task.add_done_callback(self._forget_task)
        return outcome.new

    async def _ack_relay(self, relay: str, rq: RcvQueueRow, relay_msg_id: bytes) -> None:
        try:
            await self._relays.client(relay).ack(
                rq.recipient_id, AuthKey.from_bytes(rq.recipient_key), relay_msg_id
            )
        except RelayError as e:  # the relay delivers it again; we dedupe and ack again
            log.info("ack to %s failed: %s", relay, e)

    def _receive(self, c: sqlite3.Connection, conn_id: str, msg: RelayMsg) -> _Received:
        """Process one relay message in one transaction (runs on the database thread)."""
        out = _Received()
        conn = get_conn(c, conn_id)
        rq = get_rcv_queue(c, conn_id)
        if conn is None or rq is None or conn.status == DELETED:
            return out
        out.queue = rq
        if rq.last_relay_msg_id == msg.msg_id:  # delivered again (reconnect or relay restart)
            row = c.execute(
                "SELECT status FROM rcv_messages WHERE conn_id = ? AND relay_msg_id = ?",
                (conn_id, msg.msg_id),
            ).fetchone()
            out.ack = row is None or row[0] == "acked"
            return out
        out.ack = True
        out.new = True
        c.execute(
            "UPDATE rcv_queues SET last_relay_msg_id = ? WHERE conn_id = ?", (msg.msg_id, conn_id)
        )
        try:
            qm = ap.decode_queue_message(msg.body)
            if qm.kind == ap.KIND_CONFIRMATION:
                self._receive_confirmation(c, conn, rq, qm, out)
            else:
                self._receive_sequenced(c, conn, rq, qm, msg.msg_id, out)
        except DuplicateMessage:
            log.info("duplicate message on %s dropped", conn_id)
        except (CryptoError, ap.EnvelopeError, AgentError) as e:
            log.warning("undecodable message on %s dropped: %s", conn_id, e)
        return out

    def _receive_confirmation(
        self,
        c: sqlite3.Connection,
        conn: ConnRow,
        rq: RcvQueueRow,
        qm: ap.QueueMessage,
        out: _Received,
    ) -> None:
        if rq.status != "new":
            log.info("repeated confirmation on %s ignored", conn.conn_id)
            return
        assert qm.sender_box_public is not None
        plain = QueueBox(rq.box_private, qm.sender_box_public).decrypt(qm.box_ciphertext)
        body = ap.decode_confirmation_body(plain)
        if conn.role == "initiator":
            if body.x3dh is None or conn.x3dh_private is None or conn.status != INVITED:
                raise AgentError("confirmation without the joiner's keys")
            own = X3DHKeyPair.from_bytes(conn.x3dh_private)
            state = init_initiator(initiator_agree(own, X3DHPublic.from_bytes(body.x3dh)), own)
        else:
            if conn.ratchet is None:
                raise AgentError("confirmation before our own was made")
            state = RatchetState.from_bytes(conn.ratchet)
        state, decrypted = ratchet_decrypt(state, body.ratchet_message)
        message = ap.decode_agent_message(decrypted)
        c.execute(
            "UPDATE rcv_queues SET status = 'confirmed', peer_box_public = ?, "
            "peer_sender_key = ? WHERE conn_id = ?",
            (qm.sender_box_public, body.sender_key, conn.conn_id),
        )
        c.execute(
            "UPDATE connections SET ratchet = ?, x3dh_private = NULL, updated_at = ? "
            "WHERE conn_id = ?",
            (state.to_bytes(), now(), conn.conn_id),
        )
        if isinstance(message, ap.JoinConfirmation | ap.AllowConfirmation):
            c.execute(
                "UPDATE connections SET peer_info = ? WHERE conn_id = ?",
                (message.info, conn.conn_id),
            )
        if conn.role == "initiator" and isinstance(message, ap.JoinConfirmation):
            conf_id = _new_id()
            c.execute(
                "INSERT INTO confirmations (conf_id, conn_id, reply_queue, info, status, "
                "created_at) VALUES (?, ?, ?, ?, 'pending', ?)",
                (
                    conf_id,
                    conn.conn_id,
                    ap.encode_queue_address(message.reply_queue),
                    message.info,
                    now(),
                ),
            )
            set_conn_status(c, conn.conn_id, CONFIRMATION)
            out.events.append(ev.Conf(conf_id, message.info))
        elif conn.role == "joiner" and isinstance(message, ap.AllowConfirmation):
            out.commands.append(
                insert_command(
                    c,
                    "int:" + _new_id(),
                    conn.conn_id,
                    "SECURE",
                    rq.relay,
                    CommandArgs(),
                    internal=True,
                )
            )
            out.events.append(ev.Info(message.info))
        else:
            raise AgentError(f"unexpected {type(message).__name__} as confirmation")

    def _receive_sequenced(
        self,
        c: sqlite3.Connection,
        conn: ConnRow,
        rq: RcvQueueRow,
        qm: ap.QueueMessage,
        relay_msg_id: bytes,
        out: _Received,
    ) -> None:
        if rq.peer_box_public is None or conn.ratchet is None:
            raise AgentError("message before the confirmation")
        rmsg = QueueBox(rq.box_private, rq.peer_box_public).decrypt(qm.box_ciphertext)
        state, decrypted = ratchet_decrypt(RatchetState.from_bytes(conn.ratchet), rmsg)
        message = ap.decode_agent_message(decrypted)
        if not isinstance(message, ap.Sequenced):
            raise AgentError(f"unexpected {type(message).__name__} after the handshake")
        c.execute(
            "UPDATE connections SET ratchet = ? WHERE conn_id = ?", (state.to_bytes(), conn.conn_id)
        )
        if message.msg_id <= conn.rcv_msg_id:
            log.info("message %d on %s seen before", message.msg_id, conn.conn_id)
            return
        integrity = "ok"
        if message.msg_id > conn.rcv_msg_id + 1:
            integrity = f"skipped {message.msg_id - conn.rcv_msg_id - 1}"
        elif message.prev_hash != conn.rcv_prev_hash:
            integrity = "bad hash"
        c.execute(
            "UPDATE connections SET rcv_msg_id = ?, rcv_prev_hash = ?, updated_at = ? "
            "WHERE conn_id = ?",
            (message.msg_id, ap.message_hash(decrypted), now(), conn.conn_id),
        )
        match message.content:
            case ap.Hello():
                c.execute(
                    "UPDATE rcv_queues SET status = 'active' WHERE conn_id = ?", (conn.conn_id,)
                )
                if conn.role == "initiator" and conn.snd_msg_id == 0:
                    fresh = get_conn(c, conn.conn_id)
                    assert fresh is not None
                    self._enqueue_delivery(c, fresh, ap.Hello(), internal=True)
                    out.kick_delivery = True
                snd = get_snd_queue(c, conn.conn_id)
                if snd is not None and snd.status == "active" and conn.status != READY:
                    set_conn_status(c, conn.conn_id, READY)
                    out.events.append(ev.Con())
            case ap.UserMessage(body):
                internal_id = conn.last_rcv_internal_id + 1
                c.execute(
                    "INSERT INTO rcv_messages (conn_id, msg_id, sender_msg_id, relay_msg_id, "
                    "body, integrity, status, received_at) VALUES (?, ?, ?, ?, ?, ?, "
                    "'received', ?)",
                    (
                        conn.conn_id,
                        internal_id,
                        message.msg_id,
                        relay_msg_id,
                        body,
                        integrity,
                        now(),
                    ),
                )
                c.execute(
                    "UPDATE connections SET last_rcv_internal_id = ? WHERE conn_id = ?",
                    (internal_id, conn.conn_id),
                )
                out.events.append(ev.Msg(internal_id, message.msg_id, body, integrity))
                out.ack = False  # the client acknowledges with ack_message

    # ------------------------------------------------------------ safety net

    async def _net_loop(self) -> None:
        while True:
            await asyncio.sleep(self.config.net.interval * self._rng.uniform(0.75, 1.25))
            try:
                await self.check_subscriptions()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("checking subscriptions failed")

    async def check_subscriptions(self, everything: bool = False) -> int:
        """One pass of the safety net: every receive queue in use is kept subscribed, and
        those that are due (or all, with `everything`) are checked at their relay: GET
        (a waiting message is received as if pushed), then SUB on the current session.
        Returns how many messages were found waiting."""

        found_before = self._net.found
        t = time.monotonic()
        due: list[tuple[RcvQueueRow, AuthKey]] = []
        for rq, conn_status in await self._db.run(rcv_queues_with_status):
            if conn_status == DELETED:
                continue
            key = AuthKey.from_bytes(rq.recipient_key)
            client = self._relays.client(rq.relay)
            client.keep_subscribed(rq.recipient_id, key)  # after END or a refusal: again
            self._rcv_index.setdefault((rq.relay, rq.recipient_id), rq.conn_id)
            if not client.connected:
                continue  # the reconnect renews every subscription
            expecting = conn_status != READY or rq.status != "active"
            if everything or self._net.due((rq.relay, rq.recipient_id), expecting, t):
                due.append((rq, key))
        for i in range(0, len(due), 32):  # a bounded number of checks in flight
            await asyncio.gather(*(self._check_queue(rq, key) for rq, key in due[i : i + 32]))
        self._net.pass_done(now())
        return self._net.found - found_before

    async def _check_queue(self, rq: RcvQueueRow, key: AuthKey) -> None:
        qk = (rq.relay, rq.recipient_id)
        client = self._relays.client(rq.relay)
        seen = self._net.seen(qk)
        try:
            msg = await client.get(rq.recipient_id, key)
            held = client.is_subscribed(rq.recipient_id)
            await client.renew(rq.recipient_id, key)
            self._taken_over.discard(qk)
            finding = None
            # a message pushed meanwhile was received normally: the GET's copy is then old
            fresh = msg is not None and self._net.seen(qk) == seen
            if fresh and msg is not None and await self._on_message(rq.relay, rq.recipient_id, msg):
                finding = Finding(rq.conn_id, rq.relay, now())
                log.warning(
                    "safety net: a message waited on %s for connection %s", rq.relay, rq.conn_id
                )
            self._net.checked(qk, time.monotonic(), renewed=not held, found=finding)
        except RelayError as e:
            self._net.failed(qk, time.monotonic(), str(e))

    # ------------------------------------------------------------ delivery

    def _kick_delivery(self, conn_id: str) -> None:
        wake = self._delivery_wake.setdefault(conn_id, asyncio.Event())
        wake.set()
        task = self._delivery_tasks.get(conn_id)
        if task is None or task.done():
            self._delivery_tasks[conn_id] = asyncio.create_task(
                self._deliver(conn_id), name=f"agent-deliver-{conn_id}"
            )

    async def _deliver(self, conn_id: str) -> None:
        wake = self._delivery_wake.setdefault(conn_id, asyncio.Event())
        while not self._closed:
            wake.clear()
            row, snd, conn = await self._db.run(lambda c: _next_delivery(c, conn_id))
            if row is None or snd is None or conn is None or conn.status == DELETED:
                self._delivery_tasks.pop(conn_id, None)
                return
            t = now()
            if t >= row.expires_at:
                await self._delivery_failed(row, "not delivered within its time to live")
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
                await self._delivery_retry(row, str(e), self.config.retry)
                continue
            except PermanentRelayError as e:
                if e.code == ErrorCode.QUOTA:
                    await self._delivery_retry(row, str(e), self.config.quota_retry)
                elif e.code == ErrorCode.AUTH and row.internal:
                    # HELLO before the peer secured its queue: it will, so try again
                    await self._delivery_retry(row, str(e), self.config.retry)
                else:
                    await self._delivery_failed(row, str(e))
                continue
            await self._delivered(row)

    async def _delivery_retry(self, row: DeliveryRow, error: str, backoff: Backoff) -> None:
        attempts = row.attempts + 1
        next_try = now() + backoff.delay(attempts, self._rng)
        await self._db.run(
            lambda c: c.execute(
                "UPDATE deliveries SET attempts = ?, last_error = ?, next_try = ? "
                "WHERE conn_id = ? AND msg_id = ?",
                (attempts, error, next_try, row.conn_id, row.msg_id),
            )
        )

    async def _delivery_failed(self, row: DeliveryRow, reason: str) -> None:
        def tx(c: sqlite3.Connection) -> None:
            c.execute(
                "UPDATE deliveries SET status = 'failed', last_error = ?, envelope = x'' "
                "WHERE conn_id = ? AND msg_id = ?",
                (reason, row.conn_id, row.msg_id),
            )

        await self._db.run(tx)
        self._emit("", row.conn_id, ev.MErr(row.msg_id, reason))

    async def _delivered(self, row: DeliveryRow) -> None:
        def tx(c: sqlite3.Connection) -> bool:
            c.execute(
                "DELETE FROM deliveries WHERE conn_id = ? AND msg_id = ?", (row.conn_id, row.msg_id)
            )
            if not row.internal:
                return False
            c.execute("UPDATE snd_queues SET status = 'active' WHERE conn_id = ?", (row.conn_id,))
            conn, rq = get_conn(c, row.conn_id), get_rcv_queue(c, row.conn_id)
            if conn and rq and rq.status == "active" and conn.status not in (READY, DELETED):
                set_conn_status(c, row.conn_id, READY)
                return True
            return False

        connected = await self._db.run(tx)
        if not row.internal:
            self._emit("", row.conn_id, ev.Sent(row.msg_id))
        if connected:
            self._emit("", row.conn_id, ev.Con())


class _Received(msgspec.Struct):
    events: list[ev.Event] = msgspec.field(default_factory=list)
    commands: list[CommandRow] = msgspec.field(default_factory=list)
    ack: bool = False
    kick_delivery: bool = False
    queue: RcvQueueRow | None = None
    new: bool = False  # the relay message had not been received before


# ---------------------------------------------------------------- transaction helpers


def _advance(
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


def _check_new_corr_id(c: sqlite3.Connection, corr_id: str) -> None:
    if not corr_id:
        raise AgentError("a corr id is required")
    if c.execute("SELECT 1 FROM commands WHERE corr_id = ?", (corr_id,)).fetchone():
        raise DuplicateCommand(f"corr id already used: {corr_id}")


def _check_size(body: bytes, limit: int = ap.MAX_MESSAGE_SIZE) -> None:
    if len(body) > limit:
        raise AgentError(f"message too large: {len(body)} bytes (at most {limit})")


def _insert_conn(
    c: sqlite3.Connection, conn_id: str, role: str, x3dh_private: bytes, invitation: str | None
) -> None:
    t = now()
    c.execute(
        "INSERT INTO connections (conn_id, role, status, x3dh_private, invitation, created_at, "
        "updated_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
        (conn_id, role, NEW, x3dh_private, invitation, t, t),
    )


def _live_conn(c: sqlite3.Connection, conn_id: str) -> ConnRow:
    conn = get_conn(c, conn_id)
    if conn is None or conn.status == DELETED:
        raise AgentError(f"no connection {conn_id}")
    return conn


def _has_pending(c: sqlite3.Connection, conn_id: str, kind: str) -> bool:
    return (
        c.execute(
            "SELECT 1 FROM commands WHERE conn_id = ? AND kind = ? AND status = 'pending'",
            (conn_id, kind),
        ).fetchone()
        is not None
    )


def _get_confirmation(c: sqlite3.Connection, conf_id: str) -> bytes:
    row = c.execute("SELECT reply_queue FROM confirmations WHERE conf_id = ?", (conf_id,))
    r = row.fetchone()
    if r is None:
        raise AgentError(f"no confirmation {conf_id}")
    reply: bytes = r[0]
    return reply


def _insert_rcv_queue(c: sqlite3.Connection, q: RcvQueueRow) -> None:
    c.execute(
        "INSERT INTO rcv_queues (conn_id, relay, recipient_id, sender_id, recipient_key, "
        "box_private, status) VALUES (?, ?, ?, ?, ?, ?, ?)",
        (q.conn_id, q.relay, q.recipient_id, q.sender_id, q.recipient_key, q.box_private, q.status),
    )


def _insert_snd_queue(c: sqlite3.Connection, q: SndQueueRow) -> None:
    c.execute(
        "INSERT OR REPLACE INTO snd_queues (conn_id, relay, sender_id, sender_key, box_private, "
        "peer_box_public, status) VALUES (?, ?, ?, ?, ?, ?, ?)",
        (q.conn_id, q.relay, q.sender_id, q.sender_key, q.box_private, q.peer_box_public, q.status),
    )


def _finish(c: sqlite3.Connection, corr_id: str, event: ev.Event, internal: bool) -> None:
    if internal:
        c.execute("DELETE FROM commands WHERE corr_id = ?", (corr_id,))
    else:
        c.execute(
            "UPDATE commands SET status = 'done', event = ?, updated_at = ? WHERE corr_id = ?",
            (ev.encode_event(event), now(), corr_id),
        )


def _delete_command(c: sqlite3.Connection, corr_id: str, done_only: bool = False) -> None:
    if done_only:
        c.execute("DELETE FROM commands WHERE corr_id = ? AND status = 'done'", (corr_id,))
    else:
        c.execute("DELETE FROM commands WHERE corr_id = ?", (corr_id,))


def _next_delivery(
    c: sqlite3.Connection, conn_id: str
) -> tuple[DeliveryRow | None, SndQueueRow | None, ConnRow | None]:
    r = c.execute(
        "SELECT conn_id, msg_id, internal, envelope, attempts, last_error, next_try, expires_at "
        "FROM deliveries WHERE conn_id = ? AND status = 'pending' ORDER BY msg_id LIMIT 1",
        (conn_id,),
    ).fetchone()
    row = DeliveryRow(r[0], r[1], bool(r[2]), *r[3:]) if r else None
    return row, get_snd_queue(c, conn_id), get_conn(c, conn_id)

"""Agent events into the chat: one handler per agent event, as simplex-chat's Subscriber.

Completion events (INV, OK, ERR with a corr id) resume their continuation; the others
(CONF, REQ, INFO, CON, MSG, RSYNC, RCVD, SENT, MERR, UP, DOWN) each run one state change
and carry out its effects. The controller calls `handle` with its lock held, one event at
a time.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sqlite3
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any

from parley.agent import Agent, AgentError
from parley.agent import events as aev
from parley.chat import addresses, handshake, inbox, items, store
from parley.chat import events as cev
from parley.chat.crash import crash_point
from parley.chat.effects import Effects
from parley.chat.engine import Engine
from parley.chat.model import ACK_PREFIX, DEL_PREFIX, ITEM_ERROR, ITEM_SENT, ChatConfig
from parley.store import Database, DatabaseClosed

log = logging.getLogger(__name__)


@dataclass(eq=False)
class Subscriber:
    db: Database
    agent: Agent
    engine: Engine
    config: ChatConfig
    publish: Callable[[cev.ChatEvent], None]
    _acks: set[asyncio.Task[None]] = field(init=False, default_factory=set)

    async def handle(self, e: aev.AgentEvent) -> None:
        if e.corr_id:
            if not e.corr_id.startswith((ACK_PREFIX, DEL_PREFIX)):  # those have no continuation
                await self.engine.run_continuation(e.corr_id, e.conn_id, e.event)
            self._in_background(self.agent.ack_command_event(e.corr_id))
            return
        conn = e.conn_id
        match e.event:
            case aev.Conf(conf_id, info):
                await self.apply(lambda c: handshake.on_conf(c, conn, conf_id, info))
            case aev.Req(inv_id, info):
                await self.apply(lambda c: addresses.on_request(c, conn, inv_id, info))
            case aev.Info(info):
                await self.on_info(conn, info)
            case aev.Con():
                await self.on_con(conn)
            case aev.Msg():
                await self.on_msg(conn, e.event)
            case aev.RSync(state, reason, done):
                crash_point(f"rsync-event:{state}")  # (tests: before the chat shows it)
                await self.apply(lambda c: items.on_rsync(c, conn, state, reason, done))
                await self._after_rsync(conn, state)
            case aev.Rcvd(msg_id, snd_msg_id, status):
                try:
                    await self.apply(lambda c: inbox.on_rcvd(c, conn, snd_msg_id, status))
                finally:
                    self._ack(conn, msg_id)
            case aev.Sent(msg_id):
                await self.apply(lambda c: inbox.on_sent(c, conn, msg_id, ITEM_SENT, ""))
            case aev.MErr(msg_id, reason):
                await self.apply(lambda c: inbox.on_sent(c, conn, msg_id, ITEM_ERROR, reason))
            case aev.Up(relay, conns):
                self.publish(cev.RelayStatus(relay, True, len(conns)))
            case aev.Down(relay, conns):
                self.publish(cev.RelayStatus(relay, False, len(conns)))
            case _:
                pass

    async def apply(self, tx: Callable[[sqlite3.Connection], Effects]) -> None:
        """Run a state change (the lock is held), then carry out its effects."""
        await self.engine.perform(await self.db.run(tx))

    async def on_info(self, agent_conn: str, info: bytes) -> None:
        await self.apply(lambda c: handshake.on_info(c, agent_conn, info))

    async def on_con(self, agent_conn: str) -> None:
        peer_info: bytes | None = None
        if await self.db.run(lambda c: handshake.needs_peer_info(c, agent_conn)):
            # no contact yet: the agent has the peer's connection info
            status = await self.agent.connection_status(agent_conn)
            peer_info = status.peer_info if status is not None else None
        await self.apply(lambda c: handshake.on_con(c, self.config, agent_conn, peer_info))

    async def on_msg(self, agent_conn: str, msg: aev.Msg) -> None:
        receipt = False
        try:
            fx = await self.db.run(
                lambda c: inbox.on_msg(
                    c, agent_conn, msg.body, msg.msg_id, msg.integrity, self.config
                )
            )
            receipt = fx.receipt
            await self.engine.perform(fx)
        finally:  # a message that cannot be handled must not block the ones after it
            self._ack(agent_conn, msg.msg_id, receipt)

    async def on_rsync_status(self, agent_conn: str, state: str, done: int) -> None:
        """At start: the agent's re-synchronisation state of a connection, in case its
        RSYNC event was lost in a crash (`items.rsync_caught_up`)."""
        await self.apply(lambda c: items.rsync_caught_up(c, agent_conn, state, done))
        await self._after_rsync(agent_conn, state)

    async def _after_rsync(self, agent_conn: str, state: str) -> None:
        if state in ("agreed", "ok"):  # messages that waited for the new keys
            waiting = await self.db.run(lambda c: store.outbox_ids(c, agent_conn))
            await self.engine.perform(Effects(outbox=waiting))
        if state == "required" and self.config.ratchet_auto_sync:
            with contextlib.suppress(AgentError):
                await self.agent.synchronize_ratchet(agent_conn)

    def _ack(self, agent_conn: str, msg_id: int, receipt: bool = False) -> None:
        self._in_background(
            self.agent.ack_message_async(
                f"{ACK_PREFIX}{agent_conn}:{msg_id}", agent_conn, msg_id, receipt, event=False
            )
        )

    def _in_background(self, ack: Coroutine[Any, Any, None]) -> None:
        """Acknowledge to the agent without waiting for its commit: the next event need not
        wait. An acknowledgement lost in a crash only makes the agent report the event again
        at the next start, which the chat handles like any repeat."""
        task = asyncio.create_task(ack)
        self._acks.add(task)
        task.add_done_callback(self._ack_done)

    def _ack_done(self, task: asyncio.Task[None]) -> None:
        self._acks.discard(task)
        error = None if task.cancelled() else task.exception()
        # AgentError: e.g. the connection was deleted since
        if error is not None and not isinstance(error, AgentError | DatabaseClosed):
            log.error("acknowledging to the agent failed: %r", error)

    async def settle(self) -> None:
        """Wait for the acknowledgements under way (before the agent closes)."""
        await asyncio.gather(*self._acks, return_exceptions=True)

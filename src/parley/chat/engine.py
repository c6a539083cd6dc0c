"""The engine: carries out what committed transactions asked (`Effects`), in order: sends
the outbox rows to the agent, issues the stored agent calls, deletes agent connections,
publishes the events, and wakes the callers waiting for a result.

This is the chat's only way to the agent's write calls; a rule never calls the agent.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import logging
import sqlite3
from collections.abc import Callable
from typing import Protocol

from parley.agent import AgentError, DuplicateCommand, EncryptionRenegotiating
from parley.agent import events as aev
from parley.chat import continuations, items, model, store
from parley.chat import events as cev
from parley.chat.crash import crash_point
from parley.chat.effects import Effects, unb64
from parley.chat.model import DEL_PREFIX
from parley.store import Database

log = logging.getLogger(__name__)


class AgentCalls(Protocol):
    """The agent calls the engine makes (`parley.agent.Agent` has them)."""

    async def send_message(self, conn_id: str, body: bytes) -> int: ...
    async def create_connection_async(self, corr_id: str, contact: bool = False) -> str: ...
    async def accept_contact_async(self, corr_id: str, inv_id: str, info: bytes) -> str: ...
    async def reject_contact(self, inv_id: str) -> None: ...
    async def join_connection_async(self, corr_id: str, link: str, info: bytes) -> str: ...
    async def allow_connection_async(
        self, corr_id: str, conn_id: str, conf_id: str, info: bytes
    ) -> None: ...
    async def delete_connection_async(self, corr_id: str, conn_id: str) -> None: ...
    async def wait_delivered(self, conn_id: str, timeout: float) -> bool: ...


class Engine:
    def __init__(
        self,
        db: Database,
        agent: AgentCalls,
        publish: Callable[[cev.ChatEvent], None],
        lock: asyncio.Lock,
    ) -> None:
        self._db = db
        self._agent = agent
        self._publish = publish
        self._lock = lock  # the controller's: one state change at a time
        self._waiters: dict[str, asyncio.Future[object]] = {}

    async def perform(self, fx: Effects) -> None:
        """Send the outbox rows, issue the agent calls, publish the events of a commit."""
        if fx.label:
            crash_point(fx.label)
        if fx.outbox:
            await self._send_outbox(fx.outbox)
        if fx.commands:
            await self._issue(fx.commands)
        for agent_conn in fx.deletes:
            await self.delete_agent_connection(agent_conn)
        for inv_id in fx.rejects:
            with contextlib.suppress(AgentError):  # answered before a crash
                await self._agent.reject_contact(inv_id)
        for e in fx.events:
            self._publish(e)
        for key, value in fx.waiters:
            fut = self._waiters.pop(key, None)
            if fut is not None and not fut.done():
                fut.set_result(value)

    async def resume(self) -> None:
        """At start: send the outbox, issue the calls not issued before a crash."""
        outbox = await self._db.run(store.outbox_ids)
        commands = await self._db.run(store.unissued_command_ids)
        await self.perform(Effects(outbox=outbox, commands=commands))

    async def run_continuation(self, command_id: str, agent_conn: str, event: aev.Event) -> None:
        fx = await self._db.run(lambda c: continuations.run(c, command_id, agent_conn, event))
        await self.perform(fx)

    async def _send_outbox(self, outbox_ids: list[int]) -> None:
        """Hand the outbox rows to the agent: in order on each connection, the connections
        side by side; then off the outbox in one transaction."""
        rows = await self._db.run(lambda c: store.outbox_rows(c, outbox_ids))
        per_conn: dict[str, list[store.OutboxRow]] = {}
        for row in rows:
            per_conn.setdefault(row.agent_conn_id, []).append(row)
        sent: list[tuple[store.OutboxRow, int]] = []
        refused: list[tuple[store.OutboxRow, str]] = []

        async def send(conn_rows: list[store.OutboxRow]) -> None:
            for row in conn_rows:
                try:
                    msg_id = await self._agent.send_message(row.agent_conn_id, row.body)
                except EncryptionRenegotiating as e:
                    # stays in the outbox: sent when the re-negotiation is done (or at start)
                    log.info("message to %s waits: %s", row.agent_conn_id, e)
                    return
                except AgentError as e:
                    log.warning("message to %s not sent: %s", row.agent_conn_id, e)
                    refused.append((row, str(e)))
                    continue
                crash_point("outbox:sent")
                sent.append((row, msg_id))

        await asyncio.gather(*(send(conn_rows) for conn_rows in per_conn.values()))

        def tx(c: sqlite3.Connection) -> Effects:
            for row, msg_id in sent:
                store.outbox_sent(c, row, msg_id)
            fx = Effects()
            for row, reason in refused:
                fx.merge(_refused(c, row, reason))
            return fx

        if sent or refused:
            await self.perform(await self._db.run(tx))

    async def _issue(self, command_ids: list[str]) -> None:
        """Issue the stored agent calls side by side (each has its own correlation id);
        then note them issued in one transaction."""
        rows = await self._db.run(lambda c: store.commands_to_issue(c, command_ids))
        issued = await asyncio.gather(*(self._issue_one(row) for row in rows))

        def tx(c: sqlite3.Connection) -> None:
            for row, (ok, conn_id) in zip(rows, issued, strict=True):
                if not ok:
                    continue
                store.mark_issued(c, row.command_id)
                if conn_id is not None and row.connection_id is not None:
                    store.set_connection(c, row.connection_id, agent_conn_id=conn_id)

        if any(ok for ok, _ in issued):
            await self._db.run(tx)

    async def _issue_one(self, row: store.CommandRow) -> tuple[bool, str | None]:
        """Make one stored agent call: (issued, the agent connection it made if any)."""
        command_id = row.command_id
        call = json.loads(row.agent_call)
        conn_id: str | None = None
        try:
            match call["op"]:
                case model.OP_CREATE if call.get("contact"):
                    conn_id = await self._agent.create_connection_async(command_id, contact=True)
                case model.OP_CREATE:
                    conn_id = await self._agent.create_connection_async(command_id)
                case model.OP_ACCEPT:
                    conn_id = await self._agent.accept_contact_async(
                        command_id, call["inv"], unb64(call["info"])
                    )
                case model.OP_JOIN:
                    conn_id = await self._agent.join_connection_async(
                        command_id, call["link"], unb64(call["info"])
                    )
                case model.OP_ALLOW:
                    await self._agent.allow_connection_async(
                        command_id, call["conn"], call["conf"], unb64(call["info"])
                    )
        except DuplicateCommand:
            pass  # issued before a crash: its completion event will come
        except AgentError as e:
            await self.run_continuation(command_id, "", aev.Err(str(e), "REFUSED"))
            return False, None
        crash_point(f"issued:{call['op']}")
        return True, conn_id

    async def delete_agent_connection(self, agent_conn_id: str) -> None:
        with contextlib.suppress(AgentError):
            await self._agent.delete_connection_async(DEL_PREFIX + agent_conn_id, agent_conn_id)

    async def delete_after_sent(self, conns: list[str]) -> None:
        """Delete connections once what was queued on them is sent (or after a minute)."""
        for agent_conn in conns:
            await self._agent.wait_delivered(agent_conn, 60.0)
            async with self._lock:
                await self._db.run(
                    functools.partial(store.delete_agent_connection, agent_conn_id=agent_conn)
                )
                await self.delete_agent_connection(agent_conn)

    def waiter(self, key: str) -> asyncio.Future[object]:
        fut: asyncio.Future[object] = asyncio.get_running_loop().create_future()
        self._waiters[key] = fut
        return fut

    @staticmethod
    async def wait(fut: asyncio.Future[object], timeout: float) -> object:
        try:
            async with asyncio.timeout(timeout):
                return await asyncio.shield(fut)
        except TimeoutError:
            return None


def _refused(c: sqlite3.Connection, row: store.OutboxRow, reason: str) -> Effects:
    """The agent refused a message for good: its item's delivery (if it carried one)
    failed."""
    item_id = store.outbox_refused(c, row)
    if item_id is None:
        return Effects()
    return items.delivery_settled(c, item_id, row.agent_conn_id, model.ITEM_ERROR, reason)

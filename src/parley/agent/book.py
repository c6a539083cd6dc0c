"""The command book: the commands in flight, their completion, and the callers waiting.

The book mirrors the pending rows of the `commands` table in memory. A call writes its
command (with whatever it changed) in one transaction; once that has committed the book
registers the command and wakes the scheduler. Completing a command commits the step's
effects, the end of the command and its event in one transaction, then hands the event to
the synchronous caller waiting for it, or to the client's event stream.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Callable
from typing import TypeVar

from parley.agent import events as ev
from parley.agent import store
from parley.agent.model import AgentError
from parley.agent.store import CommandRow
from parley.store import Database

T = TypeVar("T")


class CommandBook:
    def __init__(self, db: Database) -> None:
        self.db = db
        self.events: asyncio.Queue[ev.AgentEvent] = asyncio.Queue()
        self.commands: dict[str, CommandRow] = {}  # pending, by corr id
        self.running: set[str] = set()  # corr ids of the commands being executed
        self.waiters: dict[str, asyncio.Future[ev.Event]] = {}  # synchronous calls
        self.wake = asyncio.Event()  # the scheduler looks at the book again

    def emit(self, corr_id: str, conn_id: str, event: ev.Event) -> None:
        self.events.put_nowait(ev.AgentEvent(corr_id, conn_id, event))

    def register(self, cmd: CommandRow) -> None:
        """A committed command is due: let the scheduler see it."""
        self.commands[cmd.corr_id] = cmd
        self.wake.set()

    def hurry(self, relay: str, t: float) -> None:
        """Commands for `relay` (and those choosing a relay) waiting for their timer go now."""
        for cmd in self.commands.values():
            if cmd.relay in (relay, None) and cmd.next_try > t:
                cmd.next_try = t
        self.wake.set()

    async def commit_then(
        self, tx: Callable[[sqlite3.Connection], T], then: Callable[[T], None]
    ) -> T:
        """Run `tx`; once it has committed, `then(result)` runs even if the caller was
        cancelled meanwhile (otherwise a committed command would wait for a restart)."""
        fut = self.db.schedule(tx)

        def done(f: asyncio.Future[T]) -> None:
            if not f.cancelled() and f.exception() is None:
                then(f.result())

        fut.add_done_callback(done)
        return await asyncio.shield(fut)

    async def add(self, corr_id: str, tx: Callable[[sqlite3.Connection], CommandRow]) -> None:
        """Commit the command `tx` writes (refusing a used corr id), then register it.

        A `sync:` corr id makes it a synchronous call's: one attempt, a waiter, no event."""

        def run(c: sqlite3.Connection) -> CommandRow:
            store.check_new_corr_id(c, corr_id)
            cmd = tx(c)
            if cmd.corr_id.startswith("sync:"):
                cmd.args.once = True
                cmd.internal = True
                store.mark_synchronous(c, cmd)
            return cmd

        def registered(cmd: CommandRow) -> None:
            if cmd.args.once:
                self.waiters[cmd.corr_id] = asyncio.get_running_loop().create_future()
            self.register(cmd)

        await self.commit_then(run, registered)

    async def wait_once(self, corr_id: str) -> ev.Event:
        """The completion of a synchronous call; its ERR raises AgentError."""
        fut = self.waiters.get(corr_id)
        if fut is None:
            raise AgentError("unknown synchronous command")
        try:
            result = await fut
        finally:
            self.waiters.pop(corr_id, None)
        if isinstance(result, ev.Err):
            raise AgentError(result.reason)
        return result

    async def save_progress(
        self, cmd: CommandRow, tx: Callable[[sqlite3.Connection], object]
    ) -> None:
        """Commit an intermediate step together with the command's updated arguments."""

        def run(c: sqlite3.Connection) -> None:
            tx(c)
            store.save_command_args(c, cmd)

        await self.db.run(run)

    async def complete(
        self,
        cmd: CommandRow,
        event: ev.Event,
        effects: Callable[[sqlite3.Connection], None] | None = None,
    ) -> None:
        """Commit `effects`, the end of the command and its event in one transaction."""

        def tx(c: sqlite3.Connection) -> None:
            if effects is not None:
                effects(c)
            store.finish_command(c, cmd.corr_id, event, cmd.internal)

        await self.db.run(tx)
        self.commands.pop(cmd.corr_id, None)
        self.completed(cmd.corr_id, cmd.conn_id, event, cmd.internal)

    def completed(self, corr_id: str, conn_id: str, event: ev.Event, internal: bool) -> None:
        """Hand a committed completion to its waiter, or to the client (unless internal)."""
        fut = self.waiters.get(corr_id)
        if fut is not None:
            if not fut.done():
                fut.set_result(event)
        elif not internal:
            self.emit(corr_id, conn_id, event)

    def close(self) -> None:
        for fut in self.waiters.values():
            if not fut.done():
                fut.set_exception(AgentError("agent closed"))

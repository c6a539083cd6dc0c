"""A chat without relays or processes, for fast tests of its rules: a real chat store on a
temporary SQLite file, the real engine, and a recording stand-in for the agent below it."""

from __future__ import annotations

import asyncio
import itertools
import sqlite3
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

from parley.agent import events as aev
from parley.chat import events as cev
from parley.chat import handshake, inbox, store
from parley.chat.effects import Effects
from parley.chat.engine import Engine
from parley.chat.model import (
    C_READY,
    CAT_HOST,
    CAT_USER,
    G_ACTIVE,
    K_MEMBER_GROUP,
    M_CONNECTED,
    M_CREATOR,
    ChatConfig,
)
from parley.protocol import chat as cp
from parley.store import Database

T = TypeVar("T")


@dataclass
class RecordingAgent:
    """Records the calls the chat makes; connection ids are made up."""

    sent: list[tuple[str, bytes]] = field(default_factory=list)
    calls: list[tuple[str, str, tuple[object, ...]]] = field(default_factory=list)
    _ids: itertools.count[int] = field(default_factory=lambda: itertools.count(1))

    async def send_message(self, conn_id: str, body: bytes) -> int:
        self.sent.append((conn_id, body))
        return len(self.sent)

    async def create_connection_async(self, corr_id: str, contact: bool = False) -> str:
        self.calls.append(("create", corr_id, (contact,) if contact else ()))
        return f"agent-{next(self._ids)}"

    async def accept_contact_async(self, corr_id: str, inv_id: str, info: bytes) -> str:
        self.calls.append(("accept", corr_id, (inv_id, info)))
        return f"agent-{next(self._ids)}"

    async def reject_contact(self, inv_id: str) -> None:
        self.calls.append(("reject", "", (inv_id,)))

    async def join_connection_async(self, corr_id: str, link: str, info: bytes) -> str:
        self.calls.append(("join", corr_id, (link, info)))
        return f"agent-{next(self._ids)}"

    async def allow_connection_async(
        self, corr_id: str, conn_id: str, conf_id: str, info: bytes
    ) -> None:
        self.calls.append(("allow", corr_id, (conn_id, conf_id, info)))

    async def delete_connection_async(self, corr_id: str, conn_id: str) -> None:
        self.calls.append(("delete", corr_id, (conn_id,)))

    async def wait_delivered(self, conn_id: str, timeout: float) -> bool:
        return True

    def messages(self, conn_id: str | None = None) -> list[cp.ChatMessage]:
        """The chat messages sent (on `conn_id`), decoded, oldest first."""
        return [cp.decode_chat_message(b) for c, b in self.sent if conn_id in (None, c)]

    def of_kind(self, kind: str) -> list[tuple[str, str, tuple[object, ...]]]:
        return [call for call in self.calls if call[0] == kind]


class Bench:
    """`bench = await Bench.open(path)`: one chat's store, engine and recording agent."""

    def __init__(self, path: Path, db: Database, agent: RecordingAgent) -> None:
        self.path = path
        self.db = db
        self.agent = agent
        self.config = ChatConfig(db_prefix=path, relays=[])
        self.events: asyncio.Queue[cev.ChatEvent] = asyncio.Queue()
        self.engine = Engine(db, agent, self.events.put_nowait, asyncio.Lock())

    @classmethod
    async def open(cls, path: Path, agent: RecordingAgent | None = None) -> Bench:
        db = await Database.open(path, store.MIGRATIONS)
        return cls(path, db, agent or RecordingAgent())

    async def reopen(self) -> Bench:
        """The same store after a restart (what was in memory is gone)."""
        await self.db.close()
        return await Bench.open(self.path, self.agent)

    async def close(self) -> None:
        await self.db.close()

    async def read(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        return await self.db.run(fn)

    async def apply(self, tx: Callable[[sqlite3.Connection], Effects]) -> Effects:
        """Run a rule in a transaction, then carry out its effects."""
        fx = await self.db.run(tx)
        await self.engine.perform(fx)
        return fx

    async def receive(self, agent_conn: str, params: cp.Params) -> cp.ChatMessage:
        """A chat message arrives on `agent_conn`."""
        msg = cp.make(params)
        body = cp.encode_chat_message(msg)
        await self.apply(lambda c: inbox.on_msg(c, agent_conn, body))
        return msg

    async def con(self, agent_conn: str) -> None:
        await self.apply(lambda c: handshake.on_con(c, self.config, agent_conn, None))

    async def complete(self, command_id: str, agent_conn: str, event: aev.Event) -> None:
        await self.engine.run_continuation(command_id, agent_conn, event)

    def drain(self) -> list[cev.ChatEvent]:
        out = []
        while not self.events.empty():
            out.append(self.events.get_nowait())
        return out


@dataclass(frozen=True)
class Group:
    group_id: int
    user: store.UserRow
    me: int  # member rows
    host: int | None


def ready_connection(c: sqlite3.Connection, kind: str, member_row: int, agent_conn: str) -> int:
    conn = store.insert_connection(c, kind, member_row=member_row, status=C_READY)
    store.set_connection(c, conn, agent_conn_id=agent_conn)
    return conn


def member_group(c: sqlite3.Connection, name: str = "bob", host: str | None = "alice") -> Group:
    """An active group #team of user `name`: a member that joined through `host` (ready
    group connection "host-conn"), or, with no host, its creator."""
    user = store.insert_user(c, name, "")
    gid = store.insert_group(c, user.user_id, "team", "", G_ACTIVE)
    status, role = (M_CONNECTED, "member") if host else (M_CREATOR, "owner")
    me = store.insert_member(c, gid, cp.new_member_id(), role, CAT_USER, status, name)
    host_row = None
    if host:
        host_row = store.insert_member(
            c, gid, cp.new_member_id(), "owner", CAT_HOST, M_CONNECTED, host
        )
        ready_connection(c, K_MEMBER_GROUP, host_row, "host-conn")
    return Group(gid, user, me, host_row)

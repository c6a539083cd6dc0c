"""The chat controller: contacts and groups on top of the agent, driven by continuations.

Every agent call is asynchronous. Before making it, the chat stores a continuation row
(`commands`: the corr id, what to do on completion, and the call itself); when the agent
reports INV/OK/ERR with that corr id, the continuation runs, its result and the command's
end commit in one transaction, and only then is the agent event acknowledged. Chat
messages to send go through an outbox in the same transaction as the state change that
causes them. After a crash, the outbox is sent again and unissued calls are issued again;
receivers drop repeats by message id, and continuations check their state first, so
running anything twice changes nothing more.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import logging
import random
import secrets
import sqlite3
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import msgspec

from parley.agent import events as aev
from parley.agent.agent import Agent, AgentConfig, AgentError, DuplicateCommand, PendingReport
from parley.chat import events as cev
from parley.chat import store as s
from parley.chat.crash import crash_point
from parley.chat.store import C_ACCEPTED, C_FAILED, C_JOINED, C_READY, C_REQUESTED, C_SND_READY
from parley.protocol import chat as cp
from parley.store import Database

log = logging.getLogger(__name__)
T = TypeVar("T")


class ChatError(Exception):
    """A command the chat refuses, with a reason a person can act on."""


@dataclass
class ChatConfig:
    db_prefix: Path
    relays: list[str]
    # The host re-introduces a pair of members that makes no progress: the first time
    # `intro_timeout` after the introduction's last change, then each time `intro_backoff`
    # times later, up to `intro_timeout_max`; each wait varies by up to ±`intro_jitter`
    # (a share of it), so that stuck pairs do not all come back at once.
    intro_timeout: float = 90.0
    intro_backoff: float = 2.0
    intro_timeout_max: float = 900.0
    intro_jitter: float = 0.2
    intro_check_interval: float = 10.0  # how often the host looks for such pairs
    agent: dict[str, Any] = field(default_factory=dict)  # extra AgentConfig settings


def intro_delay(config: ChatConfig, attempts: int, jitter: float = 0.0) -> float:
    """How long the host waits, after an introduction's last change, before re-introducing
    the pair, when the introduction was sent `attempts` times: `intro_timeout`, times
    `intro_backoff` for each attempt after the first, at most `intro_timeout_max`; `jitter`
    (from -1 to 1) varies it by that share of `intro_jitter`."""
    base = config.intro_timeout * config.intro_backoff ** min(max(attempts - 1, 0), 30)
    base = min(base, max(config.intro_timeout_max, config.intro_timeout))
    return base * (1.0 + config.intro_jitter * max(-1.0, min(1.0, jitter)))


@dataclass
class _After:
    """What a transaction asks to do once it has committed."""

    outbox: list[int] = field(default_factory=list)
    commands: list[str] = field(default_factory=list)
    events: list[cev.ChatEvent] = field(default_factory=list)
    waiters: list[tuple[str, object]] = field(default_factory=list)
    deletes: list[str] = field(default_factory=list)  # agent connections to delete
    label: str = ""  # names the step, for crash points in tests

    def merge(self, other: _After) -> None:
        self.label = self.label or other.label
        self.deletes += other.deletes
        self.outbox += other.outbox
        self.commands += other.commands
        self.events += other.events
        self.waiters += other.waiters


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def _unb64(text: str) -> bytes:
    return base64.b64decode(text)


class ChatController:
    """`chat = await ChatController.open(config)`; call its methods; read `chat.events`."""

    def __init__(self, config: ChatConfig, db: Database, agent: Agent) -> None:
        self.config = config
        self._db = db
        self.agent = agent
        self.events: asyncio.Queue[cev.ChatEvent] = asyncio.Queue()
        self._lock = asyncio.Lock()
        self._waiters: dict[str, asyncio.Future[object]] = {}
        self._tasks: list[asyncio.Task[None]] = []
        self._closed = False
        self.started = False

    # ------------------------------------------------------------ life cycle

    @classmethod
    async def open(cls, config: ChatConfig) -> ChatController:
        prefix = str(config.db_prefix)
        db = await Database.open(prefix + "_chat.db", s.MIGRATIONS)
        agent_config = AgentConfig(database=Path(prefix + "_agent.db"), relays=config.relays)
        for k, v in config.agent.items():
            setattr(agent_config, k, v)
        agent = await Agent.open(agent_config)
        return cls(config, db, agent)

    async def start(self) -> None:
        """Resume: send the outbox, issue unissued calls, reconcile with the agent, listen."""
        if self.started:
            return
        self.started = True
        async with self._lock:
            pending = await self._db.run(
                lambda c: (
                    [r[0] for r in c.execute("SELECT id FROM outbox ORDER BY id")],
                    [
                        r[0]
                        for r in c.execute(
                            "SELECT command_id FROM commands WHERE status = 'new' "
                            "ORDER BY created_at"
                        )
                    ],
                )
            )
            await self._perform(_After(outbox=pending[0], commands=pending[1]))
            await self._reconcile()
        self._tasks.append(asyncio.create_task(self._listen(), name="chat-agent-events"))
        self._tasks.append(asyncio.create_task(self._reintroduce_loop(), name="chat-reintro"))

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        for t in self._tasks:
            t.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self.agent.close()
        await self._db.close()

    async def __aenter__(self) -> ChatController:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    # ------------------------------------------------------------ users

    async def active_user(self) -> s.UserRow | None:
        return await self._db.run(s.active_user)

    async def create_user(self, display_name: str, full_name: str = "") -> s.UserRow:
        try:
            cp.Profile(display_name, full_name)
        except (cp.ChatMessageError, ValueError) as e:
            raise ChatError(str(e)) from e

        def tx(c: sqlite3.Connection) -> s.UserRow:
            c.execute("UPDATE users SET active = 0")
            cur = c.execute(
                "INSERT INTO users (display_name, full_name, active, created_at) "
                "VALUES (?, ?, 1, ?)",
                (display_name, full_name, s.now()),
            )
            assert cur.lastrowid is not None
            return s.UserRow(cur.lastrowid, display_name, full_name)

        return await self._db.run(tx)

    async def _user(self) -> s.UserRow:
        user = await self._db.run(s.active_user)
        if user is None:
            raise ChatError("no user profile yet: create one first")
        return user

    @staticmethod
    def _profile(user: s.UserRow) -> cp.Profile:
        return cp.Profile(user.display_name, user.full_name)

    # ------------------------------------------------------------ contacts

    async def create_invitation(self, timeout: float = 30.0) -> tuple[int, str | None]:
        """A one-time invitation link (`/c`). Returns (connection id, link or None if the
        relay is unreachable: then InvitationReady follows when it is made)."""
        user = await self._user()
        async with self._lock:

            def tx(c: sqlite3.Connection) -> tuple[int, _After]:
                conn = s.insert_connection(c, s.K_CONTACT)
                after = _After()
                after.commands.append(
                    self._command(c, user, conn, "contact_invitation_created", {}, {"op": "create"})
                )
                return conn, after

            connection_id, after = await self._db.run(tx)
            fut = self._waiter(f"invitation:{connection_id}")
            await self._perform(after)
        link = await self._wait(fut, timeout)
        return connection_id, link if isinstance(link, str) else None

    async def connect(self, link: str) -> int:
        """Join a contact's invitation link (`/c LINK`); ContactConnected follows."""
        user = await self._user()
        info = cp.encode_chat_message(cp.make(cp.XInfo(self._profile(user))))
        from parley.protocol.agent import EnvelopeError, decode_invitation_link

        try:
            decode_invitation_link(link)
        except EnvelopeError as e:
            raise ChatError(str(e)) from e
        async with self._lock:

            def tx(c: sqlite3.Connection) -> tuple[int, _After]:
                conn = s.insert_connection(c, s.K_CONTACT)
                after = _After()
                call = {"op": "join", "link": link, "info": _b64(info)}
                after.commands.append(self._command(c, user, conn, "contact_joined", {}, call))
                return conn, after

            connection_id, after = await self._db.run(tx)
            await self._perform(after)
        return connection_id

    async def contacts(self) -> list[cev.Contact]:
        user = await self._user()
        rows = await self._db.run(
            lambda c: c.execute(
                "SELECT contact_id, local_name, display_name, full_name, status FROM contacts "
                "WHERE user_id = ? AND status != 'deleted' ORDER BY local_name",
                (user.user_id,),
            ).fetchall()
        )
        return [cev.Contact(*r) for r in rows]

    async def send_contact_message(self, name: str, text: str) -> cev.ChatItem:
        user = await self._user()
        msg, body = self._text_message(text)
        async with self._lock:

            def tx(c: sqlite3.Connection) -> tuple[cev.ChatItem, _After]:
                contact = self._contact_named(c, user, name)
                conn = s.contact_connection(c, contact.contact_id)
                if conn is None or conn.status != C_READY or conn.agent_conn_id is None:
                    raise ChatError(f"{name} is not connected yet")
                item_id = self._insert_item(
                    c, user, "snd", text, msg.msg_id, contact_id=contact.contact_id
                )
                after = _After(outbox=[self._outbox(c, conn.agent_conn_id, body, item_id)])
                return self._item_view(c, item_id), after

            item, after = await self._db.run(tx)
            await self._perform(after)
        return item

    async def delete_contact(self, name: str) -> None:
        user = await self._user()
        async with self._lock:

            def tx(c: sqlite3.Connection) -> tuple[list[str], cev.Contact]:
                contact = self._contact_named(c, user, name)
                conns = [
                    r[0]
                    for r in c.execute(
                        "SELECT agent_conn_id FROM connections WHERE contact_id = ? "
                        "AND kind = 'contact' AND agent_conn_id IS NOT NULL "
                        "AND status != 'deleted'",
                        (contact.contact_id,),
                    )
                ]
                c.execute(
                    "UPDATE connections SET status = 'deleted' WHERE contact_id = ? "
                    "AND kind = 'contact'",
                    (contact.contact_id,),
                )
                c.execute(
                    "UPDATE contacts SET status = 'deleted', local_name = local_name || '#' || "
                    "contact_id WHERE contact_id = ?",
                    (contact.contact_id,),
                )
                return conns, _contact_view(contact)

            conns, view = await self._db.run(tx)
            for agent_conn in conns:
                await self._delete_agent_connection(agent_conn)
        self.events.put_nowait(cev.ContactDeleted(view))

    # ------------------------------------------------------------ groups

    async def create_group(self, name: str, full_name: str = "") -> cev.Group:
        user = await self._user()
        try:
            cp.GroupProfile(name, full_name)
        except (cp.ChatMessageError, ValueError) as e:
            raise ChatError(str(e)) from e

        def tx(c: sqlite3.Connection) -> cev.Group:
            local = s.unique_name(c, "groups", user.user_id, name)
            cur = c.execute(
                "INSERT INTO groups (user_id, local_name, display_name, full_name, status, "
                "created_at) VALUES (?, ?, ?, ?, 'active', ?)",
                (user.user_id, local, name, full_name, s.now()),
            )
            assert cur.lastrowid is not None
            s.insert_member(
                c,
                cur.lastrowid,
                cp.new_member_id(),
                "owner",
                s.CAT_USER,
                s.M_CREATOR,
                user.display_name,
                user.full_name,
            )
            return self._group_view(c, cur.lastrowid)

        return await self._db.run(tx)

    async def groups(self) -> list[cev.Group]:
        user = await self._user()

        def read(c: sqlite3.Connection) -> list[cev.Group]:
            ids = c.execute(
                "SELECT group_id FROM groups WHERE user_id = ? AND status != 'deleted' "
                "ORDER BY local_name",
                (user.user_id,),
            )
            return [self._group_view(c, r[0]) for r in ids.fetchall()]

        return await self._db.run(read)

    async def add_member(
        self, group_name: str, contact_name: str, role: str = "member"
    ) -> cev.Member:
        """Invite a contact (`/a group contact [role]`); the host side of step 1."""
        user = await self._user()
        if role not in ("admin", "member", "observer"):
            raise ChatError(f"unknown role {role} (admin, member or observer)")
        async with self._lock:

            def tx(c: sqlite3.Connection) -> tuple[cev.Member, _After]:
                group = self._group_named(c, user, group_name)
                me = s.user_member(c, group.group_id)
                if me.status != s.M_CREATOR:
                    raise ChatError(f"only the creator of #{group.local_name} can add members")
                contact = self._contact_named(c, user, contact_name)
                conn = s.contact_connection(c, contact.contact_id)
                if conn is None or conn.status != C_READY:
                    raise ChatError(f"{contact_name} is not connected yet")
                existing = c.execute(
                    "SELECT member_row FROM members WHERE group_id = ? AND contact_id = ? "
                    "AND status NOT IN ('memLeft', 'memRemoved')",
                    (group.group_id, contact.contact_id),
                ).fetchone()
                if existing:
                    raise ChatError(f"{contact_name} is already a member of #{group.local_name}")
                row = s.insert_member(
                    c,
                    group.group_id,
                    cp.new_member_id(),
                    role,
                    s.CAT_INVITEE,
                    s.M_INVITED,
                    contact.display_name,
                    contact.full_name,
                    contact.contact_id,
                )
                mconn = s.insert_connection(c, s.K_MEMBER_GROUP, member_row=row)
                after = _After()
                after.commands.append(
                    self._command(
                        c,
                        user,
                        mconn,
                        "member_invitation_created",
                        {"member_row": row},
                        {"op": "create"},
                    )
                )
                return self._member_view(c, row), after

            view, after = await self._db.run(tx)
            await self._perform(after)
        return view

    async def join_group(self, group_name: str) -> cev.Group:
        """Accept a group invitation (`/j group`): step 2, join the host's link."""
        user = await self._user()
        async with self._lock:

            def tx(c: sqlite3.Connection) -> tuple[cev.Group, _After]:
                group = self._group_named(c, user, group_name)
                if group.status != "invited" or group.invitation is None:
                    raise ChatError(f"no pending invitation to #{group.local_name}")
                me = s.user_member(c, group.group_id)
                host = c.execute(
                    "SELECT member_row FROM members WHERE group_id = ? AND category = 'host'",
                    (group.group_id,),
                ).fetchone()
                info = self._encode(cp.make(cp.XGrpAcpt(me.member_id)))
                conn = s.insert_connection(c, s.K_MEMBER_GROUP, member_row=host[0])
                c.execute(
                    "UPDATE groups SET status = 'joining' WHERE group_id = ?", (group.group_id,)
                )
                call = {"op": "join", "link": group.invitation, "info": _b64(info)}
                after = _After()
                after.commands.append(
                    self._command(c, user, conn, "group_joined", {"group_id": group.group_id}, call)
                )
                return self._group_view(c, group.group_id), after

            view, after = await self._db.run(tx)
            await self._perform(after)
        return view

    async def members(self, group_name: str) -> list[cev.Member]:
        user = await self._user()

        def read(c: sqlite3.Connection) -> list[cev.Member]:
            group = self._group_named(c, user, group_name)
            return [self._member_view(c, m.member_row) for m in s.members(c, group.group_id)]

        return await self._db.run(read)

    async def send_group_message(self, group_name: str, text: str) -> cev.ChatItem:
        user = await self._user()
        msg, body = self._text_message(text)
        async with self._lock:

            def tx(c: sqlite3.Connection) -> tuple[cev.ChatItem, _After]:
                group = self._group_named(c, user, group_name)
                if group.status not in ("active",):
                    raise ChatError(f"#{group.local_name} is {group.status}: cannot send")
                item_id = self._insert_item(
                    c, user, "snd", text, msg.msg_id, group_id=group.group_id
                )
                after = _After()
                for conn in self._group_connections(c, group.group_id):
                    after.outbox.append(self._outbox(c, conn, body, item_id))
                self._hold_for_connecting_members(c, group.group_id, body, item_id)
                return self._item_view(c, item_id), after

            item, after = await self._db.run(tx)
            await self._perform(after)
        return item

    async def leave_group(self, group_name: str) -> None:
        await self._group_farewell(group_name, "leave")

    async def delete_group(self, group_name: str) -> None:
        await self._group_farewell(group_name, "delete")

    async def _group_farewell(self, group_name: str, how: str) -> None:
        user = await self._user()
        async with self._lock:

            def tx(c: sqlite3.Connection) -> tuple[_After, list[str]]:
                group = self._group_named(c, user, group_name)
                me = s.user_member(c, group.group_id)
                if how == "delete" and me.status != s.M_CREATOR:
                    raise ChatError(f"only the creator can delete #{group.local_name}")
                msg = cp.make(cp.XGrpLeave() if how == "leave" else cp.XGrpDel())
                after = _After()
                for conn in self._group_connections(c, group.group_id):
                    after.outbox.append(self._outbox(c, conn, self._encode(msg)))
                status = "left" if how == "leave" else "deleted"
                c.execute(
                    "UPDATE groups SET status = ? WHERE group_id = ?", (status, group.group_id)
                )
                if how == "delete":
                    c.execute(
                        "UPDATE groups SET local_name = local_name || '#' || group_id "
                        "WHERE group_id = ?",
                        (group.group_id,),
                    )
                s.set_member(c, me.member_row, status=s.M_LEFT)
                view = self._group_view(c, group.group_id)
                if how == "delete":
                    after.events.append(cev.GroupDeleted(view, None))
                return after, self._group_agent_conns(c, group.group_id)

            after, conns = await self._db.run(tx)
            await self._perform(after)
            # deletion waits for the farewell to be sent: the agent sends in order
            self._tasks.append(asyncio.create_task(self._delete_after_sent(conns)))

    async def remove_member(self, group_name: str, member_name: str) -> None:
        user = await self._user()
        async with self._lock:

            def tx(c: sqlite3.Connection) -> tuple[_After, list[str]]:
                group = self._group_named(c, user, group_name)
                me = s.user_member(c, group.group_id)
                if me.status != s.M_CREATOR:
                    raise ChatError(f"only the creator of #{group.local_name} can remove members")
                target = self._member_named(c, group.group_id, member_name)
                msg = cp.make(cp.XGrpMemDel(target.member_id))
                after = _After()
                for conn in self._group_connections(c, group.group_id):
                    after.outbox.append(self._outbox(c, conn, self._encode(msg)))
                s.set_member(c, target.member_row, status=s.M_REMOVED)
                view = self._member_view(c, target.member_row)
                after.events.append(
                    cev.MemberRemoved(self._group_view(c, group.group_id), view, None)
                )
                conns = [
                    x.agent_conn_id
                    for x in s.member_connections(c, target.member_row)
                    if x.agent_conn_id
                ]
                return after, conns

            after, conns = await self._db.run(tx)
            await self._perform(after)
            self._tasks.append(asyncio.create_task(self._delete_after_sent(conns)))

    async def chat_items(
        self, *, contact: str | None = None, group: str | None = None, count: int = 50
    ) -> list[cev.ChatItem]:
        user = await self._user()

        def read(c: sqlite3.Connection) -> list[cev.ChatItem]:
            if contact is not None:
                cid = self._contact_named(c, user, contact).contact_id
                rows = c.execute(
                    "SELECT item_id FROM chat_items WHERE contact_id = ? ORDER BY item_id DESC "
                    "LIMIT ?",
                    (cid, count),
                )
            elif group is not None:
                gid = self._group_named(c, user, group).group_id
                rows = c.execute(
                    "SELECT item_id FROM chat_items WHERE group_id = ? ORDER BY item_id DESC "
                    "LIMIT ?",
                    (gid, count),
                )
            else:
                rows = c.execute(
                    "SELECT item_id FROM chat_items WHERE user_id = ? ORDER BY item_id DESC "
                    "LIMIT ?",
                    (user.user_id, count),
                )
            return [self._item_view(c, r[0]) for r in reversed(rows.fetchall())]

        return await self._db.run(read)

    # ------------------------------------------------------------ status

    async def status(self) -> tuple[PendingReport, list[dict[str, Any]]]:
        """Pending agent commands and deliveries, and pending continuations (with names)."""
        report = await self.agent.pending()

        def read(c: sqlite3.Connection) -> list[dict[str, Any]]:
            rows = c.execute(
                "SELECT command_id, function, status, connection_id, created_at FROM commands "
                "WHERE status IN ('new', 'issued') ORDER BY created_at"
            ).fetchall()
            return [
                {
                    "command_id": r[0],
                    "function": r[1],
                    "status": r[2],
                    "connection": self._describe_connection(c, r[3]),
                    "created_at": r[4],
                }
                for r in rows
            ]

        return report, await self._db.run(read)

    async def describe_agent_connection(self, agent_conn_id: str) -> str:
        def read(c: sqlite3.Connection) -> str:
            conn = s.connection_by_agent_id(c, agent_conn_id)
            return self._describe_connection(c, conn.connection_id if conn else None)

        return await self._db.run(read)

    def _describe_connection(self, c: sqlite3.Connection, connection_id: int | None) -> str:
        conn = s.connection(c, connection_id) if connection_id is not None else None
        if conn is None:
            return "?"
        if conn.contact_id is not None:
            contact = s.contact_by_id(c, conn.contact_id)
            return f"contact {contact.local_name if contact else '?'}"
        if conn.member_row is not None:
            m = s.member(c, conn.member_row)
            g = s.group_by_id(c, m.group_id) if m else None
            kind = "group" if conn.kind == s.K_MEMBER_GROUP else "direct"
            if m and g:
                return f"#{g.local_name} member {m.display_name} ({kind})"
        return f"connection {conn.connection_id} ({conn.status})"

    # ------------------------------------------------------------ transactions' helpers

    def _command(
        self,
        c: sqlite3.Connection,
        user: s.UserRow,
        connection_id: int | None,
        function: str,
        data: dict[str, Any],
        call: dict[str, Any],
    ) -> str:
        """Store a continuation and the agent call it waits for (issued after commit)."""
        command_id = "cmd:" + secrets.token_urlsafe(12)
        t = s.now()
        c.execute(
            "INSERT INTO commands (command_id, user_id, connection_id, function, data, "
            "agent_call, status, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, 'new', ?, ?)",
            (
                command_id,
                user.user_id,
                connection_id,
                function,
                json.dumps(data),
                json.dumps(call),
                t,
                t,
            ),
        )
        return command_id

    def _outbox(
        self, c: sqlite3.Connection, agent_conn_id: str, body: bytes, item_id: int | None = None
    ) -> int:
        cur = c.execute(
            "INSERT INTO outbox (agent_conn_id, body, item_id, created_at) VALUES (?, ?, ?, ?)",
            (agent_conn_id, body, item_id, s.now()),
        )
        assert cur.lastrowid is not None
        return cur.lastrowid

    @staticmethod
    def _text_message(text: str) -> tuple[cp.ChatMessage, bytes]:
        try:
            msg = cp.make(cp.XMsgNew(cp.TextContent(text)))
            return msg, cp.encode_chat_message(msg)
        except cp.ChatMessageError as e:
            raise ChatError(f"cannot send this message: {e.reason}") from e

    @staticmethod
    def _encode(msg: cp.ChatMessage) -> bytes:
        return cp.encode_chat_message(msg)

    def _insert_item(
        self,
        c: sqlite3.Connection,
        user: s.UserRow,
        direction: str,
        text: str,
        shared_msg_id: str | None,
        *,
        contact_id: int | None = None,
        group_id: int | None = None,
        author: int | None = None,
    ) -> int:
        cur = c.execute(
            "INSERT INTO chat_items (user_id, contact_id, group_id, author_member, direction, "
            "shared_msg_id, text, status, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                user.user_id,
                contact_id,
                group_id,
                author,
                direction,
                shared_msg_id,
                text,
                "sending" if direction == "snd" else "received",
                s.now(),
            ),
        )
        assert cur.lastrowid is not None
        return cur.lastrowid

    def _contact_named(self, c: sqlite3.Connection, user: s.UserRow, name: str) -> s.ContactRow:
        contact = s.contact_by_name(c, user.user_id, name.lstrip("@"))
        if contact is None:
            raise ChatError(f"no contact {name}")
        return contact

    def _group_named(self, c: sqlite3.Connection, user: s.UserRow, name: str) -> s.GroupRow:
        group = s.group_by_name(c, user.user_id, name.lstrip("#"))
        if group is None:
            raise ChatError(f"no group #{name.lstrip('#')}")
        return group

    def _member_named(self, c: sqlite3.Connection, group_id: int, name: str) -> s.MemberRow:
        for m in s.members(c, group_id):
            if m.display_name == name and m.category != s.CAT_USER:
                return m
        raise ChatError(f"no member {name}")

    def _group_connections(self, c: sqlite3.Connection, group_id: int) -> list[str]:
        """Agent ids of the ready group connections to the other members."""
        rows = c.execute(
            "SELECT x.agent_conn_id FROM connections x JOIN members m USING (member_row) "
            "WHERE m.group_id = ? AND x.kind = 'member_group' AND x.status = 'ready' "
            "AND m.status NOT IN ('memLeft', 'memRemoved') ORDER BY m.member_row",
            (group_id,),
        )
        return [r[0] for r in rows]

    def _hold_for_connecting_members(
        self, c: sqlite3.Connection, group_id: int, body: bytes, item_id: int
    ) -> None:
        """Keep a group message for the members we are still connecting to; it is sent when
        their group connection is ready. (The host forwards it too; receivers drop the
        second copy by message id. Relying on the host alone loses the message when the
        host learns the pair connected before the message reaches it.)"""
        rows = c.execute(
            "SELECT m.member_row FROM members m WHERE m.group_id = ? "
            "AND (m.category IN ('pre', 'post') "
            # the host: an invitee that joined, whose connection is not ready here yet
            "OR (m.category = 'invitee' AND m.status = 'memAccepted')) "
            "AND m.status NOT IN ('memLeft', 'memRemoved') AND NOT EXISTS ("
            "SELECT 1 FROM connections x WHERE x.member_row = m.member_row "
            "AND x.kind = 'member_group' AND x.status = 'ready')",
            (group_id,),
        ).fetchall()
        for (member_row,) in rows:
            c.execute(
                "INSERT INTO pending_group_messages (member_row, body, item_id, created_at) "
                "VALUES (?, ?, ?, ?)",
                (member_row, body, item_id, s.now()),
            )

    def _release_held(
        self, c: sqlite3.Connection, member_row: int, agent_conn_id: str, after: _After
    ) -> None:
        """The member's group connection is ready: send what was kept for it."""
        rows = c.execute(
            "SELECT id, body, item_id FROM pending_group_messages WHERE member_row = ? ORDER BY id",
            (member_row,),
        ).fetchall()
        for pending_id, body, item_id in rows:
            after.outbox.append(self._outbox(c, agent_conn_id, body, item_id))
            c.execute("DELETE FROM pending_group_messages WHERE id = ?", (pending_id,))

    def _group_agent_conns(self, c: sqlite3.Connection, group_id: int) -> list[str]:
        rows = c.execute(
            "SELECT x.agent_conn_id FROM connections x JOIN members m USING (member_row) "
            "WHERE m.group_id = ? AND x.agent_conn_id IS NOT NULL AND x.status != 'deleted'",
            (group_id,),
        )
        return [r[0] for r in rows]

    # views

    def _group_view(self, c: sqlite3.Connection, group_id: int) -> cev.Group:
        g = s.group_by_id(c, group_id)
        assert g is not None
        return cev.Group(g.group_id, g.local_name, g.display_name, g.full_name, g.status)

    def _member_view(self, c: sqlite3.Connection, member_row: int) -> cev.Member:
        m = s.member(c, member_row)
        assert m is not None
        conn = s.member_connection(c, member_row, s.K_MEMBER_GROUP)
        return cev.Member(
            m.group_id,
            m.member_row,
            m.member_id,
            m.display_name,
            m.full_name,
            m.role,
            m.category,
            m.status,
            conn.status if conn else None,
            m.last_error,
            m.contact_id,
        )

    def _item_view(self, c: sqlite3.Connection, item_id: int) -> cev.ChatItem:
        r = c.execute(
            "SELECT direction, text, status, created_at, contact_id, group_id, author_member, "
            "shared_msg_id FROM chat_items WHERE item_id = ?",
            (item_id,),
        ).fetchone()
        direction, text, status, created, contact_id, group_id, author, shared = r
        contact = s.contact_by_id(c, contact_id) if contact_id else None
        return cev.ChatItem(
            item_id,
            direction,
            text,
            status,
            created,
            _contact_view(contact) if contact else None,
            self._group_view(c, group_id) if group_id else None,
            self._member_view(c, author) if author else None,
            shared,
        )

    # ------------------------------------------------------------ after commit

    async def _perform(self, after: _After) -> None:
        """Send the outbox rows, issue the agent calls, publish the events of a commit."""
        if after.label:
            crash_point(after.label)
        for outbox_id in after.outbox:
            await self._send_outbox(outbox_id)
        for command_id in after.commands:
            await self._issue(command_id)
        for agent_conn in after.deletes:
            await self._delete_agent_connection(agent_conn)
        for e in after.events:
            self.events.put_nowait(e)
        for key, value in after.waiters:
            fut = self._waiters.pop(key, None)
            if fut is not None and not fut.done():
                fut.set_result(value)

    async def _send_outbox(self, outbox_id: int) -> None:
        row = await self._db.run(
            lambda c: c.execute(
                "SELECT agent_conn_id, body, item_id FROM outbox WHERE id = ?", (outbox_id,)
            ).fetchone()
        )
        if row is None:
            return
        agent_conn, body, item_id = row
        try:
            msg_id = await self.agent.send_message(agent_conn, body)
        except AgentError as e:
            log.warning("message to %s not sent: %s", agent_conn, e)
            msg_id = None
        crash_point("outbox:sent")

        def tx(c: sqlite3.Connection) -> None:
            c.execute("DELETE FROM outbox WHERE id = ?", (outbox_id,))
            if msg_id is not None and item_id is not None:
                c.execute(
                    "INSERT OR IGNORE INTO item_deliveries (agent_conn_id, agent_msg_id, item_id) "
                    "VALUES (?, ?, ?)",
                    (agent_conn, msg_id, item_id),
                )

        await self._db.run(tx)

    async def _issue(self, command_id: str) -> None:
        row = await self._db.run(
            lambda c: c.execute(
                "SELECT agent_call, connection_id, status FROM commands WHERE command_id = ?",
                (command_id,),
            ).fetchone()
        )
        if row is None or row[2] != "new":
            return
        call, connection_id = json.loads(row[0]), row[1]
        conn_id: str | None = None
        try:
            match call["op"]:
                case "create":
                    conn_id = await self.agent.create_connection_async(command_id)
                case "join":
                    conn_id = await self.agent.join_connection_async(
                        command_id, call["link"], _unb64(call["info"])
                    )
                case "allow":
                    await self.agent.allow_connection_async(
                        command_id, call["conn"], call["conf"], _unb64(call["info"])
                    )
        except DuplicateCommand:
            pass  # issued before a crash: its completion event will come
        except AgentError as e:
            await self._command_failed(command_id, str(e))
            return
        crash_point(f"issued:{call['op']}")

        def tx(c: sqlite3.Connection) -> None:
            c.execute(
                "UPDATE commands SET status = 'issued', updated_at = ? "
                "WHERE command_id = ? AND status = 'new'",
                (s.now(), command_id),
            )
            if conn_id is not None and connection_id is not None:
                s.set_connection(c, connection_id, agent_conn_id=conn_id)

        await self._db.run(tx)

    async def _command_failed(self, command_id: str, reason: str) -> None:
        await self._run_continuation(command_id, "", aev.Err(reason, "REFUSED"))

    async def _delete_agent_connection(self, agent_conn_id: str) -> None:
        with contextlib.suppress(AgentError):
            await self.agent.delete_connection_async(f"del:{agent_conn_id}", agent_conn_id)

    async def _delete_after_sent(self, conns: list[str]) -> None:
        """Delete connections once what was queued on them is sent (or after a minute)."""
        for agent_conn in conns:
            await self.agent.wait_delivered(agent_conn, 60.0)

            def tx(c: sqlite3.Connection, agent_conn: str = agent_conn) -> None:
                c.execute(
                    "UPDATE connections SET status = 'deleted' WHERE agent_conn_id = ?",
                    (agent_conn,),
                )

            async with self._lock:
                await self._db.run(tx)
                await self._delete_agent_connection(agent_conn)

    def _waiter(self, key: str) -> asyncio.Future[object]:
        fut: asyncio.Future[object] = asyncio.get_running_loop().create_future()
        self._waiters[key] = fut
        return fut

    async def _wait(self, fut: asyncio.Future[object], timeout: float) -> object:
        try:
            async with asyncio.timeout(timeout):
                return await asyncio.shield(fut)
        except TimeoutError:
            return None

    # ------------------------------------------------------------ agent events

    async def _listen(self) -> None:
        async for e in self.agent.events():
            try:
                async with self._lock:
                    await self._on_agent_event(e)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("handling agent event %r failed", e)

    async def _on_agent_event(self, e: aev.AgentEvent) -> None:
        if e.corr_id:
            await self._on_completion(e)
            return
        match e.event:
            case aev.Conf(conf_id, info):
                await self._on_conf(e.conn_id, conf_id, info)
            case aev.Info(info):
                await self._on_info(e.conn_id, info)
            case aev.Con():
                await self._on_con(e.conn_id)
            case aev.Msg():
                await self._on_msg(e.conn_id, e.event)
            case aev.Sent(msg_id):
                await self._on_sent(e.conn_id, msg_id, "sent", "")
            case aev.MErr(msg_id, reason):
                await self._on_sent(e.conn_id, msg_id, "error", reason)
            case aev.Up(relay, conns):
                self.events.put_nowait(cev.RelayStatus(relay, True, len(conns)))
            case aev.Down(relay, conns):
                self.events.put_nowait(cev.RelayStatus(relay, False, len(conns)))
            case _:
                pass

    async def _on_completion(self, e: aev.AgentEvent) -> None:
        if e.corr_id.startswith(("ack:", "del:")):  # no continuation: nothing to resume
            await self.agent.ack_command_event(e.corr_id)
            return
        await self._run_continuation(e.corr_id, e.conn_id, e.event)
        await self.agent.ack_command_event(e.corr_id)

    async def _run_continuation(self, command_id: str, conn_id: str, event: aev.Event) -> None:
        def tx(c: sqlite3.Connection) -> _After:
            row = c.execute(
                "SELECT function, data, connection_id, status, user_id FROM commands "
                "WHERE command_id = ?",
                (command_id,),
            ).fetchone()
            if row is None or row[3] in ("done", "failed"):
                return _After()  # ran before (the event was replayed): nothing more to do
            function, data, connection_id, _, user_id = row
            user = c.execute(
                "SELECT user_id, display_name, full_name FROM users WHERE user_id = ?", (user_id,)
            ).fetchone()
            if connection_id is not None and conn_id:
                conn = s.connection(c, connection_id)
                if conn is not None and conn.agent_conn_id is None:
                    s.set_connection(c, connection_id, agent_conn_id=conn_id)
            handler = _CONTINUATIONS.get(function)
            after = _After()
            ok = not isinstance(event, aev.Err)
            if handler is not None:
                after = handler(self, c, s.UserRow(*user), connection_id, json.loads(data), event)
            after.label = f"k:{function}"
            c.execute(
                "UPDATE commands SET status = ?, result = ?, updated_at = ? WHERE command_id = ?",
                (
                    "done" if ok else "failed",
                    msgspec.json.encode(event).decode(),
                    s.now(),
                    command_id,
                ),
            )
            return after

        after = await self._db.run(tx)
        await self._perform(after)

    # continuations (each runs inside the transaction that ends its command)

    def _fail_connection(
        self, c: sqlite3.Connection, connection_id: int | None, event: aev.Event
    ) -> _After:
        reason = event.reason if isinstance(event, aev.Err) else "failed"
        after = _After()
        existing = s.connection(c, connection_id) if connection_id is not None else None
        if existing is None or existing.status in (s.C_DELETED, C_READY):
            # replaced already (a re-introduction), or it worked after all (an ERR of a
            # retry whose first attempt had gone through): nothing to report
            return after
        assert connection_id is not None
        s.set_connection(c, connection_id, status=C_FAILED, last_error=reason)
        conn = s.connection(c, connection_id)
        if conn is not None and conn.member_row is not None:
            s.set_member(c, conn.member_row, last_error=reason)
            m = s.member(c, conn.member_row)
            assert m is not None
            after.events.append(
                cev.MemberFailed(
                    self._group_view(c, m.group_id), self._member_view(c, m.member_row), reason
                )
            )
        else:
            after.events.append(cev.ConnectionFailed(connection_id, reason))
        return after

    def _k_contact_invitation_created(
        self,
        c: sqlite3.Connection,
        user: s.UserRow,
        connection_id: int | None,
        data: dict[str, Any],
        event: aev.Event,
    ) -> _After:
        assert connection_id is not None
        if not isinstance(event, aev.Inv):
            after = self._fail_connection(c, connection_id, event)
            after.waiters.append((f"invitation:{connection_id}", None))
            return after
        s.set_connection(c, connection_id, link=event.link)
        after = _After(events=[cev.InvitationReady(connection_id, event.link)])
        after.waiters.append((f"invitation:{connection_id}", event.link))
        return after

    def _k_joined(
        self,
        c: sqlite3.Connection,
        user: s.UserRow,
        connection_id: int | None,
        data: dict[str, Any],
        event: aev.Event,
    ) -> _After:
        """JOIN finished (contact, group, or an introduced member's link): wait for INFO."""
        if not isinstance(event, aev.Ok):
            return self._fail_connection(c, connection_id, event)
        assert connection_id is not None
        conn = s.connection(c, connection_id)
        if conn is not None and conn.status == s.C_NEW:
            s.set_connection(c, connection_id, status=C_JOINED)
        gid = data.get("group_id")
        if gid is not None:
            me = s.user_member(c, gid)
            if me.status == s.M_INVITED:
                s.set_member(c, me.member_row, status=s.M_ACCEPTED)
        return _After()

    def _k_allowed(
        self,
        c: sqlite3.Connection,
        user: s.UserRow,
        connection_id: int | None,
        data: dict[str, Any],
        event: aev.Event,
    ) -> _After:
        if not isinstance(event, aev.Ok):
            return self._fail_connection(c, connection_id, event)
        assert connection_id is not None
        conn = s.connection(c, connection_id)
        if conn is not None and conn.status in (s.C_NEW, C_REQUESTED):
            s.set_connection(c, connection_id, status=C_ACCEPTED)
        return _After()

    def _k_member_invitation_created(
        self,
        c: sqlite3.Connection,
        user: s.UserRow,
        connection_id: int | None,
        data: dict[str, Any],
        event: aev.Event,
    ) -> _After:
        """Step 1 (host): the link for the invitee exists; send it x.grp.inv."""
        if not isinstance(event, aev.Inv):
            return self._fail_connection(c, connection_id, event)
        assert connection_id is not None
        s.set_connection(c, connection_id, link=event.link)
        m = s.member(c, data["member_row"])
        assert m is not None and m.contact_id is not None
        group = s.group_by_id(c, m.group_id)
        me = s.user_member(c, m.group_id)
        contact_conn = s.contact_connection(c, m.contact_id)
        assert group is not None
        if contact_conn is None or contact_conn.agent_conn_id is None:
            return self._fail_connection(c, connection_id, aev.Err("contact is gone", ""))
        inv = cp.XGrpInv(
            cp.MemberIdRole(me.member_id, me.role),  # type: ignore[arg-type]
            cp.MemberIdRole(m.member_id, m.role),  # type: ignore[arg-type]
            event.link,
            cp.GroupProfile(group.display_name, group.full_name),
        )
        msg = cp.make(inv)
        return _After(outbox=[self._outbox(c, contact_conn.agent_conn_id, self._encode(msg))])

    def _k_intro_link_created(
        self,
        c: sqlite3.Connection,
        user: s.UserRow,
        connection_id: int | None,
        data: dict[str, Any],
        event: aev.Event,
    ) -> _After:
        """Step 4 (newcomer): one of the two links for an introduced member exists; when both
        do, send x.grp.mem.inv to the host, exactly once."""
        intro = s.intro(c, data["intro_id"])
        if intro is None:
            return _After()
        if not isinstance(event, aev.Inv):
            s.set_intro(c, intro.intro_id, last_error=getattr(event, "reason", "failed"))
            return self._fail_connection(c, connection_id, event)
        assert connection_id is not None
        s.set_connection(c, connection_id, link=event.link)
        column = "group_link" if data["which"] == "group" else "direct_link"
        s.set_intro(c, intro.intro_id, **{column: event.link})
        intro = s.intro(c, intro.intro_id)
        assert intro is not None
        after = _After()
        if intro.status == "new":
            self._send_intro_links(c, intro, after)
        return after

    def _send_intro_links(self, c: sqlite3.Connection, intro: s.IntroRow, after: _After) -> None:
        """Step 4's end (newcomer): both links for the introduced member exist: x.grp.mem.inv
        to the host. The introduction becomes `inv_sent` only with the message in the outbox;
        while the connection with the host is not ready (an intro can arrive before our own
        CON), it stays `new` and the host's CON sends it (`_send_waiting_intro_links`)."""
        if intro.status != "new" or not (intro.group_link and intro.direct_link):
            return
        host_conn = self._host_connection(c, intro.group_id)
        m = s.member(c, intro.to_member)
        if host_conn is None or m is None:
            return
        links = cp.IntroInvitation(intro.group_link, intro.direct_link)
        msg = cp.make(cp.XGrpMemInv(m.member_id, links), msg_id=intro.msg_id)
        after.outbox.append(self._outbox(c, host_conn, self._encode(msg)))
        s.set_intro(c, intro.intro_id, status="inv_sent")
        if m.status == s.M_INTRODUCED:
            s.set_member(c, m.member_row, status=s.M_INTRO_INVITED)

    def _send_waiting_intro_links(
        self, c: sqlite3.Connection, group_id: int | None, after: _After
    ) -> None:
        """Send the x.grp.mem.inv of every introduction (of one group, or of all) whose two
        links exist but which waited for the connection with the host."""
        where = (
            "side = 'invitee' AND status = 'new' AND group_link IS NOT NULL "
            "AND direct_link IS NOT NULL"
        )
        params: tuple[object, ...] = ()
        if group_id is not None:
            where += " AND group_id = ?"
            params = (group_id,)
        for intro in s.intros(c, where + " ORDER BY intro_id", params):
            self._send_intro_links(c, intro, after)

    # ------------------------------------------------------------ spontaneous events

    async def _on_conf(self, agent_conn: str, conf_id: str, info: bytes) -> None:
        def tx(c: sqlite3.Connection) -> _After:
            conn = s.connection_by_agent_id(c, agent_conn)
            user = s.active_user(c)
            if conn is None or user is None or conn.status not in (s.C_NEW, C_REQUESTED):
                return _After()
            allowing = c.execute(
                "SELECT 1 FROM commands WHERE connection_id = ? AND function = 'allowed'",
                (conn.connection_id,),
            ).fetchone()
            if allowing:
                return _After()  # an allow is already under way: the CONF was replayed
            try:
                msg = cp.decode_chat_message(info)
            except cp.ChatMessageError as e:
                return self._fail_connection(c, conn.connection_id, aev.Err(f"bad info: {e}", ""))
            s.set_connection(c, conn.connection_id, status=C_REQUESTED)
            reply: cp.Params
            match conn.kind, msg.params:
                case s.K_CONTACT, cp.XInfo(profile):
                    contact_id = self._contact_for(c, user, conn, profile)
                    s.set_connection(c, conn.connection_id, contact_id=contact_id)
                    reply = cp.XOk(self._profile(user))
                case s.K_MEMBER_GROUP, cp.XGrpAcpt(member_id) if conn.member_row is not None:
                    m = s.member(c, conn.member_row)
                    assert m is not None
                    if m.member_id != member_id:
                        return self._fail_connection(
                            c, conn.connection_id, aev.Err("x.grp.acpt from the wrong member", "")
                        )
                    s.set_member(c, m.member_row, status=s.M_ACCEPTED)
                    reply = cp.XOk(self._profile(user))
                case ((s.K_MEMBER_GROUP | s.K_MEMBER_DIRECT), cp.XGrpMemInfo() as mem_info):
                    m = self._check_member_info(c, conn, mem_info)
                    if m is None:
                        return self._fail_connection(
                            c, conn.connection_id, aev.Err(_UNEXPECTED_MEMBER, "")
                        )
                    me = s.user_member(c, m.group_id)
                    reply = cp.XGrpMemInfo(me.member_id, self._profile(user))
                case _:
                    return self._fail_connection(
                        c,
                        conn.connection_id,
                        aev.Err(f"unexpected {msg.event} as confirmation", ""),
                    )
            call = {
                "op": "allow",
                "conn": agent_conn,
                "conf": conf_id,
                "info": _b64(self._encode(cp.make(reply))),
            }
            return _After(
                commands=[self._command(c, user, conn.connection_id, "allowed", {}, call)],
                label=f"conf:{msg.event}",
            )

        await self._perform(await self._db.run(tx))

    @staticmethod
    def _check_member_info(
        c: sqlite3.Connection, conn: s.ConnectionRow, info: cp.XGrpMemInfo
    ) -> s.MemberRow | None:
        """The member a connection is for, if x.grp.mem.info names it (and its profile)."""
        m = s.member(c, conn.member_row) if conn.member_row else None
        if m is None or m.member_id != info.member_id:
            return None  # a mixed-up link: the connection is not the member's
        s.set_member(
            c,
            m.member_row,
            display_name=info.profile.display_name,
            full_name=info.profile.full_name,
        )
        return m

    def _contact_for(
        self, c: sqlite3.Connection, user: s.UserRow, conn: s.ConnectionRow, profile: cp.Profile
    ) -> int:
        if conn.contact_id is not None:
            return conn.contact_id
        local = s.unique_name(c, "contacts", user.user_id, profile.display_name)
        cur = c.execute(
            "INSERT INTO contacts (user_id, local_name, display_name, full_name, status, "
            "created_at) VALUES (?, ?, ?, ?, 'connecting', ?)",
            (user.user_id, local, profile.display_name, profile.full_name, s.now()),
        )
        assert cur.lastrowid is not None
        return cur.lastrowid

    async def _on_info(self, agent_conn: str, info: bytes) -> None:
        def tx(c: sqlite3.Connection) -> _After:
            conn = s.connection_by_agent_id(c, agent_conn)
            user = s.active_user(c)
            if conn is None or user is None:
                return _After()
            try:
                msg = cp.decode_chat_message(info)
            except cp.ChatMessageError as e:
                return self._fail_connection(c, conn.connection_id, aev.Err(f"bad info: {e}", ""))
            if conn.status in (s.C_NEW, C_JOINED):
                s.set_connection(c, conn.connection_id, status=C_SND_READY)
            match conn.kind, msg.params:
                case s.K_CONTACT, cp.XOk(profile):
                    contact_id = self._contact_for(c, user, conn, profile)
                    s.set_connection(c, conn.connection_id, contact_id=contact_id)
                case ((s.K_MEMBER_GROUP | s.K_MEMBER_DIRECT), cp.XGrpMemInfo() as mem_info):
                    if self._check_member_info(c, conn, mem_info) is None:
                        return self._fail_connection(
                            c, conn.connection_id, aev.Err(_UNEXPECTED_MEMBER, "")
                        )
                case _:
                    pass  # x.ok from the host on the group link: nothing to record
            return _After()

        await self._perform(await self._db.run(tx))

    async def _on_con(self, agent_conn: str) -> None:
        known = await self._db.run(lambda c: s.connection_by_agent_id(c, agent_conn))
        peer_info: bytes | None = None
        if known is not None and known.kind == s.K_CONTACT and known.contact_id is None:
            # no contact yet (its INFO was lost, or carried no profile): the agent has the
            # peer's connection info
            status = await self.agent.connection_status(agent_conn)
            peer_info = status.peer_info if status is not None else None

        def tx(c: sqlite3.Connection) -> _After:
            conn = s.connection_by_agent_id(c, agent_conn)
            user = s.active_user(c)
            if conn is None or user is None or conn.status in (C_READY, s.C_DELETED):
                return _After()
            if conn.kind == s.K_CONTACT:
                return self._contact_connection_ready(c, user, conn, peer_info)
            s.set_connection(c, conn.connection_id, status=C_READY, last_error=None)
            assert conn.member_row is not None
            after = self._member_connection_ready(c, user, conn)
            after.label = after.label or "con:member"
            return after

        await self._perform(await self._db.run(tx))

    def _contact_connection_ready(
        self,
        c: sqlite3.Connection,
        user: s.UserRow,
        conn: s.ConnectionRow,
        peer_info: bytes | None,
    ) -> _After:
        """CON of a contact connection. Ready only with its contact: one missing is made
        from the peer's connection info (`x.info` or `x.ok`) the agent kept; without a
        profile there, the connection is failed with the reason, never ready with no one."""
        contact_id = conn.contact_id
        if contact_id is None:
            if conn.status == C_FAILED:
                return _After()  # failed already, with its reason (a bad info, say)
            profile: cp.Profile | None = None
            problem = "the contact's profile never arrived"
            if peer_info is not None:
                try:
                    msg = cp.decode_chat_message(peer_info)
                except cp.ChatMessageError as e:
                    problem = f"bad info: {e}"
                else:
                    if isinstance(msg.params, cp.XInfo | cp.XOk):
                        profile = msg.params.profile
                    else:
                        problem = f"unexpected {msg.event} instead of a profile"
            if profile is None:
                reason = f"connected, but {problem}"
                log.warning("contact connection %s: %s", conn.agent_conn_id, reason)
                return self._fail_connection(c, conn.connection_id, aev.Err(reason, ""))
            contact_id = self._contact_for(c, user, conn, profile)
            s.set_connection(c, conn.connection_id, contact_id=contact_id)
        s.set_connection(c, conn.connection_id, status=C_READY, last_error=None)
        c.execute("UPDATE contacts SET status = 'ready' WHERE contact_id = ?", (contact_id,))
        contact = s.contact_by_id(c, contact_id)
        assert contact is not None
        return _After(events=[cev.ContactConnected(_contact_view(contact))], label="con:contact")

    def _member_connection_ready(
        self, c: sqlite3.Connection, user: s.UserRow, conn: s.ConnectionRow
    ) -> _After:
        assert conn.member_row is not None
        m = s.member(c, conn.member_row)
        assert m is not None
        group = s.group_by_id(c, m.group_id)
        assert group is not None
        me = s.user_member(c, m.group_id)
        after = _After()
        if conn.kind == s.K_MEMBER_GROUP and conn.agent_conn_id is not None:
            self._release_held(c, m.member_row, conn.agent_conn_id, after)
        if m.category == s.CAT_INVITEE and me.status == s.M_CREATOR:
            after.merge(self._invitee_connected(c, user, group, me, m))
            return after
        if m.category == s.CAT_HOST:
            s.set_member(c, m.member_row, status=s.M_CONNECTED)
            s.set_member(c, me.member_row, status=s.M_CONNECTED)
            c.execute("UPDATE groups SET status = 'active' WHERE group_id = ?", (group.group_id,))
            after.events.append(cev.UserJoinedGroup(self._group_view(c, group.group_id)))
            # introductions that came before this CON: their links go to the host now
            self._send_waiting_intro_links(c, group.group_id, after)
            after.label = "con:host"
            return after
        # an introduced member (pre) or one who joined after us (post): both connections
        conns = s.member_connections(c, m.member_row)
        if len(conns) < 2 or any(x.status != C_READY for x in conns):
            return after
        if m.status in s.ACTIVE_MEMBER:
            return after
        s.set_member(c, m.member_row, status=s.M_CONNECTED, last_error=None)
        after.events.append(
            cev.ConnectedToGroupMember(
                self._group_view(c, group.group_id), self._member_view(c, m.member_row)
            )
        )
        if m.category == s.CAT_PRE:  # tell the host which introduction finished
            c.execute(
                "UPDATE introductions SET status = 'connected' WHERE side = 'invitee' "
                "AND to_member = ?",
                (m.member_row,),
            )
            host_conn = self._host_connection(c, group.group_id)
            if host_conn is not None:
                con = cp.make(cp.XGrpMemCon(m.member_id))
                after.outbox.append(self._outbox(c, host_conn, self._encode(con)))
                waiting = c.execute(
                    "SELECT count(*) FROM members WHERE group_id = ? AND category = 'pre' "
                    "AND status NOT IN ('memConnected', 'memComplete', 'memLeft', 'memRemoved')",
                    (group.group_id,),
                ).fetchone()[0]
                if waiting == 0:
                    done = cp.make(cp.XGrpMemConAll(me.member_id))
                    after.outbox.append(self._outbox(c, host_conn, self._encode(done)))
        return after

    def _invitee_connected(
        self,
        c: sqlite3.Connection,
        user: s.UserRow,
        group: s.GroupRow,
        me: s.MemberRow,
        b: s.MemberRow,
    ) -> _After:
        """Step 3 (host): the invitee is connected: announce it and introduce everyone."""
        s.set_member(c, b.member_row, status=s.M_CONNECTED)
        b_info = cp.MemberInfo(
            b.member_id,
            b.role,  # type: ignore[arg-type]
            cp.Profile(b.display_name, b.full_name),
        )
        after = _After(
            events=[
                cev.JoinedGroupMember(
                    self._group_view(c, group.group_id), self._member_view(c, b.member_row)
                )
            ]
        )
        others = [
            m
            for m in s.members(c, group.group_id)
            if m.member_row != b.member_row
            and m.category == s.CAT_INVITEE
            and m.status in (s.M_CONNECTED, s.M_COMPLETE)
        ]
        b_conn = s.member_connection(c, b.member_row, s.K_MEMBER_GROUP)
        assert b_conn is not None and b_conn.agent_conn_id is not None
        for other in others:
            other_conn = s.member_connection(c, other.member_row, s.K_MEMBER_GROUP)
            if other_conn is None or other_conn.agent_conn_id is None:
                continue
            new = cp.make(cp.XGrpMemNew(b_info))
            after.outbox.append(self._outbox(c, other_conn.agent_conn_id, self._encode(new)))
        for other in others:
            after.outbox.append(self._introduce(c, group.group_id, b, other, b_conn.agent_conn_id))
        if not others:
            s.set_member(c, b.member_row, status=s.M_COMPLETE)
        after.label = "con:invitee"
        return after

    def _introduce(
        self,
        c: sqlite3.Connection,
        group_id: int,
        b: s.MemberRow,
        other: s.MemberRow,
        b_agent_conn: str,
        attempts: int = 1,
    ) -> int:
        """Record an introduction of `other` to `b` (the `attempts`-th) and queue the
        x.grp.mem.intro; the pair is re-introduced if it makes no progress in time."""
        t = s.now()
        delay = intro_delay(self.config, attempts, random.uniform(-1.0, 1.0))
        msg = cp.make(
            cp.XGrpMemIntro(
                cp.MemberInfo(
                    other.member_id,
                    other.role,  # type: ignore[arg-type]
                    cp.Profile(other.display_name, other.full_name),
                )
            )
        )
        c.execute(
            "INSERT INTO introductions (group_id, side, re_member, to_member, status, msg_id, "
            "attempts, retry_delay, created_at, updated_at) "
            "VALUES (?, 'host', ?, ?, 'sent', ?, ?, ?, ?, ?)",
            (group_id, b.member_row, other.member_row, msg.msg_id, attempts, delay, t, t),
        )
        return self._outbox(c, b_agent_conn, self._encode(msg))

    def _host_connection(self, c: sqlite3.Connection, group_id: int) -> str | None:
        r = c.execute(
            "SELECT x.agent_conn_id FROM connections x JOIN members m USING (member_row) "
            "WHERE m.group_id = ? AND m.category = 'host' AND x.kind = 'member_group' "
            "AND x.status = 'ready'",
            (group_id,),
        ).fetchone()
        return r[0] if r else None

    async def _on_sent(self, agent_conn: str, msg_id: int, status: str, reason: str) -> None:
        def tx(c: sqlite3.Connection) -> int | None:
            r = c.execute(
                "SELECT item_id FROM item_deliveries WHERE agent_conn_id = ? AND agent_msg_id = ?",
                (agent_conn, msg_id),
            ).fetchone()
            if r is None:
                return None
            c.execute(
                "UPDATE chat_items SET status = ? WHERE item_id = ? AND status != 'sent'",
                (status, r[0]),
            )
            c.execute(
                "DELETE FROM item_deliveries WHERE agent_conn_id = ? AND agent_msg_id = ?",
                (agent_conn, msg_id),
            )
            return int(r[0])

        item_id = await self._db.run(tx)
        if item_id is not None:
            self.events.put_nowait(cev.ChatItemStatus(item_id, status, reason))

    # ------------------------------------------------------------ received messages

    async def _on_msg(self, agent_conn: str, msg: aev.Msg) -> None:
        def tx(c: sqlite3.Connection) -> _After:
            conn = s.connection_by_agent_id(c, agent_conn)
            user = s.active_user(c)
            if conn is None or user is None or conn.status == s.C_DELETED:
                return _After()
            try:
                chat_msg = cp.decode_chat_message(msg.body)
            except cp.ChatMessageError as e:
                log.warning("dropped a bad chat message on %s: %s", agent_conn, e)
                return _After()
            if conn.kind == s.K_CONTACT:
                if not s.first_seen(c, f"conn:{agent_conn}", chat_msg.msg_id):
                    return _After()
                after = self._contact_message(c, user, conn, chat_msg)
                after.label = f"msg:{chat_msg.event}"
                return after
            assert conn.member_row is not None
            sender = s.member(c, conn.member_row)
            if sender is None:
                return _After()
            scope = f"group:{sender.group_id}:{sender.member_id}"
            if not s.first_seen(c, scope, chat_msg.msg_id):
                return _After()
            after = self._group_message(c, user, conn, sender, chat_msg)
            after.label = f"msg:{chat_msg.event}"
            return after

        try:
            after = await self._db.run(tx)
            await self._perform(after)
        finally:  # a message that cannot be handled must not block the ones after it
            with contextlib.suppress(AgentError):
                await self.agent.ack_message_async(
                    f"ack:{agent_conn}:{msg.msg_id}", agent_conn, msg.msg_id
                )

    def _contact_message(
        self, c: sqlite3.Connection, user: s.UserRow, conn: s.ConnectionRow, msg: cp.ChatMessage
    ) -> _After:
        contact = s.contact_by_id(c, conn.contact_id) if conn.contact_id else None
        if contact is None:
            return _After()
        match msg.params:
            case cp.XMsgNew(cp.TextContent(text)):
                item_id = self._insert_item(
                    c, user, "rcv", text, msg.msg_id, contact_id=contact.contact_id
                )
                return _After(events=[cev.NewChatItem(self._item_view(c, item_id))])
            case cp.XGrpInv() as inv:
                return self._group_invitation(c, user, contact, inv)
            case _:
                log.info("ignored %s from contact %s", msg.event, contact.local_name)
                return _After()

    def _group_invitation(
        self, c: sqlite3.Connection, user: s.UserRow, contact: s.ContactRow, inv: cp.XGrpInv
    ) -> _After:
        local = s.unique_name(c, "groups", user.user_id, inv.group_profile.display_name)
        cur = c.execute(
            "INSERT INTO groups (user_id, local_name, display_name, full_name, status, invitation, "
            "created_at) VALUES (?, ?, ?, ?, 'invited', ?, ?)",
            (
                user.user_id,
                local,
                inv.group_profile.display_name,
                inv.group_profile.full_name,
                inv.conn_request,
                s.now(),
            ),
        )
        assert cur.lastrowid is not None
        gid = cur.lastrowid
        s.insert_member(
            c,
            gid,
            inv.invited_member.member_id,
            inv.invited_member.member_role,
            s.CAT_USER,
            s.M_INVITED,
            user.display_name,
            user.full_name,
        )
        s.insert_member(
            c,
            gid,
            inv.from_member.member_id,
            inv.from_member.member_role,
            s.CAT_HOST,
            s.M_INVITED,
            contact.display_name,
            contact.full_name,
            contact.contact_id,
        )
        return _After(
            events=[
                cev.ReceivedGroupInvitation(
                    self._group_view(c, gid), _contact_view(contact), inv.invited_member.member_role
                )
            ]
        )

    def _group_message(
        self,
        c: sqlite3.Connection,
        user: s.UserRow,
        conn: s.ConnectionRow,
        sender: s.MemberRow,
        msg: cp.ChatMessage,
    ) -> _After:
        group = s.group_by_id(c, sender.group_id)
        if group is None or group.status == "deleted":
            return _After()
        gid = group.group_id
        me = s.user_member(c, gid)
        gview = self._group_view(c, gid)
        after = _After()
        match msg.params:
            case cp.XMsgNew(cp.TextContent(text)):
                item_id = self._insert_item(
                    c, user, "rcv", text, msg.msg_id, group_id=gid, author=sender.member_row
                )
                after.events.append(cev.NewChatItem(self._item_view(c, item_id)))
                if me.status == s.M_CREATOR:
                    self._forward(c, gid, sender, msg, after)
            case cp.XGrpMsgForward(author_id, inner) if sender.category == s.CAT_HOST:
                author = s.member_by_id(c, gid, author_id)
                if author is None or not isinstance(inner.params, cp.XMsgNew):
                    return after
                if not s.first_seen(c, f"group:{gid}:{author_id}", inner.msg_id):
                    return after
                item_id = self._insert_item(
                    c,
                    user,
                    "rcv",
                    inner.params.content.text,
                    inner.msg_id,
                    group_id=gid,
                    author=author.member_row,
                )
                after.events.append(cev.NewChatItem(self._item_view(c, item_id)))
            case cp.XGrpMemNew(info) if sender.category == s.CAT_HOST:
                if s.member_by_id(c, gid, info.member_id) is None:
                    row = s.insert_member(
                        c,
                        gid,
                        info.member_id,
                        info.member_role,
                        s.CAT_POST,
                        s.M_ANNOUNCED,
                        info.profile.display_name,
                        info.profile.full_name,
                    )
                    after.events.append(cev.MemberAnnounced(gview, self._member_view(c, row)))
            case cp.XGrpMemIntro(info) if sender.category == s.CAT_HOST:
                after.merge(self._introduced(c, user, gid, info))
            case cp.XGrpMemFwd(info, links) if sender.category == s.CAT_HOST:
                after.merge(self._forwarded(c, user, gid, me, info, links))
            case cp.XGrpMemInv(member_id, links) if me.status == s.M_CREATOR:
                after.merge(self._intro_links(c, gid, sender, member_id, links))
            case cp.XGrpMemCon(member_id) if me.status == s.M_CREATOR:
                other = s.member_by_id(c, gid, member_id)
                if other is not None:
                    c.execute(
                        "UPDATE introductions SET status = 'connected', updated_at = ? "
                        "WHERE side = 'host' AND ((re_member = ? AND to_member = ?) OR "
                        "(re_member = ? AND to_member = ?))",
                        (
                            s.now(),
                            sender.member_row,
                            other.member_row,
                            other.member_row,
                            sender.member_row,
                        ),
                    )
                    self._maybe_complete(c, sender.member_row)
            case cp.XGrpMemConAll() if me.status == s.M_CREATOR:
                self._maybe_complete(c, sender.member_row)
            case cp.XGrpLeave():
                s.set_member(c, sender.member_row, status=s.M_LEFT)
                after.events.append(cev.MemberLeft(gview, self._member_view(c, sender.member_row)))
            case cp.XGrpMemDel(member_id) if sender.category == s.CAT_HOST:
                if member_id == me.member_id:
                    s.set_member(c, me.member_row, status=s.M_REMOVED)
                    c.execute("UPDATE groups SET status = 'removed' WHERE group_id = ?", (gid,))
                    after.events.append(
                        cev.UserRemoved(gview, self._member_view(c, sender.member_row))
                    )
                else:
                    target = s.member_by_id(c, gid, member_id)
                    if target is not None:
                        s.set_member(c, target.member_row, status=s.M_REMOVED)
                        after.events.append(
                            cev.MemberRemoved(
                                gview,
                                self._member_view(c, target.member_row),
                                self._member_view(c, sender.member_row),
                            )
                        )
            case cp.XGrpDel() if sender.category == s.CAT_HOST:
                c.execute(
                    "UPDATE groups SET status = 'deleted', local_name = local_name || '#' "
                    "|| group_id WHERE group_id = ?",
                    (gid,),
                )
                after.events.append(
                    cev.GroupDeleted(
                        self._group_view(c, gid), self._member_view(c, sender.member_row)
                    )
                )
            case _:
                log.info("ignored %s from member %s", msg.event, sender.display_name)
        return after

    def _forward(
        self,
        c: sqlite3.Connection,
        group_id: int,
        author: s.MemberRow,
        msg: cp.ChatMessage,
        after: _After,
    ) -> None:
        """Host: pass a member's message on to members it is not connected to yet."""
        fwd = self._encode(cp.forward(author.member_id, msg))
        for m in s.members(c, group_id):
            if m.member_row == author.member_row or m.category != s.CAT_INVITEE:
                continue
            if m.status not in (s.M_CONNECTED, s.M_COMPLETE):
                continue
            connected = c.execute(
                "SELECT 1 FROM introductions WHERE side = 'host' AND status = 'connected' AND "
                "((re_member = ? AND to_member = ?) OR (re_member = ? AND to_member = ?))",
                (author.member_row, m.member_row, m.member_row, author.member_row),
            ).fetchone()
            if connected:
                continue
            conn = s.member_connection(c, m.member_row, s.K_MEMBER_GROUP)
            if conn is not None and conn.agent_conn_id and conn.status == C_READY:
                after.outbox.append(self._outbox(c, conn.agent_conn_id, fwd))

    def _maybe_complete(self, c: sqlite3.Connection, member_row: int) -> None:
        pending = c.execute(
            "SELECT count(*) FROM introductions WHERE side = 'host' AND re_member = ? "
            "AND status != 'connected'",
            (member_row,),
        ).fetchone()[0]
        if pending == 0:
            s.set_member(c, member_row, status=s.M_COMPLETE)

    def _introduced(
        self, c: sqlite3.Connection, user: s.UserRow, group_id: int, info: cp.MemberInfo
    ) -> _After:
        """Step 4 (newcomer): the host introduced member C: make two links for it."""
        m = s.member_by_id(c, group_id, info.member_id)
        after = _After()
        if m is not None:
            if m.status in s.ACTIVE_MEMBER:
                host_conn = self._host_connection(c, group_id)  # the host missed our x.grp.mem.con
                if host_conn is not None:
                    con = cp.make(cp.XGrpMemCon(m.member_id))
                    after.outbox.append(self._outbox(c, host_conn, self._encode(con)))
                return after
            # a re-introduction: connections still under way are kept (the member may be
            # about to connect through them) and their links offered again; only failed
            # ones are replaced by new links
            conns = s.member_connections(c, m.member_row)
            current = s.intros(c, "side = 'invitee' AND to_member = ?", (m.member_row,))
            if conns and current and all(x.status != C_FAILED for x in conns):
                intro = current[-1]
                host_conn = self._host_connection(c, group_id)
                if intro.group_link and intro.direct_link and host_conn is not None:
                    links = cp.IntroInvitation(intro.group_link, intro.direct_link)
                    inv = cp.make(cp.XGrpMemInv(m.member_id, links))  # a new message id
                    after.outbox.append(self._outbox(c, host_conn, self._encode(inv)))
                    if intro.status == "new":
                        s.set_intro(c, intro.intro_id, status="inv_sent")
                        if m.status == s.M_INTRODUCED:
                            s.set_member(c, m.member_row, status=s.M_INTRO_INVITED)
                return after  # (links not both made yet: they go when they are)
            self._drop_member_connections(c, m.member_row, after)
            row = m.member_row
            s.set_member(c, row, status=s.M_INTRODUCED)
            c.execute("DELETE FROM introductions WHERE side = 'invitee' AND to_member = ?", (row,))
        else:
            row = s.insert_member(
                c,
                group_id,
                info.member_id,
                info.member_role,
                s.CAT_PRE,
                s.M_INTRODUCED,
                info.profile.display_name,
                info.profile.full_name,
            )
        t = s.now()
        cur = c.execute(
            "INSERT INTO introductions (group_id, side, re_member, to_member, status, msg_id, "
            "created_at, updated_at) VALUES (?, 'invitee', ?, ?, 'new', ?, ?, ?)",
            (group_id, s.user_member(c, group_id).member_row, row, cp.new_msg_id(), t, t),
        )
        intro_id = cur.lastrowid
        for which, kind in (("group", s.K_MEMBER_GROUP), ("direct", s.K_MEMBER_DIRECT)):
            conn = s.insert_connection(c, kind, member_row=row)
            after.commands.append(
                self._command(
                    c,
                    user,
                    conn,
                    "intro_link_created",
                    {"intro_id": intro_id, "which": which},
                    {"op": "create"},
                )
            )
        after.events.append(
            cev.MemberConnecting(self._group_view(c, group_id), self._member_view(c, row))
        )
        return after

    def _intro_links(
        self,
        c: sqlite3.Connection,
        group_id: int,
        b: s.MemberRow,
        member_id: str,
        links: cp.IntroInvitation,
    ) -> _After:
        """Step 5 (host): forward the newcomer's links to the introduced member C."""
        other = s.member_by_id(c, group_id, member_id)
        after = _After()
        if other is None:
            return after
        rows = s.intros(
            c, "side = 'host' AND re_member = ? AND to_member = ?", (b.member_row, other.member_row)
        )
        if not rows or rows[0].status == "connected":
            return after
        intro = rows[0]
        conn = s.member_connection(c, other.member_row, s.K_MEMBER_GROUP)
        if conn is None or conn.agent_conn_id is None:
            return after
        fwd = cp.make(
            cp.XGrpMemFwd(
                cp.MemberInfo(
                    b.member_id,
                    b.role,  # type: ignore[arg-type]
                    cp.Profile(b.display_name, b.full_name),
                ),
                links,
            )
        )
        s.set_intro(
            c,
            intro.intro_id,
            status="fwd",
            group_link=links.group_conn_req,
            direct_link=links.direct_conn_req,
        )
        after.outbox.append(self._outbox(c, conn.agent_conn_id, self._encode(fwd)))
        return after

    def _forwarded(
        self,
        c: sqlite3.Connection,
        user: s.UserRow,
        group_id: int,
        me: s.MemberRow,
        info: cp.MemberInfo,
        links: cp.IntroInvitation,
    ) -> _After:
        """Step 6 (existing member): join the newcomer's two links."""
        after = _After()
        m = s.member_by_id(c, group_id, info.member_id)
        if m is None:  # the forward came before x.grp.mem.new
            row = s.insert_member(
                c,
                group_id,
                info.member_id,
                info.member_role,
                s.CAT_POST,
                s.M_ANNOUNCED,
                info.profile.display_name,
                info.profile.full_name,
            )
        elif m.status in s.ACTIVE_MEMBER:
            return after
        else:
            row = m.member_row
            conns = s.member_connections(c, row)
            joined = {x.link for x in conns if x.status != C_FAILED}
            if joined == {links.group_conn_req, links.direct_conn_req}:
                return after  # the same links again: the joins are under way
            self._drop_member_connections(c, row, after)  # new links of a re-introduction
        mem_info = self._encode(cp.make(cp.XGrpMemInfo(me.member_id, self._profile(user))))
        for link, kind in (
            (links.group_conn_req, s.K_MEMBER_GROUP),
            (links.direct_conn_req, s.K_MEMBER_DIRECT),
        ):
            conn = s.insert_connection(c, kind, member_row=row)
            s.set_connection(c, conn, link=link)
            call = {"op": "join", "link": link, "info": _b64(mem_info)}
            after.commands.append(self._command(c, user, conn, "joined", {}, call))
        return after

    def _drop_member_connections(
        self, c: sqlite3.Connection, member_row: int, after: _After
    ) -> None:
        for conn in s.member_connections(c, member_row):
            s.set_connection(c, conn.connection_id, status=s.C_DELETED)
            if conn.agent_conn_id is not None:
                after.deletes.append(conn.agent_conn_id)

    # ------------------------------------------------------------ recovery

    async def _reconcile(self) -> None:
        """After a restart, catch up with what the agent did while events were lost:
        INFO and CON are not replayed, so they are read from the connections' statuses;
        a delivery whose SENT was lost is marked from the agent's pending report."""
        statuses = {st.conn_id: st for st in await self.agent.subscribe_all()}
        missed = await self._db.run(
            lambda c: c.execute(
                "SELECT agent_conn_id, status FROM connections WHERE agent_conn_id IS NOT NULL "
                "AND status NOT IN ('ready', 'deleted', 'failed')"
            ).fetchall()
        )
        for agent_conn, status in missed:
            st = statuses.get(agent_conn)
            if st is None:
                continue
            # a joiner's peer_info is the initiator's INFO: it arrived
            joiner_got_info = st.role == "joiner" and st.peer_info is not None
            if joiner_got_info and st.peer_info is not None and status in (s.C_NEW, C_JOINED):
                await self._on_info(agent_conn, st.peer_info)
            if st.status == "ready":
                await self._on_con(agent_conn)
        report = await self.agent.pending()
        pending = {(d.conn_id, d.msg_id) for d in report.deliveries}
        failed = {(d.conn_id, d.msg_id) for d in report.failed}

        def settle(c: sqlite3.Connection) -> None:
            rows = c.execute("SELECT agent_conn_id, agent_msg_id, item_id FROM item_deliveries")
            for agent_conn, msg_id, item_id in rows.fetchall():
                if (agent_conn, msg_id) in pending:
                    continue
                status = "error" if (agent_conn, msg_id) in failed else "sent"
                c.execute(
                    "UPDATE chat_items SET status = ? WHERE item_id = ? AND status != 'sent'",
                    (status, item_id),
                )
                c.execute(
                    "DELETE FROM item_deliveries WHERE agent_conn_id = ? AND agent_msg_id = ?",
                    (agent_conn, msg_id),
                )

        await self._db.run(settle)

        def waiting_links(c: sqlite3.Connection) -> _After:
            # links made while the host connection was not ready, if its CON was handled
            # before a crash and their sending was not
            after = _After()
            self._send_waiting_intro_links(c, None, after)
            return after

        await self._perform(await self._db.run(waiting_links))

    async def _reintroduce_loop(self) -> None:
        while True:
            await asyncio.sleep(self.config.intro_check_interval)
            try:
                async with self._lock:
                    await self.reintroduce_stale()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("re-introduction check failed")

    async def reintroduce_stale(self, older_than: float | None = None) -> int:
        """Host: introduce again every pair that made no progress in time (each
        introduction's own wait, see `intro_delay`; or `older_than` seconds for all, when
        given); returns how many. By the timer, a newcomer that has not answered since the
        last re-introduction (it is away) gets no more until it says something."""
        now = s.now()

        def tx(c: sqlite3.Connection) -> tuple[int, _After]:
            after = _After()
            count = 0
            for intro in s.intros(c, "side = 'host' AND status != 'connected'", ()):
                if older_than is not None:
                    wait = older_than
                elif intro.retry_delay is not None:
                    wait = intro.retry_delay
                else:  # a row from before the delay was stored
                    wait = intro_delay(self.config, intro.attempts)
                if intro.updated_at + wait > now:
                    continue
                b, other = s.member(c, intro.re_member), s.member(c, intro.to_member)
                if (
                    b is None
                    or other is None
                    or b.status in (s.M_LEFT, s.M_REMOVED)
                    or other.status in (s.M_LEFT, s.M_REMOVED)
                ):
                    continue
                conn = s.member_connection(c, b.member_row, s.K_MEMBER_GROUP)
                if conn is None or conn.agent_conn_id is None or conn.status != C_READY:
                    continue
                if (
                    older_than is None
                    and intro.attempts >= 2
                    and not s.heard_since(c, intro.group_id, b.member_id, intro.created_at)
                ):
                    # the newcomer said nothing since the last re-introduction (it answers
                    # each one): it is away, and more would only pile up in its queue
                    continue
                c.execute("DELETE FROM introductions WHERE intro_id = ?", (intro.intro_id,))
                attempts = intro.attempts + 1
                after.outbox.append(
                    self._introduce(c, intro.group_id, b, other, conn.agent_conn_id, attempts)
                )
                log.info(
                    "re-introducing %s to %s (attempt %d, no progress for %.0f s)",
                    other.display_name,
                    b.display_name,
                    attempts,
                    now - intro.updated_at,
                )
                count += 1
            return count, after

        count, after = await self._db.run(tx)
        await self._perform(after)
        return count


_UNEXPECTED_MEMBER = "x.grp.mem.info from an unexpected member"


def _contact_view(contact: s.ContactRow) -> cev.Contact:
    return cev.Contact(
        contact.contact_id,
        contact.local_name,
        contact.display_name,
        contact.full_name,
        contact.status,
    )


_Continuation = Callable[
    [ChatController, sqlite3.Connection, s.UserRow, int | None, dict[str, Any], aev.Event],
    _After,
]

_CONTINUATIONS: dict[str, _Continuation] = {
    "contact_invitation_created": ChatController._k_contact_invitation_created,
    "contact_joined": ChatController._k_joined,
    "group_joined": ChatController._k_joined,
    "joined": ChatController._k_joined,
    "allowed": ChatController._k_allowed,
    "member_invitation_created": ChatController._k_member_invitation_created,
    "intro_link_created": ChatController._k_intro_link_created,
}

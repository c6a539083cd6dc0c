"""What a transaction asks to be done once it has committed, and how it asks.

A rule runs inside one database transaction and never does I/O: it stores the messages to
send (outbox rows) and the agent calls to make (continuation rows) in that transaction,
and returns them, with the events to publish, as `Effects`; the `Engine` carries them out
after the commit. After a crash, the rows are still there and are carried out at start.
"""

from __future__ import annotations

import base64
import json
import secrets
import sqlite3
from dataclasses import dataclass, field
from typing import Any

from parley.agent import events as aev
from parley.chat import events as cev
from parley.chat import store
from parley.chat.model import OP_ACCEPT, OP_ALLOW, OP_CREATE, OP_JOIN
from parley.protocol import chat as cp


@dataclass
class Effects:
    """What a transaction asks to do once it has committed."""

    outbox: list[int] = field(default_factory=list)
    commands: list[str] = field(default_factory=list)
    events: list[cev.ChatEvent] = field(default_factory=list)
    waiters: list[tuple[str, object]] = field(default_factory=list)
    deletes: list[str] = field(default_factory=list)  # agent connections to delete
    rejects: list[str] = field(default_factory=list)  # agent contact requests to reject
    label: str = ""  # names the step, for crash points in tests
    receipt: bool = False  # a received message was stored: ack it with a delivery receipt

    def merge(self, other: Effects) -> Effects:
        self.label = self.label or other.label
        self.receipt = self.receipt or other.receipt
        self.deletes += other.deletes
        self.rejects += other.rejects
        self.outbox += other.outbox
        self.commands += other.commands
        self.events += other.events
        self.waiters += other.waiters
        return self

    def send(
        self,
        c: sqlite3.Connection,
        agent_conn_id: str,
        message: cp.ChatMessage | bytes,
        item_id: int | None = None,
    ) -> None:
        """Queue a chat message (or an encoded one) on an agent connection."""
        body = message if isinstance(message, bytes) else cp.encode_chat_message(message)
        self.outbox.append(store.insert_outbox(c, agent_conn_id, body, item_id))

    def call(
        self,
        c: sqlite3.Connection,
        user_id: int,
        connection_id: int | None,
        function: str,
        data: dict[str, Any],
        agent_call: dict[str, Any],
    ) -> str:
        """Store a continuation (`function` with `data`, run when the agent completes the
        call) and the agent call it waits for, issued after the commit."""
        command_id = "cmd:" + secrets.token_urlsafe(12)
        store.insert_command(
            c,
            command_id,
            user_id,
            connection_id,
            function,
            json.dumps(data),
            json.dumps(agent_call),
        )
        self.commands.append(command_id)
        return command_id


# the agent calls a continuation waits for (stored as JSON with it)


def create_call(contact: bool = False) -> dict[str, Any]:
    return {"op": OP_CREATE, "contact": True} if contact else {"op": OP_CREATE}


def accept_call(inv_id: str, info: cp.ChatMessage) -> dict[str, Any]:
    return {"op": OP_ACCEPT, "inv": inv_id, "info": b64(cp.encode_chat_message(info))}


def join_call(link: str, info: cp.ChatMessage) -> dict[str, Any]:
    return {"op": OP_JOIN, "link": link, "info": b64(cp.encode_chat_message(info))}


def allow_call(agent_conn_id: str, conf_id: str, info: cp.ChatMessage) -> dict[str, Any]:
    return {
        "op": OP_ALLOW,
        "conn": agent_conn_id,
        "conf": conf_id,
        "info": b64(cp.encode_chat_message(info)),
    }


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def unb64(text: str) -> bytes:
    return base64.b64decode(text)


@dataclass(frozen=True)
class Completion:
    """What a continuation gets when the agent completes its call: the user and the
    connection it was stored for, its data, and the agent's event (INV, OK or ERR)."""

    user: store.UserRow
    connection_id: int | None
    data: dict[str, Any]
    event: aev.Event

    @property
    def reason(self) -> str:
        return self.event.reason if isinstance(self.event, aev.Err) else "failed"

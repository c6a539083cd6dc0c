"""The continuations of agent commands (DESIGN §4): what runs when the agent completes a
call the chat made, by the name stored with the call (`commands.function`).

`run` loads the continuation, runs it, and ends the command in the same transaction; a
continuation that ran already (its event replayed after a crash) changes nothing more.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable

import msgspec

from parley.agent import events as aev
from parley.chat import addresses, contacts, groups, handshake, introductions, store
from parley.chat.effects import Completion, Effects
from parley.chat.model import (
    CMD_FINISHED,
    FN_ADDRESS_CREATED,
    FN_ADDRESS_JOINED,
    FN_ALLOWED,
    FN_CONTACT_INVITATION_CREATED,
    FN_CONTACT_JOINED,
    FN_GROUP_JOINED,
    FN_INTRO_LINK_CREATED,
    FN_JOINED,
    FN_MEMBER_INVITATION_CREATED,
    FN_REQUEST_ACCEPTED,
)

Continuation = Callable[[sqlite3.Connection, Completion], Effects]

# the names are stored: a renamed one needs a migration of `commands.function`
CONTINUATIONS: dict[str, Continuation] = {
    FN_CONTACT_INVITATION_CREATED: contacts.invitation_created,  # CREATE for `/c`
    FN_CONTACT_JOINED: handshake.joined,  # JOIN of `/c LINK`
    FN_GROUP_JOINED: handshake.joined,  # JOIN of `/j group` (seed #779)
    FN_JOINED: handshake.joined,  # JOIN of an introduced member's links (seed #2147)
    FN_ALLOWED: handshake.allowed,  # ALLOW of a CONF (seed #1419, #1486, #1495)
    FN_MEMBER_INVITATION_CREATED: groups.member_invitation_created,  # CREATE (seed #756)
    FN_INTRO_LINK_CREATED: introductions.intro_link_created,  # CREATE (seed #2112)
    FN_ADDRESS_CREATED: addresses.created,  # CREATE of our address or a group link
    FN_ADDRESS_JOINED: contacts.address_joined,  # JOIN of someone's address: request sent
    FN_REQUEST_ACCEPTED: handshake.joined,  # ACCEPT of a request: wait for INFO
}


def run(c: sqlite3.Connection, command_id: str, agent_conn: str, event: aev.Event) -> Effects:
    """Run the continuation of `command_id` with the agent's completion `event` (on the
    agent connection `agent_conn`, if the call made one) and end the command."""
    row = store.command(c, command_id)
    if row is None or row.status in CMD_FINISHED:
        return Effects()  # ran before (the event was replayed): nothing more to do
    user = store.user_by_id(c, row.user_id)
    assert user is not None
    if row.connection_id is not None and agent_conn:
        conn = store.connection(c, row.connection_id)
        if conn is not None and conn.agent_conn_id is None:
            store.set_connection(c, row.connection_id, agent_conn_id=agent_conn)
    handler = CONTINUATIONS.get(row.function)
    fx = Effects()
    if handler is not None:
        fx = handler(c, Completion(user, row.connection_id, json.loads(row.data), event))
    fx.label = f"k:{row.function}"
    ok = not isinstance(event, aev.Err)
    store.finish_command(c, command_id, ok, msgspec.json.encode(event).decode())
    return fx

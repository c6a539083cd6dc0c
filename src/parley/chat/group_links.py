"""Group links: a group's long-term link; whoever joins it is accepted at once as a member
with the link's role, and then introduced to every member as an invited member is."""

from __future__ import annotations

import sqlite3

from parley.chat import store
from parley.chat.effects import Effects
from parley.protocol import chat as cp


def on_request(
    c: sqlite3.Connection,
    user: store.UserRow,
    row: store.LinkRow,
    inv_id: str,
    profile: cp.Profile,
    x_contact_id: str | None,
) -> Effects:
    return Effects(rejects=[inv_id])

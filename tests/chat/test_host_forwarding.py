"""The host passes a member's message on to a member it introduced it to until the
*author* says it connected to that member, not only the other side: a message the author
sent before it knew the newcomer went to the host alone (found by the field chaos test)."""

from __future__ import annotations

import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from parley.chat import store
from parley.chat.model import CAT_INVITEE, I_FWD, K_MEMBER_GROUP, M_CONNECTED, SIDE_HOST
from parley.protocol import chat as cp
from tests.chat.bench import Bench, member_group, ready_connection


@pytest.fixture
async def host(tmp_path: Path) -> AsyncIterator[Bench]:
    b = await Bench.open(tmp_path / "alice_chat.db")
    yield b
    await b.close()


def _text(text: str) -> cp.Params:
    return cp.XMsgNew(cp.TextContent(text))


async def _forwards(host: Bench, conn: str) -> list[str]:
    out: list[str] = []
    for m in host.agent.messages(conn):
        if isinstance(m.params, cp.XGrpMsgForward):
            inner = m.params.msg.params
            assert isinstance(inner, cp.XMsgNew)
            out.append(inner.content.text)
    return out


async def test_messages_are_passed_on_until_their_author_says_it_connected(host: Bench) -> None:
    def setup(c: sqlite3.Connection) -> dict[str, str]:
        group = member_group(c, "alice", host=None)
        ids = {}
        rows = {}
        for name in ("dave", "erin"):
            ids[name] = cp.new_member_id()
            rows[name] = store.insert_member(
                c, group.group_id, ids[name], "member", CAT_INVITEE, M_CONNECTED, name
            )
            ready_connection(c, K_MEMBER_GROUP, rows[name], f"{name}-conn")
        # alice introduced erin (the newcomer) to dave
        store.insert_intro(
            c, group.group_id, SIDE_HOST, rows["erin"], rows["dave"], I_FWD, "m1"
        )
        return ids

    ids = await host.read(setup)
    await host.receive("dave-conn", _text("before anything"))
    assert await _forwards(host, "erin-conn") == ["before anything"]

    # erin says first that she connected to dave; dave's message sent before he knew erin
    # still reaches alice after that, and must still be passed on
    await host.receive("erin-conn", cp.XGrpMemCon(ids["dave"]))
    await host.receive("dave-conn", _text("sent before dave knew erin"))
    assert await _forwards(host, "erin-conn") == ["before anything", "sent before dave knew erin"]
    # erin's own messages: she said it, so they go to dave directly
    await host.receive("erin-conn", _text("from erin"))
    assert await _forwards(host, "dave-conn") == []

    # dave says it: his messages after that went to erin directly
    await host.receive("dave-conn", cp.XGrpMemCon(ids["erin"]))
    await host.receive("dave-conn", _text("after dave connected"))
    assert await _forwards(host, "erin-conn") == ["before anything", "sent before dave knew erin"]

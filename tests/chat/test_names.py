"""Names a member cannot fake: unique within a group (a second alice is alice_1), kept as
the host announced them, invisible characters shown escaped, and a forward "written" by us
dropped. On a real store with a recording agent."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from parley.chat import handshake, store
from parley.chat.model import K_MEMBER_GROUP, safe_name
from parley.protocol import chat as cp
from tests.chat.bench import Bench, member_group


@pytest.fixture
async def bench(tmp_path: Path) -> AsyncIterator[Bench]:
    b = await Bench.open(tmp_path / "chat.db")
    yield b
    await b.close()


def test_safe_name() -> None:
    assert safe_name("alice") == "alice"
    assert safe_name("al\u200bice") == "al\\u200bice"
    assert safe_name("\u202eecila") == "\\u202eecila"
    assert safe_name("émile 😀") == "émile 😀"


async def test_member_names_cannot_be_faked(bench: Bench) -> None:
    group = await bench.read(lambda c: member_group(c, "bob", host="alice"))
    second = cp.MemberInfo(cp.new_member_id(), "member", cp.Profile("alice"))
    await bench.receive("host-conn", cp.XGrpMemNew(second))
    hidden = cp.MemberInfo(cp.new_member_id(), "member", cp.Profile("bo\u200bb"))
    await bench.receive("host-conn", cp.XGrpMemNew(hidden))
    members = await bench.read(lambda c: store.members(c, group.group_id))
    names = [m.display_name for m in members]
    assert names == ["bob", "alice", "alice_1", "bo\\u200bb"]

    # the second alice connects and calls herself "alice" in x.grp.mem.info: still alice_1
    row = next(m for m in members if m.member_id == second.member_id)

    def connection(c: object) -> None:
        conn = store.insert_connection(c, K_MEMBER_GROUP, member_row=row.member_row)  # type: ignore[arg-type]
        store.set_connection(c, conn, agent_conn_id="alice1-conn")  # type: ignore[arg-type]

    await bench.read(connection)
    info = cp.encode_chat_message(cp.make(cp.XGrpMemInfo(second.member_id, cp.Profile("alice"))))
    await bench.apply(lambda c: handshake.on_conf(c, "alice1-conn", "conf-1", info))
    again = await bench.read(lambda c: store.member(c, row.member_row))
    assert again is not None and again.display_name == "alice_1"

    # a forward whose author is us is dropped
    me = await bench.read(lambda c: store.user_member(c, group.group_id))
    fake = cp.make(cp.XMsgNew(cp.TextContent("I never said this")))
    await bench.receive("host-conn", cp.XGrpMsgForward(me.member_id, fake))
    items = await bench.read(
        lambda c: store.last_item_ids(c, 10, user_id=group.user.user_id, group_id=group.group_id)
    )
    assert items == []

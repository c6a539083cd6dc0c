"""Group rules: leaving, removal and deletion between processes; then, without relays (a
real chat store, a recording agent), the order of introduction steps and failures."""

from __future__ import annotations

import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from parley.agent import events as aev
from parley.chat import events as cev
from parley.chat import handshake, store
from parley.chat.controller import ChatController
from parley.chat.effects import Effects, create_call
from parley.chat.model import (
    C_FAILED,
    CAT_PRE,
    CMD_FAILED,
    CMD_ISSUED,
    FN_INTRO_LINK_CREATED,
    FN_JOINED,
    I_NEW,
    K_MEMBER_DIRECT,
    K_MEMBER_GROUP,
    M_INTRODUCED,
    SIDE_INVITEE,
)
from parley.protocol import chat as cp
from parley.relay.server import RelayServer
from parley.testing.waiting import wait_for_condition
from tests.chat.bench import Bench, member_group, ready_connection
from tests.chat.conftest import MakeChat, expect, make_contacts
from tests.chat.test_group import full_mesh


async def group_of_three(make_chat: MakeChat, relay: RelayServer) -> tuple[ChatController, ...]:
    relays = [str(relay.address)]
    a, b, c = [await make_chat(n, relays) for n in ("alice", "bob", "cath")]
    await make_contacts(a, b)
    await make_contacts(a, c)
    await a.create_group("team")
    for member, name in ((b, "bob"), (c, "cath")):
        await a.add_member("team", name)
        await expect(member, cev.ReceivedGroupInvitation)
        await member.join_group("team")
        await expect(member, cev.UserJoinedGroup)
    await wait_for_condition(lambda: full_mesh({"a": a, "b": b, "c": c}, "team"), 30)
    return a, b, c


async def test_leave_remove_delete(relay: RelayServer, make_chat: MakeChat) -> None:
    a, b, c = await group_of_three(make_chat, relay)
    await b.leave_group("team")
    for other in (a, c):
        left = await expect(other, cev.MemberLeft)
        assert left.member.name == "bob"
    await a.send_group_message("team", "after bob left")
    await expect(c, cev.NewChatItem, where=lambda e: e.item.text == "after bob left")

    await a.remove_member("team", "cath")
    removed = await expect(c, cev.UserRemoved)
    assert removed.group.name == "team"
    assert [g.status for g in await c.groups()] == ["removed"]

    await a.delete_group("team")
    assert await a.groups() == []


@pytest.fixture
async def bench(tmp_path: Path) -> AsyncIterator[Bench]:
    b = await Bench.open(tmp_path / "bob_chat.db")
    yield b
    await b.close()


def _issued(c: sqlite3.Connection, fx: Effects) -> None:
    for command_id in fx.commands:
        store.mark_issued(c, command_id)


async def test_forward_before_announcement(bench: Bench) -> None:
    """x.grp.mem.fwd arriving before x.grp.mem.new still creates the member and joins its
    two links; the same forward again, or the late x.grp.mem.new, changes nothing."""
    group = await bench.read(lambda c: member_group(c, "cath"))
    bob = cp.MemberInfo(cp.new_member_id(), "member", cp.Profile("bob"))
    fwd = cp.XGrpMemFwd(bob, cp.IntroInvitation("link-group", "link-direct"))
    await bench.receive("host-conn", fwd)
    members = await bench.read(lambda c: store.members(c, group.group_id))
    assert [(m.display_name, m.category) for m in members][-1] == ("bob", "post")
    joins = bench.agent.of_kind("join")
    assert [call[2][0] for call in joins] == ["link-group", "link-direct"]
    for _, _, (_, info) in joins:
        assert isinstance(info, bytes)
        assert isinstance(cp.decode_chat_message(info).params, cp.XGrpMemInfo)
    await bench.receive("host-conn", fwd)  # (a new message id: not a repeat)
    await bench.receive("host-conn", cp.XGrpMemNew(bob))
    assert len(bench.agent.of_kind("join")) == 2
    members = await bench.read(lambda c: store.members(c, group.group_id))
    assert [m.display_name for m in members].count("bob") == 1


@pytest.mark.parametrize("order", [("group", "direct"), ("direct", "group")])
@pytest.mark.parametrize("restart_between", [False, True])
async def test_both_links_in_either_order_give_one_invitation(
    bench: Bench, order: tuple[str, str], restart_between: bool
) -> None:
    def setup(c: sqlite3.Connection) -> dict[str, str]:
        group = member_group(c)
        cath = store.insert_member(
            c, group.group_id, cp.new_member_id(), "member", CAT_PRE, M_INTRODUCED, "cath"
        )
        intro_id = store.insert_intro(
            c, group.group_id, SIDE_INVITEE, group.me, cath, I_NEW, cp.new_msg_id()
        )
        fx, commands = Effects(), {}
        for which, kind in (("group", K_MEMBER_GROUP), ("direct", K_MEMBER_DIRECT)):
            conn = store.insert_connection(c, kind, member_row=cath)
            data = {"intro_id": intro_id, "which": which}
            commands[which] = fx.call(
                c, group.user.user_id, conn, FN_INTRO_LINK_CREATED, data, create_call()
            )
        _issued(c, fx)
        return commands

    commands = await bench.read(setup)
    first, second = order
    await bench.complete(commands[first], f"conn-{first}", aev.Inv(f"link-{first}"))
    assert bench.agent.sent == []  # one link is not enough
    if restart_between:
        bench = await bench.reopen()
    await bench.complete(commands[second], f"conn-{second}", aev.Inv(f"link-{second}"))
    await bench.complete(commands[second], f"conn-{second}", aev.Inv(f"link-{second}"))
    await bench.complete(commands[first], f"conn-{first}", aev.Inv(f"link-{first}"))
    assert len(bench.agent.sent) == 1  # exactly once, however often the events are replayed
    (msg,) = bench.agent.messages("host-conn")
    assert isinstance(msg.params, cp.XGrpMemInv)
    assert msg.params.member_intro == cp.IntroInvitation("link-group", "link-direct")
    if restart_between:
        await bench.close()


async def test_failed_member_connection_shows_the_reason(bench: Bench) -> None:
    def setup(c: sqlite3.Connection) -> tuple[str, int]:
        group = member_group(c)
        cath = store.insert_member(
            c, group.group_id, cp.new_member_id(), "member", CAT_PRE, M_INTRODUCED, "cath"
        )
        conn = store.insert_connection(c, K_MEMBER_DIRECT, member_row=cath)
        fx = Effects()
        command = fx.call(c, group.user.user_id, conn, FN_JOINED, {}, {"op": "join"})
        _issued(c, fx)
        return command, conn

    command, conn = await bench.read(setup)
    await bench.complete(command, "", aev.Err("relay refused: NO_QUEUE", "NO_QUEUE"))
    (failed,) = bench.drain()
    assert isinstance(failed, cev.MemberFailed)
    assert failed.member.name == "cath" and "NO_QUEUE" in failed.reason
    assert failed.member.last_error and "NO_QUEUE" in failed.member.last_error
    row = await bench.read(lambda c: store.connection(c, conn))
    assert row is not None and row.status == C_FAILED
    k = await bench.read(lambda c: store.command(c, command))
    assert k is not None and k.status == CMD_FAILED
    # the ERR replayed (a crash before the agent's event was acked): nothing more
    await bench.complete(command, "", aev.Err("relay refused: NO_QUEUE", "NO_QUEUE"))
    assert bench.drain() == []


async def test_group_events_only_from_whom_they_may_come(bench: Bench) -> None:
    """Introductions come from the host only (a member's x.grp.mem.intro is ignored);
    removals from an admin or owner (a member's is refused, and said so)."""
    group = await bench.read(lambda c: member_group(c))

    def other_member(c: sqlite3.Connection) -> int:
        row = store.insert_member(
            c, group.group_id, cp.new_member_id(), "member", CAT_PRE, "memConnected", "cath"
        )
        ready_connection(c, K_MEMBER_GROUP, row, "cath-conn")
        return row

    await bench.read(other_member)
    dan = cp.MemberInfo(cp.new_member_id(), "member", cp.Profile("dan"))
    await bench.receive("cath-conn", cp.XGrpMemIntro(dan))
    me = await bench.read(lambda c: store.user_member(c, group.group_id))
    await bench.receive("cath-conn", cp.XGrpMemDel(me.member_id))
    assert bench.agent.calls == []
    events = bench.drain()
    assert [type(e) for e in events] == [cev.GroupMessageRefused]
    members = await bench.read(lambda c: store.members(c, group.group_id))
    assert "dan" not in [m.display_name for m in members]
    assert (await bench.read(lambda c: store.user_member(c, group.group_id))).status == (
        "memConnected"
    )
    await bench.receive("host-conn", cp.XGrpMemIntro(dan))  # from the host: two links
    assert len(bench.agent.of_kind("create")) == 2
    assert CMD_ISSUED in [k.status for k in await bench.read(store.open_commands)]


async def test_a_member_connection_failed_for_a_mixed_up_member_stays_failed(
    bench: Bench,
) -> None:
    """x.grp.mem.info naming another member fails the connection; its later CON does not
    make it ready (nor the member connected)."""

    def setup(c: sqlite3.Connection) -> int:
        group = member_group(c)
        cath = store.insert_member(
            c, group.group_id, cp.new_member_id(), "member", CAT_PRE, M_INTRODUCED, "cath"
        )
        for kind, agent_conn in ((K_MEMBER_GROUP, "cath-group"), (K_MEMBER_DIRECT, "cath-dm")):
            conn = store.insert_connection(c, kind, member_row=cath, status="joined")
            store.set_connection(c, conn, agent_conn_id=agent_conn)
        return cath

    cath = await bench.read(setup)
    wrong = cp.XGrpMemInfo(cp.new_member_id(), cp.Profile("mallory"))
    info = cp.encode_chat_message(cp.make(wrong))
    await bench.apply(lambda c: handshake.on_info(c, "cath-dm", info))
    (failed,) = bench.drain()
    assert isinstance(failed, cev.MemberFailed) and failed.reason == handshake.UNEXPECTED_MEMBER
    await bench.con("cath-group")
    await bench.con("cath-dm")
    conns = await bench.read(lambda c: store.member_connections(c, cath))
    assert [(x.kind, x.status) for x in conns] == [
        (K_MEMBER_GROUP, "ready"),
        (K_MEMBER_DIRECT, C_FAILED),
    ]
    member = await bench.read(lambda c: store.member(c, cath))
    assert member is not None and member.status == M_INTRODUCED
    assert member.last_error == handshake.UNEXPECTED_MEMBER
    assert bench.drain() == [] and bench.agent.sent == []

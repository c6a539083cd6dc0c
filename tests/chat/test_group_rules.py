"""Group rules: leaving, removal, deletion, the order of introduction steps, failures."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest

from parley.agent import events as aev
from parley.chat import events as cev
from parley.chat import store as s
from parley.chat.controller import ChatController
from parley.protocol import chat as cp
from parley.relay.server import RelayServer
from parley.testing.waiting import wait_for_condition
from tests.chat.conftest import MakeChat, chat_config, expect, make_contacts
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


async def test_forward_before_announcement(relay: RelayServer, make_chat: MakeChat) -> None:
    """x.grp.mem.fwd arriving before x.grp.mem.new still creates the member and joins."""
    relays = [str(relay.address)]
    a, c = await make_chat("alice", relays), await make_chat("cath", relays)
    await make_contacts(a, c)
    await a.create_group("team")
    await a.add_member("team", "cath")
    await expect(c, cev.ReceivedGroupInvitation)
    await c.join_group("team")
    await expect(c, cev.UserJoinedGroup)

    # bob's two links, made by a real agent, as a newcomer would make them
    bob = await make_chat("bob", relays)
    _, group_link = await bob.agent.create_connection()
    _, direct_link = await bob.agent.create_connection()
    bob_id = cp.new_member_id()
    fwd = cp.make(
        cp.XGrpMemFwd(
            cp.MemberInfo(bob_id, "member", cp.Profile("bob")),
            cp.IntroInvitation(group_link, direct_link),
        )
    )
    host_conn = await c._db.run(lambda db: c._host_connection(db, 1))
    assert host_conn is not None
    async with c._lock:  # as the host's connection would deliver it
        await c._on_agent_event(
            aev.AgentEvent("", host_conn, aev.Msg(999, 999, cp.encode_chat_message(fwd)))
        )
    members = {m.name: m for m in await c.members("team")}
    assert members["bob"].category == "post" and members["bob"].member_id == bob_id

    async def two_joins() -> bool:
        sql = "SELECT count(*) FROM commands WHERE function = 'joined' AND status != 'new'"
        return await _count(c, sql) == 2

    await wait_for_condition(two_joins, 10)
    # the late x.grp.mem.new changes nothing
    new = cp.make(cp.XGrpMemNew(cp.MemberInfo(bob_id, "member", cp.Profile("bob"))))
    async with c._lock:
        await c._on_agent_event(
            aev.AgentEvent("", host_conn, aev.Msg(1000, 1000, cp.encode_chat_message(new)))
        )
    assert [m.name for m in await c.members("team")].count("bob") == 1


async def _count(chat: ChatController, sql: str) -> int:
    return int((await chat._db.run(lambda db: db.execute(sql).fetchone()))[0])


@pytest.mark.parametrize("order", [("group", "direct"), ("direct", "group")])
@pytest.mark.parametrize("restart_between", [False, True])
async def test_both_links_in_either_order_give_one_invitation(
    relay: RelayServer, tmp_path: Path, order: tuple[str, str], restart_between: bool
) -> None:
    config = chat_config(tmp_path / "bob", [str(relay.address)])
    bob = await ChatController.open(config)
    user = await bob.create_user("bob")
    sent: list[tuple[str, bytes]] = []

    async def record(conn_id: str, body: bytes) -> int:  # the agent below the chat
        sent.append((conn_id, body))
        return len(sent)

    def setup(db: sqlite3.Connection) -> dict[str, str]:
        db.execute(
            "INSERT INTO groups (user_id, local_name, display_name, status, created_at) "
            "VALUES (?, 'team', 'team', 'active', 0)",
            (user.user_id,),
        )
        s.insert_member(db, 1, cp.new_member_id(), "member", s.CAT_USER, s.M_CONNECTED, "bob")
        host = s.insert_member(
            db, 1, cp.new_member_id(), "owner", s.CAT_HOST, s.M_CONNECTED, "alice"
        )
        cath = s.insert_member(
            db, 1, cp.new_member_id(), "member", s.CAT_PRE, s.M_INTRODUCED, "cath"
        )
        conn = s.insert_connection(db, s.K_MEMBER_GROUP, member_row=host, status=s.C_READY)
        s.set_connection(db, conn, agent_conn_id="host-conn")
        db.execute(
            "INSERT INTO introductions (group_id, side, re_member, to_member, status, "
            "msg_id, created_at, updated_at) VALUES (1, 'invitee', 1, ?, 'new', ?, 0, 0)",
            (cath, cp.new_msg_id()),
        )
        commands = {}
        for which, kind in (("group", s.K_MEMBER_GROUP), ("direct", s.K_MEMBER_DIRECT)):
            conn = s.insert_connection(db, kind, member_row=cath)
            commands[which] = bob._command(
                db,
                user,
                conn,
                "intro_link_created",
                {"intro_id": 1, "which": which},
                {"op": "create"},
            )
        db.execute("UPDATE commands SET status = 'issued'")
        return commands

    commands = await bob._db.run(setup)
    bob.agent.send_message = record  # type: ignore[method-assign]
    first, second = order
    await bob._run_continuation(commands[first], f"conn-{first}", aev.Inv(f"link-{first}"))
    assert sent == []  # one link is not enough
    if restart_between:
        await bob.close()
        bob = await ChatController.open(config)
        bob.agent.send_message = record  # type: ignore[method-assign]
    await bob._run_continuation(commands[second], f"conn-{second}", aev.Inv(f"link-{second}"))
    await bob._run_continuation(commands[second], f"conn-{second}", aev.Inv(f"link-{second}"))
    await bob._run_continuation(commands[first], f"conn-{first}", aev.Inv(f"link-{first}"))
    assert len(sent) == 1  # exactly once, however often the events are replayed
    conn_id, body = sent[0]
    msg = cp.decode_chat_message(body)
    assert conn_id == "host-conn" and isinstance(msg.params, cp.XGrpMemInv)
    assert msg.params.member_intro == cp.IntroInvitation("link-group", "link-direct")
    await bob.close()


async def test_failed_member_connection_shows_the_reason(
    relay: RelayServer, make_chat: MakeChat
) -> None:
    _a, b, _c = await group_of_three(make_chat, relay)

    def failing_command(db: sqlite3.Connection) -> tuple[str, int]:
        cath = db.execute("SELECT member_row FROM members WHERE display_name = 'cath'").fetchone()[
            0
        ]
        conn = s.insert_connection(db, s.K_MEMBER_DIRECT, member_row=cath)
        user = s.active_user(db)
        assert user is not None
        return b._command(db, user, conn, "joined", {}, {"op": "join"}), cath

    command, _cath_row = await b._db.run(failing_command)
    async with b._lock:
        await b._run_continuation(command, "", aev.Err("relay refused: NO_QUEUE", "NO_QUEUE"))
    failed = await expect(b, cev.MemberFailed)
    assert failed.member.name == "cath" and "NO_QUEUE" in failed.reason
    cath = next(m for m in await b.members("team") if m.name == "cath")
    assert cath.last_error and "NO_QUEUE" in cath.last_error
    status = await b._db.run(
        lambda db: json.loads(
            json.dumps(
                db.execute(
                    "SELECT status FROM commands WHERE command_id = ?", (command,)
                ).fetchone()[0]
            )
        )
    )
    assert status == "failed"

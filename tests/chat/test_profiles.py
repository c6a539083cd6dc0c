"""Profiles that change: ours announced with x.info to contacts and groups (durably, with
the outbox), a contact's and a member's updated on receipt with names kept unique, and the
group profile (x.grp.info) changed by an owner only, checked by the receivers too."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path
from typing import TypeVar

import pytest

from parley.chat import events as cev
from parley.chat import profiles, store
from parley.chat.controller import ChatController, ChatError
from parley.chat.model import (
    C_READY,
    CAT_INVITEE,
    CAT_POST,
    CT_READY,
    K_CONTACT,
    K_MEMBER_GROUP,
    M_ANNOUNCED,
    M_CONNECTED,
)
from parley.protocol import chat as cp
from parley.relay.server import RelayServer
from parley.testing.waiting import wait_for_condition
from tests.chat.bench import Bench, member_group, ready_connection
from tests.chat.conftest import MakeChat, expect, make_contacts
from tests.chat.test_group import full_mesh
from tests.chat.test_roles import forge_role

E1 = TypeVar("E1", bound=cev.ChatEvent)
E2 = TypeVar("E2", bound=cev.ChatEvent)


async def both(chat: ChatController, one: type[E1], two: type[E2]) -> tuple[E1, E2]:
    """The next event of each kind, in whichever order they come."""
    got: dict[type, cev.ChatEvent] = {}
    async with asyncio.timeout(15):
        while len(got) < 2:
            e = await chat.events.get()
            if isinstance(e, one | two) and type(e) not in got:
                got[type(e)] = e
    a, b = got[one], got[two]
    assert isinstance(a, one) and isinstance(b, two)
    return a, b


@pytest.fixture
async def bench(tmp_path: Path) -> AsyncIterator[Bench]:
    b = await Bench.open(tmp_path / "chat.db")
    yield b
    await b.close()


async def test_profile_update_end_to_end(relay: RelayServer, make_chat: MakeChat) -> None:
    relays = [str(relay.address)]
    a = await make_chat("alice", relays)
    b = await make_chat("bob", relays)
    c = await make_chat("cath", relays)
    await make_contacts(a, b)
    await make_contacts(a, c)
    await a.create_group("team")
    for name, chat in (("bob", b), ("cath", c)):
        await a.add_member("team", name)
        await expect(chat, cev.ReceivedGroupInvitation)
        await chat.join_group("team")
        await expect(chat, cev.UserJoinedGroup)
    chats = {"alice": a, "bob": b, "cath": c}
    await wait_for_condition(lambda: full_mesh(chats, "team"), 30)

    # alice changes her profile: her contacts and the members see it
    user = await a.update_profile("alicia", "Alice A.")
    assert (user.display_name, user.full_name) == ("alicia", "Alice A.")
    mine = await expect(a, cev.UserProfileUpdated)
    assert mine.before.display_name == "alice" and mine.after.display_name == "alicia"
    for chat in (b, c):
        updated, member = await both(chat, cev.ContactUpdated, cev.GroupMemberUpdated)
        assert updated.before.name == "alice"
        assert (updated.after.name, updated.after.full_name) == ("alicia", "Alice A.")
        assert (member.before.name, member.after.name) == ("alice", "alicia")
        assert [x.name for x in await chat.contacts()] == ["alicia"]
        await chat.send_contact_message("alicia", "hi alicia")  # addressed by the new name
    assert await a.update_profile("alicia", "Alice A.") == user  # no change: nothing sent

    # bob calls himself cath: he cannot take cath's place, in the group or among contacts
    await b.update_profile("cath")
    member = await expect(c, cev.GroupMemberUpdated)
    assert (member.before.name, member.after.name) == ("bob", "cath_1")
    updated, member = await both(a, cev.ContactUpdated, cev.GroupMemberUpdated)
    assert (member.before.name, member.after.name) == ("bob", "cath_1")
    assert updated.after.name == "cath_1" and updated.after.display_name == "cath"
    names = sorted(m.name for m in await a.members("team"))
    assert names == ["alicia", "cath", "cath_1"]

    # the group profile: owners only; receivers check it too
    with pytest.raises(ChatError, match="only owners"):
        await b.update_group_profile("team", "bobs")
    group = await a.update_group_profile("team", "crew", "The Crew")
    assert (group.name, group.full_name) == ("crew", "The Crew")
    for chat in (b, c):
        got = await expect(chat, cev.GroupUpdated)
        assert (got.before.name, got.after.name) == ("team", "crew")
        assert got.by is not None and got.by.name == "alicia"
    await forge_role(b, "crew", "owner")
    await b.update_group_profile("crew", "bobs")
    for chat in (a, c):
        refused = await expect(chat, cev.GroupMessageRefused)
        assert "x.grp.info" in refused.reason
        assert [g.name for g in await chat.groups()] == ["crew"]


async def test_profile_goes_out_with_the_outbox(bench: Bench) -> None:
    """x.info is queued in the transaction that changes the profile: to ready contacts and
    group connections, and kept for members still connecting."""

    def setup(c: sqlite3.Connection) -> tuple[store.UserRow, int]:
        g = member_group(c, "bob", host="alice")
        contact = store.insert_contact(c, g.user.user_id, "dan", "", CT_READY)
        conn = store.insert_connection(c, K_CONTACT, contact_id=contact, status=C_READY)
        store.set_connection(c, conn, agent_conn_id="dan-conn")
        eve = store.insert_member(
            c, g.group_id, cp.new_member_id(), "member", CAT_POST, M_ANNOUNCED, "eve"
        )
        return g.user, eve

    user, eve = await bench.read(setup)
    after = await bench.apply(lambda c: profiles.update_user(c, user, "robert", "Bob R.")[1])
    assert len(after.outbox) == 2
    sent = {conn: cp.decode_chat_message(body) for conn, body in bench.agent.sent}
    assert set(sent) == {"dan-conn", "host-conn"}
    for msg in sent.values():
        assert msg.params == cp.XInfo(cp.Profile("robert", "Bob R."))
    held = await bench.read(lambda c: store.take_held(c, eve))
    assert len(held) == 1 and cp.decode_chat_message(held[0][0]).params == sent["dan-conn"].params
    me = await bench.read(lambda c: store.user_member(c, 1))
    assert (me.display_name, me.full_name) == ("robert", "Bob R.")


async def test_forwarded_profile_and_rules(bench: Bench) -> None:
    """A member's x.info forwarded by the host renames it (never onto another member's
    name); x.grp.info from a non-owner is refused; the host forwards what it receives."""
    group = await bench.read(lambda c: member_group(c, "bob", host="alice"))
    cath = cp.MemberInfo(cp.new_member_id(), "member", cp.Profile("cath"))
    dan = cp.MemberInfo(cp.new_member_id(), "member", cp.Profile("dan"))
    await bench.receive("host-conn", cp.XGrpMemNew(cath))
    await bench.receive("host-conn", cp.XGrpMemNew(dan))
    bench.drain()

    info = cp.make(cp.XInfo(cp.Profile("cath", "the real one?")))
    await bench.receive("host-conn", cp.XGrpMsgForward(dan.member_id, info))
    (event,) = bench.drain()
    assert isinstance(event, cev.GroupMemberUpdated)
    assert (event.before.name, event.after.name) == ("dan", "cath_1")
    await bench.receive("host-conn", cp.XGrpMsgForward(dan.member_id, info))  # a repeat
    assert bench.drain() == []

    grp = cp.make(cp.XGrpInfo(cp.GroupProfile("mine")))
    await bench.receive("host-conn", cp.XGrpMsgForward(cath.member_id, grp))
    (refused,) = bench.drain()
    assert isinstance(refused, cev.GroupMessageRefused)
    await bench.receive("host-conn", cp.XGrpInfo(cp.GroupProfile("crew", "The Crew")))  # owner
    (updated,) = bench.drain()
    assert isinstance(updated, cev.GroupUpdated) and updated.after.name == "crew"
    assert updated.by is not None and updated.by.name == "alice"
    g = await bench.read(lambda c: store.group_by_id(c, group.group_id))
    assert g is not None and (g.local_name, g.full_name) == ("crew", "The Crew")


async def test_host_forwards_profiles(bench: Bench) -> None:
    group = await bench.read(lambda c: member_group(c, "alice", host=None))

    def two_members(c: sqlite3.Connection) -> None:
        rows = []
        for name in ("bob", "cath"):
            row = store.insert_member(
                c, group.group_id, cp.new_member_id(), "member", CAT_INVITEE, M_CONNECTED, name
            )
            ready_connection(c, K_MEMBER_GROUP, row, f"{name}-conn")
            rows.append(row)
        # alice introduced bob to cath, who are not connected yet
        store.insert_intro(c, group.group_id, "host", rows[1], rows[0], "sent", cp.new_msg_id())

    await bench.read(two_members)
    await bench.receive("bob-conn", cp.XInfo(cp.Profile("robert")))
    fwd = bench.agent.messages("cath-conn")
    assert len(fwd) == 1 and isinstance(fwd[0].params, cp.XGrpMsgForward)
    assert fwd[0].params.msg.params == cp.XInfo(cp.Profile("robert"))
    (event,) = bench.drain()
    assert isinstance(event, cev.GroupMemberUpdated) and event.after.name == "robert"

"""Group links in process on a real relay: joiners become members with the link's role and
are introduced to everyone; the link's role changes; a deleted link (or group) refuses."""

from __future__ import annotations

import pytest

from parley.chat import events as cev
from parley.chat.controller import ChatError
from parley.relay.server import RelayServer
from parley.testing.waiting import wait_for_condition
from tests.chat.conftest import MakeChat, expect
from tests.chat.test_group import full_mesh


async def test_members_join_through_the_link(relay: RelayServer, make_chat: MakeChat) -> None:
    relays = [str(relay.address)]
    alice = await make_chat("alice", relays)
    await alice.create_group("team")
    assert await alice.group_link("team") is None
    link = await alice.create_group_link("team")
    view = await alice.group_link("team")
    assert view is not None and (view.link, view.role) == (link, "member")
    with pytest.raises(ChatError, match="has a link already"):
        await alice.create_group_link("team")
    chats = {"alice": alice}
    for name in ("bob", "cath"):
        chat = await make_chat(name, relays)
        chats[name] = chat
        await chat.connect(link)
        joined = await expect(chat, cev.UserJoinedGroup)
        assert joined.group.name == "team"
        joined_member = await expect(alice, cev.JoinedGroupMember)
        assert joined_member.member.name == name
    await wait_for_condition(lambda: full_mesh(chats, "team"), 30)
    await alice.set_group_link_role("team", "observer")
    dan = await make_chat("dan", relays)
    chats["dan"] = dan
    await dan.connect(link)
    await expect(dan, cev.UserJoinedGroup)
    await wait_for_condition(lambda: full_mesh(chats, "team"), 30)
    roles = {m.name: m.role for m in await chats["bob"].members("team")}
    assert roles == {"alice": "owner", "bob": "member", "cath": "member", "dan": "observer"}
    with pytest.raises(ChatError, match="observer"):
        await dan.send_group_message("team", "hi")
    await chats["cath"].send_group_message("team", "hello all")
    for name in ("alice", "bob", "dan"):
        got = await expect(chats[name], cev.NewChatItem, where=lambda e: e.item.direction == "rcv")
        assert got.item.text == "hello all"

    await alice.delete_group_link("team")
    assert await alice.group_link("team") is None
    eve = await make_chat("eve", relays)
    await eve.connect(link)
    failed = await expect(eve, cev.ConnectionFailed)
    assert "does not exist" in failed.reason
    assert await eve.groups() == []


async def test_link_of_a_deleted_group(relay: RelayServer, make_chat: MakeChat) -> None:
    relays = [str(relay.address)]
    alice = await make_chat("alice", relays)
    await alice.create_group("gone")
    link = await alice.create_group_link("gone", "member")
    with pytest.raises(ChatError, match="admin, member or observer"):
        await alice.set_group_link_role("gone", "owner")
    await alice.delete_group("gone")
    bob = await make_chat("bob", relays)
    await bob.connect(link)
    failed = await expect(bob, cev.ConnectionFailed)
    assert "does not exist" in failed.reason
    assert await bob.groups() == [] and await bob.contacts() == []


async def test_a_second_bob_is_shown_distinctly(
    relay: RelayServer, make_chat: MakeChat, tmp_path: object
) -> None:
    from pathlib import Path

    from parley.chat.controller import ChatController
    from tests.chat.conftest import chat_config

    relays = [str(relay.address)]
    host = await make_chat("host", relays)
    await host.create_group("team")
    link = await host.create_group_link("team")
    bob = await make_chat("bob", relays)
    other = await ChatController.open(chat_config(Path(str(tmp_path)) / "other", relays))
    await other.create_user("bob")
    await other.start()
    try:
        chats = {"host": host, "bob": bob, "other": other}
        for chat in (bob, other):
            await chat.connect(link)
            await expect(chat, cev.UserJoinedGroup)
        await wait_for_condition(lambda: full_mesh(chats, "team"), 30)
        assert sorted(m.name for m in await host.members("team")) == ["bob", "bob_1", "host"]
        assert sorted(m.name for m in await bob.members("team")) == ["bob", "bob_1", "host"]
        await other.send_group_message("team", "I am the other bob")
        got = await expect(bob, cev.NewChatItem, where=lambda e: e.item.direction == "rcv")
        assert got.item.author is not None and got.item.author.name == "bob_1"
    finally:
        await other.close()

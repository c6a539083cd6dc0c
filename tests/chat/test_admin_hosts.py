"""Admins host newcomers too (issue 10): an admin invites a contact, or hosts a group link,
and introduces the newcomer to every member; a member that is not an admin is refused,
by its own client and, when that client is forged, by every receiver."""

from __future__ import annotations

import asyncio

import pytest

from parley.chat import events as cev
from parley.chat.controller import ChatController, ChatError
from parley.relay.server import RelayServer
from parley.testing.waiting import wait_for_condition
from tests.chat.conftest import MakeChat, expect, make_contacts
from tests.chat.test_group import full_mesh
from tests.chat.test_roles import forge_role, group_with_roles

ROLES = {"alice": "owner", "bob": "admin", "cath": "member", "dan": "member"}


async def group_of_four(relays: list[str], make_chat: MakeChat) -> dict[str, ChatController]:
    """#team: alice (its creator), bob (admin), cath and dan (members), fully connected."""
    return await group_with_roles(relays, make_chat, ROLES)


async def team_and_a_contact(
    relays: list[str], make_chat: MakeChat, member: str, newcomer: str
) -> tuple[dict[str, ChatController], ChatController, ChatController]:
    """#team (`group_of_four`), and `newcomer`, a contact of `member` but not in #team."""
    chats = await group_of_four(relays, make_chat)
    new = await make_chat(newcomer, relays)
    await make_contacts(chats[member], new)
    return chats, chats[member], new


async def texts_from(chat: ChatController, group: str) -> list[tuple[str, str]]:
    items = await chat.chat_items(group=group, count=1000)
    return [(i.author.name, i.text) for i in items if i.direction == "rcv" and i.author]


async def everyone_hears_everyone_once(chats: dict[str, ChatController], group: str) -> None:
    for name, chat in chats.items():
        await chat.send_group_message(group, f"hello from {name}")

    async def all_in() -> bool:
        for name, chat in chats.items():
            want = {(o, f"hello from {o}") for o in chats if o != name}
            if not want <= set(await texts_from(chat, group)):
                return False
        return True

    await wait_for_condition(all_in, 30, 0.1, "not every message arrived")
    for name, chat in chats.items():
        got = [t for t in await texts_from(chat, group) if t[1].startswith("hello from")]
        assert len(got) == len(set(got)) == len(chats) - 1, f"{name} got {got}"


async def test_an_admin_adds_a_member_who_reaches_the_full_mesh(
    relay: RelayServer, make_chat: MakeChat
) -> None:
    relays = [str(relay.address)]
    chats, b, eve = await team_and_a_contact(relays, make_chat, "bob", "eve")
    await b.add_member("team", "eve")
    invitation = await expect(eve, cev.ReceivedGroupInvitation)
    assert invitation.contact.name == "bob"
    await eve.join_group("team")
    await expect(eve, cev.UserJoinedGroup)
    await expect(b, cev.JoinedGroupMember, where=lambda e: e.member.name == "eve")
    chats["eve"] = eve
    await wait_for_condition(lambda: full_mesh(chats, "team"), 60)

    members = {m.name: m for m in await eve.members("team")}
    assert members["bob"].category == "host"
    assert all(members[n].category == "pre" for n in ("alice", "cath", "dan"))
    for name in ("alice", "cath", "dan"):
        eve_there = next(m for m in await chats[name].members("team") if m.name == "eve")
        assert eve_there.category == "post"

    async def bob_sees_eve_complete() -> bool:  # every introduction of eve is done
        eve_at_bob = next(m for m in await b.members("team") if m.name == "eve")
        return eve_at_bob.status == "memComplete"

    await wait_for_condition(bob_sees_eve_complete, 30)
    await everyone_hears_everyone_once(chats, "team")

    # an admin removes a member below its role; every receiver checks it
    await b.remove_member("team", "eve")
    await expect(eve, cev.UserRemoved)
    for name in ("alice", "cath", "dan"):
        removed = await expect(chats[name], cev.MemberRemoved)
        assert removed.member.name == "eve" and removed.by and removed.by.name == "bob"


async def test_an_admins_group_link_brings_a_member_in(
    relay: RelayServer, make_chat: MakeChat
) -> None:
    relays = [str(relay.address)]
    chats = await group_of_four(relays, make_chat)
    b, c = chats["bob"], chats["cath"]
    with pytest.raises(ChatError, match="a member cannot add members"):
        await c.create_group_link("team")
    with pytest.raises(ChatError, match=r"admin, member or observer"):
        await b.create_group_link("team", "owner")
    link = await b.create_group_link("team")
    shown = await b.group_link("team")
    assert shown is not None and shown.link == link and shown.role == "member"

    frank = await make_chat("frank", relays)
    await frank.connect(link)
    await expect(frank, cev.UserJoinedGroup)
    chats["frank"] = frank
    await wait_for_condition(lambda: full_mesh(chats, "team"), 60)
    host = next(m for m in await frank.members("team") if m.category == "host")
    assert host.name == "bob"
    await everyone_hears_everyone_once(chats, "team")

    await b.delete_group_link("team")
    assert await b.group_link("team") is None


async def test_a_member_that_is_not_an_admin_cannot_add(
    relay: RelayServer, make_chat: MakeChat
) -> None:
    relays = [str(relay.address)]
    chats, c, gina = await team_and_a_contact(relays, make_chat, "cath", "gina")
    # the sender's own client refuses
    with pytest.raises(ChatError, match="a member cannot add members"):
        await c.add_member("team", "gina")
    # a client that believes it is an admin gets as far as its contact...
    await forge_role(c, "team", "admin")
    await c.add_member("team", "gina")
    await expect(gina, cev.ReceivedGroupInvitation)
    await gina.join_group("team")
    await expect(gina, cev.UserJoinedGroup)
    # ...but every member refuses cath's announcement and forwards of gina
    for name in ("alice", "bob", "dan"):
        refused = await expect(
            chats[name], cev.GroupMessageRefused, where=lambda e: "x.grp.mem" in e.reason
        )
        assert refused.member.name == "cath" and "cannot add members" in refused.reason
        assert "gina" not in [m.name for m in await chats[name].members("team")]


async def test_two_admins_add_members_at_the_same_time(
    relay: RelayServer, make_chat: MakeChat
) -> None:
    """bob and dan (both admins) each bring in a newcomer at once: neither host may know
    the other's newcomer when its own connects; the pair is still introduced (once by a
    host that catches up), and everyone reaches everyone."""
    relays = [str(relay.address)]
    chats = await group_of_four(relays, make_chat)
    b, d = chats["bob"], chats["dan"]
    await chats["alice"].set_member_role("team", "dan", "admin")
    await expect(d, cev.MemberRoleUpdated)
    eve, frank = await make_chat("eve", relays), await make_chat("frank", relays)
    await make_contacts(b, eve)
    await make_contacts(d, frank)
    await b.add_member("team", "eve")
    await d.add_member("team", "frank")
    await expect(eve, cev.ReceivedGroupInvitation)
    await expect(frank, cev.ReceivedGroupInvitation)
    await asyncio.gather(eve.join_group("team"), frank.join_group("team"))
    chats |= {"eve": eve, "frank": frank}
    await wait_for_condition(lambda: full_mesh(chats, "team"), 90)
    await everyone_hears_everyone_once(chats, "team")
    for name, chat in chats.items():
        while not chat.events.empty():
            e = chat.events.get_nowait()
            assert not isinstance(e, cev.GroupMessageRefused | cev.MemberFailed), (name, e)

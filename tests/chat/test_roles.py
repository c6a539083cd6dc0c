"""Roles, checked by the sender and by every receiver: owner > admin > member > observer.
Forged commands (a client that skips its own checks) are refused by the others."""

from __future__ import annotations

import pytest

from parley.chat import events as cev
from parley.chat import store
from parley.chat.controller import ChatController, ChatError
from parley.relay.server import RelayServer
from parley.testing.waiting import wait_for_condition
from tests.chat.conftest import MakeChat, expect, make_contacts
from tests.chat.test_group import full_mesh


async def forge_role(chat: ChatController, group: str, role: str) -> None:
    """The client believes it has `role` (its checks pass); the others know better."""

    def tx(c: object) -> None:
        g = store.group_by_name(c, 1, group)  # type: ignore[arg-type]
        assert g is not None
        me = store.user_member(c, g.group_id)  # type: ignore[arg-type]
        store.set_member(c, me.member_row, role=role)  # type: ignore[arg-type]

    await chat._db.run(tx)


async def role_of(chat: ChatController, group: str, name: str) -> tuple[str, str]:
    m = next(m for m in await chat.members(group) if m.name == name)
    return m.role, m.status


async def group_with_roles(
    relays: list[str], make_chat: MakeChat, roles: dict[str, str]
) -> dict[str, ChatController]:
    """#team created by the first of `roles` (name → role), every other one added by it
    with its role, joined, and the group fully connected."""
    chats = {n: await make_chat(n, relays) for n in roles}
    creator, *others = roles
    a = chats[creator]
    await a.create_group("team")
    for name in others:
        await make_contacts(a, chats[name])
        await a.add_member("team", name, roles[name])
        await expect(chats[name], cev.ReceivedGroupInvitation)
        await chats[name].join_group("team")
        await expect(chats[name], cev.UserJoinedGroup)
    await wait_for_condition(lambda: full_mesh(chats, "team"), 30)
    return chats


async def test_roles_from_both_sides(relay: RelayServer, make_chat: MakeChat) -> None:
    relays = [str(relay.address)]
    names = {"alice": "owner", "bob": "admin", "cath": "member", "dan": "observer"}
    chats = await group_with_roles(relays, make_chat, names)
    a = chats["alice"]
    b, c, d = chats["bob"], chats["cath"], chats["dan"]

    # an observer cannot send; a forged message is refused by every receiver
    with pytest.raises(ChatError, match="observer"):
        await d.send_group_message("team", "from an observer")
    await forge_role(d, "team", "member")
    await d.send_group_message("team", "forged")
    for chat in (a, b, c):
        refused = await expect(chat, cev.GroupMessageRefused)
        assert refused.member.name == "dan"
        texts = [i.text for i in await chat.chat_items(group="team")]
        assert "forged" not in texts

    # an owner changes roles: announced, applied by everyone (dan included)
    await forge_role(d, "team", "observer")
    await a.set_member_role("team", "dan", "member")
    for chat in (b, c, d):
        upd = await expect(chat, cev.MemberRoleUpdated)
        assert (upd.member.name, upd.from_role, upd.to_role) == ("dan", "observer", "member")
    await d.send_group_message("team", "now a member")
    for chat in (a, b, c):
        got = await expect(chat, cev.NewChatItem, where=lambda e: e.item.direction == "rcv")
        assert got.item.text == "now a member"
    # an admin cannot make someone owner, nor change an owner's role
    with pytest.raises(ChatError, match="cannot give the role owner"):
        await b.set_member_role("team", "cath", "owner")
    with pytest.raises(ChatError, match="cannot change the role of alice"):
        await b.set_member_role("team", "alice", "member")

    # an admin removes a member: everyone, the member included, hears it
    await b.remove_member("team", "cath")
    gone = await expect(c, cev.UserRemoved)
    assert gone.by is not None and gone.by.name == "bob"
    for chat in (a, d):
        removed = await expect(chat, cev.MemberRemoved)
        assert removed.member.name == "cath" and removed.by and removed.by.name == "bob"
        assert (await role_of(chat, "team", "cath"))[1] == "memRemoved"

    # a member cannot remove an admin (nor, forged, get it done)
    with pytest.raises(ChatError, match="cannot remove bob"):
        await d.remove_member("team", "bob")
    await forge_role(d, "team", "owner")
    await d.remove_member("team", "bob")
    for chat in (a,):
        await expect(chat, cev.GroupMessageRefused, where=lambda e: e.member.name == "dan")
        assert (await role_of(chat, "team", "bob"))[1] in ("memConnected", "memComplete")
    await expect(b, cev.GroupMessageRefused, where=lambda e: e.member.name == "dan")
    assert (await b.groups())[0].status == "active"

from __future__ import annotations

from parley.chat import events as cev
from parley.chat.controller import ChatController
from parley.relay.server import RelayServer
from tests.chat.conftest import MakeChat, expect, make_contacts


async def full_mesh(chats: dict[str, ChatController], group: str) -> bool:
    for _name, chat in chats.items():
        members = await chat.members(group)
        others = [m for m in members if m.category != "user"]
        if len(others) != len(chats) - 1:
            return False
        if any(m.status not in ("memConnected", "memComplete") for m in others):
            return False
    return True


async def test_group_of_three(relay: RelayServer, make_chat: MakeChat) -> None:
    from parley.testing.waiting import wait_for_condition

    relays = [str(relay.address)]
    a = await make_chat("alice", relays)
    b = await make_chat("bob", relays)
    c = await make_chat("cath", relays)
    await make_contacts(a, b)
    await make_contacts(a, c)
    await a.create_group("team")
    await a.add_member("team", "bob")
    await expect(b, cev.ReceivedGroupInvitation)
    await b.join_group("team")
    await expect(b, cev.UserJoinedGroup)
    await expect(a, cev.JoinedGroupMember)
    await a.add_member("team", "cath")
    await expect(c, cev.ReceivedGroupInvitation)
    await c.join_group("team")
    await expect(c, cev.UserJoinedGroup)
    await wait_for_condition(lambda: full_mesh({"alice": a, "bob": b, "cath": c}, "team"), 20)

    await c.send_group_message("team", "hello from cath")
    for chat in (a, b):
        got = await expect(chat, cev.NewChatItem)
        assert got.item.text == "hello from cath" and got.item.author
        assert got.item.author.name == "cath"

from __future__ import annotations

from parley.chat import events as cev
from parley.relay.server import RelayServer
from tests.chat.conftest import MakeChat, expect, make_contacts


async def test_contacts_connect_and_talk(relay: RelayServer, make_chat: MakeChat) -> None:
    relays = [str(relay.address)]
    alice = await make_chat("alice", relays)
    bob = await make_chat("bob", relays)
    await make_contacts(alice, bob)
    assert [c.name for c in await alice.contacts()] == ["bob"]
    assert [c.name for c in await bob.contacts()] == ["alice"]
    await alice.send_contact_message("bob", "hi bob")
    got = await expect(bob, cev.NewChatItem)
    assert got.item.text == "hi bob" and got.item.contact and got.item.contact.name == "alice"
    await bob.send_contact_message("alice", "hi alice")
    got = await expect(alice, cev.NewChatItem)
    assert got.item.text == "hi alice"

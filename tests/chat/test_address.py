"""The long-term contact address: requests, accept and reject, auto-accept with a
welcome, recognising a contact that asks again, bad links; in process, on a real relay."""

from __future__ import annotations

import pytest

from parley.chat import events as cev
from parley.chat.controller import ChatError
from parley.protocol import agent as ap
from parley.relay.server import RelayServer
from tests.chat.conftest import MakeChat, expect


async def test_requests_accepted_rejected_and_recognised(
    relay: RelayServer, make_chat: MakeChat
) -> None:
    relays = [str(relay.address)]
    owner = await make_chat("owner", relays)
    alice = await make_chat("alice", relays)
    bob = await make_chat("bob", relays)
    assert await owner.show_address() is None
    link = await owner.create_address()
    assert link.startswith(ap.CONTACT_PREFIX)
    assert await owner.show_address() == cev.AddressView(link, False, None)
    with pytest.raises(ChatError, match="already"):
        await owner.create_address()

    await alice.connect(link)
    req = (await expect(owner, cev.ReceivedContactRequest)).request
    assert (req.name, req.display_name) == ("alice", "alice")
    assert [r.name for r in await owner.contact_requests()] == ["alice"]
    assert await owner.contact_request_named("alice") == req
    contact = await owner.accept_contact_request(req.request_id)
    assert contact.name == "alice"
    await expect(owner, cev.ContactConnected, where=lambda e: e.contact.name == "alice")
    await expect(alice, cev.ContactConnected, where=lambda e: e.contact.name == "owner")
    await alice.send_contact_message("owner", "hello")
    got = await expect(owner, cev.NewChatItem)
    assert got.item.text == "hello"
    with pytest.raises(ChatError, match="accepted already"):
        await owner.accept_contact_request(req.request_id)

    await bob.connect(link)
    req_b = (await expect(owner, cev.ReceivedContactRequest)).request
    await owner.reject_contact_request(req_b.request_id)
    await expect(owner, cev.ContactRequestRejected)
    assert await owner.contact_requests() == []
    with pytest.raises(ChatError, match="no contact request"):
        await owner.contact_request_named("bob")

    # alice asks again through the same address: recognised, no second contact
    await alice.connect(link)
    known = await expect(owner, cev.ContactAlreadyExists)
    assert known.contact.name == "alice"
    assert [c.name for c in await owner.contacts()] == ["alice"]
    assert await owner.contact_requests() == []


async def test_auto_accept_with_welcome_and_delete(relay: RelayServer, make_chat: MakeChat) -> None:
    relays = [str(relay.address)]
    owner = await make_chat("owner", relays)
    link = await owner.create_address()
    view = await owner.set_auto_accept(True, "welcome to the owner")
    assert view == cev.AddressView(link, True, "welcome to the owner")
    for name in ("u1", "u2"):
        user = await make_chat(name, relays)
        await user.connect(link)
        accepting = await expect(owner, cev.AcceptingContactRequest)
        assert accepting.contact.name == name
        await expect(user, cev.ContactConnected)
        got = await expect(user, cev.NewChatItem)
        assert got.item.text == "welcome to the owner" and got.item.direction == "rcv"
    await owner.delete_address()
    assert await owner.show_address() is None
    late = await make_chat("late", relays)
    await late.connect(link)  # the request cannot reach a deleted address
    failed = await expect(late, cev.ConnectionFailed)
    assert "does not exist" in failed.reason
    assert sorted(c.name for c in await owner.contacts()) == ["u1", "u2"]


async def test_bad_links_are_refused_clearly(relay: RelayServer, make_chat: MakeChat) -> None:
    relays = [str(relay.address)]
    owner = await make_chat("owner", relays)
    link = await owner.create_address()
    user = await make_chat("user", relays)
    for bad, why in [
        ("simplex:/contact#/?v=2-7&smp=smp%3A%2F%2Fabc", "SimpleX link"),
        ("https://simplex.chat/contact#/?v=2&smp=x", "SimpleX link"),
        (ap.CONTACT_PREFIX + "AAAA", "corrupt contact address"),
        (link[: len(link) // 2], "corrupt contact address"),
    ]:
        with pytest.raises(ChatError, match=why):
            await user.connect(bad)
    assert await user.contacts() == []
    assert (await user.status())[1] == []

from __future__ import annotations

from pathlib import Path

from parley.chat import events as cev
from parley.chat.controller import ChatController
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


async def test_contacts_connect_taking_turns_offline(relay: RelayServer, tmp_path: Path) -> None:
    """Inviter and joiner are never online together; each turn ends when that side is idle."""
    from parley.testing.waiting import wait_for_condition
    from tests.chat.conftest import chat_config

    relays = [str(relay.address)]
    configs = {n: chat_config(tmp_path / n, relays) for n in ("alice", "bob")}

    async def turn(name: str) -> ChatController:
        chat = await ChatController.open(configs[name])
        if await chat.active_user() is None:
            await chat.create_user(name)
        await chat.start()
        return chat

    async def idle(chat: ChatController) -> None:
        async def nothing_pending() -> bool:
            report, continuations = await chat.status()
            return not (report.commands or report.deliveries or continuations)

        await wait_for_condition(nothing_pending, 15)

    alice = await turn("alice")
    _, link = await alice.create_invitation()
    assert link is not None
    await idle(alice)
    await alice.close()

    bob = await turn("bob")
    await bob.connect(link)
    await idle(bob)
    await bob.close()

    alice = await turn("alice")  # the confirmation waited on the relay: alice allows
    await wait_for_condition(lambda: _has_contact(alice, "bob"), 15)
    await idle(alice)
    await alice.close()

    bob = await turn("bob")  # bob gets alice's confirmation, secures its queue, says HELLO

    async def hello_sent() -> bool:
        statuses = await bob.agent.subscribe_all()
        return [(st.rcv_queue, st.snd_queue) for st in statuses] == [("secured", "active")]

    await wait_for_condition(hello_sent, 15)
    await bob.close()

    alice = await turn("alice")
    await expect(alice, cev.ContactConnected)
    await alice.send_contact_message("bob", "you were away")
    await idle(alice)
    await alice.close()

    bob = await turn("bob")
    await expect(bob, cev.ContactConnected)
    got = await expect(bob, cev.NewChatItem)
    assert got.item.text == "you were away"
    await bob.close()


async def _has_contact(chat: ChatController, name: str) -> bool:
    return any(c.name == name for c in await chat.contacts())


async def test_bad_links_and_unknown_names_are_refused(
    relay: RelayServer, make_chat: MakeChat
) -> None:
    import pytest

    from parley.chat.controller import ChatError

    alice = await make_chat("alice", [str(relay.address)])
    for link in ("", "hello", "parley:/invite#AAAA", "parley:/invite#" + "x" * 300):
        with pytest.raises(ChatError):
            await alice.connect(link)
    with pytest.raises(ChatError, match="no contact"):
        await alice.send_contact_message("nobody", "hi")
    with pytest.raises(ChatError, match="no group"):
        await alice.send_group_message("nothing", "hi")
    with pytest.raises(ChatError, match="cannot send"):
        await alice.send_group_message("nothing", "x" * 20_000)
    assert await alice.contacts() == []

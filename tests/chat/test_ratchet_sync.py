"""Ratchet re-synchronisation between chats: bob's agent database is restored from an
earlier copy; both chats learn it, re-negotiate (automatically), show "encryption
re-negotiated", and every message after that arrives, both ways. Also `/sync` by hand."""

from __future__ import annotations

from collections.abc import Awaitable
from pathlib import Path
from typing import Any

from parley.chat import events as cev
from parley.chat.controller import ChatController
from parley.relay.server import RelayServer
from parley.testing.chat_process import ChatProcess
from parley.testing.waiting import wait_for_condition
from tests.agent.test_ratchet_sync import copy_db
from tests.chat.conftest import MakeChat, expect, make_contacts
from tests.chat.harness import clients, contacts


async def talk(a: ChatController, b: ChatController, text: str) -> None:
    """`a` sends `text` to `b` (its contact by b's name), which gets it."""
    user = await b.active_user()
    assert user is not None
    await a.send_contact_message(user.display_name, text)
    await expect(b, cev.NewChatItem, where=lambda e: e.item.text == text)


async def test_restored_agent_database_renegotiates(
    tmp_path: Path, relay: RelayServer, make_chat: MakeChat
) -> None:
    relays = [str(relay.address)]
    alice = await make_chat("alice", relays)
    bob = await make_chat("bob", relays)
    await make_contacts(alice, bob)
    await talk(alice, bob, "before the copy")
    await bob.close()
    agent_db = Path(str(tmp_path / "bob") + "_agent.db")
    copy_db(agent_db, tmp_path / "bob-agent-old.db")
    bob = await make_chat("bob", relays)
    for i in range(3):
        await talk(alice, bob, f"a{i}")
        await talk(bob, alice, f"b{i}")
    await bob.close()
    copy_db(tmp_path / "bob-agent-old.db", agent_db)  # bob's keys are behind now
    bob = await make_chat("bob", relays)

    await alice.send_contact_message("bob", "cannot be read")
    required = await expect(bob, cev.RatchetSync, where=lambda e: e.state == "required")
    assert required.contact is not None and required.contact.name == "alice"
    for chat in (alice, bob):
        done = await expect(chat, cev.NewChatItem, where=lambda e: e.item.content_type != "text")
        assert done.item.text == "encryption re-negotiated"
        assert done.item.content_type == "rcvConnEvent"
    for i in range(3):
        await talk(alice, bob, f"after a{i}")
        await talk(bob, alice, f"after b{i}")


async def test_sync_by_hand_is_idempotent(relay: RelayServer, make_chat: MakeChat) -> None:
    relays = [str(relay.address)]
    alice = await make_chat("alice", relays)
    bob = await make_chat("bob", relays)
    await make_contacts(alice, bob)
    assert await alice.sync_ratchet(contact="bob") == "started"
    assert await alice.sync_ratchet(contact="bob") == "started"  # under way: left alone
    for chat in (alice, bob):
        await expect(chat, cev.RatchetSync, where=lambda e: e.state == "ok")
    await talk(alice, bob, "still fine")
    await talk(bob, alice, "both ways")


async def test_a_message_sent_during_a_sync_waits_and_arrives(
    relay: RelayServer, make_chat: MakeChat
) -> None:
    """While our new keys wait for the peer's answer the agent refuses messages; the chat
    keeps them in its outbox and sends them once the keys are agreed."""
    relays = [str(relay.address)]
    alice = await make_chat("alice", relays)
    bob = await make_chat("bob", relays)
    await make_contacts(alice, bob)
    assert await alice.sync_ratchet(contact="bob") == "started"
    await alice.send_contact_message("bob", "written during the sync")
    got = await expect(bob, cev.NewChatItem, where=lambda e: e.item.text is not None
                       and e.item.text == "written during the sync")  # fmt: skip
    assert got.item.text == "written during the sync"
    await talk(bob, alice, "and back")


async def test_renegotiated_item_survives_a_crash_before_the_chat_showed_it(
    relay: RelayServer, tmp_path: Path
) -> None:
    """Bob's process dies right after its agent reported the re-negotiation done (RSYNC
    ok, which the agent does not replay) and before the chat stored anything: at start
    the chat reads the agent's count of completed re-negotiations and shows the item,
    once, also across a further restart."""
    procs = clients(tmp_path, [str(relay.address)], ["alice", "bob"])
    alice, bob = procs["alice"], procs["bob"]

    async def renegotiated(p: ChatProcess, contact: str) -> list[dict[str, Any]]:
        got: list[dict[str, Any]] = await p.call("chat_items", contact=contact, count=100)
        return [i for i in got if i["text"] == "encryption re-negotiated"]

    try:
        for p in procs.values():
            await p.start()
        await contacts(alice, bob)
        await bob.stop()
        await bob.start(crash_at="rsync-event:ok")
        assert await alice.call("sync_ratchet", contact="bob") == "started"
        assert await bob.wait_exit(60) < 0, "bob never reached the RSYNC ok"
        await bob.start()
        await bob.expect(cev.NewChatItem, lambda e: e.item.text == "encryption re-negotiated")
        await wait_for_condition(
            lambda: _count_is(renegotiated(alice, "bob"), 1), 30, 0.2, "alice's item"
        )
        await bob.stop()
        await bob.start()
        await alice.call("send_contact_message", name="bob", text="after")
        await bob.expect(cev.NewChatItem, lambda e: e.item.text == "after")
        assert len(await renegotiated(bob, "alice")) == 1
        assert len(await renegotiated(alice, "bob")) == 1
    finally:
        for p in procs.values():
            await p.kill()


async def _count_is(items: Awaitable[list[dict[str, Any]]], n: int) -> bool:
    return len(await items) == n

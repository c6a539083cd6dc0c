"""Receipts, edits, deletion, reactions and quotes between chats over a real relay, in a
direct chat and in a group."""

from __future__ import annotations

from parley.chat import events as cev
from parley.relay.server import RelayServer
from tests.chat.conftest import MakeChat, expect, make_contacts
from tests.chat.test_group_rules import group_of_three


async def test_direct_chat_items_end_to_end(relay: RelayServer, make_chat: MakeChat) -> None:
    relays = [str(relay.address)]
    alice = await make_chat("alice", relays)
    bob = await make_chat("bob", relays)
    await make_contacts(alice, bob)

    sent = await alice.send_contact_message("bob", "hello bob")
    got = await expect(bob, cev.NewChatItem)
    # the receipt comes back once bob stored the message
    await expect(
        alice,
        cev.ChatItemStatus,
        where=lambda e: e.item_id == sent.item_id and e.status == "rcvd",
    )
    (item,) = await alice.chat_items(contact="bob")
    assert item.status == "rcvd"

    # a reply quoting alice's message
    reply = await bob.send_contact_message("alice", "hi!", quote=got.item.item_id)
    assert reply.quote is not None and reply.quote.item_id == got.item.item_id
    quoted = await expect(alice, cev.NewChatItem)
    assert quoted.item.quote is not None and quoted.item.quote.item_id == sent.item_id

    # edit, then react, then delete for everyone
    await alice.update_item(sent.item_id, "hello bob, edited")
    upd = await expect(bob, cev.ChatItemUpdated)
    assert upd.item.text == "hello bob, edited" and upd.item.edited
    await bob.react(got.item.item_id, "👍")
    reaction = await expect(alice, cev.ChatItemReaction)
    assert reaction.added and reaction.emoji == "👍" and reaction.by == "bob"
    assert [(r.emoji, r.count) for r in reaction.item.reactions] == [("👍", 1)]
    await alice.delete_item(sent.item_id, broadcast=True)
    deleted = await expect(bob, cev.ChatItemDeleted)
    assert deleted.item.item_id == got.item.item_id and not deleted.removed
    assert [i.item_id for i in await alice.chat_items(contact="bob")] == [quoted.item.item_id]
    history = await bob.item_history(got.item.item_id)
    assert [t for _, t, _ in history] == ["hello bob", "hello bob, edited"]

    # receipts switched off for alice: bob's next message stays "sent"
    await alice.set_receipts(False, contact="bob")
    quiet = await bob.send_contact_message("alice", "no receipt please")
    await expect(alice, cev.NewChatItem, where=lambda e: e.item.text == "no receipt please")
    await expect(bob, cev.ChatItemStatus, where=lambda e: e.item_id == quiet.item_id)
    marker = await bob.send_contact_message("alice", "after")
    await expect(alice, cev.NewChatItem, where=lambda e: e.item.text == "after")
    await alice.set_receipts(True, contact="bob")
    items = {i.item_id: i for i in await bob.chat_items(contact="alice")}
    assert items[quiet.item_id].status == "sent" and items[marker.item_id].status == "sent"


async def test_group_items_end_to_end(relay: RelayServer, make_chat: MakeChat) -> None:
    a, b, c = await group_of_three(make_chat, relay)
    sent = await b.send_group_message("team", "group hello")
    got_a = await expect(a, cev.NewChatItem, where=lambda e: e.item.text == "group hello")
    got_c = await expect(c, cev.NewChatItem, where=lambda e: e.item.text == "group hello")
    await expect(
        b, cev.ChatItemStatus, where=lambda e: e.item_id == sent.item_id and e.status == "rcvd"
    )
    await b.update_item(sent.item_id, "group hello!")
    for chat in (a, c):
        upd = await expect(chat, cev.ChatItemUpdated)
        assert upd.item.text == "group hello!"
    await c.react(got_c.item.item_id, "🚀")
    await a.react(got_a.item.item_id, "🚀")
    r = await expect(b, cev.ChatItemReaction, where=lambda e: e.item.reactions[0].count == 2)
    assert r.item.item_id == sent.item_id
    reply = await c.send_group_message("team", "reply", quote=got_c.item.item_id)
    assert reply.quote is not None
    got = await expect(b, cev.NewChatItem, where=lambda e: e.item.text == "reply")
    assert got.item.quote is not None and got.item.quote.item_id == sent.item_id
    # the owner moderates bob's message; a member (cath) cannot
    await a.moderate_item(got_a.item.item_id)
    for chat in (b, c):
        d = await expect(chat, cev.ChatItemDeleted)
        assert d.moderated_by is not None and d.moderated_by.name == "alice"


async def test_full_deletion_removes_received_messages(
    relay: RelayServer, make_chat: MakeChat
) -> None:
    """Off by default (marked); on for all chats, a deletion for everyone removes bob's
    copy; a contact's own setting wins over the default."""
    relays = [str(relay.address)]
    alice = await make_chat("alice", relays)
    bob = await make_chat("bob", relays)
    await make_contacts(alice, bob)

    async def sent_and_deleted(text: str) -> cev.ChatItemDeleted:
        sent = await alice.send_contact_message("bob", text)
        await expect(bob, cev.NewChatItem, where=lambda e: e.item.text == text)
        await alice.delete_item(sent.item_id, broadcast=True)
        return await expect(bob, cev.ChatItemDeleted, where=lambda e: e.item.text == text)

    marked = await sent_and_deleted("marked")
    assert not marked.removed and marked.item.deleted == "deleted"
    await bob.set_full_delete(True)
    removed = await sent_and_deleted("removed")
    assert removed.removed
    await bob.set_full_delete(False, contact="alice")
    again = await sent_and_deleted("marked again")
    assert not again.removed
    assert [i.text for i in await bob.chat_items(contact="alice")] == ["marked", "marked again"]

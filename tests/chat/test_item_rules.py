"""Rules of items after they are made (receipts, integrity, edits, deletion, moderation,
reactions, quotes), on a real chat store with a recording agent: exactly-once effects for
repeated messages, and bad input refused with a reason while nothing else changes."""

from __future__ import annotations

import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from parley.chat import events as cev
from parley.chat import inbox, items, store, views
from parley.chat.model import (
    C_READY,
    CAT_POST,
    CT_READY,
    K_CONTACT,
    K_MEMBER_GROUP,
    M_CONNECTED,
    ChatError,
)
from parley.protocol import chat as cp
from tests.chat.bench import Bench, Group, member_group, ready_connection


@pytest.fixture
async def bench(tmp_path: Path) -> AsyncIterator[Bench]:
    b = await Bench.open(tmp_path / "chat.db")
    yield b
    await b.close()


async def with_contact(b: Bench) -> store.UserRow:
    def tx(c: sqlite3.Connection) -> store.UserRow:
        user = store.insert_user(c, "alice", "")
        cid = store.insert_contact(c, user.user_id, "bob", "", CT_READY)
        conn = store.insert_connection(c, K_CONTACT, contact_id=cid, status=C_READY)
        store.set_connection(c, conn, agent_conn_id="bob-conn")
        return user

    return await b.read(tx)


async def receive(
    b: Bench,
    agent_conn: str,
    params: cp.Params,
    agent_msg_id: int | None = None,
    integrity: str = "ok",
    msg_id: str | None = None,
) -> tuple[cp.ChatMessage, bool]:
    """A message arrives in agent message `agent_msg_id`: (it, whether to send a receipt)."""
    msg = cp.make(params, msg_id)
    body = cp.encode_chat_message(msg)
    fx = await b.apply(
        lambda c: inbox.on_msg(c, agent_conn, body, agent_msg_id, integrity, b.config)
    )
    return msg, fx.receipt


async def item_of(b: Bench, msg_id: str, contact_id: int = 1) -> cev.ChatItem:
    def read(c: sqlite3.Connection) -> cev.ChatItem:
        row = store.item_by_msg(c, msg_id, contact_id=contact_id)
        assert row is not None
        return views.item(c, row.item_id)

    return await b.read(read)


async def test_receipts_only_for_stored_messages_and_a_replay(bench: Bench) -> None:
    await with_contact(bench)
    msg, receipt = await receive(bench, "bob-conn", cp.XMsgNew(cp.TextContent("hi")), 1)
    assert receipt
    # the same agent message shown again after a restart: the receipt is still owed
    body = cp.encode_chat_message(msg)
    fx = await bench.apply(lambda c: inbox.on_msg(c, "bob-conn", body, 1, "ok", bench.config))
    assert fx.receipt and not fx.events
    # the same chat message in another agent message is a duplicate: no receipt
    fx = await bench.apply(lambda c: inbox.on_msg(c, "bob-conn", body, 2, "ok", bench.config))
    assert not fx.receipt and not fx.events
    # receipts switched off for the contact, then back to the user's default
    await bench.read(lambda c: store.set_chat_receipts(c, False, contact_id=1))
    _, receipt = await receive(bench, "bob-conn", cp.XMsgNew(cp.TextContent("quiet")), 3)
    assert not receipt
    await bench.read(lambda c: store.set_chat_receipts(c, None, contact_id=1))
    await bench.read(lambda c: store.set_user_receipts(c, 1, "contacts", False))
    _, receipt = await receive(bench, "bob-conn", cp.XMsgNew(cp.TextContent("off")), 4)
    assert not receipt


async def test_sent_item_moves_to_rcvd_once(bench: Bench) -> None:
    user = await with_contact(bench)
    from parley.chat import contacts

    msg = cp.make(cp.XMsgNew(cp.TextContent("hello")))
    _, fx = await bench.read(lambda c: contacts.send_message(c, user, "bob", msg, "hello"))
    await bench.engine.perform(fx)  # the recording agent gives agent message id 1
    fx = await bench.apply(lambda c: inbox.on_sent(c, "bob-conn", 1, "sent", ""))
    fx = await bench.apply(lambda c: inbox.on_rcvd(c, "bob-conn", 1, "ok"))
    assert [type(e) for e in fx.events] == [cev.ChatItemStatus]
    again = await bench.apply(lambda c: inbox.on_rcvd(c, "bob-conn", 1, "ok"))
    assert not again.events
    item = await item_of(bench, msg.msg_id)
    assert item.status == "rcvd"
    # a late SENT does not move it back
    await bench.apply(lambda c: inbox.on_sent(c, "bob-conn", 1, "sent", ""))
    assert (await item_of(bench, msg.msg_id)).status == "rcvd"
    # a receipt for an agent message that carried no item changes nothing
    assert not (await bench.apply(lambda c: inbox.on_rcvd(c, "bob-conn", 99, "ok"))).events


async def test_bad_hash_receipt_is_reported(bench: Bench) -> None:
    user = await with_contact(bench)
    from parley.chat import contacts

    msg = cp.make(cp.XMsgNew(cp.TextContent("hello")))
    _, fx = await bench.read(lambda c: contacts.send_message(c, user, "bob", msg, "hello"))
    await bench.engine.perform(fx)
    fx = await bench.apply(lambda c: inbox.on_rcvd(c, "bob-conn", 1, "badMsgHash"))
    (status,) = fx.events
    assert isinstance(status, cev.ChatItemStatus) and status.status == "rcvd-bad-hash"
    assert "hash" in status.reason


async def test_integrity_error_is_an_item_once(bench: Bench) -> None:
    await with_contact(bench)
    text = cp.XMsgNew(cp.TextContent("after a gap"))
    msg, _ = await receive(bench, "bob-conn", text, 5, "skipped 3")
    events = bench.drain()
    errors = [e for e in events if isinstance(e, cev.MsgIntegrityError)]
    assert [e.error for e in errors] == ["3 skipped messages"]
    assert errors[0].item.content_type == "rcvIntegrityError"
    # shown again after a restart: no second integrity item, no second message
    body = cp.encode_chat_message(msg)
    await bench.apply(lambda c: inbox.on_msg(c, "bob-conn", body, 5, "skipped 3", bench.config))
    assert not bench.drain()
    texts = await bench.read(
        lambda c: [views.item(c, i).text for i in store.last_item_ids(c, 10, user_id=1)]
    )
    assert texts == ["3 skipped messages", "after a gap"]


async def test_edits_apply_once_and_in_order(bench: Bench) -> None:
    await with_contact(bench)
    orig, _ = await receive(bench, "bob-conn", cp.XMsgNew(cp.TextContent("v0")), 1)
    e2, _ = await receive(bench, "bob-conn", cp.XMsgUpdate(orig.msg_id, cp.TextContent("v2"), 2))
    assert (await item_of(bench, orig.msg_id)).text == "v2"
    # the first edit arrives late: kept in the history, not shown
    await receive(bench, "bob-conn", cp.XMsgUpdate(orig.msg_id, cp.TextContent("v1"), 1))
    item = await item_of(bench, orig.msg_id)
    assert item.text == "v2" and item.edited
    # the second edit again (same msgId): a duplicate, nothing changes
    await receive(bench, "bob-conn", e2.params, msg_id=e2.msg_id)
    history = await bench.read(lambda c: store.item_versions(c, item.item_id))
    assert [(n, t) for n, t, _ in history] == [(0, "v0"), (1, "v1"), (2, "v2")]
    updates = [e for e in bench.drain() if isinstance(e, cev.ChatItemUpdated)]
    assert [u.item.text for u in updates] == ["v2"]


async def test_bad_edits_and_deletes_are_refused(bench: Bench) -> None:
    user = await with_contact(bench)
    from parley.chat import contacts

    mine = cp.make(cp.XMsgNew(cp.TextContent("mine")))
    _, fx = await bench.read(lambda c: contacts.send_message(c, user, "bob", mine, "mine"))
    await bench.engine.perform(fx)
    unknown = cp.new_msg_id()
    for params in (
        cp.XMsgUpdate(mine.msg_id, cp.TextContent("hacked")),  # someone else's message
        cp.XMsgUpdate(unknown, cp.TextContent("?")),  # an unknown message
        cp.XMsgDel(mine.msg_id),
        cp.XMsgDel(unknown),
        cp.XMsgReact(unknown, cp.Reaction("👍"), True),
    ):
        await receive(bench, "bob-conn", params)
        refused = [e for e in bench.drain() if isinstance(e, cev.ItemRefused)]
        assert len(refused) == 1 and refused[0].reason, params
    item = await item_of(bench, mine.msg_id)
    assert item.text == "mine" and not item.deleted and not item.edited
    # our own commands refuse what cannot be done
    with pytest.raises(ChatError, match="emoji"):
        await bench.read(lambda c: items.react(c, user, item.item_id, "x" * 40, True))
    with pytest.raises(ChatError, match="quote"):
        await bench.read(lambda c: items.quote_of(c, user, 999, contact_id=1))
    theirs, _ = await receive(bench, "bob-conn", cp.XMsgNew(cp.TextContent("theirs")), 9)
    their_item = await item_of(bench, theirs.msg_id)
    with pytest.raises(ChatError, match="own"):
        await bench.read(lambda c: items.update(c, user, their_item.item_id, "x"))


async def test_delete_for_everyone_marks_once(bench: Bench) -> None:
    await with_contact(bench)
    orig, _ = await receive(bench, "bob-conn", cp.XMsgNew(cp.TextContent("oops")), 1)
    await receive(bench, "bob-conn", cp.XMsgDel(orig.msg_id))
    await receive(bench, "bob-conn", cp.XMsgDel(orig.msg_id))  # another x.msg.del
    deleted = [e for e in bench.drain() if isinstance(e, cev.ChatItemDeleted)]
    assert len(deleted) == 1 and deleted[0].item.deleted == "deleted"
    # an edit after the deletion changes nothing
    await receive(bench, "bob-conn", cp.XMsgUpdate(orig.msg_id, cp.TextContent("x")))
    assert (await item_of(bench, orig.msg_id)).text == "oops"


async def test_reactions_count_each_member_once(bench: Bench) -> None:
    user = await with_contact(bench)
    orig, _ = await receive(bench, "bob-conn", cp.XMsgNew(cp.TextContent("party")), 1)
    like = cp.XMsgReact(orig.msg_id, cp.Reaction("👍"), True)
    await receive(bench, "bob-conn", like)
    await receive(bench, "bob-conn", like)  # the same reaction again (a new message)
    item = await item_of(bench, orig.msg_id)
    assert [(r.emoji, r.count, r.by_user) for r in item.reactions] == [("👍", 1, False)]
    await bench.read(lambda c: items.react(c, user, item.item_id, "👍", True))
    item = await item_of(bench, orig.msg_id)
    assert [(r.emoji, r.count, r.by_user) for r in item.reactions] == [("👍", 2, True)]
    sent = bench.agent.messages("bob-conn")
    await receive(bench, "bob-conn", cp.XMsgReact(orig.msg_id, cp.Reaction("👍"), False))
    item = await item_of(bench, orig.msg_id)
    assert [(r.emoji, r.count) for r in item.reactions] == [("👍", 1)]
    for emoji in ("😂", "🚀", "✅", "❤️"):
        await receive(bench, "bob-conn", cp.XMsgReact(orig.msg_id, cp.Reaction(emoji), True))
    refused = [e for e in bench.drain() if isinstance(e, cev.ItemRefused)]
    assert len(refused) == 1 and "reactions" in refused[0].reason  # a 4th one
    assert sent == bench.agent.messages("bob-conn")


async def test_quote_links_known_items_and_keeps_unknown_text(bench: Bench) -> None:
    await with_contact(bench)
    orig, _ = await receive(bench, "bob-conn", cp.XMsgNew(cp.TextContent("question")), 1)
    ref = cp.QuotedMsg(cp.MsgRef(orig.msg_id, True), cp.TextContent("question"))
    reply, _ = await receive(bench, "bob-conn", cp.XMsgNew(cp.TextContent("answer"), ref), 2)
    item = await item_of(bench, reply.msg_id)
    assert item.quote is not None and item.quote.item_id is not None
    assert item.quote.text == "question" and not item.quote.sent
    gone = cp.QuotedMsg(cp.MsgRef(cp.new_msg_id(), False), cp.TextContent("long ago"))
    reply2, _ = await receive(bench, "bob-conn", cp.XMsgNew(cp.TextContent("re"), gone), 3)
    item2 = await item_of(bench, reply2.msg_id)
    assert item2.quote is not None and item2.quote.item_id is None
    assert (item2.quote.text, item2.quote.sent) == ("long ago", True)


async def add_member(c: sqlite3.Connection, g: Group, name: str, role: str, conn: str) -> str:
    member_id = cp.new_member_id()
    row = store.insert_member(c, g.group_id, member_id, role, CAT_POST, M_CONNECTED, name)
    ready_connection(c, K_MEMBER_GROUP, row, conn)
    return member_id


async def test_moderation_is_checked_against_roles(bench: Bench) -> None:
    g: Group = await bench.read(lambda c: member_group(c))  # bob; host alice is owner
    dan_id = await bench.read(lambda c: _sync(add_member(c, g, "dan", "member", "dan-conn")))
    eve_id = await bench.read(lambda c: _sync(add_member(c, g, "eve", "admin", "eve-conn")))
    post, _ = await receive(bench, "dan-conn", cp.XMsgNew(cp.TextContent("spam")), 1)
    eve_post, _ = await receive(bench, "eve-conn", cp.XMsgNew(cp.TextContent("hi")), 1)
    bench.drain()
    # a member cannot moderate an admin's message
    await receive(bench, "dan-conn", cp.XMsgDel(eve_post.msg_id, eve_id))
    refused = [e for e in bench.drain() if isinstance(e, cev.ItemRefused)]
    assert len(refused) == 1 and "member cannot moderate" in refused[0].reason
    # an admin can
    await receive(bench, "eve-conn", cp.XMsgDel(post.msg_id, dan_id))
    deleted = [e for e in bench.drain() if isinstance(e, cev.ChatItemDeleted)]
    assert len(deleted) == 1 and deleted[0].moderated_by is not None
    assert deleted[0].moderated_by.name == "eve" and deleted[0].item.deleted == "moderated"
    kept = await bench.read(lambda c: store.item_by_msg(c, eve_post.msg_id, group_id=g.group_id))
    assert kept is not None and kept.deleted is None


def _sync(coro: object) -> str:
    """Run a coroutine that does not await (the store calls are synchronous)."""
    import asyncio

    assert asyncio.iscoroutine(coro)
    try:
        coro.send(None)
    except StopIteration as stop:
        return str(stop.value)
    raise AssertionError("the coroutine awaited")


async def test_renegotiated_item_once_between_the_event_and_the_catch_up(bench: Bench) -> None:
    """The RSYNC ok event and the start-up catch-up from the agent's status count the
    same re-negotiations: one item each; an agent database that went back to a copy
    (fewer counted) is followed, and its next re-negotiation shows again."""
    await with_contact(bench)

    async def items_now() -> int:
        def read(c: sqlite3.Connection) -> int:
            ids = store.last_item_ids(c, 100, user_id=1, contact_id=1)
            return sum(1 for i in ids if views.item(c, i).text == "encryption re-negotiated")

        return await bench.read(read)

    await bench.apply(lambda c: items.on_rsync(c, "bob-conn", "started", ""))
    await bench.apply(lambda c: items.on_rsync(c, "bob-conn", "ok", "", 1))
    assert await items_now() == 1
    fx = await bench.apply(lambda c: items.rsync_caught_up(c, "bob-conn", "ok", 1))
    assert not fx.events  # shown already
    fx = await bench.apply(lambda c: items.rsync_caught_up(c, "bob-conn", "ok", 2))
    assert await items_now() == 2  # one the event of which was lost
    await bench.apply(lambda c: items.on_rsync(c, "bob-conn", "ok", "", 2))  # then it comes
    assert await items_now() == 2
    await bench.apply(lambda c: items.rsync_caught_up(c, "bob-conn", "ok", 0))  # restored
    assert await items_now() == 2
    await bench.apply(lambda c: items.on_rsync(c, "bob-conn", "ok", "", 1))
    assert await items_now() == 3
    fx = await bench.apply(lambda c: items.rsync_caught_up(c, "bob-conn", "required", 1))
    assert [type(e) for e in fx.events] == [cev.RatchetSync]  # still required: said again
    await bench.apply(lambda c: items.on_rsync(c, "bob-conn", "ok", "no re-negotiation", 1))
    assert await items_now() == 3

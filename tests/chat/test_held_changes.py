"""Group changes (edits, deletions, moderations, reactions) that arrive before the message
they refer to: held durably, applied in order and exactly once when it arrives, checked
then (author, roles), and dropped after their bound with a reason. A real chat store with
a recording agent (tests/chat/bench.py)."""

from __future__ import annotations

import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from parley.chat import events as cev
from parley.chat import inbox, items, store, views
from parley.chat.model import CAT_POST, K_MEMBER_GROUP, M_CONNECTED
from parley.protocol import chat as cp
from tests.chat.bench import Bench, Group, member_group, ready_connection


@pytest.fixture
async def bench(tmp_path: Path) -> AsyncIterator[Bench]:
    b = await Bench.open(tmp_path / "chat.db")
    yield b
    await b.close()


def add_member(c: sqlite3.Connection, g: Group, name: str, role: str, conn: str) -> str:
    member_id = cp.new_member_id()
    row = store.insert_member(c, g.group_id, member_id, role, CAT_POST, M_CONNECTED, name)
    ready_connection(c, K_MEMBER_GROUP, row, conn)
    return member_id


async def team(b: Bench) -> tuple[Group, dict[str, str]]:
    """bob's #team (host alice, owner) with dan (member) and eve (admin)."""

    def tx(c: sqlite3.Connection) -> tuple[Group, dict[str, str]]:
        g = member_group(c)
        ids = {
            "dan": add_member(c, g, "dan", "member", "dan-conn"),
            "eve": add_member(c, g, "eve", "admin", "eve-conn"),
        }
        return g, ids

    return await b.read(tx)


async def send(b: Bench, agent_conn: str, msg: cp.ChatMessage) -> None:
    body = cp.encode_chat_message(msg)
    await b.apply(lambda c: inbox.on_msg(c, agent_conn, body))


async def via_host(b: Bench, author_id: str, msg: cp.ChatMessage) -> None:
    """The host forwards `msg` of member `author_id`."""
    await send(b, "host-conn", cp.make(cp.XGrpMsgForward(author_id, msg)))


async def item(b: Bench, g: Group, msg_id: str) -> cev.ChatItem:
    def read(c: sqlite3.Connection) -> cev.ChatItem:
        row = store.item_by_msg(c, msg_id, group_id=g.group_id)
        assert row is not None
        return views.item(c, row.item_id)

    return await b.read(read)


def refusals(b: Bench) -> list[str]:
    return [e.reason for e in b.drain() if isinstance(e, cev.ItemRefused)]


async def held_count(b: Bench, g: Group) -> int:
    return len(await b.read(lambda c: store.held_changes(c, g.group_id)))


async def test_changes_that_overtook_their_message_apply_in_order_once(bench: Bench) -> None:
    g, ids = await team(bench)
    post = cp.make(cp.XMsgNew(cp.TextContent("v0")))
    edit1 = cp.make(cp.XMsgUpdate(post.msg_id, cp.TextContent("v1"), 1))
    edit2 = cp.make(cp.XMsgUpdate(post.msg_id, cp.TextContent("v2"), 2))
    like = cp.make(cp.XMsgReact(post.msg_id, cp.Reaction("👍"), True, ids["dan"]))
    unlike = cp.make(cp.XMsgReact(post.msg_id, cp.Reaction("👍"), False, ids["dan"]))
    heart = cp.make(cp.XMsgReact(post.msg_id, cp.Reaction("❤️"), True, ids["dan"]))
    await via_host(bench, ids["dan"], edit1)
    await via_host(bench, ids["dan"], edit2)
    await via_host(bench, ids["dan"], edit2)  # the same edit again: a duplicate
    await send(bench, "eve-conn", like)  # eve's reactions come directly, before the post
    await send(bench, "eve-conn", unlike)
    await send(bench, "eve-conn", heart)
    assert refusals(bench) == []
    bench = await bench.reopen()  # held durably
    await send(bench, "dan-conn", post)
    got = await item(bench, g, post.msg_id)
    assert got.text == "v2" and got.edited
    assert [(r.emoji, r.count) for r in got.reactions] == [("❤️", 1)]  # add, remove, add
    history = await bench.read(lambda c: store.item_versions(c, got.item_id))
    assert [(n, t) for n, t, _ in history] == [(0, "v0"), (1, "v1"), (2, "v2")]
    events = bench.drain()
    assert [type(e) for e in events].count(cev.NewChatItem) == 1
    assert [e.item.text for e in events if isinstance(e, cev.ChatItemUpdated)] == ["v1", "v2"]
    assert not [e for e in events if isinstance(e, cev.ItemRefused)]
    assert await held_count(bench, g) == 0
    # the post again (forwarded by the host this time): a duplicate, nothing applies twice
    await via_host(bench, ids["dan"], post)
    assert not bench.drain()
    await bench.close()


async def test_held_changes_are_checked_when_they_apply(bench: Bench) -> None:
    g, ids = await team(bench)
    post = cp.make(cp.XMsgNew(cp.TextContent("dan's")))
    # eve claims dan's message as her own, and deletes it; dan's real deletion waits too
    await send(bench, "eve-conn", cp.make(cp.XMsgUpdate(post.msg_id, cp.TextContent("eve"))))
    await send(bench, "eve-conn", cp.make(cp.XMsgDel(post.msg_id)))
    # eve (an admin now) moderates it, but is made a member before it arrives
    await send(bench, "eve-conn", cp.make(cp.XMsgDel(post.msg_id, ids["dan"])))
    assert refusals(bench) == []

    def demote(c: sqlite3.Connection) -> None:
        eve = store.member_by_id(c, g.group_id, ids["eve"])
        assert eve is not None
        store.set_member(c, eve.member_row, role="member")

    await bench.read(demote)
    await send(bench, "dan-conn", post)
    reasons = refusals(bench)
    assert len(reasons) == 3, reasons
    assert reasons.count("no such message from this member") == 2
    assert "a member cannot moderate messages of a member" in reasons
    got = await item(bench, g, post.msg_id)
    assert got.text == "dan's" and not got.edited and not got.deleted


async def test_moderation_applies_when_the_message_comes(bench: Bench) -> None:
    g, ids = await team(bench)
    post = cp.make(cp.XMsgNew(cp.TextContent("spam")))
    await send(bench, "eve-conn", cp.make(cp.XMsgDel(post.msg_id, ids["dan"])))
    # a member moderating is refused at once (its role does not allow it in any case)
    await send(bench, "dan-conn", cp.make(cp.XMsgDel(cp.new_msg_id(), ids["eve"])))
    assert [r for r in refusals(bench) if "cannot moderate" in r]
    await via_host(bench, ids["dan"], post)
    got = await item(bench, g, post.msg_id)
    assert got.deleted == "moderated"
    deleted = [e for e in bench.drain() if isinstance(e, cev.ChatItemDeleted)]
    assert len(deleted) == 1 and deleted[0].moderated_by is not None


async def test_a_change_of_a_message_of_another_author_is_refused_not_held(
    bench: Bench,
) -> None:
    g, _ = await team(bench)
    post = cp.make(cp.XMsgNew(cp.TextContent("dan's")))
    await send(bench, "dan-conn", post)
    bench.drain()
    await send(bench, "eve-conn", cp.make(cp.XMsgUpdate(post.msg_id, cp.TextContent("x"))))
    assert refusals(bench) == ["no such message from this member"]
    assert await held_count(bench, g) == 0


async def test_held_changes_expire_with_a_reason(
    bench: Bench, monkeypatch: pytest.MonkeyPatch
) -> None:
    g, _ = await team(bench)
    monkeypatch.setattr(items, "HELD_CHANGES_MAX", 2)
    for n in range(3):  # three edits of three messages that never come: the cap is 2
        edit = cp.XMsgUpdate(cp.new_msg_id(), cp.TextContent(str(n)))
        await send(bench, "dan-conn", cp.make(edit))
    reasons = refusals(bench)
    assert reasons == ["more than 2 changes wait for their messages"]
    assert await held_count(bench, g) == 2
    # a day later (the chat's timer, or its start, looks): the rest are dropped
    fx = await bench.apply(lambda c: items.expire_held(c, store.now() + 86400.0 + 1))
    dropped = [e for e in fx.events if isinstance(e, cev.ItemRefused)]
    assert [(e.chat, e.sender, e.event) for e in dropped] == [("#team", "dan", "x.msg.update")] * 2
    assert all(e.reason == "its message did not arrive within 24 hours" for e in dropped)
    assert await held_count(bench, g) == 0


async def test_full_deletion_removes_and_later_changes_are_refused(bench: Bench) -> None:
    """With full deletion on for the group, the author's deletion and a moderation remove
    the items; a change that comes after is refused (the message came), not held."""
    g, ids = await team(bench)
    user = g.user
    await bench.read(
        lambda c: items.set_chat_setting(c, user, items.FULL_DELETE, True, None, "team", None)
    )
    post = cp.make(cp.XMsgNew(cp.TextContent("gone soon")))
    spam = cp.make(cp.XMsgNew(cp.TextContent("spam")))
    await send(bench, "dan-conn", post)
    await send(bench, "dan-conn", spam)
    bench.drain()
    await send(bench, "dan-conn", cp.make(cp.XMsgDel(post.msg_id)))
    await send(bench, "eve-conn", cp.make(cp.XMsgDel(spam.msg_id, ids["dan"])))
    deleted = [e for e in bench.drain() if isinstance(e, cev.ChatItemDeleted)]
    assert [(d.item.text, d.removed) for d in deleted] == [("gone soon", True), ("spam", True)]
    assert deleted[1].moderated_by is not None and deleted[1].moderated_by.name == "eve"
    gid = g.group_id
    left = await bench.read(
        lambda c: [store.item_by_msg(c, m.msg_id, group_id=gid) for m in (post, spam)]
    )
    assert left == [None, None]
    like = cp.XMsgReact(post.msg_id, cp.Reaction("👍"), True, ids["dan"])
    await send(bench, "eve-conn", cp.make(like))
    assert refusals(bench) == ["the message is no longer here"]
    assert await held_count(bench, g) == 0
    # the group back to the user's default (off): marked again
    await bench.read(
        lambda c: items.set_chat_setting(c, user, items.FULL_DELETE, None, None, "team", None)
    )
    kept = cp.make(cp.XMsgNew(cp.TextContent("kept")))
    await send(bench, "dan-conn", kept)
    await send(bench, "dan-conn", cp.make(cp.XMsgDel(kept.msg_id)))
    assert (await item(bench, g, kept.msg_id)).deleted == "deleted"

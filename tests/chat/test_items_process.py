"""Receipts, edits, reactions, replies and deletion in a group of five chat processes,
each change crossing a SIGKILL of the receiver (after it stored the change, before it
acknowledged the message) or of the sender (while it took a receipt): every effect
happens exactly once."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from parley.chat import events as cev
from parley.relay.server import RelayServer
from parley.testing.chat_process import ChatProcess
from parley.testing.waiting import wait_for_condition
from tests.chat.harness import clients, contacts, invite, wait_mesh

NAMES = ["A", "B", "C", "D", "E"]


async def crash_once(p: ChatProcess, point: str, action: Any) -> None:
    """Restart `p` to die at `point`, run `action` (which makes it get there), wait for
    the SIGKILL, start it again on the same files."""
    await p.stop()
    await p.start(crash_at=point)
    await action()
    assert await p.wait_exit(60) < 0, f"{p.name} never reached {point}"
    await p.start()


async def item(p: ChatProcess, text: str, own: bool | None = False) -> dict[str, Any]:
    found: dict[str, Any] = await p.call("find_item", group="team", text=text, own=own)
    return found


async def items_of(p: ChatProcess) -> list[dict[str, Any]]:
    got: list[dict[str, Any]] = await p.call("chat_items", group="team", count=1000)
    return got


async def until(check: Any, what: str, timeout: float = 60) -> None:
    await wait_for_condition(check, timeout, 0.2, what)


async def test_item_changes_in_a_group_of_five_cross_sigkills(
    relay: RelayServer, tmp_path: Path
) -> None:
    procs = clients(tmp_path, [str(relay.address)], NAMES)
    a, b, c, d, e = (procs[n] for n in NAMES)
    try:
        for p in procs.values():
            await p.start()
        for other in (b, c, d, e):
            await contacts(a, other)
        await a.call("create_group", name="team")
        for other in (b, c, d, e):
            await invite(a, other, "team")
        await wait_mesh(procs, "team", 90)
        others = [c, d, e, a]

        # a message stored by C, which dies before acknowledging it: shown once, and the
        # receipt still comes (B's item moves to rcvd)
        sent: dict[str, Any] = {}

        async def send() -> None:
            sent.update(await b.call("send_group_message", group_name="team", text="hello"))

        await crash_once(c, "msg:x.msg.new", send)

        async def everyone_has(text: str) -> bool:
            for p in others:
                texts = [i["text"] for i in await items_of(p) if i["direction"] == "rcv"]
                if texts.count(text) != 1:
                    return False
            return True

        await until(lambda: everyone_has("hello"), "not everyone got hello once")

        async def rcvd() -> bool:
            mine = [i for i in await items_of(b) if i["item_id"] == sent["item_id"]]
            return bool(mine) and mine[0]["status"] == "rcvd"

        await until(rcvd, "B's message never moved to rcvd")

        # an edit that crosses C's SIGKILL: applied once, history kept
        async def edit() -> None:
            await b.call("update_item", item_id=sent["item_id"], text="hello, edited")

        await crash_once(c, "msg:x.msg.update", edit)
        await until(lambda: everyone_has("hello, edited"), "the edit did not reach everyone")
        at_c = await item(c, "hello, edited")
        assert at_c["edited"]
        history = await c.call("item_history", item_id=at_c["item_id"])
        assert [h[1] for h in history] == ["hello", "hello, edited"]

        # reactions from D (crossing C's SIGKILL) and E: two at everyone, once each
        async def react_d() -> None:
            target = await item(d, "hello, edited")
            await d.call("react", item_id=target["item_id"], emoji="👍")

        await crash_once(c, "msg:x.msg.react", react_d)
        target = await item(e, "hello, edited")
        await e.call("react", item_id=target["item_id"], emoji="👍")
        await e.call("react", item_id=target["item_id"], emoji="👍")  # again: no change

        async def two_likes() -> bool:
            for p in (a, c):
                reactions = (await item(p, "hello, edited"))["reactions"]
                if [(r["emoji"], r["count"]) for r in reactions] != [("👍", 2)]:
                    return False
            mine = [i for i in await items_of(b) if i["item_id"] == sent["item_id"]]
            return [(r["emoji"], r["count"]) for r in mine[0]["reactions"]] == [("👍", 2)]

        await until(two_likes, "the reactions were not counted once each")

        # a reply quoting B's message is linked at every member that has it
        await e.call(
            "send_group_message", group_name="team", text="a reply", quote=target["item_id"]
        )

        async def linked() -> bool:
            for p in (a, b, c, d):
                texts = [i for i in await items_of(p) if i["text"] == "a reply"]
                if len(texts) != 1 or texts[0]["quote"] is None:
                    return False
                if texts[0]["quote"]["item_id"] is None:
                    return False
            return True

        await until(linked, "the quote was not linked everywhere")

        # B takes a receipt and dies before acknowledging it: the item is rcvd once
        second: dict[str, Any] = {}

        async def send_second() -> None:
            second.update(await b.call("send_group_message", group_name="team", text="second"))

        await crash_once(b, "rcvd", send_second)

        async def second_rcvd() -> bool:
            mine = [i for i in await items_of(b) if i["item_id"] == second["item_id"]]
            return bool(mine) and mine[0]["status"] == "rcvd"

        await until(second_rcvd, "the second message never moved to rcvd")
        statuses = [
            ev for ev in b.history if isinstance(ev, cev.ChatItemStatus) and ev.status == "rcvd"
        ]
        assert len({s.item_id for s in statuses}) == len(statuses)

        # B deletes its first message for everyone, crossing C's SIGKILL
        async def delete() -> None:
            await b.call("delete_item", item_id=sent["item_id"], broadcast=True)

        await crash_once(c, "msg:x.msg.del", delete)

        async def deleted() -> bool:
            for p in others:
                found = [i for i in await items_of(p) if i["text"] == "hello, edited"]
                if len(found) != 1 or found[0]["deleted"] != "deleted":
                    return False
            return True

        await until(deleted, "the deletion did not reach everyone")
        assert not [i for i in await items_of(b) if i["item_id"] == sent["item_id"]]
    finally:
        for p in procs.values():
            await p.kill()

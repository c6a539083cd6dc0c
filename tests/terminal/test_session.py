"""ChatSession against real controllers and a relay: commands in, plain lines out."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from typing import cast

from rich.table import Table

from parley.chat import events as cev
from parley.chat.controller import ChatController
from parley.relay.server import RelayServer
from parley.terminal.session import INVITATION_PREFIX, ChatSession
from parley.testing.waiting import wait_for_condition
from tests.chat.conftest import MakeChat


class Recorder:
    """A Printer that keeps the lines (tables as their plain lines)."""

    def __init__(self) -> None:
        self.lines: list[str] = []
        self.taken: set[int] = set()
        self.tables = 0
        self.qrs = 0

    def line(self, text: str, style: str = "") -> None:
        self.lines.append(text)

    def table(self, table: Table, plain: Sequence[str]) -> None:
        self.tables += 1
        self.lines.extend(plain)

    def qr(self, text: str) -> None:
        self.qrs += 1

    def clear(self) -> None:
        self.lines.clear()
        self.taken.clear()

    async def wait_for(self, text: str, timeout: float = 20.0) -> str:
        """The first line with `text` not returned before (waiting for it)."""

        def find() -> int | None:
            for i, line in enumerate(self.lines):
                if i not in self.taken and text in line:
                    return i
            return None

        await wait_for_condition(
            lambda: find() is not None,
            timeout,
            message=f"no line with {text!r} in:\n" + "\n".join(self.lines),
        )
        i = find()
        assert i is not None
        self.taken.add(i)
        return self.lines[i]


@asynccontextmanager
async def session_for(chat: ChatController) -> AsyncIterator[tuple[ChatSession, Recorder]]:
    out = Recorder()
    session = ChatSession(chat, out)
    pump = asyncio.create_task(session.pump(chat.events))
    try:
        yield session, out
    finally:
        pump.cancel()
        await asyncio.gather(pump, return_exceptions=True)


async def connect(a: ChatSession, a_out: Recorder, b: ChatSession, b_out: Recorder) -> None:
    await a.handle_line("/c")
    link = (await a_out.wait_for(INVITATION_PREFIX)).removeprefix(INVITATION_PREFIX)
    await b.handle_line(f"/c {link}")
    a_user, b_user = await a.chat.active_user(), await b.chat.active_user()
    assert a_user is not None and b_user is not None
    a_name, b_name = a_user.display_name, b_user.display_name
    await a_out.wait_for(f"{b_name}: contact is connected")
    await b_out.wait_for(f"{a_name}: contact is connected")


async def test_group_from_the_terminal(relay: RelayServer, make_chat: MakeChat) -> None:
    relays = [str(relay.address)]
    a = await make_chat("alice", relays)
    b = await make_chat("bob", relays)
    c = await make_chat("cath", relays)
    async with (
        session_for(a) as (alice, a_out),
        session_for(b) as (bob, b_out),
        session_for(c) as (cath, c_out),
    ):
        await connect(alice, a_out, bob, b_out)
        await connect(alice, a_out, cath, c_out)
        # each /c printed its link once: the InvitationReady events were not shown again
        assert sum(INVITATION_PREFIX in line for line in a_out.lines) == 2
        assert a_out.qrs == 2

        await alice.handle_line("/g team The Team")
        await a_out.wait_for("#team: group created")
        await alice.handle_line("/a team bob")
        await a_out.wait_for("#team: inviting bob as member")
        await b_out.wait_for("#team: alice invites you to join the group as member")
        await bob.handle_line("/gs")
        await b_out.wait_for("#team (The Team): you are invited: /j team to join")
        await bob.handle_line("/j #team")
        await b_out.wait_for("#team: you joined the group")
        await a_out.wait_for("#team: bob joined the group")

        await alice.handle_line("/a #team @cath admin")
        await c_out.wait_for("invites you to join the group as admin")
        await alice.handle_line("/ms team")
        await a_out.wait_for("#team: member cath (admin) is invited")
        await cath.handle_line("/j team")
        await c_out.wait_for("#team: member bob is connected")
        await b_out.wait_for("#team: member cath is connected")

        for session, out in ((alice, a_out), (bob, b_out), (cath, c_out)):
            out.clear()
            await session.handle_line("/ms team")
            assert len(out.lines) == 3, out.lines
            assert out.lines[0].startswith("#team: you are ")
            assert all(line.endswith("is connected") for line in out.lines[1:]), out.lines

        await cath.handle_line("#team hello all")
        await a_out.wait_for("#team cath> hello all")
        await b_out.wait_for("#team cath> hello all")
        await bob.handle_line("/tail team 1")  # a bare name: the group
        await b_out.wait_for("#team cath> hello all")
        await bob.handle_line("/tail alice")  # a bare name: the contact
        await b_out.wait_for("no messages yet")

        # pending work settles: /status says so in one line
        async def settled() -> bool:
            a_out.clear()
            await alice.handle_line("/status")
            return a_out.lines == ["nothing pending: every command and message has gone through"]

        await wait_for_condition(settled, 20)

        await alice.handle_line("/rm team bob")
        await a_out.wait_for("#team: you removed bob from the group")
        await b_out.wait_for("#team: alice removed you from the group")
        await cath.handle_line("/l team")
        await c_out.wait_for("#team: you left the group")
        await a_out.wait_for("#team: cath left the group")
        await alice.handle_line("/d #team")
        await a_out.wait_for("#team: you deleted the group")
        await alice.handle_line("/d @bob")
        await a_out.wait_for("bob: contact deleted")


async def test_message_changes_from_the_terminal(relay: RelayServer, make_chat: MakeChat) -> None:
    """simplex-chat's forms: reply, edit, react, delete; the receipt mark on our message."""
    relays = [str(relay.address)]
    a = await make_chat("alice", relays)
    b = await make_chat("bob", relays)
    async with session_for(a) as (alice, a_out), session_for(b) as (bob, b_out):
        await connect(alice, a_out, bob, b_out)
        await alice.handle_line("@bob hello bob")
        await b_out.wait_for("alice> hello bob")
        await a_out.wait_for("received ✓✓")
        await alice.handle_line("/tail bob")
        await a_out.wait_for("@bob hello bob ✓✓")
        await bob.handle_line("> @alice (hello) hi alice")
        await a_out.wait_for("hi alice")
        assert any("> hello bob" in line for line in a_out.lines)
        await alice.handle_line("! @bob (hello) hello again")
        await b_out.wait_for("alice> hello again [edited]")
        await bob.handle_line("+👍 @alice hello again")
        await a_out.wait_for("bob reacted 👍 to: hello again")
        await alice.handle_line("\\ @bob hello again")
        await b_out.wait_for("deleted: hello again")
        await bob.handle_line("! @alice (nothing like this) x")
        await b_out.wait_for("no message starting with 'nothing like this'")
        await bob.handle_line("/sync @alice")
        await b_out.wait_for("@alice: re-negotiating encryption (started)")
        await b_out.wait_for("alice> [encryption re-negotiated]")
        await a_out.wait_for("bob> [encryption re-negotiated]")


async def test_errors_are_one_line(relay: RelayServer, make_chat: MakeChat) -> None:
    a = await make_chat("alice", [str(relay.address)])
    async with session_for(a) as (alice, out):
        cases = {
            "@bob hi": "error: no contact bob",
            "/ms nosuch": "error: no group #nosuch",
            "/a team bob boss": "error: unknown role 'boss': admin, member or observer",
            "/c parley:/invite#garbage": "error: corrupt invitation link",
            "/c http://example.com": "error: not a parley invitation link",
            "/j team": "error: no group #team",
            "/tail nobody": "error: no contact or group nobody",
            "hello": "error: no chat to send to yet",
            "/d #nosuch": "error: no group #nosuch",
        }
        for line, error in cases.items():
            out.clear()
            assert await alice.handle_line(line) is False
            assert len(out.lines) == 1 and out.lines[0].startswith(error), (line, out.lines)
        out.clear()
        await alice.handle_line("/g bob")
        await alice.handle_line("/tail bob")  # a group only: fine
        assert out.lines[-1] == "no messages yet"
        await alice.handle_line("/u")
        assert out.lines[-1] == "you are alice"
        await alice.handle_line("/help")
        assert any(line.startswith("/ms group") for line in out.lines)
        assert await alice.handle_line("   ") is False
        assert await alice.handle_line("/q") is True


class FakeInvitations:
    """Just enough of a controller for /c: links that come at once, late, or in a race."""

    def __init__(self) -> None:
        self.session: ChatSession | None = None
        self.results: list[tuple[int, str | None]] = []

    async def create_invitation(self, timeout: float = 30.0) -> tuple[int, str | None]:
        connection_id, link = self.results.pop(0)
        if link is not None and self.session is not None:
            # the event pump shows the InvitationReady before /c gets its result
            self.session.show_event(cev.InvitationReady(connection_id, link))
        return connection_id, link


async def test_each_invitation_link_is_shown_once() -> None:
    fake = FakeInvitations()
    out = Recorder()
    session = ChatSession(cast(ChatController, fake), out)
    fake.session = session
    fake.results = [(1, None), (2, "parley:/invite#two")]

    await session.handle_line("/c")  # the relay is down: no link yet
    assert out.lines == ["the relay is not reachable yet: the link will be shown when it is made"]
    await session.handle_line("/c")  # the event races the result: shown once
    session.show_event(cev.InvitationReady(2, "parley:/invite#two"))  # (a replay)
    session.show_event(cev.InvitationReady(1, "parley:/invite#one"))  # the late one
    session.show_event(cev.InvitationReady(1, "parley:/invite#one"))
    links = [line for line in out.lines if line.startswith(INVITATION_PREFIX)]
    assert links == [
        INVITATION_PREFIX + "parley:/invite#two",
        INVITATION_PREFIX + "parley:/invite#one",
    ]
    assert out.qrs == 2

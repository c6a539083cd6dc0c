"""ApiHandler's bookkeeping of invitation links, with a stand-in for the chat."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import cast

from parley.api import commands as c
from parley.api.handlers import ApiHandler
from parley.chat import events as cev
from parley.chat.controller import ChatController


class FakeChat:
    """Just what /connect uses. `during` runs while create_invitation is in progress."""

    def __init__(self) -> None:
        self.result: tuple[int, str | None] = (0, None)
        self.during: Callable[[], Awaitable[None]] | None = None

    async def active_user(self) -> cev.User:
        return cev.User(1, "alice", "")

    async def create_invitation(self, timeout: float = 30.0) -> tuple[int, str | None]:
        if self.during is not None:
            await self.during()
        return self.result


def ready(connection_id: int) -> cev.InvitationReady:
    return cev.InvitationReady(connection_id, f"parley:/invite#{connection_id}")


async def test_invitation_links_are_sent_once() -> None:
    fake = FakeChat()
    handler = ApiHandler(cast(ChatController, fake))
    seen: list[object] = []

    # the event is handled while /connect still waits: held, then dropped (the reply has it)
    async def event_first() -> None:
        seen.extend(await handler.event(ready(7)))

    fake.result, fake.during = (7, "parley:/invite#7"), event_first
    reply = await handler.run(c.AddContact())
    assert reply["type"] == "invitation" and reply["connReqInvitation"] == "parley:/invite#7"
    assert seen == [] and await handler.after_command() == []

    # the event is handled after the reply: dropped too
    fake.result, fake.during = (8, "parley:/invite#8"), None
    assert (await handler.run(c.AddContact()))["type"] == "invitation"
    assert await handler.after_command() == []
    assert await handler.event(ready(8)) == []

    # the relay did not answer in time: the link comes later as an event
    fake.result = (9, None)
    reply = await handler.run(c.AddContact())
    assert reply["type"] == "chatCmdError"
    assert "invitation" in reply["chatError"]["errorType"]["message"]
    late = await handler.event(ready(9))
    assert [e["type"] for e in late] == ["invitation"]
    assert late[0]["connReqInvitation"] == "parley:/invite#9"

    # a late link that arrives while another /connect is in progress waits for it
    async def other_link_meanwhile() -> None:
        seen.extend(await handler.event(ready(10)))

    fake.result, fake.during = (11, "parley:/invite#11"), other_link_meanwhile
    assert (await handler.run(c.AddContact()))["type"] == "invitation"
    assert seen == []
    released = await handler.after_command()
    assert [e["connReqInvitation"] for e in released] == ["parley:/invite#10"]
    assert await handler.event(ready(11)) == []

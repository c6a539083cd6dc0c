from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import TypeVar

import pytest

from parley.chat import events as cev
from parley.chat.controller import ChatConfig, ChatController
from tests.agent.conftest import FAST_RETRY
from tests.relay.conftest import FAST, relay, relay_config  # noqa: F401  (fixtures)

E = TypeVar("E", bound=cev.ChatEvent)


def chat_config(prefix: Path, relays: list[str], **kw: object) -> ChatConfig:
    config = ChatConfig(
        db_prefix=prefix, relays=relays, agent={"retry": FAST_RETRY, "client": FAST}
    )
    for k, v in kw.items():
        setattr(config, k, v)
    return config


MakeChat = Callable[..., Awaitable[ChatController]]


@pytest.fixture
async def make_chat(tmp_path: Path) -> AsyncIterator[MakeChat]:
    chats: list[ChatController] = []

    async def make(name: str, relays: list[str], **kw: object) -> ChatController:
        chat = await ChatController.open(chat_config(tmp_path / name, relays, **kw))
        if await chat.active_user() is None:
            await chat.create_user(name)
        await chat.start()
        chats.append(chat)
        return chat

    yield make
    for chat in chats:
        await chat.close()


async def expect(
    chat: ChatController,
    kind: type[E],
    timeout: float = 15.0,
    where: Callable[[E], bool] | None = None,
) -> E:
    async with asyncio.timeout(timeout):
        while True:
            e = await chat.events.get()
            if isinstance(e, kind) and (where is None or where(e)):
                return e


async def make_contacts(a: ChatController, b: ChatController) -> None:
    _, link = await a.create_invitation()
    assert link is not None
    await b.connect(link)
    await expect(a, cev.ContactConnected)
    await expect(b, cev.ContactConnected)

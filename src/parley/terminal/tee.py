"""Sharing the chat's event stream between two consumers without changing the controller.

`chat.events` is one asyncio.Queue: whoever reads it takes the events away from everyone
else. When the WebSocket API server owns `chat.events`, the terminal still wants to see
them; `tap_events(chat)` swaps in a queue that copies every event it is given into extra
queues (taps), so the API server keeps reading `chat.events` and the terminal reads its
tap. Call it before the chat starts and before anything else holds on to `chat.events`.
"""

from __future__ import annotations

import asyncio

from parley.chat import events as cev
from parley.chat.controller import ChatController


class EventTee(asyncio.Queue[cev.ChatEvent]):
    """A queue that also puts every item into each of its taps."""

    def __init__(self) -> None:
        super().__init__()
        self.taps: list[asyncio.Queue[cev.ChatEvent]] = []

    def put_nowait(self, item: cev.ChatEvent) -> None:
        super().put_nowait(item)  # (Queue.put ends in put_nowait too)
        for tap in self.taps:
            tap.put_nowait(item)


def tap_events(chat: ChatController) -> asyncio.Queue[cev.ChatEvent]:
    """A second queue that receives every event put into `chat.events` from now on."""
    if not isinstance(chat.events, EventTee):
        tee = EventTee()
        while not chat.events.empty():  # keep what was queued already, in order
            tee.put_nowait(chat.events.get_nowait())
        chat.events = tee
    tap: asyncio.Queue[cev.ChatEvent] = asyncio.Queue()
    chat.events.taps.append(tap)
    return tap

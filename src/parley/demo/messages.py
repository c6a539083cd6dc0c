"""The group messages of a scenario: each member sends its own (exactly once, through
kills), and :meth:`Messages.all_received` checks that every member has every other
member's, counting duplicates; a sender that gave up on a message ends the wait early
(:class:`~parley.demo.progress.MessagesDropped`)."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Callable

from parley.demo.clients import Member, call, try_call
from parley.demo.config import DROPPED_GRACE, GROUP
from parley.demo.progress import MessagesDropped, Progress
from parley.testing.waiting import wait_for_condition


class Messages:
    def __init__(
        self,
        names: list[str],
        members: list[Member],
        progress: Progress,
        faults_done: asyncio.Event,
        clock: Callable[[], float],
    ) -> None:
        """`names`: the members' (`members` may fill up later); `faults_done`: set once
        the fault schedule is over (after it, a dropped message will not come); `clock`
        gives the scenario's time."""
        self.members = members
        self.progress = progress
        self.faults_done = faults_done
        self.clock = clock
        self.sent: dict[str, list[str]] = {name: [] for name in names}
        self.last_receipt = 0.0  # when the count of receipts last grew

    async def send_everyone(self, count: int, label: str) -> None:
        await asyncio.gather(*(self.send_all(m, count, label) for m in self.members))

    async def send_all(self, m: Member, count: int, label: str) -> None:
        for k in range(count):
            text = f"{label} #{k + 1} from {m.name}"
            await self._send(m, text)
            self.sent[m.name].append(text)
            self.progress.messages_sent += 1

    async def _send(self, m: Member, text: str) -> None:
        """Send once: after a failed call, look whether the message was stored first."""
        while True:
            try:
                await m.proc.call("send_group_message", timeout=20, group_name=GROUP, text=text)
                return
            except (ConnectionError, TimeoutError):
                await wait_for_condition(lambda: m.proc.running, 60, 0.05)
                items = await call(m, "chat_items", group=GROUP, count=10_000)
                if any(i["direction"] == "snd" and i["text"] == text for i in items):
                    return

    async def all_received(self) -> bool:
        complete = True
        for m in self.members:
            items = await try_call(m, "chat_items", group=GROUP, count=10_000)
            if items is None:
                complete = False
                continue
            m.received = Counter(
                (i["author"]["name"] if i["author"] else "?", i["text"])
                for i in items
                if i["direction"] == "rcv"
            )
            m.progress.received = len(m.received)
            if not self.expected_for(m.name) <= set(m.received):
                complete = False
        received = sum(m.progress.received for m in self.members)
        now = self.clock()
        if received != self.progress.messages_received:
            self.last_receipt = now
        self.progress.messages_received = received
        self.progress.duplicates = sum(
            c - 1 for m in self.members for c in m.received.values() if c > 1
        )
        dropped = self.dropped()
        if (
            not complete
            and dropped
            and self.faults_done.is_set()
            and now - self.last_receipt > DROPPED_GRACE
        ):
            raise MessagesDropped("a sender dropped messages: " + "; ".join(dropped[:5]))
        return complete

    def expected_for(self, name: str) -> set[tuple[str, str]]:
        return {(a, t) for a, texts in self.sent.items() if a != name for t in texts}

    def dropped(self) -> list[str]:
        """The messages the clients said they gave up sending (client: log line)."""
        return [f"{m.name}: {line}" for m in self.members for line in m.dropped]

    def missing(self) -> dict[str, list[str]]:
        """Each member's missing messages (author: text)."""
        missing: dict[str, list[str]] = {}
        for m in self.members:
            lost = sorted(self.expected_for(m.name) - set(m.received))
            if lost:
                missing[m.name] = [f"{a}: {t}" for a, t in lost]
        return missing

    def duplicates(self) -> list[str]:
        return [
            f"{m.name} got {a}: {t} ×{c}"
            for m in self.members
            for (a, t), c in m.received.items()
            if c > 1
        ]

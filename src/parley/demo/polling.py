"""Reading the clients' state while a scenario runs: each member's view of the group and
its pending work (agent commands, deliveries, chat continuations), summed up in the
:class:`~parley.demo.progress.Progress`; retries seen along the way; pending work in
words."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from parley.demo.clients import Member, try_call
from parley.demo.config import CONNECTED, GROUP, JOINED
from parley.demo.progress import Pending, Progress
from parley.testing.proxy import FaultProxy


class Poller:
    def __init__(
        self,
        members: list[Member],
        proxies: list[FaultProxy],
        progress: Progress,
        cleanup_cuts: Callable[[], int],
    ) -> None:
        """`cleanup_cuts`: the links cut by the proxies that were no faults (they are not
        counted as such)."""
        self.members = members
        self.proxies = proxies
        self.progress = progress
        self.cleanup_cuts = cleanup_cuts
        self.group_started = False  # from then on, each member's view of the group is read
        self.retried: dict[tuple[str, str], int] = {}  # (client, corr id) -> attempts seen
        self.deliveries_retried: set[tuple[str, str, int]] = set()
        self.pending: dict[str, list[str]] = {}  # client -> its pending work, in words

    async def run(self, interval: float, clock: Callable[[], float]) -> None:
        """Refresh the progress: each client's view of the group and its pending work."""
        rounds = 0
        while True:
            self.progress.elapsed = clock()
            await self.poll_all(rounds)
            rounds += 1
            await asyncio.sleep(interval)

    async def poll_all(self, rounds: int = 0, return_exceptions: bool = False) -> None:
        await asyncio.gather(
            *(self.poll_member(m, rounds) for m in self.members),
            return_exceptions=return_exceptions,
        )
        self.update_totals()

    async def poll_member(self, m: Member, rounds: int) -> None:
        p = m.progress
        p.up = m.proc.running
        if not p.up:
            return
        if self.group_started:
            members = await try_call(m, "members", group_name=GROUP)
            if members is not None:
                m.view = {x["name"]: x["status"] for x in members if x["category"] != "user"}
                me = [x for x in members if x["category"] == "user"]
                p.joined = bool(me) and me[0]["status"] in JOINED
        if rounds % 2 == 0 or self.progress.phase == "settling":
            status = await try_call(m, "status")
            if status is not None:
                report, continuations = status
                commands = report["commands"]
                retrying = sum(1 for c in commands if c["attempts"] > 0)
                p.pending = Pending(
                    len(commands), retrying, len(report["deliveries"]), len(continuations)
                )
                errors = [c["last_error"] for c in commands if c["last_error"]]
                errors += [d["last_error"] for d in report["deliveries"] if d["last_error"]]
                p.last_error = errors[-1] if errors else None
                for c in commands:
                    if c["attempts"] > 0:
                        key = (m.name, c["corr_id"])
                        self.retried[key] = max(self.retried.get(key, 0), c["attempts"])
                for d in report["deliveries"]:
                    if d["attempts"] > 0:
                        self.deliveries_retried.add((m.name, d["conn_id"], d["msg_id"]))

    def update_totals(self) -> None:
        pr = self.progress
        pairs = 0
        for i, a in enumerate(self.members):
            seen = sum(1 for s in a.view.values() if s in CONNECTED)
            a.progress.peers = seen
            for b in self.members[i + 1 :]:
                if a.view.get(b.name) in CONNECTED and b.view.get(a.name) in CONNECTED:
                    pairs += 1
        pr.pairs_connected = pairs
        pr.joined = sum(1 for m in pr.members if m.joined)
        pr.pending = sum((m.pending for m in pr.members), Pending())
        f = pr.faults
        f.links_cut = sum(p.stats.links_cut for p in self.proxies) - self.cleanup_cuts()
        f.random_cuts = sum(p.stats.random_cuts for p in self.proxies)
        f.refused = sum(p.stats.links_refused for p in self.proxies)
        f.random_refusals = sum(p.stats.random_refusals for p in self.proxies)
        f.client_kills = sum(m.kills for m in pr.members)

    async def all_joined(self) -> bool:
        return self.progress.joined == len(self.members)

    async def nothing_pending(self) -> bool:
        """Whether no client has any work pending (each one's is kept in `pending`)."""
        for m in self.members:
            status = await try_call(m, "status")
            if status is None:
                return False
            self.pending[m.name] = describe_pending(status)
            if self.pending[m.name]:
                return False
        return True


def describe_pending(status: Any) -> list[str]:
    report, continuations = status
    out = [
        f"command {c['kind']} ({c['corr_id']}): {c['attempts']} attempts, "
        f"last error {c['last_error']}"
        for c in report["commands"]
    ]
    out += [
        f"delivery {d['msg_id']} on {d['conn_id']}: {d['attempts']} attempts, "
        f"last error {d['last_error']}"
        for d in report["deliveries"]
    ]
    out += [
        f"continuation {c['function']} ({c['status']}) on {c['connection']}" for c in continuations
    ]
    return out

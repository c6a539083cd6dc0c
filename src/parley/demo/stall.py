"""Stall detection: a group that stopped forming although nothing is pending anywhere
(:class:`~parley.demo.progress.Stalled`), so that a run need not wait for its timeout."""

from __future__ import annotations

from parley.demo.clients import Member
from parley.demo.progress import Progress, Stalled
from parley.testing.chat_process import Timers


class StallWatch:
    def __init__(self, stall_after: float | None, timers: Timers) -> None:
        """`stall_after`: seconds without progress (None: never a stall), at least as
        long as the clients' `timers` that could still help."""
        if stall_after is not None:
            stall_after = max(stall_after, timers.intro_timeout + timers.intro_check)
        self.stall_after = stall_after
        self._views = 0
        self._idle_since = 0.0

    def check(
        self, progress: Progress, members: list[Member], faults_done: bool, now: float
    ) -> None:
        """Raise Stalled when the mesh is incomplete, no fault is left to come (`faults_done`),
        every client is up with nothing pending, and no member's view of the others changed
        for `stall_after` seconds: longer than the timers that could still help (the host's
        re-introduction of a pair, the agents' checks of their subscriptions)."""
        pr = progress
        if self.stall_after is None or pr.pairs_connected == pr.pairs_total:
            return
        views = hash(tuple(tuple(sorted(m.view.items())) for m in members))
        idle = (
            faults_done
            and all(m.up for m in pr.members)
            and not (pr.pending.commands or pr.pending.deliveries or pr.pending.continuations)
            and views == self._views
        )
        if not idle:
            self._views, self._idle_since = views, now
        elif now - self._idle_since > self.stall_after:
            missing = pr.pairs_total - pr.pairs_connected
            raise Stalled(
                f"stalled: {missing} member pairs not connected; for {self.stall_after:g} s no "
                "member's view changed and no client had anything pending (commands, "
                "deliveries, continuations)"
            )

"""The subscription safety net: when to check a receive queue at its relay, and what was found.

The relay client keeps every queue subscribed across reconnects, and that is what delivers
messages. The net is for whatever slips past it (a subscription the relay ended, a pushed
message the agent failed to process, a bug): on a jittered timer the agent renews the
subscriptions of the queues that expect traffic and asks the relay for a waiting message
(GET). What a pass finds is kept here and shown in `Agent.pending()`.

A queue expects traffic while its connection is not ready (a confirmation or HELLO is
awaited); a ready queue is checked when nothing arrived on it for a while. Both back off
while checks find nothing, and start over when a message arrives, so a dormant contact
costs a relay a few commands a day and a connection being made one every few seconds.
This module is pure bookkeeping: the agent does the I/O.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

QueueKey = tuple[str, bytes]  # (relay address, recipient id)


@dataclass(frozen=True)
class NetPolicy:
    """When a queue is due for a check (seconds since anything arrived or was checked)."""

    interval: float = 10.0  # how often the agent looks for queues that are due
    expecting: float = 20.0  # first check of a queue whose connection is not ready yet
    expecting_cap: float = 600.0
    quiet: float = 600.0  # first check of a ready queue on which nothing arrived
    quiet_cap: float = 24 * 3600.0
    factor: float = 2.0  # each check that finds nothing doubles the wait for the next

    def gap(self, expecting: bool, empty_checks: int) -> float:
        first, cap = (
            (self.expecting, self.expecting_cap)
            if expecting
            else (
                self.quiet,
                self.quiet_cap,
            )
        )
        return min(first * self.factor ** min(empty_checks, 64), cap)


@dataclass
class _QueueState:
    last_activity: float  # monotonic: a message arrived, or a check was made
    received: int = 0  # messages that arrived on the queue (since start)
    empty_checks: int = 0
    suspect: bool = False  # processing a pushed message failed: check at the next pass


@dataclass(frozen=True)
class Finding:
    """A message the relay held that the agent had not received: found by a check."""

    conn_id: str
    relay: str
    at: float  # wall clock


@dataclass(frozen=True)
class SafetyNetReport:
    interval: float
    passes: int  # passes over the queues so far (since start)
    last_pass: float | None  # wall clock
    checks: int  # queues checked (GET, then SUB) so far
    renewed: int  # checks that subscribed a queue the client did not hold on its session
    found: int  # messages found waiting that had not arrived by subscription
    errors: int  # checks that failed (the relay's answer was an error or never came)
    last_error: str | None
    recent: list[Finding] = field(default_factory=list)


class SafetyNet:
    """Per-queue timing and the counters of what the checks found."""

    def __init__(self, policy: NetPolicy) -> None:
        self.policy = policy
        self._queues: dict[QueueKey, _QueueState] = {}
        self.passes = 0
        self.last_pass: float | None = None
        self.checks = 0
        self.renewed = 0
        self.found = 0
        self.errors = 0
        self.last_error: str | None = None
        self._recent: deque[Finding] = deque(maxlen=10)

    def _state(self, key: QueueKey, now: float) -> _QueueState:
        st = self._queues.get(key)
        if st is None:
            st = self._queues[key] = _QueueState(now)
        return st

    def received(self, key: QueueKey, now: float) -> None:
        """A message arrived on the queue: it works; the next check is a full gap away."""
        st = self._state(key, now)
        st.last_activity, st.empty_checks, st.suspect = now, 0, False
        st.received += 1

    def seen(self, key: QueueKey) -> int:
        """How many messages arrived on the queue so far (to tell a check's find from a
        message that was pushed while the check was under way)."""
        st = self._queues.get(key)
        return st.received if st else 0

    def suspect(self, key: QueueKey, now: float) -> None:
        """Processing a message of the queue failed: check it at the next pass."""
        self._state(key, now).suspect = True

    def forget(self, key: QueueKey) -> None:
        self._queues.pop(key, None)

    def due(self, key: QueueKey, expecting: bool, now: float) -> bool:
        st = self._state(key, now)
        return st.suspect or now - st.last_activity >= self.policy.gap(expecting, st.empty_checks)

    def checked(self, key: QueueKey, now: float, *, renewed: bool, found: Finding | None) -> None:
        st = self._state(key, now)
        st.last_activity, st.suspect = now, False
        self.checks += 1
        self.renewed += int(renewed)
        if found is None:
            st.empty_checks += 1
        else:
            st.empty_checks = 0
            self.found += 1
            self._recent.append(found)

    def failed(self, key: QueueKey, now: float, error: str) -> None:
        st = self._state(key, now)
        st.last_activity = now  # try again after the gap, not at every pass
        self.checks += 1
        self.errors += 1
        self.last_error = error

    def pass_done(self, wall: float) -> None:
        self.passes += 1
        self.last_pass = wall

    def report(self) -> SafetyNetReport:
        return SafetyNetReport(
            self.policy.interval,
            self.passes,
            self.last_pass,
            self.checks,
            self.renewed,
            self.found,
            self.errors,
            self.last_error,
            list(self._recent),
        )

"""What a scenario reports: the live :class:`Progress` (for front ends) and the final
:class:`ScenarioResult`, with the two ways a run gives up early."""

from __future__ import annotations

from collections import deque
from dataclasses import astuple, dataclass, field
from pathlib import Path

from parley.demo.config import Phase, ScenarioConfig
from parley.demo.faults import FaultPlan


@dataclass
class FaultCounts:
    links_cut: int = 0  # by proxy cuts, random or whole-relay (FaultProxy.stats.links_cut)
    random_cuts: int = 0  # the part of links_cut chosen by cut_random
    refused: int = 0  # connections reset on arrival: during outages, or at random
    random_refusals: int = 0  # the part of refused chosen by refuse_random
    outages: int = 0
    relay_restarts: int = 0
    client_kills: int = 0

    @property
    def total(self) -> int:
        return self.links_cut + self.refused + self.relay_restarts + self.client_kills


@dataclass(frozen=True)
class RelayCounts:
    """Totals over all relays (and over restarts) at one moment."""

    messages: int  # SENDs accepted
    sessions: int  # TLS sessions accepted
    queues: int  # queues that exist

    def minus(self, other: RelayCounts) -> RelayCounts:
        return RelayCounts(
            self.messages - other.messages,
            self.sessions - other.sessions,
            self.queues - other.queues,
        )


@dataclass
class Pending:
    """The work pending at a client, or (added up) at several."""

    commands: int = 0  # agent commands
    retrying: int = 0  # ... of which attempts > 0
    deliveries: int = 0  # agent deliveries
    continuations: int = 0  # chat continuations

    def __add__(self, other: Pending) -> Pending:
        return Pending(*(a + b for a, b in zip(astuple(self), astuple(other), strict=True)))


@dataclass
class MemberProgress:
    name: str
    up: bool = False
    kills: int = 0
    joined: bool = False
    peers: int = 0  # members this one sees connected
    pending: Pending = field(default_factory=Pending)
    received: int = 0  # distinct group messages received
    last_error: str | None = None


@dataclass
class Progress:
    phase: Phase = "starting"
    elapsed: float = 0.0
    members: list[MemberProgress] = field(default_factory=list)
    joined: int = 0  # members (host included) in the group
    pairs_connected: int = 0
    pairs_total: int = 0
    pending: Pending = field(default_factory=Pending)  # at all members
    faults: FaultCounts = field(default_factory=FaultCounts)
    faults_planned: int = 0
    messages_sent: int = 0
    messages_expected: int = 0  # receipts: every message at every other member
    messages_received: int = 0
    duplicates: int = 0
    time_to_mesh: float | None = None
    log: deque[tuple[float, str]] = field(default_factory=lambda: deque(maxlen=200))


@dataclass
class ScenarioResult:
    config: ScenarioConfig
    seed: int
    plan: FaultPlan
    ok: bool
    problems: list[str]
    time_to_mesh: float | None  # from the group's creation to the last pair connected
    # from the group's creation to the end of the fault schedule: the last fault (None if
    # the schedule did not finish)
    faults_end: float | None
    time_to_messages: float | None  # from the first send to the last message received
    total_time: float
    members: int
    joined: int
    pairs_connected: int
    pairs_total: int
    missing_pairs: list[str]
    messages_sent: int
    messages_expected: int
    messages_received: int
    duplicates: list[str]
    missing_messages: dict[str, list[str]]
    faults: FaultCounts
    commands_retried: int  # distinct agent commands seen with attempts > 0 (sampled)
    retry_attempts: int  # the sum of the highest attempt count seen for each of them
    deliveries_retried: int
    settled: bool | None  # None when not asked to wait for it
    pending_at_end: dict[str, list[str]]
    # what the relays counted (in-process relays only; None with relay processes)
    relay_at_group_start: RelayCounts | None
    relay_at_mesh: RelayCounts | None
    relay_at_end: RelayCounts | None
    dropped: list[str]  # messages the clients said they gave up sending (client: log line)
    agent_connections: int  # duplex connections a full group of this size needs
    contacts_time: float
    stderr: dict[str, str]  # the end of what each client wrote to stderr (if anything)
    workdir: Path | None
    log: list[tuple[float, str]]

    @property
    def joins(self) -> int:
        return self.members - 1

    @property
    def mesh_after_faults(self) -> float | None:
        """Seconds from the last fault to the full mesh (0 when it came before)."""
        if self.time_to_mesh is None or self.faults_end is None:
            return None
        return max(0.0, self.time_to_mesh - self.faults_end)


class Stalled(RuntimeError):
    """The group stopped forming with nothing pending anywhere, and neither a re-introduction
    by the host nor the agents' own periodic checks helped for `stall_after` seconds."""


class MessagesDropped(RuntimeError):
    """A client logged that it gave up sending a message: waiting longer is pointless."""

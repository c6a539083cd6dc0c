"""What a scenario runs: its configuration, the member names, and the constants the
scenario's rooms share (the group's name, the statuses that count as connected)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from parley.demo.faults import FaultLevel
from parley.testing.chat_process import Timers, describe_timers

GROUP = "team"
# what the chat logs when the agent refuses a message from the outbox, which is then dropped
DROPPED = b"not sent:"
# give up waiting for messages this long after the last new receipt, once a sender has
# dropped a message and the fault schedule is over (the missing ones will not come)
DROPPED_GRACE = 5.0
# give up waiting for the mesh after this long without progress while nothing is pending
# (ScenarioConfig.stall_after): longer than the chat's re-introduction of a pair that makes
# no progress and the agent's periodic check of its subscriptions, which could still help
STALL_AFTER = 120.0
CONNECTED = ("memConnected", "memComplete")
JOINED = ("memConnected", "memComplete", "memCreator")

_NAMES = [
    "alice",
    "bob",
    "carol",
    "dave",
    "erin",
    "frank",
    "grace",
    "heidi",
    "ivan",
    "judy",
    "mallory",
    "niaj",
    "olivia",
    "peggy",
    "rupert",
    "sybil",
    "trent",
    "victor",
    "walter",
    "yvonne",
]

Phase = Literal["starting", "contacts", "group", "messages", "settling", "done", "failed"]


def member_names(n: int) -> list[str]:
    """alice, bob, ... then m21, m22, ... for large groups."""
    return [_NAMES[i] if i < len(_NAMES) else f"m{i + 1}" for i in range(n)]


def default_span(members: int) -> float:
    """Seconds over which the faults are spread: about how long the group takes to form."""
    return 2.0 + 0.05 * members * members


@dataclass
class ScenarioConfig:
    members: int = 8
    relays: int = 2
    faults: FaultLevel = "light"
    seed: int | None = None  # None: a random seed (see ScenarioResult.seed)
    messages: int = 3  # group messages each member sends once the mesh is complete
    timeout: float = 180.0  # for the whole run, from the first process start
    span: float | None = None  # seconds the fault schedule covers (default_span(members))
    rounds: int | None = None  # exact number of discrete faults (see make_plan)
    settle: bool = False  # at the end, wait until no client has anything pending
    # `parley relay` processes (SIGKILLed to restart); None: processes with harsh faults,
    # relays inside this process otherwise
    relay_processes: bool | None = None
    # the clients run with their default timers, like `parley chat`; by default they run
    # with shortened retry timers (parley.testing.chat_process.describe_timers says which)
    default_timers: bool = False
    # the host re-introduces pairs stuck for this long (None: the chat's default)
    intro_timeout: float | None = None
    invite_interval: float = 0.0  # seconds between two invitations (0: everyone at once)
    # group messages each member sends as soon as everyone has joined, while the members
    # are still connecting to each other (the host forwards them meanwhile)
    early_messages: int = 0
    poll_interval: float | None = None  # default grows with the number of members
    # give up early when the mesh is not complete, the fault schedule is over, every client
    # is up with nothing pending and no member's view changed for this long (None: never;
    # the run then lasts until `timeout`)
    stall_after: float | None = STALL_AFTER
    workdir: Path | None = None  # default: a temporary directory, removed on success
    keep_workdir: bool = False

    def __post_init__(self) -> None:
        if self.members < 2:
            raise ValueError("a group needs at least 2 members")
        if self.relays < 1:
            raise ValueError("at least one relay")
        if self.messages < 0 or self.early_messages < 0:
            raise ValueError("messages must not be negative")
        if self.timeout <= 0:
            raise ValueError("timeout must be positive")
        if self.stall_after is not None and self.stall_after <= 0:
            raise ValueError("stall_after must be positive (or None)")
        if self.relay_processes is None:
            self.relay_processes = self.faults == "harsh"

    @property
    def timers(self) -> Timers:
        """The clients' timers as this scenario runs them."""
        return Timers.of(not self.default_timers, self.intro_timeout)

    def describe_timers(self) -> str:
        """The clients' timers in words (shortened ones: by how much)."""
        return describe_timers(not self.default_timers, self.intro_timeout)

"""The seeded fault schedule of the demo, the chaos tests and the group benchmark.

A :class:`FaultPlan` is pure data, computed by :func:`make_plan` from a fault level, a seed
and the size of the setup. The same arguments always give the same plan: the same kinds of
faults, aimed at the same relays and clients, at the same offsets from the start of the
group's formation. (What a random cut hits also depends on the order in which connections
reach the proxies, which the operating system decides; the proxies' own draws are seeded
from the plan too, so a rerun with the same seed is as close to the first run as real
processes allow.)

Fault kinds:

- ``cut``: every link through one relay's fault proxy is aborted at once; clients see their
  TLS sessions end and reconnect.
- ``outage``: the same cut, and the proxy then refuses (resets) every new connection for
  ``duration`` seconds: the relay is unreachable for that long.
- ``relay_restart``: the relay stops and starts again ``duration`` seconds later, on the
  same store and port.
- ``client_kill``: a chat client gets SIGKILL and is started again on the same database
  files ``duration`` seconds later.

Besides these discrete actions every proxy cuts a share (``cut_share``) of the links it
accepts while the schedule runs, each after a random time drawn from ``cut_after`` (or, with
``cut_mean``, from an exponential distribution with that mean), and refuses a share
(``refuse_share``) of the new connections.

The ``harsh`` level is what a bad mobile network does to every client at once: every link
is cut after about a second (exponentially distributed, mean ``HARSH_CUT_MEAN``), 30% of
new connections are refused, and 3 clients are SIGKILLed and started again while the group
forms. (The scenario runs its relays as processes at this level, see
``parley.demo.scenario.ScenarioConfig.relay_processes``.)
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Literal, get_args

FaultLevel = Literal["none", "light", "heavy", "harsh"]
FAULT_LEVELS: tuple[FaultLevel, ...] = get_args(FaultLevel)

FaultKind = Literal["cut", "outage", "relay_restart", "client_kill"]


@dataclass(frozen=True, slots=True)
class FaultAction:
    """One fault: at ``at`` seconds after the group's formation started."""

    at: float
    kind: FaultKind
    target: int  # relay index for cut/outage/relay_restart, client index for client_kill
    duration: float = 0.0  # outage length, or downtime before the restart

    def describe(self, relay_names: list[str], client_names: list[str]) -> str:
        match self.kind:
            case "cut":
                return f"cut every link to {relay_names[self.target]}"
            case "outage":
                return f"{relay_names[self.target]} unreachable for {self.duration:.1f} s"
            case "relay_restart":
                return f"restart {relay_names[self.target]} ({self.duration:.1f} s down)"
            case "client_kill":
                return f"SIGKILL {client_names[self.target]} ({self.duration:.1f} s down)"
        return self.kind  # pragma: no cover - exhaustive above


@dataclass(frozen=True, slots=True)
class FaultPlan:
    level: FaultLevel
    seed: int
    span: float  # seconds over which the actions are spread
    cut_share: float  # share of new links each proxy cuts while the schedule runs
    cut_after: tuple[float, float]  # a chosen link is cut this many seconds after it opened
    proxy_seeds: tuple[int, ...]  # one per relay, for FaultProxy(seed=...)
    actions: tuple[FaultAction, ...] = field(default=())
    cut_mean: float | None = None  # instead of cut_after: exponential, with this mean
    refuse_share: float = 0.0  # share of new connections each proxy refuses meanwhile

    def count(self, kind: FaultKind) -> int:
        return sum(1 for a in self.actions if a.kind == kind)

    @property
    def end(self) -> float:
        """When the last action, including its downtime, is over."""
        return max((a.at + a.duration for a in self.actions), default=0.0)


# Per level: cut share, cut window, and how many of each action (for `members` clients).
_LIGHT_CUTS = 2
_HEAVY_CUTS = 6
HARSH_CUT_MEAN = 1.0  # seconds a link lives on average
HARSH_REFUSE_SHARE = 0.3
HARSH_KILLS = 3
HARSH_DOWNTIME = (0.5, 3.0)  # seconds a killed client stays down


def make_plan(
    level: FaultLevel,
    seed: int,
    *,
    members: int,
    relays: int,
    span: float,
    rounds: int | None = None,
) -> FaultPlan:
    """The fault schedule for `members` clients and `relays` relays, spread over `span` s.

    ``rounds`` replaces the level's number of discrete actions (cuts, outages, relay
    restarts, client kills) by exactly that many, drawn with the level's proportions; the
    soak test uses it. Client 0 is the group's host and may be killed like anyone else.
    """
    if level not in FAULT_LEVELS:
        raise ValueError(f"unknown fault level {level!r} (one of {', '.join(FAULT_LEVELS)})")
    if members < 1 or relays < 1:
        raise ValueError("need at least one member and one relay")
    if span <= 0:
        raise ValueError("span must be positive")
    rng = random.Random(f"parley-faults:{level}:{seed}")
    proxy_seeds = tuple(rng.randrange(2**31) for _ in range(relays))
    if level == "none":
        return FaultPlan(level, seed, span, 0.0, (0.0, 0.0), proxy_seeds)
    if level == "harsh":
        return _harsh(rng, seed, span, members, proxy_seeds, rounds)

    if level == "light":
        share, after = 0.15, (0.5, 3.0)
        mix: dict[FaultKind, int] = {
            "cut": _LIGHT_CUTS,
            "outage": 0,
            "relay_restart": 1,
            "client_kill": 1,
        }
    else:
        share, after = 0.35, (0.2, 2.0)
        mix = {
            "cut": _HEAVY_CUTS,
            "outage": 2,
            "relay_restart": max(2, relays + 1),
            "client_kill": max(3, members // 3),
        }
    kinds: list[FaultKind] = [k for k, n in mix.items() for _ in range(n)]
    if rounds is not None:
        if rounds < 0:
            raise ValueError("rounds must not be negative")
        weights = [mix[k] for k in mix]
        kinds = rng.choices(list(mix), weights=weights, k=rounds)

    actions: list[FaultAction] = []
    for kind in kinds:
        # faults start a little after formation begins, and the last one starts by 90% of
        # the span, so that every fault hits a group still forming (or its first messages)
        at = round(rng.uniform(0.05, 0.9) * span, 2)
        match kind:
            case "cut":
                actions.append(FaultAction(at, kind, rng.randrange(relays)))
            case "outage":
                actions.append(FaultAction(at, kind, rng.randrange(relays), _d(rng, 1.0, 4.0)))
            case "relay_restart":
                actions.append(FaultAction(at, kind, rng.randrange(relays), _d(rng, 0.3, 1.5)))
            case "client_kill":
                actions.append(FaultAction(at, kind, rng.randrange(members), _d(rng, 0.3, 2.0)))
    actions.sort(key=lambda a: (a.at, a.kind, a.target))
    return FaultPlan(level, seed, span, share, after, proxy_seeds, tuple(actions))


def _harsh(
    rng: random.Random,
    seed: int,
    span: float,
    members: int,
    proxy_seeds: tuple[int, ...],
    rounds: int | None,
) -> FaultPlan:
    """Every link cut (exponential lifetimes), a share of connections refused, and
    ``rounds`` (default 3) client SIGKILLs, each of a different client while there are
    enough, at random moments of the formation."""
    kills = HARSH_KILLS if rounds is None else rounds
    if kills < 0:
        raise ValueError("rounds must not be negative")
    targets = rng.sample(range(members), min(kills, members))
    targets += [rng.randrange(members) for _ in range(kills - len(targets))]
    actions = [
        FaultAction(
            round(rng.uniform(0.05, 0.9) * span, 2), "client_kill", t, _d(rng, *HARSH_DOWNTIME)
        )
        for t in targets
    ]
    actions.sort(key=lambda a: (a.at, a.kind, a.target))
    return FaultPlan(
        "harsh",
        seed,
        span,
        1.0,
        (0.0, 0.0),
        proxy_seeds,
        tuple(actions),
        cut_mean=HARSH_CUT_MEAN,
        refuse_share=HARSH_REFUSE_SHARE,
    )


def _d(rng: random.Random, low: float, high: float) -> float:
    return round(rng.uniform(low, high), 2)

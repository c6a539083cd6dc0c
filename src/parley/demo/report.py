"""The end of a scenario: what is missing (member pairs, messages, pending work, clients
that died) in a few problems, and the :class:`~parley.demo.progress.ScenarioResult`."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from parley.demo.clients import Member
from parley.demo.config import CONNECTED, ScenarioConfig
from parley.demo.faults import FaultPlan
from parley.demo.messages import Messages
from parley.demo.polling import Poller
from parley.demo.progress import Progress, RelayCounts, ScenarioResult


@dataclass
class Milestones:
    """What the scenario noted on its way (times in seconds of the scenario's clock)."""

    group_t0: float | None = None  # when the group was created
    contacts_time: float = 0.0
    # what the last look found missing while the contacts connected
    contacts_missing: list[str] = field(default_factory=list)
    faults_end: float | None = None  # from the group's creation to the last fault
    messages_time: float | None = None
    settled: bool | None = None  # None: not asked; False: the settling phase was reached
    relay_at_group_start: RelayCounts | None = None
    relay_at_mesh: RelayCounts | None = None


def missing_pairs(members: list[Member]) -> list[str]:
    """The member pairs in which one does not see the other connected."""
    missing = []
    for i, a in enumerate(members):
        for b in members[i + 1 :]:
            sa, sb = a.view.get(b.name), b.view.get(a.name)
            if sa not in CONNECTED or sb not in CONNECTED:
                missing.append(f"{a.name}→{b.name}: {sa}, {b.name}→{a.name}: {sb}")
    return missing


def build_result(
    *,
    config: ScenarioConfig,
    seed: int,
    plan: FaultPlan,
    progress: Progress,
    members: list[Member],
    messages: Messages,
    poller: Poller,
    noted: Milestones,
    relay_at_end: RelayCounts | None,
    problems: list[str],
    total: float,
    workdir: Path,
) -> ScenarioResult:
    """The result, from the last look at everything; `problems` are the run's own (a
    timeout, a stall, a broken setup), the ones found here are added."""
    pr = progress
    pairs = missing_pairs(members)
    missing_messages = messages.missing()
    duplicates = messages.duplicates()
    if pr.phase == "contacts" and noted.contacts_missing:
        problems.append("contacts not ready: " + "; ".join(noted.contacts_missing))
    if pairs:
        problems.append(f"{len(pairs)} of {pr.pairs_total} member pairs not connected")
    to_send = (config.messages + config.early_messages) * config.members
    if pr.messages_sent < to_send:
        problems.append(f"only {pr.messages_sent} of {to_send} messages were sent")
    if missing_messages:
        n = sum(len(v) for v in missing_messages.values())
        problems.append(f"{n} message receipts missing")
    if duplicates:
        problems.append(f"{len(duplicates)} messages received more than once")
    pending = {k: v for k, v in poller.pending.items() if v}
    if config.settle and noted.settled is False:  # the settling phase was reached
        problems.append(f"work still pending at {len(pending)} client(s)")
    for m in members:
        if not m.proc.running and m.proc.proc is not None:
            problems.append(f"{m.name} is not running: {m.stderr_tail()}")
    problems = list(dict.fromkeys(problems))
    n = config.members
    ok = not problems
    if not ok:
        pr.phase = "failed"
    return ScenarioResult(
        config=config,
        seed=seed,
        plan=plan,
        ok=ok,
        problems=problems,
        time_to_mesh=pr.time_to_mesh,
        faults_end=noted.faults_end,
        time_to_messages=noted.messages_time,
        total_time=total,
        members=n,
        joined=pr.joined,
        pairs_connected=pr.pairs_connected,
        pairs_total=pr.pairs_total,
        missing_pairs=pairs,
        messages_sent=pr.messages_sent,
        messages_expected=pr.messages_expected,
        messages_received=pr.messages_received,
        duplicates=duplicates,
        missing_messages=missing_messages,
        faults=pr.faults,
        commands_retried=len(poller.retried),
        retry_attempts=sum(poller.retried.values()),
        deliveries_retried=len(poller.deliveries_retried),
        settled=noted.settled,
        pending_at_end=pending,
        relay_at_group_start=noted.relay_at_group_start,
        relay_at_mesh=noted.relay_at_mesh,
        relay_at_end=relay_at_end,
        dropped=messages.dropped(),
        agent_connections=n * (n - 1),
        contacts_time=noted.contacts_time,
        stderr={m.name: m.stderr_tail(30) for m in members if m.stderr},
        workdir=workdir,
        log=list(pr.log),
    )

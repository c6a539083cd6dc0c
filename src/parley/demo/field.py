"""The field scenario: a group forming as it does for real users on a bad network.

What issue 8 measured with real clients, as a :class:`~parley.demo.scenario.Scenario`: 16
members on one `parley relay` process, behind a fault proxy at the ``harsh`` level (every
connection cut after about a second, exponentially distributed; 30% of new connections
refused; 3 members SIGKILLed and started again on the same files while the group forms),
every client with its default timers (as `parley chat` runs), and every member sending
group messages as soon as everyone has joined, while most pairs are still connecting.

It passes when the group reaches its full mesh within :data:`MESH_LIMIT` seconds of the
last fault and every message reaches every other member exactly once. The slow test
(tests/chaos/test_field.py) and the convergence benchmark (bench/convergence.py) run it.
"""

from __future__ import annotations

from pathlib import Path

from parley.demo.scenario import ScenarioConfig, ScenarioResult, default_span

__all__ = ["EARLY_MESSAGES", "MESH_LIMIT", "MESSAGES", "field_config", "field_problems"]

MESH_LIMIT = 60.0  # seconds from the last fault to the full mesh
EARLY_MESSAGES = 2  # each member, as soon as everyone has joined
MESSAGES = 1  # each member, once the mesh is complete
STARTUP = 60.0  # room for starting the clients and making the contacts
DELIVERY = 60.0  # room for the last messages after the mesh


def field_config(
    members: int = 16,
    seed: int = 1,
    *,
    relays: int = 1,
    workdir: Path | None = None,
    **overrides: object,
) -> ScenarioConfig:
    """The field scenario for `members` and `seed`; `overrides` are other ScenarioConfig
    settings. It never gives up early on a stalled group (stall_after None), and its
    timeout leaves room for a mesh :data:`MESH_LIMIT` s after the last fault and for the
    last messages."""
    span = default_span(members)
    settings: dict[str, object] = {
        "members": members,
        "relays": relays,
        "faults": "harsh",
        "seed": seed,
        "default_timers": True,
        "early_messages": EARLY_MESSAGES,
        "messages": MESSAGES,
        "stall_after": None,
        "timeout": STARTUP + span + MESH_LIMIT + DELIVERY,
        "workdir": workdir,
        **overrides,
    }
    return ScenarioConfig(**settings)  # type: ignore[arg-type]


def field_problems(result: ScenarioResult) -> list[str]:
    """Why a run of the field scenario failed (empty: it passed)."""
    problems = list(result.problems)
    after = result.mesh_after_faults
    if result.faults_end is None:
        problems.append("the fault schedule did not finish")
    elif after is not None and after > MESH_LIMIT:
        problems.append(f"full mesh {after:.1f} s after the last fault (limit {MESH_LIMIT:g} s)")
    return list(dict.fromkeys(problems))

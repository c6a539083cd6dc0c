"""Run a demo scenario as a chaos test and fail with everything needed to reproduce."""

from __future__ import annotations

from pathlib import Path

from parley.demo.scenario import ScenarioConfig, ScenarioResult, run_scenario
from tests.chaos.conftest import chaos_seed_line


def explain(result: ScenarioResult) -> str:
    lines = [chaos_seed_line(result.seed), *result.problems]
    lines.append(
        f"full mesh at {result.time_to_mesh} s, last fault at {result.faults_end} s (after the "
        f"group's creation); {result.config.describe_timers()}"
    )
    lines += [f"pair not connected: {p}" for p in result.missing_pairs[:20]]
    for name, lost in result.missing_messages.items():
        lines.append(f"{name} is missing {len(lost)} messages, e.g. {lost[:3]}")
    lines += [f"duplicate: {d}" for d in result.duplicates[:20]]
    lines += [f"dropped by the sender: {d}" for d in result.dropped[:20]]
    for name, pending in result.pending_at_end.items():
        lines.append(f"{name} still has pending: {pending[:5]}")
    for name, text in result.stderr.items():
        lines.append(f"{name} stderr:\n{text}")
    lines.append("timeline:")
    lines += [f"  {t:7.2f} s  {text}" for t, text in result.log]
    if result.workdir is not None:
        lines.append(f"databases in {result.workdir}")
    return "\n".join(lines)


async def chaos(tmp_path: Path, **settings: object) -> ScenarioResult:
    config = ScenarioConfig(workdir=tmp_path / "chaos", settle=True, **settings)  # type: ignore[arg-type]
    result = await run_scenario(config)
    assert result.ok, explain(result)
    # what ok means, spelled out
    assert result.pairs_connected == result.pairs_total
    assert result.messages_received == result.messages_expected
    assert not result.duplicates
    assert result.settled and not result.pending_at_end
    return result

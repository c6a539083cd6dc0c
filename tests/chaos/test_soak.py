"""The long soak: 20 members, 50 rounds of faults. Not in the default run:
`.venv/bin/python -m pytest -m slow tests/chaos` (PARLEY_SEED=S to pick the seed)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.chaos.harness import chaos


@pytest.mark.slow
@pytest.mark.timeout(1200)
async def test_soak_20_members_50_rounds_of_faults(tmp_path: Path, chaos_seed: int) -> None:
    result = await chaos(
        tmp_path,
        members=20,
        relays=2,
        faults="heavy",
        seed=chaos_seed,
        rounds=50,
        span=60.0,
        relay_processes=True,
        messages=5,
        timeout=900,
    )
    f = result.faults
    print(
        f"soak (seed {result.seed}): full mesh of 20 in {result.time_to_mesh:.1f} s; "
        f"{len(result.plan.actions)} fault actions, {f.total} faults: {f.links_cut} links cut "
        f"({f.random_cuts} at random), {f.refused} connections refused in {f.outages} outages, "
        f"{f.relay_restarts} relay SIGKILL+restarts, {f.client_kills} client SIGKILLs; "
        f"{result.commands_retried} commands retried ({result.retry_attempts} attempts), "
        f"{result.deliveries_retried} deliveries retried; {result.messages_received}/"
        f"{result.messages_expected} messages, {len(result.duplicates)} duplicates; "
        f"nothing pending after {result.total_time:.1f} s"
    )

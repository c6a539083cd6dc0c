"""Groups of 8 form under random connection cuts, relay restarts and client SIGKILLs at
random (seeded) moments: full mesh, every message exactly once at every member, and in the
end nothing pending anywhere. The seed is printed; PARLEY_SEED=S reproduces a failure's
fault schedule."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.chaos.harness import chaos


@pytest.mark.timeout(150)
async def test_group_of_8_under_light_faults(tmp_path: Path, chaos_seed: int) -> None:
    result = await chaos(
        tmp_path, members=8, relays=2, faults="light", seed=chaos_seed, timeout=120
    )
    assert result.messages_expected == 8 * 7 * 3
    assert result.faults.relay_restarts == 1
    assert result.faults.client_kills == 1


@pytest.mark.timeout(150)
async def test_group_of_8_under_heavy_faults_with_relay_crashes(
    tmp_path: Path, chaos_seed: int
) -> None:
    """Relays are `parley relay` processes here, so a restart is a SIGKILL."""
    result = await chaos(
        tmp_path,
        members=8,
        relays=2,
        faults="heavy",
        seed=chaos_seed,
        relay_processes=True,
        timeout=120,
    )
    assert result.faults.relay_restarts == result.plan.count("relay_restart") >= 3
    assert result.faults.client_kills == result.plan.count("client_kill") >= 3


@pytest.mark.timeout(150)
async def test_group_of_8_on_one_relay_with_many_faults(tmp_path: Path, chaos_seed: int) -> None:
    """One relay: nowhere to move to while it is down; 20 faults while the group forms."""
    result = await chaos(
        tmp_path, members=8, relays=1, faults="heavy", seed=chaos_seed, rounds=20, timeout=120
    )
    # every discrete fault of the plan was carried out (which kinds a seed draws varies)
    assert result.faults.relay_restarts == result.plan.count("relay_restart")
    assert result.faults.client_kills == result.plan.count("client_kill")
    assert result.faults.outages == result.plan.count("outage")
    assert len(result.plan.actions) == 20

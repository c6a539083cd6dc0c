"""The scenario's settings are checked before anything starts."""

from __future__ import annotations

from pathlib import Path

import pytest

from parley.demo.scenario import STALL_AFTER, ScenarioConfig, run_scenario


def test_bad_settings_are_refused() -> None:
    with pytest.raises(ValueError, match="at least 2 members"):
        ScenarioConfig(members=1)
    with pytest.raises(ValueError, match="stall_after"):
        ScenarioConfig(stall_after=0)
    assert ScenarioConfig().stall_after == STALL_AFTER >= 120
    assert ScenarioConfig(stall_after=None).stall_after is None


async def test_a_used_workdir_is_refused(tmp_path: Path) -> None:
    (tmp_path / "alice_chat.db").write_bytes(b"")
    with pytest.raises(ValueError, match="not empty"):
        await run_scenario(ScenarioConfig(workdir=tmp_path))

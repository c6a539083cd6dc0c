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


def test_relays_are_processes_with_harsh_faults() -> None:
    assert ScenarioConfig(faults="harsh").relay_processes is True
    assert ScenarioConfig(faults="heavy").relay_processes is False
    assert ScenarioConfig(faults="light", relay_processes=True).relay_processes is True


def test_timers_are_said() -> None:
    fast, default = ScenarioConfig(), ScenarioConfig(default_timers=True)
    assert fast.describe_timers().startswith("shortened retry timers: ")
    assert "instead of" in fast.describe_timers()
    assert default.describe_timers().startswith("default timers: ")
    assert "instead of" not in default.describe_timers()
    assert fast.timers.retry.initial < default.timers.retry.initial
    assert fast.timers.intro_timeout == default.timers.intro_timeout  # the chat's default
    assert ScenarioConfig(intro_timeout=0.5).timers.intro_timeout == 0.5

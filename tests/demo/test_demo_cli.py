"""`parley demo` end to end, as a user runs it (not on a terminal: plain lines)."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from parley.cli import build_parser

DEMO_ARGS = ["--members", "4", "--faults", "light", "--seed", "1", "--timeout", "120"]


@pytest.mark.timeout(150)
def test_demo_with_light_faults_exits_0() -> None:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.run(
        [sys.executable, "-m", "parley", "demo", *DEMO_ARGS],
        capture_output=True,
        text=True,
        timeout=140,
        env=env,
        check=False,
    )
    out = proc.stdout
    assert proc.returncode == 0, out + proc.stderr
    lines = out.splitlines()
    assert lines[0] == "parley demo: 4 members, 2 relays, light faults, seed 1"
    # the shortened timers are said plainly, with how much shorter they are
    assert lines[1].startswith("client timers: shortened retry timers: agent retries after ")
    assert "× shorter" in lines[1] and "--default-timers" in lines[1]
    assert lines[-1].startswith("RESULT: OK: full mesh of 4 members in "), out
    assert "36/36 messages received exactly once" in lines[-1]
    assert lines[-1].endswith("(seed 1, client retry timers shortened)")
    assert "faults survived" in out
    assert "SIGKILL" in out  # the light schedule kills one client
    assert "\x1b[" not in out  # no live panel, no colours when stdout is not a terminal


def test_demo_arguments() -> None:
    args = build_parser().parse_args(["demo"])
    assert (args.members, args.faults, args.relays, args.seed) == (8, "light", 2, None)
    assert not args.default_timers
    args = build_parser().parse_args(["demo", "--faults", "harsh", "--default-timers"])
    assert (args.faults, args.default_timers) == ("harsh", True)
    with pytest.raises(SystemExit):
        build_parser().parse_args(["demo", "--faults", "medium"])


def test_demo_refuses_a_group_of_one() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "parley", "demo", "--members", "1"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 2
    assert "at least 2 members" in proc.stderr


def test_summary_says_which_timers() -> None:
    from parley.demo.scenario import Scenario, ScenarioConfig
    from parley.demo.view import rerun_command, timers_line, timers_short

    fast = Scenario(ScenarioConfig(seed=3))
    default = Scenario(ScenarioConfig(seed=3, faults="harsh", default_timers=True))
    assert timers_line(fast).startswith("client timers: shortened retry timers: ")
    assert timers_line(default).startswith("client timers: default timers: ")
    assert "--default-timers" not in timers_line(default)
    assert timers_short(False) == "client retry timers shortened"
    assert timers_short(True) == "default client timers"
    assert rerun_command(default).endswith("--relay-processes --default-timers")

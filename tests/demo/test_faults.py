"""The demo's fault schedule is a pure function of its arguments."""

from __future__ import annotations

import pytest

from parley.demo.faults import FAULT_LEVELS, FaultLevel, make_plan


@pytest.mark.parametrize("level", FAULT_LEVELS)
def test_same_seed_same_plan(level: FaultLevel) -> None:
    for seed in (1, 2, 12345):
        a = make_plan(level, seed, members=8, relays=2, span=10.0)
        b = make_plan(level, seed, members=8, relays=2, span=10.0)
        assert a == b


def test_different_seeds_differ() -> None:
    plans = {make_plan("heavy", seed, members=8, relays=2, span=10.0) for seed in range(20)}
    assert len({p.actions for p in plans}) == 20
    assert len({p.proxy_seeds for p in plans}) == 20


def test_levels_differ_for_one_seed() -> None:
    light = make_plan("light", 7, members=8, relays=2, span=10.0)
    heavy = make_plan("heavy", 7, members=8, relays=2, span=10.0)
    assert light.actions != heavy.actions
    assert heavy.cut_share > light.cut_share > 0


def test_no_faults() -> None:
    plan = make_plan("none", 3, members=8, relays=2, span=10.0)
    assert plan.actions == ()
    assert plan.cut_share == 0
    assert plan.end == 0


def test_light_plan() -> None:
    for seed in range(50):
        plan = make_plan("light", seed, members=8, relays=2, span=10.0)
        assert plan.count("relay_restart") == 1
        assert plan.count("client_kill") == 1
        assert plan.count("cut") == 2
        assert plan.count("outage") == 0


def test_heavy_plan_has_more_of_everything() -> None:
    light = make_plan("light", 1, members=9, relays=2, span=10.0)
    heavy = make_plan("heavy", 1, members=9, relays=2, span=10.0)
    for kind in ("cut", "outage", "relay_restart", "client_kill"):
        assert heavy.count(kind) > light.count(kind), kind
    assert heavy.count("client_kill") == 3


def test_actions_are_sorted_and_in_range() -> None:
    for seed in range(50):
        plan = make_plan("heavy", seed, members=5, relays=3, span=20.0)
        times = [a.at for a in plan.actions]
        assert times == sorted(times)
        for a in plan.actions:
            assert 0 < a.at <= 0.9 * 20.0
            limit = 5 if a.kind == "client_kill" else 3
            assert 0 <= a.target < limit
            assert a.duration >= 0
        assert len(plan.proxy_seeds) == 3


def test_rounds() -> None:
    a = make_plan("heavy", 5, members=20, relays=2, span=60.0, rounds=50)
    b = make_plan("heavy", 5, members=20, relays=2, span=60.0, rounds=50)
    assert a == b
    assert len(a.actions) == 50
    assert {x.kind for x in a.actions} == {"cut", "outage", "relay_restart", "client_kill"}


def test_bad_arguments() -> None:
    with pytest.raises(ValueError):
        make_plan("medium", 1, members=8, relays=2, span=10.0)  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        make_plan("light", 1, members=0, relays=2, span=10.0)
    with pytest.raises(ValueError):
        make_plan("light", 1, members=8, relays=2, span=0.0)


def test_harsh_plan() -> None:
    for seed in range(50):
        plan = make_plan("harsh", seed, members=16, relays=1, span=20.0)
        assert plan.cut_share == 1.0
        assert plan.cut_mean == 1.0
        assert plan.refuse_share == 0.3
        assert [a.kind for a in plan.actions] == ["client_kill"] * 3
        assert len({a.target for a in plan.actions}) == 3  # three different clients
        for a in plan.actions:
            assert 0 < a.at <= 0.9 * 20.0
            assert 0.5 <= a.duration <= 3.0
        assert plan.end <= 20.0 * 0.9 + 3.0
    assert make_plan("harsh", 3, members=16, relays=1, span=20.0) != make_plan(
        "harsh", 4, members=16, relays=1, span=20.0
    )
    more = make_plan("harsh", 1, members=2, relays=1, span=20.0, rounds=5)
    assert more.count("client_kill") == 5
    assert {a.target for a in more.actions} == {0, 1}


def test_only_harsh_refuses_at_random() -> None:
    for level in FAULT_LEVELS:
        plan = make_plan(level, 1, members=8, relays=2, span=10.0)
        assert (plan.refuse_share > 0) == (level == "harsh")
        assert (plan.cut_mean is not None) == (level == "harsh")

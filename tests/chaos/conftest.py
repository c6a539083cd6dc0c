"""Seeded chaos: PARLEY_SEED=S reruns a failed test with the same fault schedule."""

from __future__ import annotations

import os
import random
from collections.abc import Generator

import pytest

SEED = pytest.StashKey[int]()


def chaos_seed_line(seed: int) -> str:
    return f"chaos seed: {seed} (PARLEY_SEED={seed} to reproduce)"


@pytest.fixture
def chaos_seed(request: pytest.FixtureRequest) -> int:
    env = os.environ.get("PARLEY_SEED")
    seed = int(env) if env else random.SystemRandom().randrange(1, 1_000_000)
    request.node.stash[SEED] = seed
    print(chaos_seed_line(seed))
    return seed


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    report = yield
    seed = item.stash.get(SEED, None)
    if report.failed and seed is not None:
        report.sections.append(("chaos seed", chaos_seed_line(seed)))
        # also on the terminal's summary line of the failure
        report.longrepr = f"{report.longrepr}\n{chaos_seed_line(seed)}"
    return report

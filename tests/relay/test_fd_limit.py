"""A `parley relay` process with a low open-file limit, flooded with idle connections."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import sys
from pathlib import Path
from typing import Any

import pytest

from parley.protocol.address import RelayAddress
from parley.relay.config import ADDRESS_PREFIX
from parley.relay.server import connection_budget
from parley.testing.waiting import wait_for_condition
from tests.relay.raw import RawConnection
from tests.relay.test_limits import REFUSED, round_trips

resource = pytest.importorskip("resource")

NOFILE = 256


def low_limit() -> None:
    resource.setrlimit(resource.RLIMIT_NOFILE, (NOFILE, NOFILE))


async def test_flood_of_idle_connections_with_256_open_files(tmp_path: Path) -> None:
    store = tmp_path / "relay"
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "parley",
        "relay",
        "--store",
        str(store),
        "--port",
        "0",
        "--stats-interval",
        "0.2",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
        preexec_fn=low_limit,
    )
    assert proc.stdout is not None and proc.stderr is not None
    flood: list[RawConnection] = []
    stdout_drain: asyncio.Task[bytes] | None = None
    try:
        out: list[str] = []
        async with asyncio.timeout(20):
            while not any(line.startswith("open files") for line in out):
                line = (await proc.stdout.readline()).decode()
                assert line, "relay exited"
                out.append(line)
        address = RelayAddress.parse(
            next(x for x in out if x.startswith(ADDRESS_PREFIX))[len(ADDRESS_PREFIX) :]
        )
        budget = connection_budget(NOFILE)
        assert budget is not None
        assert f"at most {budget} connections (lowered from 10000" in out[-1], out

        stdout_drain = asyncio.create_task(proc.stdout.read())
        # 400 idle connections (TLS and client hello, then nothing) from 8 addresses:
        # more than the relay takes, so some are refused
        refused = 0
        for i in range(400):
            try:
                flood.append(await RawConnection.open(address, source=f"127.0.0.{2 + i % 8}"))
            except REFUSED:
                refused += 1
        assert len(flood) <= budget
        assert refused >= 400 - budget

        def stats() -> dict[str, Any]:
            with contextlib.suppress(OSError, ValueError):
                return dict(json.loads((store / "stats.json").read_text()))
            return {}

        await wait_for_condition(lambda: stats().get("connections_rejected", 0) >= refused, 10)
        # a well-behaved client still gets in (idle connections make room) and round-trips
        await round_trips(address, 5)
        await wait_for_condition(lambda: "shed" in stats().get("connections_closed", {}), 10)
    finally:
        for conn in flood:
            conn.close()
        if proc.returncode is None:
            proc.terminate()
        async with asyncio.timeout(20):
            await proc.wait()
        if stdout_drain is not None:
            await stdout_drain
    # the log (stderr) stays small: refusals are counted, not logged
    err = await proc.stderr.read()
    assert len(err) < 2048, err[-2048:]

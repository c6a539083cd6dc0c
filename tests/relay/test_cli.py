"""`parley relay` as an operator runs it: the same address after a restart, stats, SIGTERM."""

from __future__ import annotations

import json
from pathlib import Path

from parley.testing.process import RelayProcess
from parley.testing.waiting import wait_for_condition


async def test_relay_command_address_stats_and_clean_stop(tmp_path: Path) -> None:
    store = tmp_path / "relay-data"
    proc = RelayProcess(store, extra_args=["--stats-interval", "0.2"])
    first = await proc.start()
    try:
        await wait_for_condition(lambda: (store / "stats.json").exists(), 10)
        stats = json.loads((store / "stats.json").read_text())
        keys = {"connections", "queues", "messages_stored", "commits", "errors"}
        assert keys | {"repeated_confirmations"} <= set(stats)
        assert await proc.terminate() == 0  # SIGTERM: a clean exit
        assert any(line.startswith("relay stopped") for line in proc.output)
        proc.port = 0  # even on another port, the identity is the same
        second = await proc.start()
        assert second.fingerprint == first.fingerprint
    finally:
        await proc.kill()


async def test_bad_settings_are_refused(tmp_path: Path) -> None:
    import asyncio
    import sys

    p = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "parley",
        "relay",
        "--store",
        str(tmp_path),
        "--max-message-size",
        "99999",
        stderr=asyncio.subprocess.PIPE,
    )
    _, err = await p.communicate()
    assert p.returncode == 2 and b"max_message_body" in err


async def test_relay_command_serves_metrics(tmp_path: Path) -> None:
    import asyncio

    proc = RelayProcess(tmp_path / "relay", extra_args=["--metrics-port", "0"])
    await proc.start()
    try:
        await wait_for_condition(lambda: any(x.startswith("metrics: ") for x in proc.output), 10)
        url = next(x for x in proc.output if x.startswith("metrics: "))
        port = int(url.rsplit(":", 1)[1].split("/")[0])
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"GET /metrics HTTP/1.1\r\n\r\n")
        body = await reader.read()
        writer.close()
        assert b"200 OK" in body and b"parley_relay_queues 0.0" in body
        assert any(x.startswith("open files: ") for x in proc.output)
    finally:
        await proc.kill()

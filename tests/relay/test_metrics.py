"""The Prometheus endpoint serves the relay's counters, and they count."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import pytest

from parley.protocol import relay as p
from parley.protocol.relay_auth import AuthKey
from parley.relay.client import MessageReceived, RelayClient
from parley.relay.server import RelayServer
from tests.relay.conftest import FAST, next_event, relay_config
from tests.relay.raw import RawConnection

parser = pytest.importorskip("prometheus_client.parser")


async def scrape(port: int) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(b"GET /metrics HTTP/1.1\r\nHost: relay\r\n\r\n")
    await writer.drain()
    response = await reader.read()
    writer.close()
    head, _, body = response.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200 OK"), head
    assert b"text/plain" in head
    samples = {}
    for family in parser.text_string_to_metric_families(body.decode()):
        for s in family.samples:
            samples[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return samples


async def test_metrics_endpoint_serves_and_counts(tmp_path: Path) -> None:
    async with RelayServer(relay_config(tmp_path, metrics_port=0)) as relay:
        assert relay.metrics_port
        before = await scrape(relay.metrics_port)
        assert before[("parley_relay_queues", ())] == 0
        assert before[("parley_relay_connections", ())] == 0

        c = RelayClient(relay.address, settings=FAST)
        key = AuthKey.generate()
        ids = await c.create_queue(key)
        await c.subscribe(ids.recipient_id, key)
        for body in (b"one", b"two"):
            await c.send(ids.sender_id, None, body)
            ev = await next_event(c, MessageReceived)
            await c.ack(ids.recipient_id, key, ev.message.msg_id)
        await c.send(ids.sender_id, None, b"x" * 100)  # left stored
        raw = await RawConnection.open(relay.address)
        forged = p.encode_transmission(
            os.urandom(32), p.signed_part(b"1", ids.recipient_id, p.encode_message(p.SUB))
        )
        await raw.send(forged)
        (_, resp), *_ = await raw.recv()
        assert resp == p.Err(p.ErrorCode.AUTH)

        m = await scrape(relay.metrics_port)
        assert m[("parley_relay_connections", ())] == 2
        assert m[("parley_relay_queues", ())] == 1
        assert m[("parley_relay_messages_stored", ())] == 1
        assert m[("parley_relay_stored_bytes", ())] == 100
        assert m[("parley_relay_commands_total", (("command", "SEND"), ("result", "OK")))] == 3
        assert m[("parley_relay_commands_total", (("command", "ACK"), ("result", "OK")))] == 2
        assert m[("parley_relay_commands_total", (("command", "NEW"), ("result", "OK")))] == 1
        assert m[("parley_relay_commands_total", (("command", "SUB"), ("result", "AUTH")))] == 1
        assert m[("parley_relay_errors_total", (("code", "AUTH"),))] == 1
        assert m[("parley_relay_auth_failures_total", ())] == 1
        assert m[("parley_relay_messages_sent_total", ())] == 3
        assert m[("parley_relay_messages_delivered_total", ())] >= 2
        assert m[("parley_relay_commit_seconds_count", ())] >= 4
        assert (
            m[("parley_relay_commit_seconds_bucket", (("le", "+Inf"),))]
            == (m[("parley_relay_commit_seconds_count", ())])
        )
        assert m[("parley_relay_connections_rejected_total", (("reason", "per_address"),))] == 0
        assert m[("parley_relay_max_connections", ())] == relay.max_connections
        raw.close()
        await c.close()


async def test_metrics_are_off_by_default(tmp_path: Path) -> None:
    async with RelayServer(relay_config(tmp_path)) as relay:
        assert relay.metrics_port is None

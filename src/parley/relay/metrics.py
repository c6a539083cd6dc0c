"""Prometheus metrics for the relay (`parley relay --metrics-port N`; `pip install
'parley[metrics]'`).

The counters are the relay's own (`RelayServer.snapshot()`, the commit latency histogram of
its `GroupCommitter`); they are read when Prometheus scrapes, so the endpoint costs the relay
nothing between scrapes. The endpoint is a small HTTP server on the relay's event loop, so a
scrape reads the counters on the thread that changes them. docs/operators.md §6 lists the
metrics and example alerts.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Iterator
from typing import TYPE_CHECKING

try:
    from prometheus_client import CollectorRegistry, generate_latest
    from prometheus_client.core import (
        CounterMetricFamily,
        GaugeMetricFamily,
        HistogramMetricFamily,
        Metric,
    )
    from prometheus_client.exposition import CONTENT_TYPE_LATEST
    from prometheus_client.process_collector import ProcessCollector
    from prometheus_client.registry import Collector
except ImportError as e:  # pragma: no cover - depends on the installed extras
    raise RuntimeError("relay metrics need: pip install 'parley[metrics]'") from e

if TYPE_CHECKING:
    from parley.relay.server import RelayServer

log = logging.getLogger(__name__)

PREFIX = "parley_relay_"


class RelayCollector(Collector):
    """Turns the relay's counters into metric families at each scrape."""

    def __init__(self, relay: RelayServer) -> None:
        self.relay = relay

    def collect(self) -> Iterator[Metric]:
        st = self.relay.snapshot()

        def gauge(name: str, doc: str, value: float) -> GaugeMetricFamily:
            return GaugeMetricFamily(PREFIX + name, doc, value=value)

        def counter(name: str, doc: str, value: float) -> CounterMetricFamily:
            return CounterMetricFamily(PREFIX + name, doc, value=value)

        yield gauge("connections", "Open connections.", st.connections)
        yield gauge(
            "max_connections",
            "The connection limit in force (lowered to fit the open-file limit).",
            st.max_connections,
        )
        yield counter("connections_accepted", "Connections accepted.", st.connections_total)
        rejected = CounterMetricFamily(
            PREFIX + "connections_rejected",
            "Connections refused, by limit.",
            labels=["reason"],
        )
        rejected.add_metric(
            ["max_connections"], st.connections_rejected - st.connections_rejected_address
        )
        rejected.add_metric(["per_address"], st.connections_rejected_address)
        yield rejected
        closed = CounterMetricFamily(
            PREFIX + "connections_closed",
            "Connections the relay closed, by reason.",
            labels=["reason"],
        )
        for reason in (
            "idle",
            "idle_unsubscribed",
            "shed",
            "auth_failures",
            "slow_reader",
            "bad_block",
        ):
            closed.add_metric([reason], st.connections_closed.get(reason, 0))
        yield closed
        yield counter("accept_errors", "Failures to accept a connection.", st.accept_errors)
        yield gauge("queues", "Queues.", st.queues)
        yield gauge("messages_stored", "Messages stored (not acknowledged).", st.messages_stored)
        yield gauge("stored_bytes", "Body bytes of the messages stored.", st.bytes_stored)
        yield gauge("cache_bytes", "Body bytes held in memory.", st.cache_bytes)
        yield counter("messages_sent", "SENDs accepted.", st.messages_sent)
        yield counter(
            "messages_delivered", "Messages pushed to subscribers.", st.messages_delivered
        )
        commands = CounterMetricFamily(
            PREFIX + "commands",
            "Commands answered, by command and result (OK or the error code).",
            labels=["command", "result"],
        )
        for key, n in sorted(st.commands.items()):
            kind, _, result = key.partition(":")
            commands.add_metric([kind, result], n)
        yield commands
        errors = CounterMetricFamily(PREFIX + "errors", "ERR answers, by code.", labels=["code"])
        for code, n in sorted(st.errors.items()):
            errors.add_metric([code], n)
        yield errors
        yield counter(
            "auth_failures",
            "Authenticators that did not verify and NEW passwords that did not match.",
            st.auth_failures,
        )
        yield counter(
            "repeated_confirmations",
            "Unsigned SENDs to secured queues (confirmations sent again).",
            st.repeated_confirmations,
        )
        yield counter("commits", "Store transactions committed.", st.commits)
        yield counter(
            "operations_committed", "Store operations committed.", st.operations_committed
        )
        committer = self.relay.committer
        if committer is not None:
            h = committer.latency
            buckets: list[tuple[str, float]] = []
            running = 0
            for bound, n in zip([*h.bounds, float("inf")], h.counts, strict=True):
                running += n
                buckets.append(("+Inf" if bound == float("inf") else repr(bound), running))
            yield HistogramMetricFamily(
                PREFIX + "commit_seconds",
                "Time to commit one store transaction.",
                buckets=buckets,
                sum_value=h.total,
            )


class MetricsServer:
    """`GET /metrics` (any path) on `host:port`, served on the relay's event loop."""

    def __init__(self, registry: CollectorRegistry, server: asyncio.Server) -> None:
        self.registry = registry
        self._server = server
        self.port: int = server.sockets[0].getsockname()[1]

    @classmethod
    async def start(cls, relay: RelayServer, host: str, port: int) -> MetricsServer:
        registry = CollectorRegistry(auto_describe=True)
        registry.register(RelayCollector(relay))
        with contextlib.suppress(Exception):  # /proc is Linux only
            ProcessCollector(registry=registry)
        holder: list[MetricsServer] = []

        async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            try:
                await holder[0]._serve(reader, writer)
            finally:
                writer.close()

        server = await asyncio.start_server(handle, host, port, limit=8192)
        metrics = cls(registry, server)
        holder.append(metrics)
        log.info("relay metrics at http://%s:%d/metrics", host, metrics.port)
        return metrics

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            async with asyncio.timeout(5):
                request = await reader.readuntil(b"\r\n\r\n")
        except (TimeoutError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, OSError):
            return
        method, _, _ = request.partition(b" ")
        if method not in (b"GET", b"HEAD"):
            status, body, kind = b"405 Method Not Allowed", b"", b"text/plain"
        else:
            status, kind = b"200 OK", CONTENT_TYPE_LATEST.encode()
            body = generate_latest(self.registry)
        head = (
            b"HTTP/1.1 "
            + status
            + b"\r\nContent-Type: "
            + kind
            + b"\r\nContent-Length: "
            + str(len(body)).encode()
            + b"\r\nConnection: close\r\n\r\n"
        )
        with contextlib.suppress(ConnectionError, OSError, TimeoutError):
            writer.write(head + (body if method == b"GET" else b""))
            async with asyncio.timeout(5):
                await writer.drain()

    async def close(self) -> None:
        self._server.close()
        with contextlib.suppress(Exception):
            async with asyncio.timeout(2):
                await self._server.wait_closed()

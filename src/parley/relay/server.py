"""The relay server: one-way queues over TLS, durable, with grouped commits.

The protocol logic lives in `parley.protocol.relay`; the relay is the asyncio shell around
it plus the in-memory queue state that is written through to the store. `RelayServer`
wires its parts and runs their life cycle:

- `state`: queues, message headers, the body cache, the counters;
- `session`: one connection's keys, answers and output;
- `connections`: listening, accepting within the limits, handshakes, reading blocks;
- `commands`: what the relay does with each command (changes answered after commit);
- `delivery`: queue heads pushed to subscribers, GETs, bodies read back, expiry;
- `limits`: open files and the connection budget.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from pathlib import Path
from typing import Any

from parley.protocol.address import RelayAddress
from parley.relay.commands import Commands
from parley.relay.config import RelayConfig
from parley.relay.connections import Connections
from parley.relay.delivery import Delivery
from parley.relay.identity import RelayIdentity, load_or_create_identity
from parley.relay.limits import (
    address_key,
    connection_budget,
    open_file_limits,
    raise_open_file_limit,
)
from parley.relay.session import Session
from parley.relay.state import BodyCache, Queues, QueueState, RelayStats, Stored, now_ms
from parley.relay.store import DeleteExpired, GroupCommitter, QueueStore, SqliteQueueStore

__all__ = [
    "DB_FILE",
    "QueueState",
    "RelayServer",
    "RelayStats",
    "Session",
    "Stored",
    "address_key",
    "connection_budget",
    "open_file_limits",
    "raise_open_file_limit",
]

log = logging.getLogger(__name__)

DB_FILE = "relay.db"


class RelayServer:
    """A relay. `await RelayServer(config).start()`, then `.address`; `await .stop()`."""

    def __init__(self, config: RelayConfig, store: QueueStore | None = None) -> None:
        self.config = config
        self.stats = RelayStats()
        self._store = store
        self.identity: RelayIdentity | None = None
        self.cache = BodyCache(config.cache_bytes)
        self.queues = Queues(self.stats, self.cache)
        # tasks of the parts (TLS handshakes, reads of bodies), which stop() cancels
        self._tasks: set[asyncio.Task[None]] = set()
        self.delivery = Delivery(self.stats, self.queues, self.cache, self._tasks)
        self.commands = Commands(config, self.stats, self.queues, self.delivery)
        self.connections = Connections(config, self.stats, self._tasks, self.commands)
        self._committer: GroupCommitter | None = None
        self._maintenance: asyncio.Task[None] | None = None
        self.port = config.port
        self.open_files: int | None = None  # the soft open-file limit seen at start
        self._metrics: Any = None  # the metrics endpoint (metrics.MetricsServer), if on
        self.metrics_port: int | None = None

    @property
    def max_connections(self) -> int:
        """The connection limit in force: `max_connections`, lowered to fit the open files."""
        return self.connections.max_connections

    def snapshot(self) -> RelayStats:
        """A copy of the counters, with the store's commit counts filled in."""
        st = self.stats.copy()
        st.cache_bytes = self.cache.bytes
        st.max_connections = self.max_connections
        if self._committer is not None:
            st.commits = self._committer.commits
            st.operations_committed = self._committer.ops_committed
        return st

    @property
    def committer(self) -> GroupCommitter | None:
        return self._committer

    @property
    def address(self) -> RelayAddress:
        assert self.identity is not None, "relay not started"
        host = self.config.public_host or self.config.host
        return RelayAddress(
            self.identity.fingerprint,
            host,
            self.config.public_port or self.port,
            self.config.create_password or "",
        )

    async def start(self) -> None:
        store_dir = Path(self.config.store)
        self.identity = await asyncio.to_thread(load_or_create_identity, store_dir)
        self._limit_connections()
        if self._store is None and self.config.database_url:
            from parley.relay.postgres import PostgresQueueStore

            self._store = await PostgresQueueStore.open(self.config.database_url)
        if self._store is None:
            self._store = await SqliteQueueStore.open(store_dir / DB_FILE)
        self.queues.load(*await self._store.load())
        self._committer = GroupCommitter(self._store)
        self._committer.start()
        self.commands.committer = self._committer
        self.delivery.store = self._store
        self._expire(now_ms())
        self.connections.tls = self.identity.server_context()
        self.connections.ca_der = self.identity.ca_der
        self.port = await self.connections.open()
        self._maintenance = asyncio.create_task(self._maintain(), name="relay-maintenance")
        if self.config.metrics_port is not None:
            from parley.relay.metrics import MetricsServer

            self._metrics = await MetricsServer.start(
                self, self.config.metrics_host, self.config.metrics_port
            )
            self.metrics_port = self._metrics.port
        log.info("relay listening at %s", self.address)

    def _limit_connections(self) -> None:
        limits = open_file_limits()
        self.open_files = limits[0] if limits is not None else None
        budget = connection_budget(self.open_files)
        configured = self.config.max_connections
        limit = min(configured, budget) if budget is not None else configured
        self.connections.max_connections = self.stats.max_connections = limit
        log.info(
            "open-file limit %s: at most %d connections (%d configured)",
            self.open_files,
            limit,
            configured,
        )

    async def stop(self) -> None:
        """Stop accepting, close every connection (those still in their TLS handshake
        too), commit what is pending, close the store."""
        self.connections.stopping = True
        if self._metrics is not None:
            await self._metrics.close()
            self._metrics = None
        await self.connections.close()
        if self._maintenance is not None:
            self._maintenance.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._maintenance
        for t in list(self._tasks):
            t.cancel()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._committer is not None:
            await self._committer.stop()
            self._committer = self.commands.committer = None
        if self._store is not None:
            await self._store.close()
            self._store = self.delivery.store = None

    async def __aenter__(self) -> RelayServer:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    async def _maintain(self) -> None:
        cfg = self.config
        shortest = min(cfg.idle_timeout, cfg.idle_unsubscribed_timeout)
        interval = min(cfg.expire_interval, max(shortest / 4, 0.05))
        next_expiry = time.monotonic() + cfg.expire_interval
        while True:
            await asyncio.sleep(interval)
            now = time.monotonic()
            self.connections.close_idle(now)
            if now >= next_expiry:
                next_expiry = now + cfg.expire_interval
                self._expire(now_ms())

    def _expire(self, now: int) -> None:
        """Drop messages older than the TTL from memory and (in one commit) from the store."""
        cutoff = now - int(self.config.message_ttl * 1000)
        dropped = self.delivery.expire(cutoff)
        if dropped and self._committer is not None:
            log.info("expired %d messages", dropped)
        if self._committer is not None:
            self._committer.submit(DeleteExpired(cutoff))

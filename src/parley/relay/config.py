"""Relay settings, with the defaults a small public relay would use."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from parley.protocol.address import DEFAULT_PORT
from parley.protocol.relay import MAX_MESSAGE_BODY

# `parley relay` prints this, then the address, when it is ready (tools wait for it)
ADDRESS_PREFIX = "parley relay address: "


@dataclass
class RelayConfig:
    store: Path
    host: str = "127.0.0.1"
    port: int = DEFAULT_PORT
    # the host name put in the printed address (defaults to `host`)
    public_host: str | None = None
    public_port: int | None = None  # the port in the printed address (defaults to `port`)
    # queues and messages in PostgreSQL instead of SQLite (keys stay in `store`)
    database_url: str | None = None
    quota: int = 128
    message_ttl: float = 21 * 24 * 3600.0
    expire_interval: float = 600.0
    max_message_body: int = MAX_MESSAGE_BODY
    # connections at once (in their TLS handshake included); the relay lowers it at start to
    # stay below its open-file limit (`RelayServer.max_connections` is what it uses)
    max_connections: int = 10_000
    # connections at once from one IPv4 address or one IPv6 /64 (0: no limit)
    max_connections_per_address: int = 100
    handshake_timeout: float = 10.0
    idle_timeout: float = 300.0
    # a connection with no subscription is closed after this long without a command other
    # than PING (connections with subscriptions wait for `idle_timeout`)
    idle_unsubscribed_timeout: float = 120.0
    # at `max_connections`, a new connection closes the connection with no subscription that
    # has gone longest without a command, if that is at least this long (else it is refused)
    shed_idle_after: float = 5.0
    # how much unsent output a slow client may accumulate before it is disconnected
    max_pending_output: int = 8 * 1024 * 1024
    # a connection is closed after this many authenticators (or NEW passwords) that fail
    max_auth_failures: int = 20
    # NEW must carry this password (None: anyone may create queues)
    create_password: str | None = None
    # queues on the relay, and body bytes stored (committed plus being committed); None: no cap
    max_queues: int | None = None
    max_stored_bytes: int | None = None
    # message bodies kept in memory; the others are read from the store when delivered
    cache_bytes: int = 64 * 1024 * 1024
    # failures to accept a connection (out of file descriptors, say) are logged at most once
    # per this many seconds, with a count
    accept_error_log_interval: float = 10.0
    # serve Prometheus metrics on this port (None: off; needs `parley[metrics]`)
    metrics_port: int | None = None
    metrics_host: str = "127.0.0.1"

    def __post_init__(self) -> None:
        if not 0 < self.max_message_body <= MAX_MESSAGE_BODY:
            raise ValueError(f"max_message_body must be between 1 and {MAX_MESSAGE_BODY}")
        if self.quota < 1:
            raise ValueError("quota must be at least 1")
        if self.max_connections < 1:
            raise ValueError("max_connections must be at least 1")
        if self.max_connections_per_address < 0:
            raise ValueError("max_connections_per_address must not be negative")
        if self.max_auth_failures < 1:
            raise ValueError("max_auth_failures must be at least 1")
        if self.create_password is not None and not 0 < len(self.create_password.encode()) <= 255:
            raise ValueError("create_password must be 1 to 255 bytes (UTF-8)")
        if self.max_queues is not None and self.max_queues < 0:
            raise ValueError("max_queues must not be negative")
        if self.max_stored_bytes is not None and self.max_stored_bytes < 0:
            raise ValueError("max_stored_bytes must not be negative")
        if self.cache_bytes < 0:
            raise ValueError("cache_bytes must not be negative")

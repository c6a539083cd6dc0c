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
    max_connections: int = 10_000
    handshake_timeout: float = 10.0
    idle_timeout: float = 300.0
    # how much unsent output a slow client may accumulate before it is disconnected
    max_pending_output: int = 8 * 1024 * 1024

    def __post_init__(self) -> None:
        if not 0 < self.max_message_body <= MAX_MESSAGE_BODY:
            raise ValueError(f"max_message_body must be between 1 and {MAX_MESSAGE_BODY}")
        if self.quota < 1:
            raise ValueError("quota must be at least 1")

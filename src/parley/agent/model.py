"""The agent's vocabulary: configuration, errors, connection statuses and the reports it gives.

Every room of the agent imports from here; this module imports no other room.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field
from pathlib import Path

from parley.agent.subscriptions import NetPolicy, SafetyNetReport
from parley.protocol import agent as ap
from parley.relay.client import ClientSettings
from parley.retry import Backoff

# connection statuses (persisted), in the order a connection normally goes through them
NEW = "new"  # NEW or JOIN still pending: no queues yet
INVITED = "invited"  # initiator: queue made, invitation link issued
CONFIRMATION = "confirmation"  # initiator: the joiner confirmed, waiting for allow
JOINED = "joined"  # joiner: confirmation sent, waiting for the initiator
ACCEPTED = "accepted"  # initiator: allowed, waiting for HELLO
READY = "ready"  # both queues active (CON)
DELETED = "deleted"

# connection roles (persisted): "initiator" (made the link), "joiner", and a contact address
ROLE_CONTACT = "contact"

CHOOSE_RELAY = "*"  # the worker of commands that choose their relay (NEW, JOIN)


class AgentError(Exception):
    """A call the agent refuses at once: unknown connection, bad link, wrong state."""


class DuplicateCommand(AgentError):
    """A command with this corr id exists already (it was issued before, e.g. before a crash)."""


class EncryptionRenegotiating(AgentError):
    """A message refused for now: the connection's keys are being re-agreed with the peer
    (ratchet re-synchronisation). Send it again once RSYNC says `agreed` or `ok`."""


@dataclass
class AgentConfig:
    database: Path
    relays: list[str]
    retry: Backoff = field(default_factory=lambda: Backoff(1.0, 1.5, 60.0, 0.25))
    quota_retry: Backoff = field(default_factory=lambda: Backoff(30.0, 1.5, 3600.0, 0.25))
    message_ttl: float = 2 * 24 * 3600.0
    failed_retention: float = 7 * 24 * 3600.0
    commands_per_relay: int = 8
    client: ClientSettings = field(default_factory=ClientSettings)
    # when receive queues are checked at their relays (the subscription safety net)
    net: NetPolicy = field(default_factory=NetPolicy)
    seed: int | None = None
    # a passphrase: the database is encrypted with SQLCipher (the `encrypted` extra)
    database_key: str | None = field(default=None, repr=False)


@dataclass(frozen=True)
class ConnectionStatus:
    conn_id: str
    status: str
    rcv_queue: str | None  # status of the receive queue, if there is one
    snd_queue: str | None
    peer_info: bytes | None = None  # the other side's connection info (from CONF or INFO)
    role: str = ""  # "initiator" (made the link) or "joiner"
    rsync_state: str = "ok"  # ratchet re-synchronisation: ok, required, started, agreed
    rsync_done: int = 0  # how many re-synchronisations completed (as in RSYNC ok)


@dataclass(frozen=True)
class PendingCommand:
    corr_id: str
    conn_id: str
    kind: str
    relay: str | None
    attempts: int
    last_error: str | None
    next_try: float


@dataclass(frozen=True)
class PendingDelivery:
    conn_id: str
    msg_id: int
    attempts: int
    last_error: str | None
    next_try: float
    expires_at: float


@dataclass(frozen=True)
class PendingSubscription:
    """A receive queue that is not subscribed at its relay on the current session."""

    conn_id: str
    relay: str
    state: str  # "relay down", "subscribing", "taken over" (END), "refused"
    last_error: str | None


@dataclass(frozen=True)
class RelayState:
    relay: str
    connected: bool
    queues: int  # receive queues kept subscribed there
    subscribed: int  # ... confirmed by the relay on the current session
    reconnects: int


@dataclass(frozen=True)
class PendingReport:
    commands: list[PendingCommand]
    deliveries: list[PendingDelivery]
    # deliveries that failed for good (MERR), kept `failed_retention` seconds to be seen
    failed: list[PendingDelivery] = field(default_factory=list)
    subscriptions: list[PendingSubscription] = field(default_factory=list)
    relays: list[RelayState] = field(default_factory=list)
    net: SafetyNetReport | None = None


def new_id() -> str:
    return secrets.token_urlsafe(12)


def check_size(body: bytes, limit: int = ap.MAX_MESSAGE_SIZE) -> None:
    if len(body) > limit:
        raise AgentError(f"message too large: {len(body)} bytes (at most {limit})")

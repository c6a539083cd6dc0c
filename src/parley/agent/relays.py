"""The agent's relay connections: one client per relay address, one shared event queue."""

from __future__ import annotations

import asyncio

from parley.protocol.address import RelayAddress
from parley.protocol.relay_auth import AuthKey
from parley.relay.client import ClientSettings, RelayClient, RelayEvent


class RelayPool:
    def __init__(self, settings: ClientSettings, passwords: dict[str, str] | None = None) -> None:
        self.settings = settings
        self._passwords = passwords or {}  # relay address -> its creation password
        self.events: asyncio.Queue[RelayEvent] = asyncio.Queue()
        self._clients: dict[str, RelayClient] = {}

    def client(self, relay: str) -> RelayClient:
        c = self._clients.get(relay)
        if c is None:
            address = RelayAddress.parse(relay)
            address = RelayAddress(
                address.fingerprint, address.host, address.port, self._passwords.get(relay, "")
            )
            c = RelayClient(address, events=self.events, settings=self.settings)
            self._clients[relay] = c
        return c

    def subscribe(self, relay: str, recipient_id: bytes, key: AuthKey) -> None:
        """Keep `recipient_id` subscribed: now if connected, else as soon as the relay is up."""
        self.client(relay).keep_subscribed(recipient_id, key)

    def clients(self) -> list[RelayClient]:
        return list(self._clients.values())

    async def close(self) -> None:
        await asyncio.gather(*(c.close() for c in self._clients.values()))

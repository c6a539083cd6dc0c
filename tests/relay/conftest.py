from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import TypeVar

import pytest

from parley.relay.client import ClientSettings, RelayClient
from parley.relay.config import RelayConfig
from parley.relay.server import RelayServer
from parley.retry import Backoff

FAST = ClientSettings(
    connect_timeout=5.0,
    command_timeout=5.0,
    ping_interval=30.0,
    reconnect=Backoff(0.05, 1.5, 0.5, 0.1),
)


def relay_config(store: Path, **kw: object) -> RelayConfig:
    settings: dict[str, object] = {"host": "127.0.0.1", "port": 0, **kw}
    return RelayConfig(store=store, **settings)  # type: ignore[arg-type]


@pytest.fixture
async def relay(tmp_path: Path) -> AsyncIterator[RelayServer]:
    server = RelayServer(relay_config(tmp_path / "relay"))
    await server.start()
    yield server
    await server.stop()


@pytest.fixture
async def make_client(
    relay: RelayServer,
) -> AsyncIterator[Callable[[], RelayClient]]:
    clients: list[RelayClient] = []

    def make() -> RelayClient:
        c = RelayClient(relay.address, settings=FAST)
        clients.append(c)
        return c

    yield make
    for c in clients:
        await c.close()


E = TypeVar("E")


async def next_event(client: RelayClient, kind: type[E], timeout: float = 5.0) -> E:
    """The next event of `kind` from the client (others are skipped)."""
    async with asyncio.timeout(timeout):
        while True:
            ev = await client.events.get()
            if isinstance(ev, kind):
                return ev


async def no_event(client: RelayClient, kind: type[object], within: float = 0.3) -> bool:
    """True if no event of `kind` arrives within `within` seconds (a bounded negative check)."""
    try:
        await next_event(client, kind, within)
    except TimeoutError:
        return True
    return False

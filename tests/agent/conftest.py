from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import TypeVar

import pytest

from parley.agent import events as ev
from parley.agent.agent import Agent, AgentConfig
from parley.retry import Backoff
from tests.relay.conftest import FAST, relay, relay_config  # noqa: F401  (fixtures)

E = TypeVar("E", bound=ev.Event)

FAST_RETRY = Backoff(0.05, 1.5, 0.5, 0.2)


def agent_config(db: Path, relays: list[str], **kw: object) -> AgentConfig:
    settings: dict[str, object] = {"retry": FAST_RETRY, "client": FAST, **kw}
    return AgentConfig(database=db, relays=relays, **settings)  # type: ignore[arg-type]


MakeAgent = Callable[..., Awaitable[Agent]]


@pytest.fixture
async def make_agent(tmp_path: Path) -> AsyncIterator[MakeAgent]:
    agents: list[Agent] = []

    async def make(name: str, relays: list[str], **kw: object) -> Agent:
        a = await Agent.open(agent_config(tmp_path / f"{name}.db", relays, **kw))
        agents.append(a)
        return a

    yield make
    for a in agents:
        await a.close()


async def expect(
    agent: Agent, kind: type[E], conn_id: str | None = None, timeout: float = 10.0
) -> tuple[ev.AgentEvent, E]:
    """The next event of `kind` (for `conn_id`, if given); other events are skipped."""
    import asyncio

    async with asyncio.timeout(timeout):
        while True:
            e = await agent.next_event()
            if isinstance(e.event, kind) and (conn_id is None or e.conn_id == conn_id):
                return e, e.event


async def connect_pair(a: Agent, b: Agent) -> tuple[str, str]:
    """A invites, B joins, A allows: both see CON. Returns (A's conn id, B's conn id)."""
    a_conn = await a.create_connection_async("c1")
    _, inv = await expect(a, ev.Inv, a_conn)
    await a.ack_command_event("c1")
    b_conn = await b.join_connection_async("j1", inv.link, b"bob's info")
    _, conf = await expect(a, ev.Conf, a_conn)
    assert conf.info == b"bob's info"
    await a.allow_connection_async("a1", a_conn, conf.conf_id, b"alice's info")
    _, info = await expect(b, ev.Info, b_conn)
    assert info.info == b"alice's info"
    await expect(a, ev.Con, a_conn)
    await expect(b, ev.Con, b_conn)
    return a_conn, b_conn

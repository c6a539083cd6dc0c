"""An agent in its own process, driven by JSON lines, so tests can SIGKILL it for real.

`python -m parley.testing.agent_process --db PATH --relay ADDRESS [--fast]` serves the
requests create, join, allow, send, ack_msg, ack_event, delete, pending and status (see
parley.testing.lines for the line protocol); `AgentProcess` is the parent's side.
"""

from __future__ import annotations

import argparse
import asyncio
from collections.abc import Callable
from pathlib import Path
from typing import Any

import msgspec

from parley.agent import events as ev
from parley.agent.agent import Agent, AgentConfig, AgentError
from parley.relay.client import ClientSettings
from parley.retry import Backoff
from parley.testing.lines import LineProcess, serve_lines


class Args(msgspec.Struct):
    corr: str = ""
    conn: str = ""
    link: str = ""
    conf: str = ""
    info: bytes = b""
    body: bytes = b""
    msg_id: int = 0
    event: bool = True  # ack_msg: whether an OK comes back


_args = msgspec.json.Decoder(Args)


async def _handle(agent: Agent, op: str, raw: dict[str, Any]) -> Any:
    a = _args.decode(msgspec.json.encode(raw))  # bytes travel as base64
    match op:
        case "create":
            return await agent.create_connection_async(a.corr)
        case "join":
            return await agent.join_connection_async(a.corr, a.link, a.info)
        case "allow":
            return await agent.allow_connection_async(a.corr, a.conn, a.conf, a.info)
        case "send":
            return await agent.send_message(a.conn, a.body)
        case "ack_msg":
            return await agent.ack_message_async(a.corr, a.conn, a.msg_id, event=a.event)
        case "ack_event":
            return await agent.ack_command_event(a.corr)
        case "delete":
            return await agent.delete_connection_async(a.corr, a.conn)
        case "pending":
            return await agent.pending()
        case "status":
            return await agent.subscribe_all()
    raise AgentError(f"unknown op {op}")


async def serve(config: AgentConfig) -> None:
    agent = await Agent.open(config)
    await serve_lines(lambda op, args: _handle(agent, op, args), agent.events(), (AgentError,))
    await agent.close()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--db", type=Path, required=True)
    parser.add_argument("--relay", action="append", required=True)
    parser.add_argument("--fast", action="store_true", help="short retry delays for tests")
    args = parser.parse_args()
    config = AgentConfig(database=args.db, relays=args.relay)
    if args.fast:
        config.retry = Backoff(0.05, 1.5, 0.5, 0.2)
        config.client = ClientSettings(5.0, 5.0, 30.0, Backoff(0.05, 1.5, 0.5, 0.1))
    asyncio.run(serve(config))


_event = msgspec.json.Decoder(ev.AgentEvent)


class AgentProcess(LineProcess[ev.AgentEvent]):
    """The parent side: start, send requests, wait for events, SIGKILL, restart."""

    def __init__(self, db: Path, relays: list[str], *, fast: bool = True) -> None:
        args = ["--db", str(db), *(x for r in relays for x in ("--relay", r))]
        super().__init__(
            "parley.testing.agent_process",
            [*args, "--fast"] if fast else args,
            lambda raw: _event.decode(msgspec.json.encode(raw)),
            refusal=AgentError,  # call(): the agent refused the request
            call_timeout=10.0,
        )

    async def expect(
        self, predicate: Callable[[ev.AgentEvent], bool], timeout: float = 15.0
    ) -> ev.AgentEvent:
        return await self.next_event(predicate, timeout)


if __name__ == "__main__":
    main()

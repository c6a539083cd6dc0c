"""`parley.testing.agent_process` with the contact address calls too (create_contact,
accept_contact, reject_contact), so tests can SIGKILL an agent at each step of the flow.

`ContactAgentProcess` is the parent's side; `python -m tests.agent.contact_process` the
child (run from the repository's root, as pytest is).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import msgspec

from parley.agent.agent import Agent
from parley.testing import agent_process

_base = agent_process._handle


class _Args(msgspec.Struct):
    corr: str = ""
    inv: str = ""
    info: bytes = b""


_decode = msgspec.json.Decoder(_Args)


async def _handle(agent: Agent, op: str, raw: dict[str, Any]) -> Any:
    a = _decode.decode(msgspec.json.encode(raw))
    match op:
        case "create_contact":
            return await agent.create_connection_async(a.corr, contact=True)
        case "accept_contact":
            return await agent.accept_contact_async(a.corr, a.inv, a.info)
        case "reject_contact":
            return await agent.reject_contact(a.inv)
    return await _base(agent, op, raw)


class ContactAgentProcess(agent_process.AgentProcess):
    def __init__(self, db: Path, relays: list[str]) -> None:
        super().__init__(db, relays)
        self.module = "tests.agent.contact_process"


if __name__ == "__main__":
    agent_process._handle = _handle  # serve() looks it up at each request
    agent_process.main()

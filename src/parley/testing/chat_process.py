"""A chat client in its own process, driven by JSON lines, so tests and the demo can
SIGKILL it for real and start it again on the same database files.

`python -m parley.testing.chat_process --db PREFIX --relay ADDRESS --name NAME [--fast]`
serves requests whose op is a ChatController method named in `OPS` with keyword `args`
(see parley.testing.lines for the line protocol). `PARLEY_CRASH_AT` in its environment
makes it kill itself at a named step (see parley.chat.crash). `ChatProcess` is the
parent's side.
"""

from __future__ import annotations

import argparse
import asyncio
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import msgspec

from parley.chat import events as cev
from parley.chat.controller import ChatConfig, ChatController, ChatError
from parley.relay.client import ClientSettings
from parley.retry import Backoff
from parley.testing.lines import LineProcess, RemoteError, serve_lines

OPS = frozenset(
    {
        "create_invitation",
        "connect",
        "contacts",
        "send_contact_message",
        "delete_contact",
        "create_group",
        "groups",
        "add_member",
        "join_group",
        "members",
        "send_group_message",
        "leave_group",
        "remove_member",
        "delete_group",
        "chat_items",
        "status",
        "reintroduce_stale",
    }
)


async def serve(config: ChatConfig, name: str) -> None:
    chat = await ChatController.open(config)
    if await chat.active_user() is None:
        await chat.create_user(name)
    await chat.start()

    async def handle(op: str, args: dict[str, Any]) -> Any:
        if op not in OPS:
            raise ChatError(f"unknown op {op}")
        return await getattr(chat, op)(**args)

    async def events() -> AsyncIterator[cev.ChatEvent]:
        while True:
            yield await chat.events.get()

    await serve_lines(handle, events(), (ChatError,))
    await chat.close()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--db", type=Path, required=True)
    parser.add_argument("--relay", action="append", required=True)
    parser.add_argument("--name", required=True)
    parser.add_argument("--fast", action="store_true", help="short retry delays for tests")
    parser.add_argument("--intro-timeout", type=float, default=600.0)
    args = parser.parse_args()
    config = ChatConfig(db_prefix=args.db, relays=args.relay, intro_timeout=args.intro_timeout)
    if args.fast:
        config.intro_check_interval = min(config.intro_check_interval, args.intro_timeout / 2)
        config.agent = {
            "retry": Backoff(0.05, 1.5, 0.5, 0.2),
            "client": ClientSettings(5.0, 5.0, 30.0, Backoff(0.05, 1.5, 0.5, 0.1)),
        }
    asyncio.run(serve(config, args.name))


_event = msgspec.json.Decoder(cev.ChatEvent)


class ChatProcess(LineProcess[cev.ChatEvent]):
    """The parent side: start, call, wait for events, SIGKILL, restart."""

    def __init__(
        self,
        db: Path,
        relays: list[str],
        name: str,
        *,
        fast: bool = True,
        intro_timeout: float = 600.0,
    ) -> None:
        args = ["--db", str(db), "--name", name, "--intro-timeout", str(intro_timeout)]
        args += [x for r in relays for x in ("--relay", r)]
        super().__init__(
            "parley.testing.chat_process",
            [*args, "--fast"] if fast else args,
            lambda raw: _event.decode(msgspec.json.encode(raw)),
        )
        self.db = db
        self.relays = relays
        self.name = name

    async def start(  # type: ignore[override]
        self, crash_at: str = "", timeout: float = 30.0
    ) -> None:
        """Start; with `crash_at`, the process SIGKILLs itself at that step."""
        await super().start(timeout, {"PARLEY_CRASH_AT": crash_at} if crash_at else None)

    async def call(self, op: str, timeout: float = 30.0, **args: Any) -> Any:
        """Call a controller method in the process; ChatError for its refusals."""
        try:
            return await self.request(op, args, timeout)
        except RemoteError as e:
            raise ChatError(str(e)) from e

    async def expect(
        self, kind: type[Any], where: Callable[[Any], bool] | None = None, timeout: float = 30.0
    ) -> Any:
        return await self.next_event(
            lambda e: isinstance(e, kind) and (where is None or where(e)), timeout
        )


if __name__ == "__main__":
    main()

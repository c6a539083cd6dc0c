"""A chat client in its own process, driven by JSON lines, so tests and the demo can
SIGKILL it for real and start it again on the same database files.

`python -m parley.testing.chat_process --db PREFIX --relay ADDRESS --name NAME [--fast]`
serves requests whose op is a ChatController method named in `OPS` with keyword `args`
(see parley.testing.lines for the line protocol). `PARLEY_CRASH_AT` in its environment
makes it kill itself at a named step (see parley.chat.crash). `ChatProcess` is the
parent's side.

`--fast` shortens the retry timers of the agent and its relay clients (`FAST_RETRY`,
`FAST_CLIENT`; `describe_timers()` says by how much), so that tests do not wait for the
delays a real client uses; without it the process runs with the defaults of
`AgentConfig`, `ClientSettings` and `ChatConfig`, like `parley chat`.
"""

from __future__ import annotations

import argparse
import asyncio
import functools
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import msgspec

from parley.agent.agent import AgentConfig
from parley.chat import events as cev
from parley.chat.controller import ChatConfig, ChatController, ChatError
from parley.relay.client import ClientSettings
from parley.retry import Backoff
from parley.testing.lines import LineProcess, serve_lines

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
        "update_item",
        "delete_item",
        "moderate_item",
        "react",
        "find_item",
        "item_history",
        "item_deliveries",
        "set_receipts",
        "set_full_delete",
        "sync_ratchet",
        "status",
        "reintroduce_stale",
    }
)


# --fast: retry delays of agent commands and deliveries, and of relay reconnections
FAST_RETRY = Backoff(0.05, 1.5, 0.5, 0.2)
FAST_CLIENT = ClientSettings(5.0, 5.0, 30.0, Backoff(0.05, 1.5, 0.5, 0.1))


@dataclass(frozen=True)
class Timers:
    """The timers that decide how soon a client tries again, as one process runs them."""

    retry: Backoff  # agent commands and deliveries
    reconnect: Backoff  # relay connections
    command_timeout: float  # a relay command without an answer
    intro_timeout: float  # the host re-introduces a pair that makes no progress
    intro_backoff: float  # ... then each time this many times later
    intro_max: float  # ... up to this
    intro_check: float  # ... looking for such pairs this often

    @staticmethod
    def of(fast: bool, intro_timeout: float | None = None) -> Timers:
        agent = AgentConfig(database=Path(), relays=[])
        chat = ChatConfig(db_prefix=Path(), relays=[])
        client = FAST_CLIENT if fast else agent.client
        check = chat.intro_check_interval
        if fast and intro_timeout is not None:
            check = min(check, intro_timeout / 2)
        return Timers(
            retry=FAST_RETRY if fast else agent.retry,
            reconnect=client.reconnect,
            command_timeout=client.command_timeout,
            intro_timeout=chat.intro_timeout if intro_timeout is None else intro_timeout,
            intro_backoff=chat.intro_backoff,
            intro_max=chat.intro_timeout_max,
            intro_check=check,
        )


def _backoff(b: Backoff) -> str:
    return f"{b.initial:g} s up to {b.cap:g} s"


def describe_timers(fast: bool, intro_timeout: float | None = None) -> str:
    """The clients' retry timers in words: with `fast`, how much shorter than the defaults."""
    mine, default = Timers.of(fast, intro_timeout), Timers.of(False)
    parts = []
    for what, a, b in (
        ("agent retries after", mine.retry, default.retry),
        ("relay reconnects after", mine.reconnect, default.reconnect),
    ):
        if a == b:
            parts.append(f"{what} {_backoff(a)}")
        else:
            parts.append(
                f"{what} {_backoff(a)} instead of {_backoff(b)} "
                f"({b.initial / a.initial:.0f}× shorter at first, {b.cap / a.cap:.0f}× at most)"
            )
    for what, x, y in (
        ("relay command timeout", mine.command_timeout, default.command_timeout),
        ("re-introduction of a stuck pair after", mine.intro_timeout, default.intro_timeout),
    ):
        parts.append(f"{what} {x:g} s" + ("" if x == y else f" instead of {y:g} s"))
    parts[-1] += f" (then ×{mine.intro_backoff:g}, up to {mine.intro_max:g} s)"
    head = "shortened retry timers" if fast else "default timers"
    if not fast and mine != default:
        head = "default retry timers"
    return f"{head}: " + ", ".join(parts)


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
    parser.add_argument(
        "--intro-timeout",
        type=float,
        help="the host's re-introduction timeout (default: the chat's)",
    )
    args = parser.parse_args()
    config = ChatConfig(db_prefix=args.db, relays=args.relay)
    if args.intro_timeout is not None:
        config.intro_timeout = args.intro_timeout
    if args.fast:
        if args.intro_timeout is not None:
            config.intro_check_interval = min(config.intro_check_interval, args.intro_timeout / 2)
        config.agent = {"retry": FAST_RETRY, "client": FAST_CLIENT}
    asyncio.run(serve(config, args.name))


@functools.cache
def _event_decoder() -> msgspec.json.Decoder[cev.ChatEvent]:
    """Made on first use: the child process never decodes events (and building a decoder
    for every event type costs it start-up time)."""
    return msgspec.json.Decoder(cev.ChatEvent)


class ChatProcess(LineProcess[cev.ChatEvent]):
    """The parent side: start, call, wait for events, SIGKILL, restart."""

    def __init__(
        self,
        db: Path,
        relays: list[str],
        name: str,
        *,
        fast: bool = True,
        intro_timeout: float | None = None,
    ) -> None:
        """`fast`: shortened retry timers (see `describe_timers`), False for the defaults;
        `intro_timeout`: the host's re-introduction timeout (None: the chat's default)."""
        args = ["--db", str(db), "--name", name]
        if intro_timeout is not None:
            args += ["--intro-timeout", str(intro_timeout)]
        args += [x for r in relays for x in ("--relay", r)]
        super().__init__(
            "parley.testing.chat_process",
            [*args, "--fast"] if fast else args,
            lambda raw: _event_decoder().decode(msgspec.json.encode(raw)),
            refusal=ChatError,  # call(): the controller refused the call
        )
        self.db = db
        self.relays = relays
        self.name = name
        self.fast = fast

    async def start(  # type: ignore[override]
        self, crash_at: str = "", timeout: float = 30.0
    ) -> None:
        """Start; with `crash_at`, the process SIGKILLs itself at that step."""
        await super().start(timeout, {"PARLEY_CRASH_AT": crash_at} if crash_at else None)

    async def expect(
        self, kind: type[Any], where: Callable[[Any], bool] | None = None, timeout: float = 30.0
    ) -> Any:
        return await self.next_event(
            lambda e: isinstance(e, kind) and (where is None or where(e)), timeout
        )


if __name__ == "__main__":
    main()

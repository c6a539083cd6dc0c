"""`LibraryBackend`: the four core calls of the ``simplex-chat`` Python library, answered
by parley's chat in process.

The library calls (as ``simplex_chat.core`` defines them):

- ``chat_migrate_init(db_path, db_key, confirm) -> ctrl``: open the bot's databases.
  `db_path` is the ``SqliteDb(file_prefix=...)`` the script names: parley keeps the chat's
  databases at ``PREFIX_chat.db`` and ``PREFIX_agent.db``.
- ``chat_send_cmd(ctrl, cmd) -> resp``: a command string of the current bot API; the
  reply, or ``ChatAPIError`` carrying the ``chatError`` of a ``chatCmdError``.
- ``chat_recv_msg_wait(ctrl, wait_us) -> event | None``: the next event, or None after
  `wait_us` microseconds.
- ``chat_close_store(ctrl)``: close the chat.

`install()` puts these in place of the library's (and keeps it from loading its native
library); the function it returns puts the originals back.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from parley.api import commands
from parley.api.handlers import ApiHandler
from parley.chat.controller import ChatController
from parley.chat.model import ChatConfig
from parley.loops import failure_logged

log = logging.getLogger(__name__)

JsonObject = dict[str, Any]
ConfigFor = Callable[[Path, list[str]], ChatConfig]


def default_config(prefix: Path, relays: list[str]) -> ChatConfig:
    return ChatConfig(db_prefix=prefix, relays=relays)


@dataclass
class _Core:
    """One opened chat (a ``ctrl`` of the library)."""

    chat: ChatController
    handler: ApiHandler
    events: asyncio.Queue[JsonObject] = field(default_factory=asyncio.Queue)
    pump: asyncio.Task[None] | None = None


class LibraryBackend:
    """Answers ``simplex_chat.core``'s calls with parley chats using `relays`."""

    def __init__(
        self,
        relays: list[str],
        *,
        config_for: ConfigFor = default_config,
        invitation_timeout: float = 30.0,
    ) -> None:
        self.relays = list(relays)
        self.config_for = config_for
        self.invitation_timeout = invitation_timeout
        self._cores: dict[int, _Core] = {}
        self._next_ctrl = 1

    # ------------------------------------------------------------ the four calls

    async def chat_migrate_init(self, db_path: str, db_key: str, confirm: Any) -> int:
        from simplex_chat.core import ChatInitError

        if db_key:
            raise ChatInitError(
                "parley's backend does not open encrypted bot databases: leave "
                "SqliteDb(encryption_key=...) unset",
                {"type": "errorNotADatabase", "dbFile": db_path},
            )
        prefix = Path(db_path)
        try:
            await asyncio.to_thread(prefix.parent.mkdir, parents=True, exist_ok=True)
            chat = await ChatController.open(self.config_for(prefix, self.relays))
        except Exception as e:
            raise ChatInitError(
                f"cannot open the parley chat at {prefix}: {e}",
                {"type": "errorMigration", "dbFile": db_path, "migrationError": str(e)},
            ) from e
        ctrl = self._next_ctrl
        self._next_ctrl += 1
        handler = ApiHandler(chat, self.invitation_timeout, current=True, stoppable=True)
        core = _Core(chat, handler)
        core.pump = asyncio.create_task(self._pump(core), name=f"botlib-events-{ctrl}")
        self._cores[ctrl] = core
        log.info("parley chat opened for the bot at %s (ctrl %d)", prefix, ctrl)
        return ctrl

    async def chat_send_cmd(self, ctrl: int, cmd: str) -> JsonObject:
        from simplex_chat.core import ChatAPIError

        core = self._core(ctrl)
        resp = await core.handler.run(commands.parse_command(cmd))
        for event in await core.handler.after_command():
            core.events.put_nowait(event)
        if resp.get("type") == "chatCmdError":
            error = resp["chatError"]
            raise ChatAPIError(f"chat command error: {error.get('type')}", error)
        return resp

    async def chat_recv_msg_wait(self, ctrl: int, wait_us: int = 500_000) -> JsonObject | None:
        core = self._core(ctrl)
        try:
            async with asyncio.timeout(max(wait_us, 0) / 1_000_000):
                return await core.events.get()
        except TimeoutError:
            return None

    async def chat_close_store(self, ctrl: int) -> None:
        core = self._cores.pop(ctrl, None)
        if core is None:
            return
        if core.pump is not None:
            core.pump.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await core.pump
        await core.chat.close()

    # ------------------------------------------------------------ installing

    def install(self) -> Callable[[], None]:
        """Answer the library's core calls from now on; returns the undo."""
        import simplex_chat._native as native
        import simplex_chat.core as core

        saved = {
            name: getattr(core, name)
            for name in (
                "chat_migrate_init",
                "chat_send_cmd",
                "chat_recv_msg_wait",
                "chat_close_store",
            )
        }
        saved_lib_for = native.lib_for
        mine = {
            "chat_migrate_init": self.chat_migrate_init,
            "chat_send_cmd": self.chat_send_cmd,
            "chat_recv_msg_wait": self.chat_recv_msg_wait,
            "chat_close_store": self.chat_close_store,
        }
        for name, fn in mine.items():
            setattr(core, name, fn)
        setattr(native, "lib_for", _no_native_library)  # noqa: B010

        def undo() -> None:
            for name, fn in saved.items():
                setattr(core, name, fn)
            setattr(native, "lib_for", saved_lib_for)  # noqa: B010

        return undo

    async def close(self) -> None:
        """Close every chat still open (a script that did not close its own)."""
        for ctrl in list(self._cores):
            await self.chat_close_store(ctrl)

    # ------------------------------------------------------------ inside

    def _core(self, ctrl: int) -> _Core:
        core = self._cores.get(ctrl)
        if core is None:
            raise RuntimeError(f"no parley chat is open for controller {ctrl}")
        return core

    async def _pump(self, core: _Core) -> None:
        """The chat's events, as the current API's events, for chat_recv_msg_wait."""
        while True:
            event = await core.chat.events.get()
            with failure_logged(log, "could not pass chat event %r to the bot", event):
                for resp in await core.handler.event(event):
                    core.events.put_nowait(resp)


def _no_native_library(backend: str) -> Any:
    """In place of the library's loader: parley needs no native library."""
    return None

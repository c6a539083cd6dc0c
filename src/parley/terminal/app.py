"""The interactive terminal: a prompt at the bottom, the chat's events printed above it.

Events arrive while the user types; they are printed with prompt_toolkit's
`print_formatted_text`, which draws them above the prompt when the prompt is running (and
plainly between prompts), so the line being typed is never garbled. Stray writes to
stdout/stderr (log records) go through `patch_stdout` the same way.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import logging
import sys
from collections.abc import Iterator, Sequence
from typing import Any

import segno
from prompt_toolkit import PromptSession
from prompt_toolkit.completion import CompleteEvent, Completer, Completion
from prompt_toolkit.document import Document
from prompt_toolkit.formatted_text import ANSI, FormattedText
from prompt_toolkit.history import InMemoryHistory
from prompt_toolkit.input import Input
from prompt_toolkit.output import Output
from prompt_toolkit.patch_stdout import patch_stdout
from prompt_toolkit.shortcuts import print_formatted_text
from prompt_toolkit.styles import Style
from rich.console import Console
from rich.table import Table

from parley.chat import commands as cmd
from parley.chat import events as cev
from parley.chat.controller import ChatController
from parley.terminal.render import printable
from parley.terminal.session import ChatSession

STYLE = Style.from_dict(
    {
        "error": "ansired",
        "event": "ansicyan",
        "message": "",
        "dim": "ansibrightblack",
        "prompt": "bold",
    }
)


class ScreenPrinter:
    """Prints through a prompt_toolkit output, above the prompt while it runs."""

    def __init__(self, output: Output, *, is_tty: bool) -> None:
        self.output = output
        self.is_tty = is_tty

    def line(self, text: str, style: str = "") -> None:
        text = printable(text, keep_newlines=True)
        fragments = FormattedText([(f"class:{style}" if style else "", text)])
        print_formatted_text(fragments, output=self.output, style=STYLE)

    def table(self, table: Table, plain: Sequence[str]) -> None:
        width = max(60, self.output.get_size().columns)
        buf = io.StringIO()
        console = Console(
            file=buf,
            width=width,
            force_terminal=self.is_tty,
            color_system="standard" if self.is_tty else None,
            highlight=False,
        )
        console.print(table)
        print_formatted_text(ANSI(buf.getvalue()), output=self.output, end="")

    def qr(self, text: str) -> None:
        if not self.is_tty:
            return
        buf = io.StringIO()
        segno.make(text, error="l").terminal(out=buf, compact=True)
        print_formatted_text(buf.getvalue(), output=self.output, end="")


class NameCompleter(Completer):
    """Completes command names after '/', contacts after '@' and groups after '#'."""

    def __init__(self) -> None:
        self.contacts: list[str] = []
        self.groups: list[str] = []
        self.commands = sorted(
            {c.usage.split()[0] for c in cmd.COMMANDS if c.usage.startswith("/")}
            | {a for c in cmd.COMMANDS for a in c.aliases}
        )

    def get_completions(
        self, document: Document, complete_event: CompleteEvent
    ) -> Iterator[Completion]:
        word = document.get_word_before_cursor(WORD=True)
        if not word:
            return
        if word[0] == "/" and document.text_before_cursor == word:
            candidates = [c for c in self.commands if c.startswith(word)]
        elif word[0] in "@#":
            typed = word[1:].lstrip("'\"")
            names = self.contacts if word[0] == "@" else self.groups
            candidates = [word[0] + cmd.quote_name(n) for n in names if n.startswith(typed)]
        else:
            return
        for c in candidates:
            if c != word:
                yield Completion(c, start_position=-len(word))


@contextlib.contextmanager
def _logs_above_prompt() -> Iterator[None]:
    """Point the log handlers that write to the real stderr at the patched sys.stderr."""
    moved: list[tuple[logging.StreamHandler[Any], Any]] = []
    for handler in logging.getLogger().handlers:
        if isinstance(handler, logging.StreamHandler) and handler.stream in (
            sys.__stderr__,
            sys.__stdout__,
        ):
            moved.append((handler, handler.setStream(sys.stderr)))
    try:
        yield
    finally:
        for handler, stream in moved:
            if stream is not None:
                handler.setStream(stream)


class TerminalApp:
    """`await TerminalApp(chat, events=chat.events).run()` until /q, Ctrl-D or Ctrl-C.

    `events`: the queue of chat events to show (None when another consumer owns them).
    `input`/`output`: prompt_toolkit's, for tests; by default the process's terminal.
    """

    def __init__(
        self,
        chat: ChatController,
        *,
        events: asyncio.Queue[cev.ChatEvent] | None,
        input: Input | None = None,
        output: Output | None = None,
        is_tty: bool | None = None,
        banner: Sequence[str] = (),
    ) -> None:
        self.chat = chat
        self.events = events
        self.banner = list(banner)
        self.completer = NameCompleter()
        self.prompt: PromptSession[str] = PromptSession(
            FormattedText([("class:prompt", "> ")]),
            input=input,
            output=output,
            history=InMemoryHistory(),
            completer=self.completer,
            complete_while_typing=False,
            style=STYLE,
        )
        self._patch = output is None  # the real terminal: catch stray writes too
        if is_tty is None:
            is_tty = output is None and sys.stdout.isatty()
        self.printer = ScreenPrinter(self.prompt.app.output, is_tty=is_tty)
        self.session = ChatSession(chat, self.printer, sees_events=events is not None)

    async def _refresh_names(self) -> None:
        with contextlib.suppress(Exception):
            self.completer.contacts = [c.name for c in await self.chat.contacts()]
            self.completer.groups = [g.name for g in await self.chat.groups()]

    async def run(self) -> None:
        pump = None
        if self.events is not None:
            pump = asyncio.create_task(self.session.pump(self.events), name="terminal-events")
        try:
            with contextlib.ExitStack() as stack:
                if self._patch:
                    stack.enter_context(patch_stdout(raw=True))
                    stack.enter_context(_logs_above_prompt())
                for text in self.banner:
                    self.printer.line(text, "dim")
                while True:
                    await self._refresh_names()
                    try:
                        line = await self.prompt.prompt_async()
                    except (EOFError, KeyboardInterrupt):
                        break
                    if await self.session.handle_line(line):
                        break
        finally:
            if pump is not None:
                pump.cancel()
                await asyncio.gather(pump, return_exceptions=True)

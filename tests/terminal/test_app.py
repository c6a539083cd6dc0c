"""The interactive terminal: driven in-process through a pipe, and for real in tmux."""

from __future__ import annotations

import asyncio
import io
import os
import re
import shutil
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from prompt_toolkit.data_structures import Size
from prompt_toolkit.input import create_pipe_input
from prompt_toolkit.output.vt100 import Vt100_Output

from parley.chat import events as cev
from parley.relay.server import RelayServer
from parley.terminal.app import TerminalApp
from parley.terminal.session import INVITATION_PREFIX
from parley.testing.waiting import wait_for_condition
from tests.chat.conftest import MakeChat, expect

LINK = re.compile(r"parley:/invite#[A-Za-z0-9_-]+")
ESCAPES = re.compile(r"\x1b\[[0-?]*[ -/]*[@-~]|\x1b\][^\x07]*\x07|\x1b[=>]")


def plain(text: str) -> str:
    return ESCAPES.sub("", text)


class Screen:
    """What the app wrote, without escape sequences; waits for text to appear."""

    def __init__(self) -> None:
        self.buf = io.StringIO()

    @property
    def text(self) -> str:
        return plain(self.buf.getvalue())

    async def wait_for(self, text: str, timeout: float = 20.0) -> str:
        await wait_for_condition(
            lambda: text in self.text, timeout, message=f"{text!r} not shown:\n{self.text}"
        )
        return self.text


async def test_interactive_app_in_process(relay: RelayServer, make_chat: MakeChat) -> None:
    relays = [str(relay.address)]
    alice = await make_chat("alice", relays)
    bob = await make_chat("bob", relays)
    screen = Screen()
    output = Vt100_Output(screen.buf, lambda: Size(rows=40, columns=160), enable_cpr=False)
    with create_pipe_input() as pipe:
        app = TerminalApp(
            alice, events=alice.events, input=pipe, output=output, banner=["welcome, alice"]
        )
        task = asyncio.create_task(app.run())
        try:
            await screen.wait_for("welcome, alice")
            pipe.send_text("/c\r")
            shown = await screen.wait_for(INVITATION_PREFIX)
            match = LINK.search(shown)
            assert match is not None
            assert "█" not in shown  # not a TTY: no QR code

            await bob.connect(match.group(0))
            await screen.wait_for("bob: contact is connected")
            await expect(bob, cev.ContactConnected)

            # an event arrives while the user is typing: printed above, the typing goes on
            pipe.send_text("@bob hel")
            await bob.send_contact_message("alice", "hi alice")
            await screen.wait_for("bob> hi alice")
            pipe.send_text("lo bob\r")
            got = await expect(bob, cev.NewChatItem)
            assert got.item.text == "hello bob"

            pipe.send_text("/ms nosuch\r")
            await screen.wait_for("error: no group #nosuch")
            assert "Traceback" not in screen.text
            pipe.send_text("/cs\r")
            await screen.wait_for("@bob: connected")
            pipe.send_text("/q\r")
            async with asyncio.timeout(10):
                await task
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)


# ---------------------------------------------------------------- tmux

TMUX = shutil.which("tmux")


class Tmux:
    """A private tmux server (its own socket) running one window."""

    def __init__(self) -> None:
        self.socket = f"parley-test-{uuid.uuid4().hex[:12]}"

    def run(self, *args: str) -> str:
        assert TMUX is not None
        done = subprocess.run(
            [TMUX, "-L", self.socket, *args], capture_output=True, text=True, timeout=10
        )
        return done.stdout

    def alive(self) -> bool:
        return "parley" in self.run("list-sessions", "-F", "#{session_name}")

    def screen(self) -> str:
        # -J joins wrapped lines, so a long link comes back in one piece
        return self.run("capture-pane", "-p", "-J", "-S", "-200", "-t", "parley")

    async def wait_for(self, text: str, timeout: float = 30.0) -> str:
        def shown() -> bool:
            return text in self.screen()

        await wait_for_condition(
            shown, timeout, interval=0.05, message=f"{text!r} not shown:\n{self.screen()}"
        )
        return self.screen()


@pytest.fixture
def tmux() -> Iterator[Tmux]:
    if TMUX is None:
        pytest.skip("tmux is not installed: the real-terminal test needs it")
    t = Tmux()
    yield t
    t.run("kill-server")  # only this test's server, on its own socket
    base = os.environ.get("TMUX_TMPDIR") or "/tmp"
    Path(base, f"tmux-{os.getuid()}", t.socket).unlink(missing_ok=True)


async def test_interactive_terminal_in_tmux(
    tmux: Tmux, relay: RelayServer, make_chat: MakeChat, tmp_path: Path
) -> None:
    relays = [str(relay.address)]
    bob = await make_chat("bob", relays)
    command = [
        sys.executable, "-m", "parley", "chat",
        "-d", str(tmp_path / "alice"), "-s", relays[0], "--name", "alice",
    ]  # fmt: skip
    tmux.run(
        "new-session", "-d", "-s", "parley", "-x", "200", "-y", "60",
        "-c", os.getcwd(), "-e", f"PYTHONPATH={os.pathsep.join(sys.path)}",
        " ".join(_quote(a) for a in command),
    )  # fmt: skip
    await tmux.wait_for("/help lists the commands")
    tmux.run("send-keys", "-t", "parley", "/c", "Enter")
    screen = await tmux.wait_for("they connect with /c LINK")  # printed after the QR code
    assert INVITATION_PREFIX in screen
    assert "▀" in screen or "▄" in screen, "a QR code is drawn on a terminal"
    match = LINK.search(screen)
    assert match is not None
    await bob.connect(match.group(0))
    await tmux.wait_for("bob: contact is connected")
    await expect(bob, cev.ContactConnected)
    await bob.send_contact_message("alice", "hello in tmux")
    await tmux.wait_for("bob> hello in tmux")
    tmux.run("send-keys", "-t", "parley", "/status", "Enter")
    await wait_for_condition(  # a table if an acknowledgement is still under way
        lambda: "nothing pending" in (s := tmux.screen()) or "┃ kind" in s,
        20,
        message="/status printed nothing",
    )
    tmux.run("send-keys", "-t", "parley", "/q", "Enter")
    await wait_for_condition(lambda: not tmux.alive(), 20, message="the terminal did not quit")


def _quote(arg: str) -> str:
    return "'" + arg.replace("'", "'\\''") + "'"


def test_completion_of_commands_contacts_and_groups() -> None:
    from prompt_toolkit.completion import CompleteEvent
    from prompt_toolkit.document import Document

    from parley.terminal.app import NameCompleter

    c = NameCompleter()
    c.contacts = ["bob", "Bob Smith", "cath"]
    c.groups = ["team"]

    def complete(text: str) -> list[str]:
        return [x.text for x in c.get_completions(Document(text), CompleteEvent())]

    assert complete("/st") == ["/status"]
    assert "/members" in complete("/m") and "/ms" in complete("/m")
    assert complete("@b") == ["@bob"]
    assert complete("@B") == ["@'Bob Smith'"]
    assert complete("/a team @c") == ["@cath"]
    assert complete("#t") == ["#team"]
    assert complete("/j te") == []  # bare names are not guessed
    assert complete("hello /st") == []  # commands only at the start

"""End to end: two `parley chat --headless` processes on a real relay, driven on stdin."""

from __future__ import annotations

from pathlib import Path

import pytest

from parley.cli.chat_cmd import USER_PREFIX
from parley.relay.server import RelayServer
from parley.terminal.session import INVITATION_PREFIX
from tests.terminal.conftest import ChatProcess, chat_process


async def test_two_clients_connect_and_message(relay: RelayServer, tmp_path: Path) -> None:
    address = str(relay.address)
    async with (
        chat_process(tmp_path, "alice", address, "--name", "alice") as alice,
        chat_process(tmp_path, "bob", address, "--name", "bob") as bob,
    ):
        await alice.expect(USER_PREFIX + "alice")
        await bob.expect(USER_PREFIX + "bob")

        await alice.send("/c")
        link = (await alice.expect(INVITATION_PREFIX)).removeprefix(INVITATION_PREFIX)
        await bob.send(f"/c {link}")
        await bob.expect("connecting")
        assert await bob.expect("alice: contact is connected") == "alice: contact is connected"
        assert await alice.expect("bob: contact is connected") == "bob: contact is connected"

        await bob.send("@alice hello from bob")
        await bob.expect("@alice hello from bob")  # the sent message, confirmed
        assert await alice.expect("bob> hello from bob") == "bob> hello from bob"
        await alice.send("@bob hi bob")
        await bob.expect("alice> hi bob")

        await alice.send("/cs")
        await alice.expect("@bob: connected")
        await alice.send("/tail @bob")
        await alice.expect("bob> hello from bob")
        await alice.send("/nonsense")
        await alice.expect("error: unknown command /nonsense")
        await alice.send("@nobody hi")
        await alice.expect("error: no contact nobody")

        await alice.send("/q")
        assert await alice.wait() == 0
        await bob.send("/q")
        assert await bob.wait() == 0


async def test_headless_needs_a_name_on_first_start(relay: RelayServer, tmp_path: Path) -> None:
    p = ChatProcess(["-d", str(tmp_path / "nobody"), "-s", str(relay.address)])
    await p.start()
    try:
        assert await p.wait() == 2
        assert any("--name" in line for line in p.stderr), p.transcript()
    finally:
        await p.stop()


async def test_headless_stops_on_sigterm_after_end_of_stdin(
    relay: RelayServer, tmp_path: Path
) -> None:
    async with chat_process(tmp_path, "carol", str(relay.address), "--name", "carol") as p:
        await p.expect(USER_PREFIX + "carol")
        await p.send("/u")
        await p.expect("you are carol")
        assert p.proc is not None and p.proc.stdin is not None
        p.proc.stdin.close()  # the end of stdin: it keeps running ...
        with pytest.raises(TimeoutError):  # a bounded negative check: it has not exited
            await p.wait(0.5)
        p.proc.terminate()  # ... until a signal
        assert await p.wait() == 0

"""`parley chat` options: the bot API (--ws), sharing events, bad arguments."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import types
from pathlib import Path

import pytest

from parley.chat import events as cev
from parley.chat.controller import ChatController
from parley.cli import build_parser, main
from parley.cli.chat_cmd import API_PREFIX, USER_PREFIX, chat_main
from parley.relay.server import RelayServer
from parley.terminal.tee import EventTee, tap_events
from parley.testing.waiting import wait_for_condition
from tests.chat.conftest import MakeChat, expect, make_contacts


class FakeApi:
    def __init__(self, chat: ChatController, host: str, port: int) -> None:
        self.chat, self.host, self.port = chat, host, port or 43210
        self.closed = False

    async def close(self) -> None:
        self.closed = True


async def test_headless_ws_serves_the_api_until_sigterm(
    relay: RelayServer,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    servers: list[FakeApi] = []

    async def serve_api(chat: ChatController, host: str, port: int) -> FakeApi:
        servers.append(FakeApi(chat, host, port))
        return servers[-1]

    fake = types.ModuleType("parley.api.server")
    fake.serve_api = serve_api  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "parley.api.server", fake)
    args = build_parser().parse_args(
        ["chat", "--headless", "--ws", "0", "--ws-host", "127.0.0.1", "--name", "zed",
         "-d", str(tmp_path / "zed"), "-s", str(relay.address)]
    )  # fmt: skip
    task = asyncio.create_task(chat_main(args))
    out: list[str] = []

    def printed(text: str) -> bool:
        out.extend(capsys.readouterr().out.splitlines())
        return any(text in line for line in out)

    await wait_for_condition(lambda: printed(API_PREFIX), 20, message="no API line")
    assert f"{USER_PREFIX}zed" in out
    assert f"{API_PREFIX}ws://127.0.0.1:43210" in out
    (server,) = servers
    assert server.host == "127.0.0.1" and server.chat.started
    # the API server owns chat.events: headless mode without a terminal leaves it alone
    assert type(server.chat.events) is asyncio.Queue

    os.kill(os.getpid(), signal.SIGTERM)
    async with asyncio.timeout(20):
        assert await task == 0
    assert server.closed


async def test_ws_without_the_api_module(
    relay: RelayServer,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setitem(sys.modules, "parley.api.server", None)  # import fails
    args = build_parser().parse_args(
        ["chat", "--headless", "--ws", "0", "--name", "zed",
         "-d", str(tmp_path / "zed"), "-s", str(relay.address)]
    )  # fmt: skip
    assert await chat_main(args) == 1
    assert "WebSocket API" in capsys.readouterr().err


async def test_tap_events_copies_every_event(relay: RelayServer, make_chat: MakeChat) -> None:
    relays = [str(relay.address)]
    a = await make_chat("alice", relays)
    b = await make_chat("bob", relays)
    tap = tap_events(a)
    assert isinstance(a.events, EventTee)
    assert tap_events(a) is not tap and len(a.events.taps) == 2  # more taps: one tee
    await make_contacts(a, b)  # reads a.events to the end of the handshake
    async with asyncio.timeout(10):
        while True:
            e = await tap.get()
            if isinstance(e, cev.ContactConnected):
                break
    await b.send_contact_message("alice", "to both")
    got = await expect(a, cev.NewChatItem)
    assert got.item.text == "to both"
    async with asyncio.timeout(10):
        while not isinstance(e := await tap.get(), cev.NewChatItem):
            pass
    assert e.item.text == "to both"


def test_bad_relay_address(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["chat", "--headless", "-d", str(tmp_path / "x"), "-s", "relay.example.com"])
    assert code == 2
    assert "not a relay address" in capsys.readouterr().err


def test_relay_is_required(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as e:
        main(["chat", "--headless"])
    assert e.value.code == 2
    assert "RELAY_ADDRESS" in capsys.readouterr().err

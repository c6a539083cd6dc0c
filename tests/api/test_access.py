"""First start through the API (no --name), and the API token."""

from __future__ import annotations

import asyncio
import json
import os
import signal
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus

from parley.api.server import bind_problem, serve_api
from parley.chat.controller import ChatController
from parley.cli import build_parser, main
from parley.cli.chat_cmd import API_PREFIX, NO_USER_LINE, chat_main
from parley.relay.server import RelayServer
from parley.testing.waiting import wait_for_condition
from tests.api.conftest import Serve, WsBot
from tests.chat.conftest import chat_config


@pytest.fixture
async def bare_chat(tmp_path: Path, relay: RelayServer) -> AsyncIterator[ChatController]:
    chat = await ChatController.open(chat_config(tmp_path / "bare", [str(relay.address)]))
    yield chat
    await chat.close()


async def test_headless_ws_without_name_serves_and_api_creates_the_user(
    relay: RelayServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    args = build_parser().parse_args(
        ["chat", "--headless", "--ws", "0", "-d", str(tmp_path / "bot"), "-s", str(relay.address)]
    )
    task = asyncio.create_task(chat_main(args))
    out: list[str] = []

    def printed(text: str) -> bool:
        out.extend(capsys.readouterr().out.splitlines())
        return any(text in line for line in out)

    await wait_for_condition(lambda: printed(API_PREFIX), 20, message="no API line")
    assert NO_USER_LINE in out
    url = next(line for line in out if line.startswith(API_PREFIX))[len(API_PREFIX) :]
    async with connect(url) as ws:
        bot = WsBot(ws)
        error = (await bot.cmd("/u"))["chatError"]
        assert error["errorType"] == {"type": "noActiveUser"}
        # the current API's form (NewUser with its newer flags)
        new_user = {
            "profile": {"displayName": "squarebot", "fullName": ""},
            "pastTimestamp": False,
            "userChatRelay": False,
            "clientService": False,
        }
        created = await bot.ok(f"/_create user {json.dumps(new_user)}", "activeUser")
        assert created["user"]["profile"]["displayName"] == "squarebot"
        await bot.ok("/_start", "chatRunning")  # the CLI started it
        assert (await bot.ok("/user", "activeUser"))["user"]["userId"] == created["user"]["userId"]
    os.kill(os.getpid(), signal.SIGTERM)
    async with asyncio.timeout(20):
        assert await task == 0


async def test_the_npm_form_of_create_user(bare_chat: ChatController, serve: Serve) -> None:
    server = await serve(bare_chat)
    async with connect(f"ws://127.0.0.1:{server.port}") as ws:
        bot = WsBot(ws)
        profile = {"profile": {"displayName": "old", "fullName": "Old Style"}}
        created = await bot.ok(f"/_create user {json.dumps(profile)}", "activeUser")
        assert created["user"]["profile"]["fullName"] == "Old Style"


async def test_a_token_is_required_when_set(bare_chat: ChatController, serve: Serve) -> None:
    server = await serve(bare_chat, token="s3cret")
    base = f"ws://127.0.0.1:{server.port}"
    for url, headers in (
        (base, None),
        (f"{base}/?token=wrong", None),
        (base, {"Authorization": "Bearer wrong"}),
        (base, {"Authorization": "Basic s3cret"}),
    ):
        with pytest.raises(InvalidStatus) as refused:
            async with connect(url, additional_headers=headers):
                pass
        assert refused.value.response.status_code == 401
    for url, headers in (
        (f"{base}/?token=s3cret", None),
        (base, {"Authorization": "Bearer s3cret"}),
    ):
        async with connect(url, additional_headers=headers) as ws:
            resp = await WsBot(ws).cmd("/u")
            assert resp["chatError"]["errorType"] == {"type": "noActiveUser"}


async def test_no_token_on_a_public_address_is_refused(bare_chat: ChatController) -> None:
    assert bind_problem("127.0.0.1", None) is None
    assert bind_problem("::1", None) is None
    assert bind_problem("localhost", None) is None
    assert bind_problem("0.0.0.0", "t") is None
    for host in ("0.0.0.0", "::", "192.168.1.5", "example.org"):
        problem = bind_problem(host, None)
        assert problem is not None and "not a loopback address" in problem
    with pytest.raises(ValueError, match="not a loopback address"):
        await serve_api(bare_chat, "0.0.0.0", 0)
    with pytest.raises(ValueError, match="empty"):
        await serve_api(bare_chat, "127.0.0.1", 0, token="")


def test_cli_refuses_a_public_address_without_token(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("PARLEY_API_TOKEN", raising=False)
    relay = "parley://" + "A" * 43 + "@127.0.0.1:5223"
    code = main(
        ["chat", "--headless", "--ws", "5225", "--ws-host", "0.0.0.0",
         "-d", str(tmp_path / "x"), "-s", relay]
    )  # fmt: skip
    assert code == 2
    err = capsys.readouterr().err
    assert "--ws-host 0.0.0.0 is not a loopback address" in err and "--ws-token" in err
    assert not (tmp_path / "x_chat.db").exists()

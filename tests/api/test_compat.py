"""parley's bot API driven by the official simplex-chat npm client (tests/api/node)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from parley.api import commands as c
from parley.chat.controller import ChatController
from parley.relay.server import RelayServer
from tests.api.conftest import Serve, run_node
from tests.chat.conftest import chat_config


@pytest.fixture
async def bare_chats(tmp_path: Path, relay: RelayServer) -> AsyncIterator[list[ChatController]]:
    """Two chats with no user yet, not started: the npm client does both."""
    chats = [
        await ChatController.open(chat_config(tmp_path / name, [str(relay.address)]))
        for name in ("alice", "bob")
    ]
    yield chats
    for chat in chats:
        await chat.close()


async def test_npm_client_drives_two_chats(
    node_client: Path, bare_chats: list[ChatController], serve: Serve
) -> None:
    a, b = [await serve(chat) for chat in bare_chats]
    code, out, err = await run_node(
        node_client / "compat.mjs", f"ws://127.0.0.1:{a.port}", f"ws://127.0.0.1:{b.port}"
    )
    assert code == 0, f"compat.mjs failed ({code}):\n{out}\n{err}"
    assert "all checks passed" in out


async def test_every_command_string_of_the_npm_client_is_understood(node_client: Path) -> None:
    """The package's own cmdString output: each is parsed to a command (maybe one parley
    refuses with a reason), never "unknown command" or a parse error."""
    code, out, err = await run_node(node_client / "cmdstrings.mjs")
    assert code == 0, err
    pairs = json.loads(out)
    assert len(pairs) > 40
    refused = {"listUsers", "apiSetActiveUser", "setIncognito"}
    refused |= {"apiClearChat"}
    refused |= {"apiSetContactAlias", "receiveFile"}
    for pair in pairs:
        parsed = c.parse_command(pair["cmd"])
        assert not isinstance(parsed, c.ParseError), (pair, parsed)
        if pair["type"] in refused:
            assert isinstance(parsed, c.Unsupported), (pair, parsed)
        elif pair["type"] == "apiStopChat":  # refused over WebSocket by the handler
            assert isinstance(parsed, c.StopChat), (pair, parsed)
        else:
            assert not isinstance(parsed, c.Unsupported), (pair, parsed)


async def _features(tmp_path: Path, relay: RelayServer) -> tuple[bool, bool]:
    """Whether the chat has contact addresses, and group links."""
    chat = await ChatController.open(chat_config(tmp_path / "probe", [str(relay.address)]))
    try:
        await chat.create_user("probe")
        await chat.start()
        try:
            await chat.create_address(10)
        except NotImplementedError:
            return False, False
        await chat.create_group("g")
        try:
            await chat.create_group_link("g", "member", 10)
        except NotImplementedError:
            return True, False
        return True, True
    finally:
        await chat.close()


async def test_npm_client_drives_addresses_and_group_links(
    node_client: Path, tmp_path: Path, relay: RelayServer, serve: Serve
) -> None:
    """A bot with an address (auto-accept with a welcome, then requests accepted and
    rejected) and a group link someone joins, through the npm client's own calls."""
    addresses, group_links = await _features(tmp_path, relay)
    if not addresses:
        pytest.skip("the chat has no contact addresses yet")
    chats = [
        await ChatController.open(chat_config(tmp_path / name, [str(relay.address)]))
        for name in ("bot", "bob", "carol", "dave")
    ]
    try:
        servers = [await serve(chat) for chat in chats]
        code, out, err = await run_node(
            node_client / "addresses.mjs",
            *(f"ws://127.0.0.1:{s.port}" for s in servers),
            *(["group-links"] if group_links else []),
            timeout=100,
        )
        assert code == 0, f"addresses.mjs failed ({code}):\n{out}\n{err}"
        assert "all checks passed" in out
    finally:
        for chat in chats:
            await chat.close()

"""`parley chat --encrypt-db`: existing plaintext databases encrypted in place, then opened
only with the passphrase (a file or $PARLEY_DB_KEY)."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from parley.chat import ChatConfig, ChatController
from parley.cli import build_parser
from parley.cli.chat_cmd import database_files, open_chat
from parley.relay.server import RelayServer
from parley.store import DatabaseKeyError

pytest.importorskip("sqlcipher3")


def args(prefix: Path, relay: RelayServer, *extra: str) -> argparse.Namespace:
    return build_parser().parse_args(
        ["chat", "--headless", "-d", str(prefix), "-s", str(relay.address), *extra]
    )


async def test_encrypt_existing_databases_then_open_with_the_key(
    relay: RelayServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("PARLEY_DB_KEY", raising=False)
    prefix = tmp_path / "zed"
    chat = await ChatController.open(ChatConfig(db_prefix=prefix, relays=[str(relay.address)]))
    await chat.create_user("zed")
    await chat.close()
    assert all(b"zed" in p.read_bytes() for p in database_files(prefix)[:1])

    monkeypatch.setenv("PARLEY_DB_KEY", "a long passphrase")
    chat = await open_chat(args(prefix, relay, "--encrypt-db"), prefix)
    assert (await chat.active_user()) is not None
    await chat.close()
    for path in database_files(prefix):
        assert not path.read_bytes().startswith(b"SQLite format 3")

    monkeypatch.delenv("PARLEY_DB_KEY")
    with pytest.raises(DatabaseKeyError):
        await open_chat(args(prefix, relay), prefix)
    key_file = tmp_path / "key"
    key_file.write_text("a long passphrase\n")
    with_file = args(prefix, relay, "--db-key-file", str(key_file))
    chat = await open_chat(with_file, prefix)
    try:
        user = await chat.active_user()
        assert user is not None and user.display_name == "zed"
    finally:
        await chat.close()
    key_file.write_text("wrong")
    with pytest.raises(DatabaseKeyError, match="wrong key"):
        await open_chat(with_file, prefix)

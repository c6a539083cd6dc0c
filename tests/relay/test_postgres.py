"""The relay on PostgreSQL: a throwaway cluster started for these tests (skipped where the
machine has no PostgreSQL server binaries)."""

from __future__ import annotations

import asyncio
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from parley.protocol.relay_auth import AuthKey
from parley.relay.client import MessageReceived, RelayClient
from parley.relay.server import RelayServer
from tests.relay.conftest import FAST, next_event, relay_config


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def postgres() -> Iterator[str]:
    """A PostgreSQL cluster on a unix socket, owned by the `postgres` system user."""
    pytest.importorskip("asyncpg")
    if shutil.which("initdb") is None or shutil.which("pg_ctl") is None:
        pytest.skip("no PostgreSQL server binaries (initdb, pg_ctl) on this machine")
    try:
        pg = pwd.getpwnam("postgres")
    except KeyError:
        pytest.skip("no postgres system user")
    if os.geteuid() != 0:
        pytest.skip("starting a throwaway cluster as the postgres user needs root")
    base = Path(tempfile.mkdtemp(prefix="parley-pg-"))
    base.chmod(0o755)
    data, sock = base / "data", base / "sock"
    sock.mkdir()
    for d in (base, sock):
        os.chown(d, pg.pw_uid, pg.pw_gid)
    port = _free_port()

    def as_postgres(*cmd: str) -> None:
        subprocess.run(
            ["runuser", "-u", "postgres", "--", *cmd], check=True, capture_output=True, timeout=120
        )

    as_postgres("initdb", "-D", str(data), "-A", "trust", "-U", "postgres")
    as_postgres(
        "pg_ctl",
        "-D",
        str(data),
        "-w",
        "-l",
        str(base / "log"),
        "-o",
        f"-p {port} -k {sock} -c listen_addresses=''",
        "start",
    )
    try:
        yield f"postgresql://postgres@/postgres?host={sock}&port={port}"
    finally:
        as_postgres("pg_ctl", "-D", str(data), "-m", "immediate", "stop")
        shutil.rmtree(base, ignore_errors=True)


async def test_queues_and_messages_survive_a_restart_on_postgres(
    postgres: str, tmp_path: Path
) -> None:
    config = relay_config(tmp_path, database_url=postgres)
    relay = RelayServer(config)
    await relay.start()
    c = RelayClient(relay.address, settings=FAST)
    rkey, skey = AuthKey.generate(), AuthKey.generate()
    ids = await c.create_queue(rkey)
    await c.secure(ids.recipient_id, rkey, skey.public)
    await asyncio.gather(*(c.send(ids.sender_id, skey, b"%02d" % i) for i in range(20)))
    await c.close()
    port = relay.port
    await relay.stop()

    relay = RelayServer(relay_config(tmp_path, database_url=postgres, port=port))
    await relay.start()
    try:
        assert not (tmp_path / "relay.db").exists()  # nothing went to SQLite
        c = RelayClient(relay.address, settings=FAST)
        # no body is in memory after a restart: GET and the pushes read them from PostgreSQL
        assert relay.cache.bytes == 0
        first = await c.get(ids.recipient_id, rkey)
        assert first is not None and first.body == b"00"
        await c.subscribe(ids.recipient_id, rkey)
        got = []
        for _ in range(20):
            ev = await next_event(c, MessageReceived)
            got.append(ev.message.body)
            await c.ack(ids.recipient_id, rkey, ev.message.msg_id)
        assert got == [b"%02d" % i for i in range(20)]
        await c.delete(ids.recipient_id, rkey)
        await c.close()
    finally:
        await relay.stop()

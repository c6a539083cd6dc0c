"""An agent configured with a relay address that carries the relay's creation password."""

from __future__ import annotations

from pathlib import Path

from parley.agent import events as ev
from parley.relay.server import RelayServer
from tests.agent.conftest import MakeAgent, connect_pair, expect
from tests.relay.conftest import relay_config


async def test_connections_on_a_relay_with_a_password(
    make_agent: MakeAgent, tmp_path: Path
) -> None:
    server = RelayServer(relay_config(tmp_path / "relay", create_password="s3cret"))
    await server.start()
    try:
        given = server.address.with_password()
        a = await make_agent("a", [given])
        b = await make_agent("b", [given])
        a_conn, b_conn = await connect_pair(a, b)
        await a.send_message(a_conn, b"hello")
        _, msg = await expect(b, ev.Msg, b_conn)
        assert msg.body == b"hello"
        # the link a joiner gets names the relay without its password
        assert a.config.relays == [str(server.address)]
        c_conn = await a.create_connection_async("c2")
        _, inv = await expect(a, ev.Inv, c_conn)
        assert "s3cret" not in inv.link

        stranger = await make_agent("c", [str(server.address)])  # no password: cannot
        await stranger.create_connection_async("c3")
        _, err = await expect(stranger, ev.Err)
        assert err.code == "AUTH", err
    finally:
        await server.stop()

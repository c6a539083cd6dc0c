"""`RelayServer.stop()` in embedded use: nothing it accepted outlives it, connections still
in their TLS handshake included."""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from pathlib import Path

from parley.relay.identity import client_context
from parley.relay.server import RelayServer
from tests.relay.conftest import relay_config
from tests.relay.raw import RawConnection


class HalfHandshake:
    """A TCP connection that sends a TLS ClientHello, reads the relay's first answer, and
    then says nothing more: the relay is in the middle of the handshake."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer

    @classmethod
    async def open(cls, relay: RelayServer, *, hello: bool = True) -> HalfHandshake:
        address = relay.address
        reader, writer = await asyncio.open_connection(address.host, address.port)
        if hello:
            incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
            tls = client_context().wrap_bio(incoming, outgoing, server_hostname=address.host)
            with contextlib.suppress(ssl.SSLWantReadError):
                tls.do_handshake()
            writer.write(outgoing.read())  # the ClientHello
            await writer.drain()
            async with asyncio.timeout(5):
                assert await reader.read(65536), "the relay did not answer the ClientHello"
        return cls(reader, writer)

    async def closed_by_peer(self, timeout: float) -> bool:
        try:
            async with asyncio.timeout(timeout):
                while await self.reader.read(65536):
                    pass
            return True
        except TimeoutError:  # (an OSError too: caught first)
            return False
        except (ConnectionError, OSError):
            return True

    def close(self) -> None:
        self.writer.transport.abort()


async def test_stop_aborts_connections_in_their_tls_handshake(tmp_path: Path) -> None:
    # a handshake timeout far longer than the test: only stop() can end these connections
    relay = RelayServer(relay_config(tmp_path, handshake_timeout=120.0))
    await relay.start()
    half = [await HalfHandshake.open(relay) for _ in range(3)]
    silent = await HalfHandshake.open(relay, hello=False)  # TCP only, no ClientHello yet
    session = await RawConnection.open(relay.address)  # past the handshake, for comparison
    try:
        async with asyncio.timeout(5):
            await relay.stop()
        for conn in [*half, silent]:
            assert await conn.closed_by_peer(5), "a connection in its TLS handshake survived"
        assert await session.closed_by_peer(5)
        assert (
            not relay.connections.handshaking
            and not relay.connections.sessions
            and not relay._tasks
        )
    finally:
        for conn in [*half, silent]:
            conn.close()
        session.close()

"""A bare protocol connection for tests that must send what a well-behaved client never would."""

from __future__ import annotations

import asyncio

from parley.protocol import relay as p
from parley.protocol.address import RelayAddress
from parley.protocol.relay_auth import AuthKey, authenticator, derive_mac_key
from parley.relay.identity import client_context


class RawConnection:
    def __init__(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, hello: p.ServerHello
    ) -> None:
        self.reader = reader
        self.writer = writer
        self.hello = hello
        self.corr = 0

    @classmethod
    async def open(
        cls, address: RelayAddress, *, client_hello: bool = True, source: str | None = None
    ) -> RawConnection:
        """`source`: the local address to connect from (127.0.0.2, say)."""
        reader, writer = await asyncio.open_connection(
            address.host,
            address.port,
            ssl=client_context(),
            limit=p.BLOCK_SIZE * 4,
            local_addr=(source, 0) if source is not None else None,
        )
        hello = p.decode_server_hello(await reader.readexactly(p.BLOCK_SIZE))
        if client_hello:
            writer.write(p.encode_client_hello(p.ClientHello(1)))
        return cls(reader, writer, hello)

    def transmission(
        self,
        cmd: p.Command | bytes,
        entity: bytes = b"",
        key: AuthKey | None = None,
        *,
        session_id: bytes | None = None,
        corr_id: bytes | None = None,
    ) -> bytes:
        self.corr += 1
        corr = corr_id if corr_id is not None else self.corr.to_bytes(8, "big")
        body = cmd if isinstance(cmd, bytes) else p.encode_message(cmd)
        signed = p.signed_part(corr, entity, body)
        auth = b""
        if key is not None:
            sid = session_id or self.hello.session_id
            mac_key = derive_mac_key(key.private, self.hello.session_key, sid)
            auth = authenticator(mac_key, sid, signed)
        return p.encode_transmission(auth, signed)

    async def send_raw(self, block: bytes) -> None:
        self.writer.write(block)
        await self.writer.drain()

    async def send(self, *transmissions: bytes) -> None:
        for block in p.pack_blocks(transmissions):
            await self.send_raw(block)

    async def recv(self, timeout: float = 5.0) -> list[tuple[p.Transmission, p.Response]]:
        async with asyncio.timeout(timeout):
            block = await self.reader.readexactly(p.BLOCK_SIZE)
        out = []
        for raw in p.decode_block(block):
            t = p.decode_transmission(raw)
            out.append((t, p.decode_response(t.command)))
        return out

    async def request(
        self, cmd: p.Command | bytes, entity: bytes = b"", key: AuthKey | None = None, **kw: bytes
    ) -> p.Response:
        t = self.transmission(cmd, entity, key, **kw)
        corr = p.decode_transmission(t).corr_id
        await self.send(t)
        while True:
            for got, resp in await self.recv():
                if got.corr_id == corr:
                    return resp

    async def closed_by_peer(self, timeout: float = 5.0) -> bool:
        """True if the relay closes the connection (EOF or reset) within the timeout."""
        try:
            async with asyncio.timeout(timeout):
                while True:
                    if not await self.reader.read(65536):
                        return True
        except TimeoutError:  # (an OSError too: caught first)
            return False
        except (ConnectionError, OSError):
            return True

    def close(self) -> None:
        self.writer.transport.abort()

"""One client connection to the relay: its TLS stream, session keys, answers, output
batching."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import time

from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from parley.protocol import relay as p
from parley.protocol.relay_auth import derive_mac_key, verify
from parley.relay.config import RelayConfig
from parley.relay.state import RelayStats

log = logging.getLogger(__name__)


class Session:
    """One client connection: its TLS stream, session keys, output batching."""

    def __init__(
        self,
        config: RelayConfig,
        stats: RelayStats,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
    ) -> None:
        self.config = config
        self.stats = stats
        self.reader = reader
        self.writer = writer
        self.session_id = secrets.token_bytes(32)
        self.session_key = X25519PrivateKey.generate()
        self.mac_keys: dict[bytes, bytes] = {}
        self.subscriptions: set[bytes] = set()
        self.last_active = time.monotonic()
        self.last_command = self.last_active  # the last block with a command other than PING
        self.auth_failures = 0
        self.closing = False  # closed once the current block is handled (auth failures)
        self.closed = False
        self._out: list[bytes] = []
        self._out_bytes = 0
        self._out_ready = asyncio.Event()

    @property
    def session_public(self) -> bytes:
        return self.session_key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)

    def authorized(self, key: bytes | None, t: p.Transmission) -> bool:
        if key is None or len(t.auth) != p.AUTH_SIZE:
            self.auth_failed()
            return False
        mac_key = self.mac_keys.get(key)
        if mac_key is not None:
            if verify(mac_key, self.session_id, t.signed, t.auth):
                return True
            self.auth_failed()
            return False
        # an X25519 and an HKDF (about 50 µs): every failure counts towards
        # `max_auth_failures`, so one connection cannot make the relay do many for nothing
        try:
            mac_key = derive_mac_key(self.session_key, key, self.session_id)
        except ValueError:
            self.auth_failed()
            return False
        if not verify(mac_key, self.session_id, t.signed, t.auth):
            self.auth_failed()
            return False
        # cached only once proven, so garbage authenticators cannot grow the cache
        self.mac_keys[key] = mac_key
        return True

    def auth_failed(self) -> None:
        self.auth_failures += 1
        self.stats.auth_failures += 1
        if self.auth_failures >= self.config.max_auth_failures:
            self.closing = True

    def answer(self, counter: str, corr_id: bytes, entity_id: bytes, resp: p.Response) -> None:
        """A successful answer, counted under `counter` ("SEND:OK", ...)."""
        commands = self.stats.commands
        commands[counter] = commands.get(counter, 0) + 1
        self.send(corr_id, entity_id, resp)

    def send(self, corr_id: bytes, entity_id: bytes, resp: p.Response) -> None:
        if self.closed:
            return
        t = p.encode_response(corr_id, entity_id, resp)
        self._out.append(t)
        self._out_bytes += len(t)
        if self._out_bytes > self.config.max_pending_output:
            log.warning("closing a client that does not read its responses")
            self.stats.count_closed("slow_reader")
            self.close()
            return
        self._out_ready.set()

    def error(self, kind: str, corr_id: bytes, entity_id: bytes, code: p.ErrorCode) -> None:
        """An ERR answer to a `kind` command ("SEND", ...; "INVALID" if unparsed)."""
        stats = self.stats
        stats.errors[code.value] = stats.errors.get(code.value, 0) + 1
        counter = f"{kind}:{code.value}"
        stats.commands[counter] = stats.commands.get(counter, 0) + 1
        self.send(corr_id, entity_id, p.Err(code))

    def repeated_confirmation(self, corr_id: bytes, entity_id: bytes) -> None:
        """The same answer as `error(CMD_NO_AUTH)`, counted apart from the errors."""
        self.stats.repeated_confirmations += 1
        commands = self.stats.commands
        commands["SEND:REPEATED"] = commands.get("SEND:REPEATED", 0) + 1
        self.send(corr_id, entity_id, p.Err(p.ErrorCode.CMD_NO_AUTH))

    async def flush_and_close(self, error: p.Err | None) -> None:
        """Send what is queued (and a final error, for fatal protocol errors), then close."""
        out, self._out = self._out, []
        if error is not None:
            errors = self.stats.errors
            errors[error.code.value] = errors.get(error.code.value, 0) + 1
            out.append(p.encode_transmission(b"", p.signed_part(b"", b"", p.encode_message(error))))
        with contextlib.suppress(ConnectionError, OSError, TimeoutError):
            self.writer.writelines(p.pack_blocks(out))
            async with asyncio.timeout(2):
                await self.writer.drain()
        self.close()

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            self._out_ready.set()
            self.writer.transport.abort()

    async def write_loop(self) -> None:
        try:
            while not self.closed:
                await self._out_ready.wait()
                self._out_ready.clear()
                if self.closed:
                    break
                out, self._out, self._out_bytes = self._out, [], 0
                if out:
                    self.writer.writelines(p.pack_blocks(out))
                    await self.writer.drain()
        except (ConnectionError, OSError):
            pass
        finally:
            self.close()

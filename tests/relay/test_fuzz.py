"""Fuzzing a live relay with well-framed blocks of real, authenticated commands, mutated inside.

Each fuzzing session is a real TLS connection with its own session keys. The fuzzer keeps
queues of its own (created with NEW, secured with KEY), so its commands carry authenticators
that verify: a mutated command is signed after the mutation and gets past the authenticator
check to the command's handler. Every command (NEW, SUB, KEY, SEND, ACK, GET, OFF, DEL,
PING) and the handshake are tried. The relay must never crash, never answer anything that
does not parse, never log a warning, and a well-behaved client keeps its round trips going
all along.

`PARLEY_FUZZ_SEED=N` repeats a run; the seed is printed when a run fails.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import random
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from parley.protocol import relay as p
from parley.protocol.relay_auth import AuthKey, authenticator, derive_mac_key
from parley.relay.client import MessageReceived, RelayClient
from parley.relay.server import RelayServer
from tests.relay.conftest import FAST, next_event, relay_config
from tests.relay.raw import RawConnection

PASSWORD = b"fuzz password"
KINDS = ("NEW", "SUB", "KEY", "SEND", "ACK", "GET", "OFF", "DEL", "PING")
WEIGHTS = (8, 12, 8, 24, 12, 10, 2, 2, 6)
MAX_QUEUES = 48  # queues the fuzzer keeps using (it may create more)


@dataclass
class FuzzQueue:
    rid: bytes
    sid: bytes
    rkey: AuthKey
    skey: AuthKey | None = None  # set once a KEY was answered OK
    msg_ids: list[bytes] = field(default_factory=list)  # seen in MSG answers


class Fuzzer:
    def __init__(self, relay: RelayServer, rng: random.Random) -> None:
        self.relay = relay
        self.rng = rng
        self.keys = [AuthKey.generate() for _ in range(16)]  # a small pool: derivations cached
        self.queues: list[FuzzQueue] = []
        self.by_rid: dict[bytes, FuzzQueue] = {}
        self.blocks = 0
        self.sessions = 0
        self.handshakes = 0
        self.closed_by_relay = Counter[str]()
        self.answers = Counter[str]()
        self.bad_blocks_sent = 0

    # ------------------------------------------------------------ one session

    async def session(self, budget: int) -> int:
        """Fuzz one connection with up to `budget` blocks; returns the blocks sent."""
        conn = await RawConnection.open(self.relay.address)
        self.sessions += 1
        hello = conn.hello
        mac_keys: dict[bytes, bytes] = {}
        pending: dict[bytes, tuple[str, FuzzQueue | None, AuthKey | None]] = {}
        corr = 0
        fatal: list[str] = []
        ended = asyncio.Event()

        def sign(key: AuthKey, signed: bytes) -> bytes:
            mk = mac_keys.get(key.public)
            if mk is None:
                mk = derive_mac_key(key.private, hello.session_key, hello.session_id)
                mac_keys[key.public] = mk
            return authenticator(mk, hello.session_id, signed)

        async def read() -> None:
            with contextlib.suppress(asyncio.IncompleteReadError, ConnectionError, OSError):
                while True:
                    block = await conn.reader.readexactly(p.BLOCK_SIZE)
                    for raw in p.decode_block(block):  # the relay's blocks always parse
                        t = p.decode_transmission(raw)
                        resp = p.decode_response(t.command)
                        assert t.auth == b""
                        if t.corr_id == b"end":
                            ended.set()
                        self.on_response(t, resp, pending, fatal)

        reader = asyncio.create_task(read())
        sent = 0
        try:
            while sent < budget and not reader.done():
                ts: list[bytes] = []
                used = 0
                for _ in range(self.rng.randint(1, 12)):
                    corr += 1
                    t = self.transmission(corr.to_bytes(8, "big"), sign, pending)
                    if used + 2 + len(t) > p.BLOCK_CAPACITY or len(ts) == p.MAX_BATCH:
                        break
                    ts.append(t)
                    used += 2 + len(t)
                if not ts:
                    continue
                block = p.encode_block(ts)
                if self.rng.random() < 0.003:  # now and then, broken framing
                    block = self.break_block(block)
                    self.bad_blocks_sent += 1
                try:
                    conn.writer.write(block)
                    await conn.writer.drain()
                except (ConnectionError, OSError):
                    break
                sent += 1
                self.blocks += 1
        finally:
            # a last PING: its PONG means every answer before it has arrived
            with contextlib.suppress(ConnectionError, OSError):
                conn.writer.write(p.encode_block([p.encode_transmission(b"", b"\x03end\x00PING")]))
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(10):
                    await asyncio.wait(
                        [reader, asyncio.create_task(ended.wait())],
                        return_when=asyncio.FIRST_COMPLETED,
                    )
            reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await reader
            conn.close()
        assert not fatal, fatal
        return sent

    def on_response(
        self,
        t: p.Transmission,
        resp: p.Response,
        pending: dict[bytes, tuple[str, FuzzQueue | None, AuthKey | None]],
        fatal: list[str],
    ) -> None:
        if isinstance(resp, p.Err):
            self.answers[resp.code.value] += 1
            if resp.code in (p.ErrorCode.INTERNAL, p.ErrorCode.UNAVAILABLE):
                fatal.append(f"unexpected {resp.code} for {t.corr_id.hex()}")
        else:
            self.answers[type(resp).__name__] += 1
        if not t.corr_id:  # MSG or END pushed
            if isinstance(resp, p.Msg) and (q := self.by_rid.get(t.entity_id)) is not None:
                q.msg_ids = [*q.msg_ids[-3:], resp.msg_id]
            return
        what = pending.pop(t.corr_id, None)
        if what is None:
            return
        kind, q, key = what
        if kind == "NEW" and isinstance(resp, p.Ids) and key is not None:
            fq = FuzzQueue(resp.recipient_id, resp.sender_id, key)
            if len(self.queues) < MAX_QUEUES:
                self.queues.append(fq)
            else:
                old = self.queues[self.rng.randrange(len(self.queues))]
                self.by_rid.pop(old.rid, None)
                self.queues[self.queues.index(old)] = fq
            self.by_rid[fq.rid] = fq
        elif kind == "KEY" and resp == p.OK and q is not None and key is not None:
            q.skey = key
        elif kind == "GET" and isinstance(resp, p.Msg) and q is not None:
            q.msg_ids = [*q.msg_ids[-3:], resp.msg_id]
        elif kind == "DEL" and resp == p.OK and q is not None and q in self.queues:
            self.queues.remove(q)
            self.by_rid.pop(q.rid, None)

    # ------------------------------------------------------------ transmissions

    def transmission(
        self,
        corr: bytes,
        sign: Callable[[AuthKey, bytes], bytes],
        pending: dict[bytes, tuple[str, FuzzQueue | None, AuthKey | None]],
    ) -> bytes:
        rng = self.rng
        kind = rng.choices(KINDS, WEIGHTS)[0]
        q = rng.choice(self.queues) if self.queues else None
        key: AuthKey | None = None
        entity = b""
        cmd: p.Command
        remembered: AuthKey | None = None
        if kind == "NEW" or q is None:
            kind = "NEW"
            key = rng.choice(self.keys)
            password = PASSWORD if rng.random() < 0.95 else rng.choice([b"", b"wrong"])
            cmd = p.New(key.public, password)
            remembered = key
        elif kind == "PING":
            cmd = p.PING
        elif kind == "SEND":
            entity = q.sid
            key = q.skey
            size = rng.choice([0, 1, 16, 256, 1000, rng.randrange(4000)])
            cmd = p.Send(rng.randrange(4), rng.randbytes(size))
        else:
            entity = q.rid
            key = q.rkey
            if kind == "SUB":
                cmd = p.SUB
            elif kind == "KEY":
                remembered = q.skey or rng.choice(self.keys)
                cmd = p.Key(remembered.public)
            elif kind == "ACK":
                known = q.msg_ids[-1] if q.msg_ids else rng.randbytes(p.QUEUE_ID_SIZE)
                cmd = p.Ack(known if rng.random() < 0.8 else rng.randbytes(p.QUEUE_ID_SIZE))
            elif kind == "GET":
                cmd = p.GET
            elif kind == "OFF":
                cmd = p.OFF
            else:
                cmd = p.DEL
        body = p.encode_message(cmd)
        # a wrong key, a wrong queue, no key: a few percent each
        roll = rng.random()
        if roll < 0.01:
            key = rng.choice(self.keys)
        elif roll < 0.02:
            key = None
        elif roll < 0.03:
            entity = rng.choice([b"", rng.randbytes(24), rng.randbytes(rng.randrange(40))])
        # mutations inside the transmission, signed afterwards (so they reach the handlers)
        if rng.random() < 0.3:
            body = self.mutate(body)
        if rng.random() < 0.05:
            corr = self.mutate(corr)[:40]
        signed = self.signed(corr, entity[:255], body)
        t = p.encode_transmission(sign(key, signed) if key is not None else b"", signed)
        if rng.random() < 0.02:  # and a few mutated after signing
            t = self.mutate(t)
        if len(t) > p.MAX_TRANSMISSION:
            t = t[: p.MAX_TRANSMISSION]
        pending[corr] = (kind, q, remembered)
        return t

    @staticmethod
    def signed(corr: bytes, entity: bytes, body: bytes) -> bytes:
        return bytes([len(corr)]) + corr + bytes([len(entity)]) + entity + body

    def mutate(self, data: bytes) -> bytes:
        rng = self.rng
        b = bytearray(data)
        for _ in range(rng.randint(1, 4)):
            op = rng.randrange(6)
            pos = rng.randrange(len(b) + 1)
            if op == 0 and b:  # flip a byte
                b[min(pos, len(b) - 1)] = rng.randrange(256)
            elif op == 1:  # cut
                del b[pos:]
            elif op == 2:  # insert
                b[pos:pos] = rng.randbytes(rng.randint(1, 8))
            elif op == 3 and b:  # a length byte that lies
                b[min(pos, len(b) - 1)] = rng.choice([0, 1, 31, 32, 33, 255])
            elif op == 4:  # drop a few bytes
                del b[pos : pos + rng.randint(1, 4)]
            else:  # repeat a slice
                b[pos:pos] = b[pos : pos + rng.randint(1, 16)]
        return bytes(b)

    def break_block(self, block: bytes) -> bytes:
        b = bytearray(block)
        choice = self.rng.randrange(3)
        if choice == 0:
            b[0:2] = (0).to_bytes(2, "big")  # empty content
        elif choice == 1:
            b[2] = 0  # no transmissions
        else:
            b[0:2] = (p.BLOCK_SIZE).to_bytes(2, "big")  # content longer than the block
        return bytes(b)

    # ------------------------------------------------------------ the handshake

    async def handshake(self) -> None:
        """A connection whose client hello is mutated, cut short, or of another version."""
        rng = self.rng
        self.handshakes += 1
        conn = await RawConnection.open(self.relay.address, client_hello=False)
        try:
            hello = bytearray(p.encode_client_hello(p.ClientHello(rng.choice([0, 1, 2, 65535]))))
            for _ in range(rng.randint(0, 3)):
                hello[rng.randrange(0, 16)] = rng.randrange(256)
            if rng.random() < 0.2:
                hello = hello[: rng.randrange(len(hello))]
            # two PING blocks after it: the relay has a full hello and a full block, and
            # answers PONG, or an error, or closes: it never waits for more
            ping = p.encode_block([p.encode_transmission(b"", b"\x02hs\x00PING")])
            with contextlib.suppress(ConnectionError, OSError):
                conn.writer.writelines([bytes(hello), ping, ping])
                await conn.writer.drain()
            with contextlib.suppress(asyncio.IncompleteReadError, ConnectionError, OSError):
                while True:
                    answers = await conn.recv(10)
                    for _, resp in answers:
                        self.answers[f"handshake {type(resp).__name__}"] += 1
                    if any(resp == p.PONG for _, resp in answers):
                        break
        finally:
            conn.close()


async def fuzz(tmp_path: Path, seed: int, blocks: int, caplog: pytest.LogCaptureFixture) -> None:
    rng = random.Random(seed)
    config = relay_config(tmp_path, create_password=PASSWORD.decode(), quota=8)
    caplog.set_level(logging.INFO, logger="parley.relay")
    async with RelayServer(config) as relay:
        fz = Fuzzer(relay, rng)
        # a well-behaved client: its queue made with the password (RawConnection), then the
        # usual client for SEND, MSG and ACK
        key = AuthKey.generate()
        setup = await RawConnection.open(relay.address)
        ids = await setup.request(p.New(key.public, PASSWORD), key=key)
        assert isinstance(ids, p.Ids)
        setup.close()
        client = RelayClient(relay.address, settings=FAST)
        await client.subscribe(ids.recipient_id, key)
        stop = asyncio.Event()
        round_trips = 0

        async def well_behaved() -> None:
            nonlocal round_trips
            while not stop.is_set():
                body = b"round trip %d" % round_trips
                await client.send(ids.sender_id, None, body)
                ev = await next_event(client, MessageReceived, 10)
                assert ev.message.body == body
                await client.ack(ids.recipient_id, key, ev.message.msg_id)
                round_trips += 1

        async def fuzzing() -> None:
            try:
                while fz.blocks < blocks:
                    if rng.random() < 0.5:  # a mutated handshake between sessions
                        await fz.handshake()
                        fz.blocks += 1
                        continue
                    await fz.session(min(blocks - fz.blocks, rng.randint(20, 400)))
            finally:
                stop.set()

        try:
            await asyncio.gather(fuzzing(), well_behaved())
            assert relay.connections.listeners, "the relay stopped listening"
            # the well-behaved client kept going all along, and still does
            assert round_trips >= 10, round_trips
            await one_round_trip(client, ids, key)
            # every command got past its checks and was carried out, many times
            commands = relay.stats.commands
            for kind in KINDS:
                assert commands.get(f"{kind}:OK", 0) > 0, (kind, commands)
            failed_kinds = {k.split(":")[0] for k in commands if not k.endswith(":OK")}
            assert {"NEW", "SUB", "KEY", "SEND", "ACK", "GET", "INVALID"} <= failed_kinds
            assert "INTERNAL" not in relay.stats.errors
            assert fz.handshakes > 0 and fz.bad_blocks_sent > 0
            bad = [
                r
                for r in caplog.records
                if r.levelno >= logging.WARNING and r.name.startswith("parley.relay")
            ]
            assert not bad, [r.getMessage() for r in bad]
            print(
                f"fuzz seed {seed}: {fz.blocks} blocks, {fz.sessions} sessions, "
                f"{fz.handshakes} handshakes, {round_trips} round trips meanwhile, "
                f"answers {dict(fz.answers.most_common(12))}, closed "
                f"{relay.stats.connections_closed}"
            )
        except BaseException:
            print(f"fuzz seed: {seed} (PARLEY_FUZZ_SEED={seed} repeats this run)")
            raise
        finally:
            await client.close()


async def one_round_trip(client: RelayClient, ids: p.Ids, key: AuthKey) -> None:
    await client.send(ids.sender_id, None, b"after the fuzz")
    ev = await next_event(client, MessageReceived, 10)
    assert ev.message.body == b"after the fuzz"
    await client.ack(ids.recipient_id, key, ev.message.msg_id)


def _seed(default: int) -> int:
    value = os.environ.get("PARLEY_FUZZ_SEED")
    return int(value) if value else default


async def test_fuzz_every_command(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    await fuzz(tmp_path, _seed(20261201), 10_000, caplog)


@pytest.mark.slow
@pytest.mark.timeout(1800)
async def test_fuzz_every_command_long(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    await fuzz(tmp_path, _seed(int.from_bytes(os.urandom(4), "big")), 300_000, caplog)

"""The relay codec: round trips, and garbage raises only ProtocolError."""

from __future__ import annotations

import contextlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from parley.protocol import relay as p
from parley.protocol.address import AddressError, RelayAddress

ids = st.binary(min_size=0, max_size=32)
keys = st.binary(min_size=32, max_size=32)

commands = st.one_of(
    st.builds(p.New, keys),
    st.just(p.SUB),
    st.builds(p.Key, keys),
    st.builds(p.Send, st.integers(0, 255), st.binary(max_size=p.MAX_MESSAGE_BODY)),
    st.builds(p.Ack, ids),
    st.just(p.GET),
    st.just(p.OFF),
    st.just(p.DEL),
    st.just(p.PING),
)
responses = st.one_of(
    st.builds(p.Ids, ids, ids),
    st.builds(p.Msg, ids, st.integers(0, 2**64 - 1), st.integers(0, 255), st.binary(max_size=2000)),
    st.just(p.OK),
    st.just(p.END),
    st.just(p.PONG),
    st.builds(p.Err, st.sampled_from(list(p.ErrorCode))),
)


@given(commands)
def test_command_round_trip(cmd: p.Command) -> None:
    assert p.decode_command(p.encode_message(cmd)) == cmd


@given(responses)
def test_response_round_trip(resp: p.Response) -> None:
    assert p.decode_response(p.encode_message(resp)) == resp


@given(st.binary(max_size=64), ids, ids, st.binary(max_size=200))
def test_transmission_round_trip(auth: bytes, corr: bytes, entity: bytes, cmd: bytes) -> None:
    raw = p.encode_transmission(auth, p.signed_part(corr, entity, cmd))
    t = p.decode_transmission(raw)
    assert (t.auth, t.corr_id, t.entity_id, t.command) == (auth, corr, entity, cmd)
    assert t.signed == p.signed_part(corr, entity, cmd)


@given(st.lists(st.binary(max_size=3000), min_size=1, max_size=40))
def test_blocks_round_trip_in_order(transmissions: list[bytes]) -> None:
    blocks = p.pack_blocks(transmissions)
    assert all(len(b) == p.BLOCK_SIZE for b in blocks)
    out = [t for b in blocks for t in p.decode_block(b)]
    assert out == transmissions


def test_largest_send_fits_one_block() -> None:
    signed = p.signed_part(b"x" * 8, b"q" * 24, p.encode_message(p.Send(0, b"m" * 16000)))
    t = p.encode_transmission(b"a" * 32, signed)
    assert len(p.pack_blocks([t])) == 1
    msg = p.encode_message(p.Msg(b"i" * 24, 2**63, 0, b"m" * 16000))
    assert len(p.pack_blocks([p.encode_transmission(b"", p.signed_part(b"", b"q" * 24, msg))])) == 1


@given(st.binary(max_size=300))
def test_garbage_commands_raise_protocol_error_only(data: bytes) -> None:
    for decode in (p.decode_command, p.decode_response, p.decode_transmission):
        with contextlib.suppress(p.ProtocolError):
            decode(data)


@given(st.binary(max_size=400), st.integers(0, 255))
def test_garbage_blocks_raise_protocol_error_only(prefix: bytes, fill: int) -> None:
    block = prefix + bytes([fill]) * (p.BLOCK_SIZE - len(prefix))
    for decode in (p.decode_block, p.decode_server_hello, p.decode_client_hello):
        with contextlib.suppress(p.ProtocolError):
            decode(block)


@given(st.lists(st.binary(max_size=500), min_size=1, max_size=5), st.data())
def test_mutated_blocks_raise_protocol_error_only(ts: list[bytes], data: st.DataObject) -> None:
    block = bytearray(p.pack_blocks(ts)[0])
    for _ in range(data.draw(st.integers(1, 8))):
        i = data.draw(st.integers(0, 600))
        block[i] = data.draw(st.integers(0, 255))
    try:
        for raw in p.decode_block(bytes(block)):
            p.decode_transmission(raw)
    except p.ProtocolError:
        pass


def test_wrong_size_and_unknown_tags() -> None:
    with pytest.raises(p.ProtocolError):
        p.decode_block(b"\x00" * 100)
    with pytest.raises(p.ProtocolError) as e:
        p.decode_command(b"HACK")
    assert e.value.code == p.ErrorCode.CMD_SYNTAX
    with pytest.raises(p.ProtocolError):
        p.decode_command(b"OK")  # a response is not a command
    with pytest.raises(p.ProtocolError):
        p.decode_command(b"SUB extra")
    with pytest.raises(p.ProtocolError):
        p.decode_command(b"ACK \x05ab")  # truncated


def test_handshake_round_trip() -> None:
    hello = p.ServerHello(1, 1, b"s" * 32, b"k" * 32, b"cert" * 100)
    assert p.decode_server_hello(p.encode_server_hello(hello)) == hello
    assert p.decode_client_hello(p.encode_client_hello(p.ClientHello(1))).version == 1
    assert p.agree_version(1, 5) == 1
    assert p.agree_version(2, 5) is None


def test_address_round_trip_and_errors() -> None:
    fp = "A" * 43
    for text in (
        f"parley://{fp}@relay.example",
        f"parley://{fp}@127.0.0.1:7000",
        f"parley://{fp}@[::1]:7000",
    ):
        assert str(RelayAddress.parse(text)) == text
    assert RelayAddress.parse(f"parley://{fp}@h").port == 5223
    for bad in ("http://x", f"parley://{fp[:-1]}@h", f"parley://{fp}@h:99999", ""):
        with pytest.raises(AddressError):
            RelayAddress.parse(bad)

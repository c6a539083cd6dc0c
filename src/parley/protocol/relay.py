"""The relay protocol: commands, responses, transmissions and transport blocks (sans-I/O).

docs/protocol.md is the byte-level description of everything here. This module never
touches a socket: it turns values into bytes and bytes into values, and raises
`ProtocolError` (never anything else) for input it cannot parse.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable, Sequence
from enum import StrEnum

import msgspec

BLOCK_SIZE = 16384
PAD_BYTE = b"#"
MIN_VERSION = 1
MAX_VERSION = 1

QUEUE_ID_SIZE = 24
KEY_SIZE = 32
AUTH_SIZE = 32
MAX_CORR_ID = 32
MAX_ENTITY_ID = 32
# A SEND or MSG body may be up to this many bytes; the rest of a block is headers.
MAX_MESSAGE_BODY = 16000
# Largest single transmission that fits a block: 2 (content length) + 1 (count) + 2 (length).
MAX_TRANSMISSION = BLOCK_SIZE - 5
MAX_BATCH = 255


class ProtocolError(ValueError):
    """Bytes that are not a valid block, transmission, command or handshake."""

    def __init__(self, code: ErrorCode, detail: str) -> None:
        super().__init__(f"{code}: {detail}")
        self.code = code
        self.detail = detail


class ErrorCode(StrEnum):
    """The closed set of relay error codes carried by ERR."""

    BLOCK = "BLOCK"  # a transport block could not be parsed (the connection is closed)
    SESSION = "SESSION"  # handshake failure or version mismatch
    CMD_SYNTAX = "CMD SYNTAX"  # the command is malformed or unknown
    CMD_PROHIBITED = "CMD PROHIBITED"  # the command is not allowed here (e.g. wrong entity)
    CMD_NO_AUTH = "CMD NO_AUTH"  # an authenticator is required and missing
    CMD_HAS_AUTH = "CMD HAS_AUTH"  # an authenticator was given where none is allowed
    CMD_NO_ENTITY = "CMD NO_ENTITY"  # the command needs a queue id and has none
    AUTH = "AUTH"  # the authenticator does not verify, or the key is not the queue's
    NO_QUEUE = "NO_QUEUE"  # no queue has this id (never existed or deleted)
    NO_MSG = "NO_MSG"  # ACK of a message that is not the one delivered; GET of an empty queue
    QUOTA = "QUOTA"  # the queue holds its maximum number of messages
    LARGE_MSG = "LARGE_MSG"  # the body is larger than MAX_MESSAGE_BODY
    INTERNAL = "INTERNAL"  # the relay failed (for example its store); retry later
    UNAVAILABLE = "UNAVAILABLE"  # the relay is shutting down or over its limits; retry later


TEMPORARY_ERRORS = frozenset({ErrorCode.INTERNAL, ErrorCode.UNAVAILABLE})


# ---------------------------------------------------------------- commands (client to relay)


class New(msgspec.Struct, frozen=True):
    """Create a queue; `recipient_key` is the X25519 key that authenticates the recipient.

    `password` is the relay's creation password, for relays that require one (empty: none;
    it is left out of the encoding then, as before it existed)."""

    recipient_key: bytes
    password: bytes = b""


class Sub(msgspec.Struct, frozen=True):
    pass


class Key(msgspec.Struct, frozen=True):
    """Secure the queue: from now on SEND must be authenticated with `sender_key`."""

    sender_key: bytes


class Send(msgspec.Struct, frozen=True):
    flags: int
    body: bytes


class Ack(msgspec.Struct, frozen=True):
    msg_id: bytes


class Get(msgspec.Struct, frozen=True):
    pass


class Off(msgspec.Struct, frozen=True):
    pass


class Del(msgspec.Struct, frozen=True):
    pass


class Ping(msgspec.Struct, frozen=True):
    pass


Command = New | Sub | Key | Send | Ack | Get | Off | Del | Ping

# ---------------------------------------------------------------- responses (relay to client)


class Ids(msgspec.Struct, frozen=True):
    recipient_id: bytes
    sender_id: bytes


class Msg(msgspec.Struct, frozen=True):
    msg_id: bytes
    timestamp_ms: int
    flags: int
    body: bytes


class Ok(msgspec.Struct, frozen=True):
    pass


class End(msgspec.Struct, frozen=True):
    pass


class Pong(msgspec.Struct, frozen=True):
    pass


class Err(msgspec.Struct, frozen=True):
    code: ErrorCode


Response = Ids | Msg | Ok | End | Pong | Err

OK = Ok()
END = End()
PONG = Pong()
SUB = Sub()
GET = Get()
OFF = Off()
DEL = Del()
PING = Ping()

_NO_FIELDS: dict[bytes, Command | Response] = {
    b"SUB": SUB,
    b"GET": GET,
    b"OFF": OFF,
    b"DEL": DEL,
    b"PING": PING,
    b"OK": OK,
    b"END": END,
    b"PONG": PONG,
}
_COMMAND_TAGS = frozenset(
    {b"NEW", b"SUB", b"KEY", b"SEND", b"ACK", b"GET", b"OFF", b"DEL", b"PING"}
)
_RESPONSE_TAGS = frozenset({b"IDS", b"MSG", b"OK", b"END", b"PONG", b"ERR"})
_ERROR_CODES = {code.value.encode(): code for code in ErrorCode}
_U64 = struct.Struct(">Q")
_U16 = struct.Struct(">H")


_LENGTH_BYTE = [bytes((n,)) for n in range(256)]


def _short(value: bytes) -> bytes:
    if len(value) > 255:
        raise ValueError("short field longer than 255 bytes")
    return _LENGTH_BYTE[len(value)] + value


def encode_message(msg: Command | Response) -> bytes:
    """The command or response part of a transmission: a tag, then its fields."""
    match msg:
        case Send(flags, body):
            return b"SEND " + bytes((flags,)) + body
        case Msg(msg_id, ts, flags, body):
            return b"MSG " + _short(msg_id) + _U64.pack(ts) + bytes((flags,)) + body
        case Ok():
            return b"OK"
        case Ack(msg_id):
            return b"ACK " + _short(msg_id)
        case Sub():
            return b"SUB"
        case New(key, password):
            return b"NEW " + _short(key) + (_short(password) if password else b"")
        case Ids(rid, sid):
            return b"IDS " + _short(rid) + _short(sid)
        case Key(key):
            return b"KEY " + _short(key)
        case Get():
            return b"GET"
        case Off():
            return b"OFF"
        case Del():
            return b"DEL"
        case Ping():
            return b"PING"
        case End():
            return b"END"
        case Pong():
            return b"PONG"
        case Err(code):
            return b"ERR " + code.value.encode()
    raise TypeError(f"not a relay message: {msg!r}")


class _Reader:
    __slots__ = ("data", "pos")

    def __init__(self, data: bytes | memoryview, pos: int = 0) -> None:
        self.data = data
        self.pos = pos

    def short(self) -> bytes:
        data, pos = self.data, self.pos
        if pos >= len(data):
            raise ProtocolError(ErrorCode.CMD_SYNTAX, "truncated field")
        n = data[pos]
        end = pos + 1 + n
        if end > len(data):
            raise ProtocolError(ErrorCode.CMD_SYNTAX, "truncated field")
        self.pos = end
        return bytes(data[pos + 1 : end])

    def u8(self) -> int:
        if self.pos >= len(self.data):
            raise ProtocolError(ErrorCode.CMD_SYNTAX, "truncated field")
        v = self.data[self.pos]
        self.pos += 1
        return v

    def u64(self) -> int:
        end = self.pos + 8
        if end > len(self.data):
            raise ProtocolError(ErrorCode.CMD_SYNTAX, "truncated field")
        (v,) = _U64.unpack_from(self.data, self.pos)
        self.pos = end
        return int(v)

    def rest(self) -> bytes:
        v = bytes(self.data[self.pos :])
        self.pos = len(self.data)
        return v

    def end(self) -> None:
        if self.pos != len(self.data):
            raise ProtocolError(ErrorCode.CMD_SYNTAX, "trailing bytes")


def _decode(data: bytes, allowed: frozenset[bytes]) -> Command | Response:
    sp = data.find(b" ")
    tag = data if sp < 0 else data[:sp]
    if tag not in allowed:
        raise ProtocolError(ErrorCode.CMD_SYNTAX, f"unknown command {tag[:16]!r}")
    if sp < 0:
        fixed = _NO_FIELDS.get(tag)
        if fixed is None:
            raise ProtocolError(ErrorCode.CMD_SYNTAX, f"{tag.decode()} needs fields")
        return fixed
    if tag in _NO_FIELDS:
        raise ProtocolError(ErrorCode.CMD_SYNTAX, f"{tag.decode()} takes no fields")
    r = _Reader(data, sp + 1)
    result: Command | Response
    if tag == b"SEND":
        result = Send(r.u8(), r.rest())
    elif tag == b"MSG":
        result = Msg(r.short(), r.u64(), r.u8(), r.rest())
    elif tag == b"ACK":
        result = Ack(r.short())
    elif tag == b"NEW":
        key = r.short()
        result = New(key, r.short()) if r.pos < len(r.data) else New(key)
    elif tag == b"KEY":
        result = Key(r.short())
    elif tag == b"IDS":
        result = Ids(r.short(), r.short())
    else:  # ERR
        code = _ERROR_CODES.get(r.rest())
        if code is None:
            raise ProtocolError(ErrorCode.CMD_SYNTAX, "unknown error code")
        return Err(code)
    r.end()
    return result


def decode_command(data: bytes) -> Command:
    """Parse the command part of a client transmission."""
    cmd = _decode(data, _COMMAND_TAGS)
    assert not isinstance(cmd, Ids | Msg | Ok | End | Pong | Err)
    return cmd


def decode_response(data: bytes) -> Response:
    """Parse the response part of a relay transmission."""
    resp = _decode(data, _RESPONSE_TAGS)
    assert isinstance(resp, Ids | Msg | Ok | End | Pong | Err)
    return resp


# ---------------------------------------------------------------- transmissions


class Transmission(msgspec.Struct, frozen=True):
    """One command or response with its authenticator, correlation id and queue id.

    `signed` is the part the authenticator covers (without the session id, which the
    verifier prepends): the encoded correlation id, entity id and command, as received.
    """

    auth: bytes
    corr_id: bytes
    entity_id: bytes
    command: bytes
    signed: bytes


def signed_part(corr_id: bytes, entity_id: bytes, command: bytes) -> bytes:
    return _short(corr_id) + _short(entity_id) + command


def encode_response(corr_id: bytes, entity_id: bytes, resp: Response) -> bytes:
    """A relay's (unauthenticated) transmission of `resp`: the same bytes as
    encode_transmission(b"", signed_part(...)), built in one join."""
    if len(corr_id) > 255 or len(entity_id) > 255:
        raise ValueError("id longer than 255 bytes")
    return b"".join(
        (
            b"\x00",
            _LENGTH_BYTE[len(corr_id)],
            corr_id,
            _LENGTH_BYTE[len(entity_id)],
            entity_id,
            encode_message(resp),
        )
    )


def encode_transmission(auth: bytes, signed: bytes) -> bytes:
    """A transmission from its authenticator and the bytes it authenticates."""
    return _short(auth) + signed


def decode_transmission(data: bytes) -> Transmission:
    # three length-prefixed fields, then the command; sliced directly (this is the hot path)
    n = len(data)
    if n < 3:
        raise ProtocolError(ErrorCode.CMD_SYNTAX, "truncated transmission")
    a_end = 1 + data[0]
    if a_end >= n:
        raise ProtocolError(ErrorCode.CMD_SYNTAX, "truncated field")
    c_end = a_end + 1 + data[a_end]
    if c_end >= n:
        raise ProtocolError(ErrorCode.CMD_SYNTAX, "truncated field")
    e_end = c_end + 1 + data[c_end]
    if e_end > n:
        raise ProtocolError(ErrorCode.CMD_SYNTAX, "truncated field")
    corr_id, entity_id = data[a_end + 1 : c_end], data[c_end + 1 : e_end]
    if len(corr_id) > MAX_CORR_ID or len(entity_id) > MAX_ENTITY_ID:
        raise ProtocolError(ErrorCode.CMD_SYNTAX, "id too long")
    return Transmission(data[1:a_end], corr_id, entity_id, data[e_end:], data[a_end:])


# ---------------------------------------------------------------- blocks


def encode_block(transmissions: Sequence[bytes]) -> bytes:
    """Pack encoded transmissions into one padded block (they must fit; see `fits`)."""
    if not 1 <= len(transmissions) <= MAX_BATCH:
        raise ValueError("a block holds 1 to 255 transmissions")
    parts = [bytes((len(transmissions),))]
    for t in transmissions:
        parts.append(_U16.pack(len(t)))
        parts.append(t)
    content = b"".join(parts)
    if len(content) + 2 > BLOCK_SIZE:
        raise ValueError("transmissions do not fit in a block")
    return _U16.pack(len(content)) + content + PAD_BYTE * (BLOCK_SIZE - 2 - len(content))


def transmission_cost(t: bytes) -> int:
    """Bytes a transmission takes inside a block."""
    return 2 + len(t)


BLOCK_CAPACITY = BLOCK_SIZE - 3  # content length field and count byte


def pack_blocks(transmissions: Iterable[bytes]) -> list[bytes]:
    """Pack transmissions in order into as few blocks as they need."""
    blocks: list[bytes] = []
    batch: list[bytes] = []
    used = 0
    for t in transmissions:
        cost = transmission_cost(t)
        if cost > BLOCK_CAPACITY:
            raise ValueError("transmission larger than a block")
        if batch and (used + cost > BLOCK_CAPACITY or len(batch) == MAX_BATCH):
            blocks.append(encode_block(batch))
            batch, used = [], 0
        batch.append(t)
        used += cost
    if batch:
        blocks.append(encode_block(batch))
    return blocks


def decode_block(block: bytes | memoryview) -> list[bytes]:
    """The transmissions in a block; ProtocolError(BLOCK) if it is malformed."""
    if len(block) != BLOCK_SIZE:
        raise ProtocolError(ErrorCode.BLOCK, "wrong block size")
    (length,) = _U16.unpack_from(block, 0)
    if length < 1 or length > BLOCK_SIZE - 2:
        raise ProtocolError(ErrorCode.BLOCK, "bad content length")
    end = 2 + length
    count = block[2]
    if count == 0:
        raise ProtocolError(ErrorCode.BLOCK, "empty block")
    pos = 3
    out: list[bytes] = []
    for _ in range(count):
        if pos + 2 > end:
            raise ProtocolError(ErrorCode.BLOCK, "truncated block")
        (n,) = _U16.unpack_from(block, pos)
        pos += 2
        if pos + n > end:
            raise ProtocolError(ErrorCode.BLOCK, "truncated transmission")
        out.append(bytes(block[pos : pos + n]))
        pos += n
    if pos != end:
        raise ProtocolError(ErrorCode.BLOCK, "trailing bytes in block")
    return out


# ---------------------------------------------------------------- handshake


class ServerHello(msgspec.Struct, frozen=True):
    """First block from the relay: versions, the session id, the session key, the CA cert."""

    min_version: int
    max_version: int
    session_id: bytes
    session_key: bytes
    ca_certificate: bytes


class ClientHello(msgspec.Struct, frozen=True):
    version: int


_HELLO_MAGIC = b"PARLEY"


def _pad_block(content: bytes) -> bytes:
    if len(content) + 2 > BLOCK_SIZE:
        raise ValueError("handshake too large")
    return _U16.pack(len(content)) + content + PAD_BYTE * (BLOCK_SIZE - 2 - len(content))


def _unpad_block(block: bytes) -> bytes:
    if len(block) != BLOCK_SIZE:
        raise ProtocolError(ErrorCode.SESSION, "wrong block size")
    (length,) = _U16.unpack_from(block, 0)
    if length > BLOCK_SIZE - 2:
        raise ProtocolError(ErrorCode.SESSION, "bad handshake length")
    return block[2 : 2 + length]


def encode_server_hello(h: ServerHello) -> bytes:
    cert = h.ca_certificate
    content = (
        _HELLO_MAGIC
        + _U16.pack(h.min_version)
        + _U16.pack(h.max_version)
        + _short(h.session_id)
        + _short(h.session_key)
        + _U16.pack(len(cert))
        + cert
    )
    return _pad_block(content)


def decode_server_hello(block: bytes) -> ServerHello:
    content = _unpad_block(block)
    if not content.startswith(_HELLO_MAGIC):
        raise ProtocolError(ErrorCode.SESSION, "not a parley relay")
    try:
        pos = len(_HELLO_MAGIC)
        lo, hi = struct.unpack_from(">HH", content, pos)
        r = _Reader(content, pos + 4)
        session_id = r.short()
        session_key = r.short()
        (n,) = _U16.unpack_from(content, r.pos)
        cert = content[r.pos + 2 : r.pos + 2 + n]
    except struct.error as e:
        raise ProtocolError(ErrorCode.SESSION, "truncated server hello") from e
    if len(cert) != n or len(session_key) != KEY_SIZE or len(session_id) != 32:
        raise ProtocolError(ErrorCode.SESSION, "malformed server hello")
    return ServerHello(lo, hi, session_id, session_key, cert)


def encode_client_hello(h: ClientHello) -> bytes:
    return _pad_block(_HELLO_MAGIC + _U16.pack(h.version))


def decode_client_hello(block: bytes) -> ClientHello:
    content = _unpad_block(block)
    if len(content) != len(_HELLO_MAGIC) + 2 or not content.startswith(_HELLO_MAGIC):
        raise ProtocolError(ErrorCode.SESSION, "malformed client hello")
    (version,) = _U16.unpack_from(content, len(_HELLO_MAGIC))
    return ClientHello(version)


def agree_version(lo: int, hi: int) -> int | None:
    """The highest version both sides speak, or None."""
    top = min(hi, MAX_VERSION)
    return top if top >= max(lo, MIN_VERSION) else None

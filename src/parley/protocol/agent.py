"""Agent envelopes and invitation links (sans-I/O): what agents put inside relay messages.

docs/agent-protocol.md describes the bytes. A queue message is

    version (u16) | kind (1 byte) | kind-specific fields

- kind `C`, a confirmation, the first message on a queue, sent before it is secured:
  the sender's per-queue box public key (32 bytes), then a box ciphertext of a
  `ConfirmationBody` (the key the recipient must secure the queue with, the joiner's X3DH
  keys, and a ratchet message).
- kind `M`, every later message: a box ciphertext of a ratchet message.
- kind `R`, an invitation request, sent to a contact address's queue (never secured): the
  sender's per-queue box public key (32 bytes), then a box ciphertext of an
  `InvitationRequest` (the requester's own one-time invitation link and its info).

The ratchet plaintext is an `AgentMessage`, msgpack-encoded.
"""

from __future__ import annotations

import base64
import hashlib
import struct
from typing import TypeVar, dataclass_transform

import msgspec

from parley.protocol.address import AddressError, RelayAddress

AGENT_VERSION = 1
MIN_AGENT_VERSION = 1

# Sizes chosen so that the largest envelope fits a relay message body (16000 bytes):
# ratchet plaintext padded to 15000 -> ratchet message 15108 -> inside the box plaintext,
# padded to 15400 -> box ciphertext 15440 -> envelope 15475 (confirmation).
RATCHET_PAD = 15000
BOX_PAD = 15400
# what send_message accepts: the ratchet plaintext less the message framing
MAX_MESSAGE_SIZE = 14800
# connection info travels in a confirmation beside the reply queue's address
MAX_INFO_SIZE = 14000

KIND_CONFIRMATION = b"C"
KIND_MESSAGE = b"M"
KIND_REQUEST = b"R"
KIND_RATCHET_KEY = b"K"
_HEADER = struct.Struct(">Hc")
LINK_PREFIX = "parley:/invite#"
CONTACT_PREFIX = "parley:/contact#"


T = TypeVar("T")


class EnvelopeError(ValueError):
    """A queue message, agent message or link that cannot be parsed."""


# (for type checkers, as at run time, its subclasses are frozen without saying so)
@dataclass_transform(frozen_default=True, field_specifiers=(msgspec.field,))
class _Packed(msgspec.Struct, frozen=True, array_like=True):
    """Base of every struct here: msgpack arrays, so the order of the fields is the format."""


class QueueAddress(_Packed):
    """Where to send: a relay, the queue's sender id, and its recipient's box key."""

    relay: str
    sender_id: bytes
    box_public: bytes


class _Link(_Packed):
    """What a link carries first: the agent versions it speaks, the queue to send to."""

    min_version: int
    max_version: int
    queue: QueueAddress


class Invitation(_Link):
    """What a one-time invitation link carries."""

    x3dh: bytes  # the initiator's two X3DH public keys (64 bytes)


class ContactAddress(_Link):
    """What a contact address link carries: the address queue (many may send to it)."""


L = TypeVar("L", bound=_Link)


class InvitationRequest(_Packed):
    """Sent to a contact address: the requester's own invitation link and its info."""

    invitation: str
    info: bytes


class ConfirmationBody(_Packed):
    sender_key: bytes  # X25519 key the recipient secures its queue with (KEY)
    x3dh: bytes | None  # the joiner's X3DH public keys; None in the initiator's reply
    ratchet_message: bytes


# ---------------------------------------------------------------- ratchet plaintexts


class JoinConfirmation(_Packed, tag="join"):
    """The joiner's confirmation: its reply queue and its connection info."""

    reply_queue: QueueAddress
    info: bytes


class AllowConfirmation(_Packed, tag="allow"):
    """The initiator's confirmation, sent to the reply queue once it allowed the joiner."""

    info: bytes


class Hello(_Packed, tag="hello"): ...


class UserMessage(_Packed, tag="msg"):
    body: bytes


class Receipt(_Packed, tag="rcpt"):
    """A delivery receipt: the peer's client stored our message `msg_id`, whose agent
    message hashed to `msg_hash` (sha256 of the encoded `Sequenced`) on arrival."""

    msg_id: int
    msg_hash: bytes


class Sequenced(_Packed, tag="seq"):
    """A message after the confirmations: numbered, chained to the previous one by hash."""

    msg_id: int
    prev_hash: bytes
    content: Hello | UserMessage | Receipt


AgentMessage = JoinConfirmation | AllowConfirmation | Sequenced

_agent_encoder = msgspec.msgpack.Encoder()
_agent_decoder = msgspec.msgpack.Decoder(AgentMessage)
_conf_decoder = msgspec.msgpack.Decoder(ConfirmationBody)
_invitation_decoder = msgspec.msgpack.Decoder(Invitation)
_queue_decoder = msgspec.msgpack.Decoder(QueueAddress)
_contact_decoder = msgspec.msgpack.Decoder(ContactAddress)
_request_decoder = msgspec.msgpack.Decoder(InvitationRequest)


def encode_agent_message(msg: AgentMessage) -> bytes:
    return _agent_encoder.encode(msg)


def _decode(decoder: msgspec.msgpack.Decoder[T], data: bytes, what: str) -> T:
    try:
        return decoder.decode(data)
    except (msgspec.DecodeError, msgspec.ValidationError) as e:
        raise EnvelopeError(f"bad {what}: {e}") from e


def decode_agent_message(data: bytes) -> AgentMessage:
    message: AgentMessage = _decode(_agent_decoder, data, "agent message")
    return message


def message_hash(encoded: bytes) -> bytes:
    """What the next message's `prev_hash` must equal."""
    return hashlib.sha256(encoded).digest()


def encode_confirmation_body(body: ConfirmationBody) -> bytes:
    return _agent_encoder.encode(body)


def decode_confirmation_body(data: bytes) -> ConfirmationBody:
    body = _decode(_conf_decoder, data, "confirmation")
    if len(body.sender_key) != 32 or (body.x3dh is not None and len(body.x3dh) != 64):
        raise EnvelopeError("bad key sizes in confirmation")
    return body


def encode_queue_address(q: QueueAddress) -> bytes:
    return _agent_encoder.encode(q)


def decode_queue_address(data: bytes) -> QueueAddress:
    return _decode(_queue_decoder, data, "queue address")


def encode_invitation_request(req: InvitationRequest) -> bytes:
    return _agent_encoder.encode(req)


def decode_invitation_request(data: bytes) -> InvitationRequest:
    req = _decode(_request_decoder, data, "invitation request")
    decode_invitation_link(req.invitation)
    return req


# ---------------------------------------------------------------- queue messages


def encode_confirmation(sender_box_public: bytes, box_ciphertext: bytes) -> bytes:
    return _HEADER.pack(AGENT_VERSION, KIND_CONFIRMATION) + sender_box_public + box_ciphertext


def encode_request(sender_box_public: bytes, box_ciphertext: bytes) -> bytes:
    return _HEADER.pack(AGENT_VERSION, KIND_REQUEST) + sender_box_public + box_ciphertext


def encode_message(box_ciphertext: bytes) -> bytes:
    return _HEADER.pack(AGENT_VERSION, KIND_MESSAGE) + box_ciphertext


class RatchetKey(_Packed):
    """Ratchet re-synchronisation (queue message kind `K`, outside the broken ratchet):
    the sender's fresh X3DH public keys (64 bytes); `reply` when it answers the peer's;
    the id its next `Sequenced` will have (the receiver continues from there)."""

    x3dh: bytes
    reply: bool
    next_msg_id: int


_ratchet_key_decoder = msgspec.msgpack.Decoder(RatchetKey)


def encode_ratchet_key(key: RatchetKey) -> bytes:
    return _agent_encoder.encode(key)


def decode_ratchet_key(data: bytes) -> RatchetKey:
    key = _decode(_ratchet_key_decoder, data, "ratchet key")
    if len(key.x3dh) != 64:
        raise EnvelopeError("bad key size in ratchet key")
    return key


def encode_ratchet_key_message(box_ciphertext: bytes) -> bytes:
    return _HEADER.pack(AGENT_VERSION, KIND_RATCHET_KEY) + box_ciphertext


class QueueMessage(msgspec.Struct, frozen=True):
    version: int
    kind: bytes
    sender_box_public: bytes | None  # confirmations only
    box_ciphertext: bytes


def decode_queue_message(data: bytes) -> QueueMessage:
    if len(data) < _HEADER.size:
        raise EnvelopeError("queue message too short")
    version, kind = _HEADER.unpack_from(data)
    if not MIN_AGENT_VERSION <= version <= AGENT_VERSION:
        raise EnvelopeError(f"unsupported agent version {version}")
    rest = data[_HEADER.size :]
    if kind in (KIND_CONFIRMATION, KIND_REQUEST):
        if len(rest) < 32:
            raise EnvelopeError("truncated confirmation")
        return QueueMessage(version, kind, rest[:32], rest[32:])
    if kind in (KIND_MESSAGE, KIND_RATCHET_KEY):
        return QueueMessage(version, kind, None, rest)
    raise EnvelopeError(f"unknown queue message kind {kind!r}")


# ---------------------------------------------------------------- links


def _encode_link(prefix: str, payload: _Link) -> str:
    return prefix + base64.urlsafe_b64encode(_agent_encoder.encode(payload)).rstrip(b"=").decode()


def encode_invitation_link(inv: Invitation) -> str:
    return _encode_link(LINK_PREFIX, inv)


def _foreign(text: str, what: str, prefix: str) -> EnvelopeError:
    if text.lower().startswith(("simplex:", "https://simplex.chat", "https://smp")):
        return EnvelopeError(
            "this is a SimpleX link: parley connects only through parley links "
            f"({LINK_PREFIX}... or {CONTACT_PREFIX}...)"
        )
    return EnvelopeError(f"not a parley {what} (it starts with {prefix})")


def _link_text(link: str, prefix: str, what: str, mistaken: tuple[str, str]) -> str:
    """The link, stripped, if it starts with `prefix`; else an error that says what it is:
    the other kind of parley link (`mistaken`: its prefix, and the error), or a foreign one."""
    text = link.strip()
    if text.startswith(prefix):
        return text
    other_prefix, error = mistaken
    if text.startswith(other_prefix):
        raise EnvelopeError(error)
    raise _foreign(text, what, prefix)


def _decode_link(text: str, prefix: str, decoder: msgspec.msgpack.Decoder[L], what: str) -> L:
    """The link's payload (`text` starts with `prefix`); `what` names the link in errors."""
    payload = text[len(prefix) :]
    try:
        return decoder.decode(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    except (ValueError, msgspec.DecodeError, msgspec.ValidationError) as e:
        raise EnvelopeError(f"corrupt {what} link (damaged or truncated)") from e


def _checked_link(link: L, what: str) -> L:
    """The link if its versions are ours and its queue is sound (its relay address spelled
    as agents compare it)."""
    if link.min_version > AGENT_VERSION or link.max_version < MIN_AGENT_VERSION:
        raise EnvelopeError(f"{what} link from an incompatible version")
    queue = _check_queue(link.queue, what)
    return link if queue is link.queue else msgspec.structs.replace(link, queue=queue)


def _check_queue(queue: QueueAddress, what: str) -> QueueAddress:
    """The queue with its relay address in the one spelling agents compare."""
    if len(queue.box_public) != 32 or not queue.sender_id:
        raise EnvelopeError(f"corrupt {what} link (bad key sizes)")
    try:
        relay = str(RelayAddress.parse(queue.relay))
    except AddressError as e:
        raise EnvelopeError(f"{what} link with a bad relay address: {e}") from e
    return queue if relay == queue.relay else QueueAddress(relay, queue.sender_id, queue.box_public)


def decode_invitation_link(link: str) -> Invitation:
    """Parse a link; EnvelopeError with a plain reason if it is not a valid invitation."""
    mistaken = (CONTACT_PREFIX, "a contact address, not a one-time invitation link")
    text = _link_text(link, LINK_PREFIX, "invitation link", mistaken)
    inv = _decode_link(text, LINK_PREFIX, _invitation_decoder, "invitation")
    if len(inv.x3dh) != 64:
        raise EnvelopeError("corrupt invitation link (bad key sizes)")
    return _checked_link(inv, "invitation")


def encode_contact_link(address: ContactAddress) -> str:
    return _encode_link(CONTACT_PREFIX, address)


def decode_contact_link(link: str) -> ContactAddress:
    """Parse a contact address link; EnvelopeError with a plain reason if it is not one."""
    mistaken = (LINK_PREFIX, "a one-time invitation link, not a contact address")
    text = _link_text(link, CONTACT_PREFIX, "contact address", mistaken)
    address = _decode_link(text, CONTACT_PREFIX, _contact_decoder, "contact address")
    return _checked_link(address, "contact address")


def is_contact_link(link: str) -> bool:
    return link.strip().startswith(CONTACT_PREFIX)


def check_link(link: str) -> Invitation | ContactAddress:
    """A one-time invitation or a contact address; EnvelopeError with a plain reason."""
    if is_contact_link(link):
        return decode_contact_link(link)
    return decode_invitation_link(link)

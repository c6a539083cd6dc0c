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


class EnvelopeError(ValueError):
    """A queue message, agent message or link that cannot be parsed."""


class QueueAddress(msgspec.Struct, frozen=True, array_like=True):
    """Where to send: a relay, the queue's sender id, and its recipient's box key."""

    relay: str
    sender_id: bytes
    box_public: bytes


class Invitation(msgspec.Struct, frozen=True, array_like=True):
    """What a one-time invitation link carries."""

    min_version: int
    max_version: int
    queue: QueueAddress
    x3dh: bytes  # the initiator's two X3DH public keys (64 bytes)


class ContactAddress(msgspec.Struct, frozen=True, array_like=True):
    """What a contact address link carries: the address queue (many may send to it)."""

    min_version: int
    max_version: int
    queue: QueueAddress


class InvitationRequest(msgspec.Struct, frozen=True, array_like=True):
    """Sent to a contact address: the requester's own invitation link and its info."""

    invitation: str
    info: bytes


class ConfirmationBody(msgspec.Struct, frozen=True, array_like=True):
    sender_key: bytes  # X25519 key the recipient secures its queue with (KEY)
    x3dh: bytes | None  # the joiner's X3DH public keys; None in the initiator's reply
    ratchet_message: bytes


# ---------------------------------------------------------------- ratchet plaintexts


class JoinConfirmation(msgspec.Struct, frozen=True, tag="join", array_like=True):
    """The joiner's confirmation: its reply queue and its connection info."""

    reply_queue: QueueAddress
    info: bytes


class AllowConfirmation(msgspec.Struct, frozen=True, tag="allow", array_like=True):
    """The initiator's confirmation, sent to the reply queue once it allowed the joiner."""

    info: bytes


class Hello(msgspec.Struct, frozen=True, tag="hello", array_like=True):
    pass


class UserMessage(msgspec.Struct, frozen=True, tag="msg", array_like=True):
    body: bytes


class Receipt(msgspec.Struct, frozen=True, tag="rcpt", array_like=True):
    """A delivery receipt: the peer's client stored our message `msg_id`, whose agent
    message hashed to `msg_hash` (sha256 of the encoded `Sequenced`) on arrival."""

    msg_id: int
    msg_hash: bytes


class Sequenced(msgspec.Struct, frozen=True, tag="seq", array_like=True):
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


def decode_agent_message(data: bytes) -> AgentMessage:
    try:
        message: AgentMessage = _agent_decoder.decode(data)
        return message
    except (msgspec.DecodeError, msgspec.ValidationError) as e:
        raise EnvelopeError(f"bad agent message: {e}") from e


def message_hash(encoded: bytes) -> bytes:
    """What the next message's `prev_hash` must equal."""
    return hashlib.sha256(encoded).digest()


def encode_confirmation_body(body: ConfirmationBody) -> bytes:
    return _agent_encoder.encode(body)


def decode_confirmation_body(data: bytes) -> ConfirmationBody:
    try:
        body = _conf_decoder.decode(data)
    except (msgspec.DecodeError, msgspec.ValidationError) as e:
        raise EnvelopeError(f"bad confirmation: {e}") from e
    if len(body.sender_key) != 32 or (body.x3dh is not None and len(body.x3dh) != 64):
        raise EnvelopeError("bad key sizes in confirmation")
    return body


def encode_queue_address(q: QueueAddress) -> bytes:
    return _agent_encoder.encode(q)


def decode_queue_address(data: bytes) -> QueueAddress:
    try:
        return _queue_decoder.decode(data)
    except (msgspec.DecodeError, msgspec.ValidationError) as e:
        raise EnvelopeError(f"bad queue address: {e}") from e


def encode_invitation_request(req: InvitationRequest) -> bytes:
    return _agent_encoder.encode(req)


def decode_invitation_request(data: bytes) -> InvitationRequest:
    try:
        req = _request_decoder.decode(data)
    except (msgspec.DecodeError, msgspec.ValidationError) as e:
        raise EnvelopeError(f"bad invitation request: {e}") from e
    decode_invitation_link(req.invitation)
    return req


# ---------------------------------------------------------------- queue messages


def encode_confirmation(sender_box_public: bytes, box_ciphertext: bytes) -> bytes:
    return _HEADER.pack(AGENT_VERSION, KIND_CONFIRMATION) + sender_box_public + box_ciphertext


def encode_request(sender_box_public: bytes, box_ciphertext: bytes) -> bytes:
    return _HEADER.pack(AGENT_VERSION, KIND_REQUEST) + sender_box_public + box_ciphertext


def encode_message(box_ciphertext: bytes) -> bytes:
    return _HEADER.pack(AGENT_VERSION, KIND_MESSAGE) + box_ciphertext


class RatchetKey(msgspec.Struct, frozen=True, array_like=True):
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
    try:
        key = _ratchet_key_decoder.decode(data)
    except (msgspec.DecodeError, msgspec.ValidationError) as e:
        raise EnvelopeError(f"bad ratchet key: {e}") from e
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


def encode_invitation_link(inv: Invitation) -> str:
    payload = base64.urlsafe_b64encode(_agent_encoder.encode(inv)).rstrip(b"=").decode()
    return LINK_PREFIX + payload


def _foreign(text: str, what: str) -> EnvelopeError:
    if text.lower().startswith(("simplex:", "https://simplex.chat", "https://smp")):
        return EnvelopeError(
            "this is a SimpleX link: parley connects only through parley links "
            f"({LINK_PREFIX}... or {CONTACT_PREFIX}...)"
        )
    return EnvelopeError(f"not a parley {what} (it starts with {_expected(what)})")


def _expected(what: str) -> str:
    return CONTACT_PREFIX if what == "contact address" else LINK_PREFIX


def _payload(text: str, prefix: str, what: str) -> bytes:
    payload = text[len(prefix) :]
    try:
        return base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4))
    except ValueError as e:
        raise EnvelopeError(f"corrupt {what} link (damaged or truncated)") from e


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
    text = link.strip()
    if not text.startswith(LINK_PREFIX):
        if text.startswith(CONTACT_PREFIX):
            raise EnvelopeError("a contact address, not a one-time invitation link")
        raise _foreign(text, "invitation link")
    try:
        inv = _invitation_decoder.decode(_payload(text, LINK_PREFIX, "invitation"))
    except (msgspec.DecodeError, msgspec.ValidationError) as e:
        raise EnvelopeError("corrupt invitation link (damaged or truncated)") from e
    if len(inv.x3dh) != 64:
        raise EnvelopeError("corrupt invitation link (bad key sizes)")
    if inv.min_version > AGENT_VERSION or inv.max_version < MIN_AGENT_VERSION:
        raise EnvelopeError("invitation link from an incompatible version")
    queue = _check_queue(inv.queue, "invitation")
    if queue is not inv.queue:
        inv = Invitation(inv.min_version, inv.max_version, queue, inv.x3dh)
    return inv


def encode_contact_link(address: ContactAddress) -> str:
    payload = base64.urlsafe_b64encode(_agent_encoder.encode(address)).rstrip(b"=").decode()
    return CONTACT_PREFIX + payload


def decode_contact_link(link: str) -> ContactAddress:
    """Parse a contact address link; EnvelopeError with a plain reason if it is not one."""
    text = link.strip()
    if not text.startswith(CONTACT_PREFIX):
        if text.startswith(LINK_PREFIX):
            raise EnvelopeError("a one-time invitation link, not a contact address")
        raise _foreign(text, "contact address")
    try:
        address = _contact_decoder.decode(_payload(text, CONTACT_PREFIX, "contact address"))
    except (msgspec.DecodeError, msgspec.ValidationError) as e:
        raise EnvelopeError("corrupt contact address link (damaged or truncated)") from e
    if address.min_version > AGENT_VERSION or address.max_version < MIN_AGENT_VERSION:
        raise EnvelopeError("contact address link from an incompatible version")
    queue = _check_queue(address.queue, "contact address")
    if queue is not address.queue:
        address = ContactAddress(address.min_version, address.max_version, queue)
    return address


def is_contact_link(link: str) -> bool:
    return link.strip().startswith(CONTACT_PREFIX)


def check_link(link: str) -> Invitation | ContactAddress:
    """A one-time invitation or a contact address; EnvelopeError with a plain reason."""
    if is_contact_link(link):
        return decode_contact_link(link)
    return decode_invitation_link(link)

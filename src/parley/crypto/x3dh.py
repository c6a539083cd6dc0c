"""X3DH-style key agreement with two X25519 keys per side and no signatures.

Each side has keys (k1, k2). With I the initiator and J the joiner, both compute
    dh1 = DH(I.k1, J.k2), dh2 = DH(I.k2, J.k1), dh3 = DH(I.k2, J.k2)
and derive the ratchet's initial secrets from HKDF-SHA512 of them.
"""

from __future__ import annotations

import msgspec
from cryptography.hazmat.primitives.hashes import SHA512

from parley.crypto import x25519
from parley.crypto.errors import CryptoError
from parley.crypto.kdf import KEY_SIZE, hkdf

X3DH_INFO = b"parley x3dh v1"
# As in Signal's X3DH: 32 0xFF bytes before the DH outputs separate them from other uses.
_IKM_PREFIX = b"\xff" * 32
PUBLIC_SIZE = 2 * x25519.KEY_SIZE
PRIVATE_SIZE = 2 * x25519.KEY_SIZE


def _check_keys(key1: bytes, key2: bytes, kind: str) -> None:
    if len(key1) != x25519.KEY_SIZE or len(key2) != x25519.KEY_SIZE:
        raise CryptoError(f"X3DH {kind} keys must be {x25519.KEY_SIZE} bytes each")


def _split_keys(data: bytes, kind: str) -> tuple[bytes, bytes]:
    """The two keys of `to_bytes()` (public or private: both are 2 × 32 bytes)."""
    if len(data) != 2 * x25519.KEY_SIZE:
        raise CryptoError(f"X3DH {kind} keys must be {2 * x25519.KEY_SIZE} bytes, got {len(data)}")
    return data[: x25519.KEY_SIZE], data[x25519.KEY_SIZE :]


class X3DHPublic(msgspec.Struct, frozen=True):
    """The two public keys one side sends to the other."""

    key1: bytes
    key2: bytes

    def __post_init__(self) -> None:
        _check_keys(self.key1, self.key2, "public")

    def to_bytes(self) -> bytes:
        return self.key1 + self.key2

    @classmethod
    def from_bytes(cls, data: bytes) -> X3DHPublic:
        return cls(*_split_keys(data, "public"))


class X3DHKeyPair:
    """Our two private keys. `to_bytes()` is secret: store it only where secrets belong."""

    __slots__ = ("key1", "key2")

    def __init__(self, key1: bytes, key2: bytes) -> None:
        _check_keys(key1, key2, "private")
        self.key1 = key1
        self.key2 = key2

    @classmethod
    def generate(cls) -> X3DHKeyPair:
        return cls(x25519.generate_keypair()[0], x25519.generate_keypair()[0])

    def public(self) -> X3DHPublic:
        return X3DHPublic(x25519.public_key(self.key1), x25519.public_key(self.key2))

    def to_bytes(self) -> bytes:
        return self.key1 + self.key2

    @classmethod
    def from_bytes(cls, data: bytes) -> X3DHKeyPair:
        return cls(*_split_keys(data, "private"))

    def __eq__(self, other: object) -> bool:
        return (
            isinstance(other, X3DHKeyPair) and self.key1 == other.key1 and self.key2 == other.key2
        )

    def __hash__(self) -> int:
        return hash((self.key1, self.key2))

    def __repr__(self) -> str:
        return "X3DHKeyPair(<private>)"


class RatchetInitParams(msgspec.Struct, frozen=True):
    """What both sides agree on; identical on the initiator and the joiner."""

    root_key: bytes
    # The joiner's first sending header key (Signal's shared_hka).
    joiner_header_key: bytes
    # The initiator's first "next" sending header key (Signal's shared_nhkb).
    initiator_next_header_key: bytes
    # initiator key1 || initiator key2 || joiner key1 || joiner key2 (public, 128 bytes).
    associated_data: bytes

    def __repr__(self) -> str:
        return "RatchetInitParams(<secret>)"


def initiator_agree(own: X3DHKeyPair, peer: X3DHPublic) -> RatchetInitParams:
    """The initiator's side: `own` keys were offered in the invitation, `peer` came back."""
    return _derive(
        own.public(),
        peer,
        x25519.dh(own.key1, peer.key2),
        x25519.dh(own.key2, peer.key1),
        x25519.dh(own.key2, peer.key2),
    )


def joiner_agree(own: X3DHKeyPair, peer: X3DHPublic) -> RatchetInitParams:
    """The joiner's side: `peer` keys came in the invitation, `own` are sent back."""
    return _derive(
        peer,
        own.public(),
        x25519.dh(own.key2, peer.key1),
        x25519.dh(own.key1, peer.key2),
        x25519.dh(own.key2, peer.key2),
    )


def _derive(
    initiator: X3DHPublic, joiner: X3DHPublic, dh1: bytes, dh2: bytes, dh3: bytes
) -> RatchetInitParams:
    out = hkdf(SHA512(), _IKM_PREFIX + dh1 + dh2 + dh3, None, X3DH_INFO, 3 * KEY_SIZE)
    return RatchetInitParams(
        root_key=out[:KEY_SIZE],
        joiner_header_key=out[KEY_SIZE : 2 * KEY_SIZE],
        initiator_next_header_key=out[2 * KEY_SIZE :],
        associated_data=initiator.to_bytes() + joiner.to_bytes(),
    )

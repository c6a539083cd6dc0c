"""Command authenticators: an HMAC keyed by X25519(queue key, relay session key).

The relay gives every TLS session a fresh X25519 key. A queue's recipient (or sender) key
is an X25519 key too; both ends derive the same MAC key from the two, once per queue and
session, and then each command costs one HMAC-SHA256 (a few microseconds) instead of a
signature verification. The session id is part of what is authenticated, so an
authenticator made for one session does not verify in another. See docs/protocol.md.
"""

from __future__ import annotations

import hmac
from functools import lru_cache

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    NoEncryption,
    PrivateFormat,
    PublicFormat,
)

MAC_INFO = b"parley relay command auth v1"


def derive_mac_key(own: X25519PrivateKey, peer_public: bytes, session_id: bytes) -> bytes:
    """The MAC key for one queue key in one session (ValueError for a bad public key)."""
    shared = own.exchange(X25519PublicKey.from_public_bytes(peer_public))
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=session_id, info=MAC_INFO).derive(shared)


def authenticator(mac_key: bytes, session_id: bytes, signed: bytes) -> bytes:
    return hmac.digest(mac_key, session_id + signed, "sha256")


def verify(mac_key: bytes, session_id: bytes, signed: bytes, auth: bytes) -> bool:
    return hmac.compare_digest(authenticator(mac_key, session_id, signed), auth)


class AuthKey:
    """An X25519 key that authenticates commands for a queue, with its public half cached."""

    __slots__ = ("private", "public")

    def __init__(self, private: X25519PrivateKey) -> None:
        self.private = private
        self.public = private.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)

    @classmethod
    def generate(cls) -> AuthKey:
        return cls(X25519PrivateKey.generate())

    @classmethod
    def from_bytes(cls, raw: bytes) -> AuthKey:
        return _auth_key(raw)

    def to_bytes(self) -> bytes:
        return self.private.private_bytes(Encoding.Raw, PrivateFormat.Raw, NoEncryption())


@lru_cache(maxsize=4096)
def _auth_key(raw: bytes) -> AuthKey:
    """Keys are loaded from stored rows for every command: keep the recent ones (loading
    computes the public half, an X25519 operation)."""
    return AuthKey(X25519PrivateKey.from_private_bytes(raw))

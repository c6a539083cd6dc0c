"""The per-queue end-to-end box: NaCl crypto_box (X25519 + XSalsa20-Poly1305).

Layout of a box: nonce (24 random bytes) || Poly1305 tag (16) || XSalsa20 ciphertext of the
plaintext padded to `pad_to`. Every box made with the same `pad_to` has `pad_to + 40` bytes.
"""

from functools import lru_cache
from typing import NamedTuple

import nacl.exceptions
import nacl.public
import nacl.utils

from parley.crypto.errors import CryptoError, DecryptError
from parley.crypto.padding import LENGTH_SIZE, pad, unpad

KEY_SIZE = 32
NONCE_SIZE = nacl.public.Box.NONCE_SIZE
OVERHEAD = NONCE_SIZE + 16


class BoxKeyPair(NamedTuple):
    private: bytes
    public: bytes

    def __repr__(self) -> str:
        return f"BoxKeyPair(public={self.public.hex()})"


def generate_box_keypair() -> BoxKeyPair:
    """Return a fresh X25519 key pair as raw 32-byte keys."""
    private = nacl.public.PrivateKey.generate()
    return BoxKeyPair(bytes(private), bytes(private.public_key))


def box_size(pad_to: int) -> int:
    """Length of every box made with this `pad_to`."""
    return pad_to + OVERHEAD


class QueueBox:
    """A box between our private key and the peer's public key; shared key computed once."""

    __slots__ = ("_box",)

    def __init__(self, own_private: bytes, peer_public: bytes) -> None:
        if len(own_private) != KEY_SIZE or len(peer_public) != KEY_SIZE:
            raise CryptoError(f"box keys must be {KEY_SIZE} bytes")
        try:
            self._box = nacl.public.Box(
                nacl.public.PrivateKey(own_private), nacl.public.PublicKey(peer_public)
            )
        except nacl.exceptions.CryptoError as e:
            raise CryptoError("cannot compute the box shared key") from e

    def __repr__(self) -> str:
        return "QueueBox(<keys>)"

    def encrypt(self, plaintext: bytes, pad_to: int) -> bytes:
        """Pad `plaintext` to `pad_to` bytes and box it under a fresh random nonce."""
        nonce = nacl.utils.random(NONCE_SIZE)
        return bytes(self._box.encrypt(pad(plaintext, pad_to), nonce))

    def decrypt(self, data: bytes) -> bytes:
        """Open a box and return the unpadded plaintext; raise DecryptError on any failure."""
        if len(data) < OVERHEAD + LENGTH_SIZE:
            raise DecryptError("box is too short")
        try:
            padded = self._box.decrypt(bytes(data))
        except nacl.exceptions.CryptoError as e:
            raise DecryptError("box authentication failed") from e
        try:
            return unpad(padded)
        except CryptoError as e:
            raise DecryptError("box holds badly padded data") from e


@lru_cache(maxsize=4096)
def queue_box(own_private: bytes, peer_public: bytes) -> QueueBox:
    """The `QueueBox` of a key pair, kept for the next message of the same queue: the
    shared key costs two X25519 operations, far more than boxing a message."""
    return QueueBox(own_private, peer_public)

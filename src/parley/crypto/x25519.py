"""Raw 32-byte X25519 keys: generation and Diffie-Hellman, with errors as CryptoError."""

from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey

from parley.crypto.errors import CryptoError

KEY_SIZE = 32


def generate_keypair() -> tuple[bytes, bytes]:
    """Return a fresh (private, public) pair of raw 32-byte keys."""
    private = X25519PrivateKey.generate()
    return private.private_bytes_raw(), private.public_key().public_bytes_raw()


def public_key(private: bytes) -> bytes:
    """Return the raw public key of a raw private key."""
    _check(private, "private")
    return X25519PrivateKey.from_private_bytes(private).public_key().public_bytes_raw()


def dh(private: bytes, public: bytes) -> bytes:
    """Return the 32-byte X25519 shared secret; raise CryptoError for bad or low-order keys."""
    _check(private, "private")
    _check(public, "public")
    try:
        return X25519PrivateKey.from_private_bytes(private).exchange(
            X25519PublicKey.from_public_bytes(public)
        )
    except ValueError as e:  # an all-zero result: the peer key is of low order
        raise CryptoError("X25519 agreement failed: unusable public key") from e


def _check(key: bytes, kind: str) -> None:
    if len(key) != KEY_SIZE:
        raise CryptoError(f"X25519 {kind} key must be {KEY_SIZE} bytes, got {len(key)}")

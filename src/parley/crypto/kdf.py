"""Key derivation for X3DH and the Double Ratchet: HKDF and the HMAC chain step."""

import hmac

from cryptography.hazmat.primitives.hashes import SHA256, SHA512, HashAlgorithm
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

ROOT_INFO = b"parley ratchet root v1"
MESSAGE_INFO = b"parley ratchet message v1"
KEY_SIZE = 32
AEAD_NONCE_SIZE = 12


def hkdf(algorithm: HashAlgorithm, ikm: bytes, salt: bytes | None, info: bytes, n: int) -> bytes:
    """HKDF (RFC 5869); a None salt means a zero-filled salt of the hash length."""
    return HKDF(algorithm=algorithm, length=n, salt=salt, info=info).derive(ikm)


def kdf_rk(rk: bytes, dh_out: bytes) -> tuple[bytes, bytes, bytes]:
    """KDF_RK_HE: HKDF-SHA512(salt=rk, ikm=dh_out) -> (root key, chain key, next header key)."""
    out = hkdf(SHA512(), dh_out, rk, ROOT_INFO, 3 * KEY_SIZE)
    return out[:KEY_SIZE], out[KEY_SIZE : 2 * KEY_SIZE], out[2 * KEY_SIZE :]


def kdf_ck(ck: bytes) -> tuple[bytes, bytes]:
    """KDF_CK: (next chain key, message key) = (HMAC-SHA256(ck, 0x02), HMAC-SHA256(ck, 0x01))."""
    return hmac.digest(ck, b"\x02", "sha256"), hmac.digest(ck, b"\x01", "sha256")


def message_aead_key(mk: bytes) -> tuple[bytes, bytes]:
    """Expand a message key into an AES-256-GCM key and nonce (a message key is used once)."""
    out = hkdf(SHA256(), mk, None, MESSAGE_INFO, KEY_SIZE + AEAD_NONCE_SIZE)
    return out[:KEY_SIZE], out[KEY_SIZE:]

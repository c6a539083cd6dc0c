"""The Double Ratchet message header and its encryption under a header key.

Plain header (40 bytes): sender's ratchet public key (32) || PN (4, big-endian) || N (4).
It is padded to HEADER_PADDED_SIZE (room for later fields without changing message sizes),
then sealed with AES-256-GCM: random nonce (12) || ciphertext (64) || tag (16) = 92 bytes.
Header keys encrypt many headers, hence the random nonce.
"""

import os
import struct
from typing import NamedTuple

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from parley.crypto.errors import PaddingError
from parley.crypto.padding import pad, unpad

_PLAIN = struct.Struct(">32sII")
HEADER_PADDED_SIZE = 64
NONCE_SIZE = 12
TAG_SIZE = 16
ENCRYPTED_HEADER_SIZE = NONCE_SIZE + HEADER_PADDED_SIZE + TAG_SIZE


class Header(NamedTuple):
    dh: bytes  # sender's current ratchet public key
    pn: int  # number of messages in the sender's previous sending chain
    n: int  # number of this message in the sender's current sending chain


def encrypt_header(hk: bytes, header: Header, ad: bytes) -> bytes:
    nonce = os.urandom(NONCE_SIZE)
    plain = pad(_PLAIN.pack(header.dh, header.pn, header.n), HEADER_PADDED_SIZE)
    return nonce + AESGCM(hk).encrypt(nonce, plain, ad)


def decrypt_header(hk: bytes, encrypted: bytes, ad: bytes) -> Header | None:
    """The header, or None when `encrypted` is not an authentic header under `hk`."""
    if len(encrypted) != ENCRYPTED_HEADER_SIZE:
        return None
    try:
        plain = unpad(AESGCM(hk).decrypt(encrypted[:NONCE_SIZE], encrypted[NONCE_SIZE:], ad))
    except (InvalidTag, PaddingError):
        return None
    if len(plain) != _PLAIN.size:
        return None
    return Header(*_PLAIN.unpack(plain))

"""The Double Ratchet with header encryption (Signal's spec, section 4), as pure functions.

Roles: the joiner is Signal's "Alice" (knows the initiator's ratchet key, may send first);
the initiator is "Bob" (must receive first). Bob's initial ratchet key pair is the
initiator's second X3DH key, so no extra key has to travel.

`encrypt` and `decrypt` never change the state they are given; they return a new state,
which the caller persists only after the whole operation succeeded.

Message layout: encrypted header (92 bytes, see `header`) || AES-256-GCM ciphertext of the
plaintext padded to `pad_to` (pad_to bytes) || tag (16). The body's associated data is
AD || encrypted header; the header's is AD.
"""

from __future__ import annotations

import msgspec
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from parley.crypto import skipped, x25519
from parley.crypto.errors import (
    CryptoError,
    DecryptError,
    DuplicateMessage,
    RatchetNotReady,
    TooManySkipped,
)
from parley.crypto.header import (
    ENCRYPTED_HEADER_SIZE,
    TAG_SIZE,
    Header,
    decrypt_header,
    encrypt_header,
)
from parley.crypto.kdf import kdf_ck, kdf_rk, message_aead_key
from parley.crypto.padding import LENGTH_SIZE, pad, unpad
from parley.crypto.skipped import SkippedChain
from parley.crypto.x3dh import RatchetInitParams, X3DHKeyPair, X3DHPublic

MAX_SKIP = 1000
MAX_SKIPPED_KEYS = skipped.MAX_SKIPPED_KEYS
_MAX_N = 0xFFFFFFFF


class RatchetState(msgspec.Struct, frozen=True, kw_only=True):
    """Ratchet state; field names follow Signal's spec. Never mutated, only replaced."""

    ad: bytes
    rk: bytes
    dhs_private: bytes
    dhs_public: bytes
    dhr: bytes | None
    cks: bytes | None
    ckr: bytes | None
    ns: int
    nr: int
    pn: int
    hks: bytes | None
    hkr: bytes | None
    nhks: bytes
    nhkr: bytes
    skipped: tuple[SkippedChain, ...] = ()

    def to_bytes(self) -> bytes:
        return _ENCODER.encode(self)

    @classmethod
    def from_bytes(cls, data: bytes) -> RatchetState:
        try:
            return _DECODER.decode(data)
        except msgspec.MsgspecError as e:
            raise CryptoError("corrupt ratchet state") from e

    @property
    def can_send(self) -> bool:
        return self.cks is not None and self.hks is not None

    def __repr__(self) -> str:
        return f"RatchetState(ns={self.ns}, nr={self.nr}, pn={self.pn}, <secret>)"


_ENCODER = msgspec.msgpack.Encoder()
_DECODER = msgspec.msgpack.Decoder(RatchetState)


def message_size(pad_to: int) -> int:
    """Length of every message encrypted with this `pad_to`."""
    return ENCRYPTED_HEADER_SIZE + pad_to + TAG_SIZE


def init_joiner(params: RatchetInitParams, peer: X3DHPublic) -> RatchetState:
    """RatchetInitAliceHE: the joiner, who may send at once."""
    dhs_private, dhs_public = x25519.generate_keypair()
    rk, cks, nhks = kdf_rk(params.root_key, x25519.dh(dhs_private, peer.key2))
    return RatchetState(
        ad=params.associated_data,
        rk=rk,
        dhs_private=dhs_private,
        dhs_public=dhs_public,
        dhr=peer.key2,
        cks=cks,
        ckr=None,
        ns=0,
        nr=0,
        pn=0,
        hks=params.joiner_header_key,
        hkr=None,
        nhks=nhks,
        nhkr=params.initiator_next_header_key,
    )


def init_initiator(params: RatchetInitParams, own: X3DHKeyPair) -> RatchetState:
    """RatchetInitBobHE: the initiator, whose ratchet key pair is its second X3DH key."""
    return RatchetState(
        ad=params.associated_data,
        rk=params.root_key,
        dhs_private=own.key2,
        dhs_public=x25519.public_key(own.key2),
        dhr=None,
        cks=None,
        ckr=None,
        ns=0,
        nr=0,
        pn=0,
        hks=None,
        hkr=None,
        nhks=params.initiator_next_header_key,
        nhkr=params.joiner_header_key,
    )


def encrypt(state: RatchetState, plaintext: bytes, pad_to: int) -> tuple[RatchetState, bytes]:
    """Encrypt `plaintext` padded to `pad_to`; return the new state and the message."""
    if state.cks is None or state.hks is None:
        raise RatchetNotReady("the initiator cannot send before it has received a message")
    if state.ns > _MAX_N:
        raise CryptoError("sending chain is exhausted")
    body = pad(plaintext, pad_to)
    cks, mk = kdf_ck(state.cks)
    enc_header = encrypt_header(state.hks, Header(state.dhs_public, state.pn, state.ns), state.ad)
    key, nonce = message_aead_key(mk)
    ciphertext = AESGCM(key).encrypt(nonce, body, state.ad + enc_header)
    return msgspec.structs.replace(state, cks=cks, ns=state.ns + 1), enc_header + ciphertext


def decrypt(state: RatchetState, message: bytes) -> tuple[RatchetState, bytes]:
    """Decrypt a message; return the new state and the unpadded plaintext.

    Raises DecryptError, DuplicateMessage or TooManySkipped; `state` is never changed.
    """
    if len(message) < message_size(LENGTH_SIZE):
        raise DecryptError("message is too short")
    enc_header = message[:ENCRYPTED_HEADER_SIZE]
    body = message[ENCRYPTED_HEADER_SIZE:]
    if state.hkr is not None:
        header = decrypt_header(state.hkr, enc_header, state.ad)
        if header is not None:
            if header.n < state.nr:
                return _decrypt_skipped(state, state.hkr, header.n, enc_header, body)
            return _decrypt_in_chain(state, header, enc_header, body)
    header = decrypt_header(state.nhkr, enc_header, state.ad)
    if header is not None:
        return _decrypt_after_turn(state, header, enc_header, body)
    for chain in state.skipped:
        if chain.header_key != state.hkr:
            header = decrypt_header(chain.header_key, enc_header, state.ad)
            if header is not None:
                return _decrypt_skipped(state, chain.header_key, header.n, enc_header, body)
    raise DecryptError("no known header key opens this message")


def _decrypt_skipped(
    state: RatchetState, hk: bytes, n: int, enc_header: bytes, body: bytes
) -> tuple[RatchetState, bytes]:
    for index, chain in enumerate(state.skipped):
        if chain.header_key == hk and n in chain.keys:
            plaintext = _open_body(state, chain.keys[n], enc_header, body)
            return msgspec.structs.replace(
                state, skipped=skipped.remove(state.skipped, index, n)
            ), plaintext
    raise DuplicateMessage(f"message {n} of this chain was already received")


def _decrypt_in_chain(
    state: RatchetState, header: Header, enc_header: bytes, body: bytes
) -> tuple[RatchetState, bytes]:
    if state.ckr is None or state.hkr is None:  # both are set by the first DH ratchet step
        raise CryptoError("corrupt ratchet state: receiving header key without chain key")
    ckr, nr, new_skipped = _skip(state.ckr, state.nr, header.n)
    ckr, mk = kdf_ck(ckr)
    plaintext = _open_body(state, mk, enc_header, body)
    store = skipped.add(state.skipped, state.hkr, new_skipped)
    return msgspec.structs.replace(state, ckr=ckr, nr=nr + 1, skipped=store), plaintext


def _decrypt_after_turn(
    state: RatchetState, header: Header, enc_header: bytes, body: bytes
) -> tuple[RatchetState, bytes]:
    """SkipMessageKeysHE(PN), DHRatchetHE, SkipMessageKeysHE(N), then decrypt."""
    store = state.skipped
    if state.ckr is not None and state.hkr is not None:
        _, _, old_skipped = _skip(state.ckr, state.nr, header.pn)
        store = skipped.add(store, state.hkr, old_skipped)
    elif header.pn > MAX_SKIP:
        raise TooManySkipped(f"previous chain would skip {header.pn} messages")
    try:
        rk, ckr, nhkr = kdf_rk(state.rk, x25519.dh(state.dhs_private, header.dh))
        dhs_private, dhs_public = x25519.generate_keypair()
        rk, cks, nhks = kdf_rk(rk, x25519.dh(dhs_private, header.dh))
    except CryptoError as e:
        raise DecryptError("peer ratchet key is unusable") from e
    ckr, nr, new_skipped = _skip(ckr, 0, header.n)
    ckr, mk = kdf_ck(ckr)
    plaintext = _open_body(state, mk, enc_header, body)
    new_state = msgspec.structs.replace(
        state,
        rk=rk,
        dhs_private=dhs_private,
        dhs_public=dhs_public,
        dhr=header.dh,
        cks=cks,
        ckr=ckr,
        ns=0,
        nr=nr + 1,
        pn=state.ns,
        hks=state.nhks,
        hkr=state.nhkr,
        nhks=nhks,
        nhkr=nhkr,
        skipped=skipped.add(store, state.nhkr, new_skipped),
    )
    return new_state, plaintext


def _skip(ck: bytes, nr: int, until: int) -> tuple[bytes, int, dict[int, bytes]]:
    """Advance a receiving chain from `nr` to `until`, collecting the skipped message keys."""
    if until - nr > MAX_SKIP:
        raise TooManySkipped(f"would skip {until - nr} messages (limit {MAX_SKIP})")
    keys: dict[int, bytes] = {}
    while nr < until:
        ck, keys[nr] = kdf_ck(ck)
        nr += 1
    return ck, nr, keys


def _open_body(state: RatchetState, mk: bytes, enc_header: bytes, body: bytes) -> bytes:
    key, nonce = message_aead_key(mk)
    try:
        return unpad(AESGCM(key).decrypt(nonce, body, state.ad + enc_header))
    except (InvalidTag, CryptoError) as e:
        raise DecryptError("message body failed authentication") from e

import pytest
from hypothesis import given
from hypothesis import strategies as st

from parley.crypto import (
    CryptoError,
    DecryptError,
    PaddingError,
    QueueBox,
    box_size,
    generate_box_keypair,
)

PAD = 256
SENDER = generate_box_keypair()
RECIPIENT = generate_box_keypair()


def boxes() -> tuple[QueueBox, QueueBox]:
    return (
        QueueBox(SENDER.private, RECIPIENT.public),
        QueueBox(RECIPIENT.private, SENDER.public),
    )


def test_keypair_is_raw_32_bytes() -> None:
    pair = generate_box_keypair()
    assert len(pair.private) == 32 and len(pair.public) == 32
    assert pair.private.hex() not in repr(pair)


@given(st.binary(max_size=PAD - 2))
def test_round_trip_both_directions(plaintext: bytes) -> None:
    a, b = boxes()
    assert b.decrypt(a.encrypt(plaintext, PAD)) == plaintext
    assert a.decrypt(b.encrypt(plaintext, PAD)) == plaintext


def test_equal_lengths_and_fresh_nonces() -> None:
    a, _ = boxes()
    sealed = [a.encrypt(b"x" * n, PAD) for n in (0, 1, 100, PAD - 2)]
    assert {len(s) for s in sealed} == {box_size(PAD)}
    assert len({s[:24] for s in sealed}) == len(sealed)
    assert a.encrypt(b"same", PAD) != a.encrypt(b"same", PAD)


def test_too_long_plaintext() -> None:
    a, _ = boxes()
    with pytest.raises(PaddingError):
        a.encrypt(bytes(PAD - 1), PAD)


@pytest.mark.parametrize("position", [0, 23, 24, 39, 40, box_size(PAD) - 1])
def test_tampering_rejected(position: int) -> None:
    a, b = boxes()
    sealed = bytearray(a.encrypt(b"hello", PAD))
    sealed[position] ^= 0x01
    with pytest.raises(DecryptError):
        b.decrypt(bytes(sealed))


def test_truncation_rejected() -> None:
    a, b = boxes()
    sealed = a.encrypt(b"hello", PAD)
    for cut in (1, 16, len(sealed) - 1, len(sealed)):
        with pytest.raises(DecryptError):
            b.decrypt(sealed[:-cut])


def test_wrong_key_rejected() -> None:
    a, _ = boxes()
    stranger = generate_box_keypair()
    with pytest.raises(DecryptError):
        QueueBox(stranger.private, SENDER.public).decrypt(a.encrypt(b"hello", PAD))


def test_bad_keys_rejected() -> None:
    with pytest.raises(CryptoError):
        QueueBox(SENDER.private, b"short")
    with pytest.raises(CryptoError):
        QueueBox(SENDER.private, bytes(32))  # low-order point


@given(st.binary(max_size=2 * PAD))
def test_garbage_raises_only_crypto_error(data: bytes) -> None:
    _, b = boxes()
    with pytest.raises(CryptoError):
        b.decrypt(data)

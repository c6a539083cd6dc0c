import contextlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from parley.crypto import CryptoError, PaddingError, pad, unpad


@given(st.binary(max_size=3000), st.integers(min_value=0, max_value=100))
def test_round_trip_has_exact_size(data: bytes, extra: int) -> None:
    size = len(data) + 2 + extra
    padded = pad(data, size)
    assert len(padded) == size
    assert unpad(padded) == data


def test_layout() -> None:
    assert pad(b"abc", 8) == b"\x00\x03abc\x00\x00\x00"


def test_exact_fit_and_empty() -> None:
    assert unpad(pad(b"xy", 4)) == b"xy"
    assert unpad(pad(b"", 2)) == b""


@pytest.mark.parametrize(("length", "size"), [(3, 4), (0, 1), (10, 0), (0x10000, 0x20000)])
def test_does_not_fit(length: int, size: int) -> None:
    with pytest.raises(PaddingError):
        pad(bytes(length), size)


def test_padding_error_is_value_and_crypto_error() -> None:
    assert issubclass(PaddingError, ValueError)
    assert issubclass(PaddingError, CryptoError)


@pytest.mark.parametrize("padded", [b"", b"\x00", b"\x00\x03ab", b"\xff\xff" + bytes(100)])
def test_bad_length(padded: bytes) -> None:
    with pytest.raises(PaddingError):
        unpad(padded)


@given(st.binary())
def test_unpad_garbage_raises_only_padding_error(padded: bytes) -> None:
    with contextlib.suppress(PaddingError):
        unpad(padded)

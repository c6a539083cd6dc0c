"""Fixed-size padding: a 2-byte big-endian length, the data, then zero bytes up to `size`.

Padding hides the length of what is encrypted: every padded block has exactly `size` bytes.
"""

from parley.crypto.errors import PaddingError

LENGTH_SIZE = 2
MAX_DATA_SIZE = 0xFFFF

__all__ = ["LENGTH_SIZE", "MAX_DATA_SIZE", "PaddingError", "pad", "unpad"]


def pad(data: bytes, size: int) -> bytes:
    """Return `data` padded to exactly `size` bytes, or raise PaddingError if it doesn't fit."""
    n = len(data)
    if n > MAX_DATA_SIZE or n + LENGTH_SIZE > size:
        raise PaddingError(f"{n} bytes do not fit in a padded block of {size} bytes")
    return n.to_bytes(LENGTH_SIZE, "big") + data + bytes(size - n - LENGTH_SIZE)


def unpad(padded: bytes) -> bytes:
    """Return the data inside a padded block; raise PaddingError if the length is impossible."""
    if len(padded) < LENGTH_SIZE:
        raise PaddingError("padded block is shorter than its length prefix")
    n = int.from_bytes(padded[:LENGTH_SIZE], "big")
    if n > len(padded) - LENGTH_SIZE:
        raise PaddingError(f"padded block claims {n} bytes but holds {len(padded) - 2}")
    return padded[LENGTH_SIZE : LENGTH_SIZE + n]

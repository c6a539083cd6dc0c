"""Errors raised by parley.crypto. Every one of them is a `CryptoError`."""


class CryptoError(Exception):
    """Base class: something cryptographic failed (bad key, bad input, bad state)."""


class PaddingError(CryptoError, ValueError):
    """Data does not fit the padded size, or a padded block carries an impossible length."""


class DecryptError(CryptoError):
    """A message or box could not be authenticated: tampered, truncated, wrong keys, garbage."""


class DuplicateMessage(CryptoError):
    """The header is authentic but its message key was already used (or discarded)."""


class TooManySkipped(CryptoError):
    """Decrypting would skip more than MAX_SKIP message keys in one receiving chain."""


class RatchetNotReady(CryptoError):
    """The ratchet has no sending chain yet: the initiator must receive before it sends."""

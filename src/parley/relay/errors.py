"""What can go wrong talking to a relay, split the way the agent needs it.

Temporary errors (the network, a timeout, a relay that is restarting or overloaded) are
worth retrying, forever, with backoff. Permanent errors (a bad key, a queue that does not
exist, a full queue, a message too large, a relay whose identity does not match) are not:
retrying cannot change the answer.
"""

from __future__ import annotations

from parley.protocol.relay import TEMPORARY_ERRORS, ErrorCode


class RelayError(Exception):
    temporary: bool = False


class TemporaryRelayError(RelayError):
    """Network failure, timeout, or the relay asked to be retried later."""

    temporary = True

    def __init__(self, reason: str, code: ErrorCode | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.code = code


class PermanentRelayError(RelayError):
    """The relay refused the command and would refuse it again."""

    def __init__(self, code: ErrorCode | None, reason: str = "") -> None:
        super().__init__(reason or (code.value if code else "permanent relay error"))
        self.code = code
        self.reason = reason or (code.value if code else "")


class RelayIdentityMismatch(PermanentRelayError):
    """The relay's certificate does not match the fingerprint in its address."""

    def __init__(self, reason: str) -> None:
        super().__init__(None, reason)


def error_from_code(code: ErrorCode) -> RelayError:
    if code in TEMPORARY_ERRORS:
        return TemporaryRelayError(f"relay error {code.value}", code)
    return PermanentRelayError(code)

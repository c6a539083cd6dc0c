"""Relay addresses: `parley://<fingerprint>@host[:port]`."""

from __future__ import annotations

import base64
import hashlib
import re

import msgspec

DEFAULT_PORT = 5223
_ADDRESS = re.compile(
    r"^parley://(?P<fp>[A-Za-z0-9_-]{43})@(?P<host>\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9.-]+)"
    r"(?::(?P<port>[0-9]{1,5}))?/?$"
)


class AddressError(ValueError):
    """Not a valid parley relay address."""


class RelayAddress(msgspec.Struct, frozen=True):
    fingerprint: str
    host: str
    port: int = DEFAULT_PORT

    def __str__(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        port = "" if self.port == DEFAULT_PORT else f":{self.port}"
        return f"parley://{self.fingerprint}@{host}{port}"

    @classmethod
    def parse(cls, text: str) -> RelayAddress:
        m = _ADDRESS.match(text.strip())
        if m is None:
            raise AddressError(f"not a relay address (parley://FINGERPRINT@host[:port]): {text!r}")
        port = int(m["port"]) if m["port"] else DEFAULT_PORT
        if not 0 < port < 65536:
            raise AddressError(f"bad port in {text!r}")
        return cls(m["fp"], m["host"].strip("[]"), port)


def fingerprint(ca_certificate_der: bytes) -> str:
    """base64url (no padding) of the SHA-256 of the relay's CA certificate."""
    digest = hashlib.sha256(ca_certificate_der).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()

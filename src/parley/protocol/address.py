"""Relay addresses: `parley://<fingerprint>[:<password>]@host[:port]`.

The password is a relay's creation password (needed to make queues there, if the relay
asks for one), percent-encoded. It is never part of an address's canonical spelling
(`str()`), which is what agents store, compare and put into invitation links: whoever
joins a connection sends to the relay and does not need to make queues there."""

from __future__ import annotations

import base64
import hashlib
import re
from urllib.parse import quote, unquote

import msgspec

DEFAULT_PORT = 5223
_ADDRESS = re.compile(
    r"^parley://(?P<fp>[A-Za-z0-9_-]{43})(?::(?P<pw>[^@/\s]+))?@(?P<host>\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9.-]+)"
    r"(?::(?P<port>[0-9]{1,5}))?/?$"
)


class AddressError(ValueError):
    """Not a valid parley relay address."""


class RelayAddress(msgspec.Struct, frozen=True):
    fingerprint: str
    host: str
    port: int = DEFAULT_PORT
    password: str = ""  # the relay's creation password, if it has one

    def __str__(self) -> str:
        """The canonical spelling: without the password."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        port = "" if self.port == DEFAULT_PORT else f":{self.port}"
        return f"parley://{self.fingerprint}@{host}{port}"

    def with_password(self) -> str:
        """The address as an operator gives it to its users (with the password, if any)."""
        if not self.password:
            return str(self)
        canonical = str(self)
        at = len("parley://") + len(self.fingerprint)
        return canonical[:at] + ":" + quote(self.password, safe="") + canonical[at:]

    @classmethod
    def parse(cls, text: str) -> RelayAddress:
        m = _ADDRESS.match(text.strip())
        if m is None:
            raise AddressError(
                f"not a relay address (parley://FINGERPRINT[:PASSWORD]@host[:port]): {text!r}"
            )
        port = int(m["port"]) if m["port"] else DEFAULT_PORT
        if not 0 < port < 65536:
            raise AddressError(f"bad port in {text!r}")
        return cls(m["fp"], m["host"].strip("[]"), port, unquote(m["pw"] or ""))


def fingerprint(ca_certificate_der: bytes) -> str:
    """base64url (no padding) of the SHA-256 of the relay's CA certificate."""
    digest = hashlib.sha256(ca_certificate_der).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()

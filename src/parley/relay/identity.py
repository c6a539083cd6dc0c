"""The relay's identity: a self-generated CA, a TLS certificate it signs, and their files.

The CA certificate's hash is the fingerprint in the relay's address, so the identity must
survive restarts: it is created once in the store directory and loaded afterwards.
Private key files are written 0600.
"""

from __future__ import annotations

import datetime
import os
import ssl
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519
from cryptography.x509.oid import NameOID

from parley.protocol.address import fingerprint
from parley.store import private_directory

CA_KEY = "ca.key"
CA_CERT = "ca.crt"
SERVER_KEY = "server.key"
SERVER_CERT = "server.crt"
_VALIDITY = datetime.timedelta(days=3650)


class IdentityError(Exception):
    """The relay's certificate does not match what the client pinned."""


@dataclass(frozen=True)
class RelayIdentity:
    directory: Path
    ca_der: bytes

    @property
    def fingerprint(self) -> str:
        return fingerprint(self.ca_der)

    def server_context(self) -> ssl.SSLContext:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.minimum_version = ssl.TLSVersion.TLSv1_3
        ctx.load_cert_chain(self.directory / SERVER_CERT, self.directory / SERVER_KEY)
        return ctx


def _write_private(path: Path, data: bytes) -> None:
    fd = os.open(path, os.O_CREAT | os.O_WRONLY | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(data)


def _certificate(
    subject: str,
    public_key: ed25519.Ed25519PublicKey,
    issuer: str,
    signer: ed25519.Ed25519PrivateKey,
    is_ca: bool,
) -> x509.Certificate:
    now = datetime.datetime.now(datetime.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)]))
        .issuer_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, issuer)]))
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + _VALIDITY)
        .add_extension(x509.BasicConstraints(ca=is_ca, path_length=0 if is_ca else None), True)
    )
    return builder.sign(signer, None)


def load_or_create_identity(directory: Path) -> RelayIdentity:
    """Load the identity in `directory`, creating it (and the directory) on first start."""
    private_directory(directory)
    ca_cert_path = directory / CA_CERT
    if not ca_cert_path.exists():
        ca_key = ed25519.Ed25519PrivateKey.generate()
        ca = _certificate("parley relay CA", ca_key.public_key(), "parley relay CA", ca_key, True)
        server_key = ed25519.Ed25519PrivateKey.generate()
        server = _certificate(
            "parley relay", server_key.public_key(), "parley relay CA", ca_key, False
        )
        pem = serialization.Encoding.PEM
        pkcs8 = serialization.PrivateFormat.PKCS8
        none = serialization.NoEncryption()
        _write_private(directory / CA_KEY, ca_key.private_bytes(pem, pkcs8, none))
        _write_private(directory / SERVER_KEY, server_key.private_bytes(pem, pkcs8, none))
        (directory / SERVER_CERT).write_bytes(server.public_bytes(pem))
        # the CA certificate is written last: its presence marks a complete identity
        tmp = directory / (CA_CERT + ".tmp")
        tmp.write_bytes(ca.public_bytes(pem))
        tmp.replace(ca_cert_path)
    ca = x509.load_pem_x509_certificate(ca_cert_path.read_bytes())
    return RelayIdentity(directory, ca.public_bytes(serialization.Encoding.DER))


def verify_relay_certificate(expected_fingerprint: str, ca_der: bytes, leaf_der: bytes) -> None:
    """Check that `ca_der` is the pinned CA and that it signed the TLS certificate `leaf_der`.

    The TLS handshake already proved that the relay holds the leaf's private key.
    """
    if fingerprint(ca_der) != expected_fingerprint:
        raise IdentityError("relay CA certificate does not match the address fingerprint")
    try:
        ca = x509.load_der_x509_certificate(ca_der)
        leaf = x509.load_der_x509_certificate(leaf_der)
        ca_key = ca.public_key()
        if not isinstance(ca_key, ed25519.Ed25519PublicKey):
            raise IdentityError("relay CA key is not Ed25519")
        ca_key.verify(leaf.signature, leaf.tbs_certificate_bytes)
    except InvalidSignature as e:
        raise IdentityError("relay TLS certificate is not signed by the pinned CA") from e
    except ValueError as e:
        raise IdentityError(f"unreadable relay certificate: {e}") from e
    now = datetime.datetime.now(datetime.UTC)
    if not leaf.not_valid_before_utc <= now <= leaf.not_valid_after_utc:
        raise IdentityError("relay TLS certificate is expired or not yet valid")


def client_context() -> ssl.SSLContext:
    """TLS 1.3 without CA verification: the relay is checked by fingerprint instead."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_3
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    return ctx

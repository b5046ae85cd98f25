"""Generate throw-away X.509 certificates for tests (``cryptography``); no files unless asked.

Everything a certificate test needs in three calls::

    from tests.certgen import make_ca, make_cert, write_pem

    ca = make_ca()                                          # self-signed CA
    leaf = make_cert(["example.com", "*.example.com"], issuer=ca)
    cert_file, key_file = write_pem(tmp_path, leaf, chain=[ca])   # leaf first, key mode 0600

    make_cert(["example.com"])                              # self-signed leaf, valid 90 days
    make_cert(["example.com"], not_after=days(-1))          # expired yesterday
    make_cert(["example.com"], not_before=days(2))          # not valid for two more days
    make_cert(["例子.example.com"])                          # SAN xn--fsqu00a.example.com
    make_cert(san=False, cn="example.com")                  # CN only, no SubjectAltName
    write_pem(tmp_path, leaf, key=new_key())                # key that does not match the leaf
    leaf.cert_pem, leaf.key_pem, leaf.fingerprint           # PEM text and ListCname fingerprint

Keys are EC P-256 by default (milliseconds to generate); pass ``key_kind="rsa"`` for RSA-2048.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Literal

import idna
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.asymmetric.types import CertificateIssuerPrivateKeyTypes
from cryptography.x509.oid import NameOID

KeyKind = Literal["ec", "rsa"]

_VALIDITY = timedelta(days=90)


def days(n: float) -> datetime:
    """The current UTC time plus ``n`` days (negative for the past)."""
    return datetime.now(UTC) + timedelta(days=n)


def new_key(kind: KeyKind = "ec") -> CertificateIssuerPrivateKeyTypes:
    """A fresh private key: EC P-256 (``"ec"``) or RSA-2048 (``"rsa"``)."""
    if kind == "rsa":
        return rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return ec.generate_private_key(ec.SECP256R1())


def key_pem(key: CertificateIssuerPrivateKeyTypes) -> str:
    """Unencrypted PKCS#8 PEM of ``key``."""
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode("ascii")


@dataclass(frozen=True)
class Issued:
    """A certificate with its private key.

    Attributes:
        cert: the certificate.
        key: its private key.
    """

    cert: x509.Certificate
    key: CertificateIssuerPrivateKeyTypes

    @property
    def cert_pem(self) -> str:
        """The certificate as PEM text."""
        return self.cert.public_bytes(serialization.Encoding.PEM).decode("ascii")

    @property
    def key_pem(self) -> str:
        """The private key as unencrypted PKCS#8 PEM text."""
        return key_pem(self.key)

    @property
    def fingerprint(self) -> str:
        """SHA-1 of the DER certificate, upper-case colon-hex (the ListCname form)."""
        return self.cert.fingerprint(hashes.SHA1()).hex(":").upper()


def _alabel(name: str) -> str:
    """``name`` with each non-ASCII label IDNA-encoded; ``*`` and ASCII labels kept as given."""
    return ".".join(
        label if label.isascii() else idna.encode(label, uts46=True).decode("ascii")
        for label in name.split(".")
    )


def make_cert(
    names: Sequence[str] = ("example.com",),
    *,
    cn: str | None = None,
    san: bool = True,
    issuer: Issued | None = None,
    ca: bool = False,
    key: CertificateIssuerPrivateKeyTypes | None = None,
    key_kind: KeyKind = "ec",
    not_before: datetime | None = None,
    not_after: datetime | None = None,
) -> Issued:
    """Build a certificate signed by ``issuer`` (self-signed when None).

    Args:
        names: DNS names for the SubjectAltName, U-labels allowed (encoded to A-labels).
        cn: subject CN; defaults to the first name (as given, so a U-label CN stays Unicode).
        san: False leaves the SubjectAltName extension out (CN-only certificate).
        issuer: the signing CA; its subject becomes the issuer name.
        ca: mark the certificate ``BasicConstraints CA:TRUE``.
        key: the certificate's key pair; a new ``key_kind`` key when None.
        key_kind: ``"ec"`` (P-256) or ``"rsa"`` (2048 bits).
        not_before: start of validity (aware); one hour ago when None (or 90 days before
            ``not_after`` when that is earlier, so ``not_after=days(-1)`` just works).
        not_after: end of validity (aware); ``not_before`` + 90 days when None.
    """
    key = key or new_key(key_kind)
    if not_before is None:
        not_before = min(days(-1 / 24), not_after - _VALIDITY) if not_after else days(-1 / 24)
    end = not_after or not_before + _VALIDITY
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn or names[0])])
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer.cert.subject if issuer else subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(end)
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    if san and names:
        dns = [x509.DNSName(_alabel(n)) for n in names]
        builder = builder.add_extension(x509.SubjectAlternativeName(dns), critical=False)
    signer = issuer.key if issuer else key
    return Issued(builder.sign(signer, hashes.SHA256()), key)


def make_ca(name: str = "cname-flow test CA", *, issuer: Issued | None = None) -> Issued:
    """A CA certificate (self-signed root, or an intermediate when ``issuer`` is given)."""
    return make_cert([name], san=False, ca=True, issuer=issuer)


def write_pem(
    directory: Path,
    leaf: Issued,
    *,
    chain: Sequence[Issued] = (),
    key: CertificateIssuerPrivateKeyTypes | None = None,
    cert_name: str = "cert.pem",
    key_name: str = "key.pem",
    key_mode: int = 0o600,
) -> tuple[Path, Path]:
    """Write ``leaf`` then ``chain`` to ``cert_name`` and the key to ``key_name`` in ``directory``.

    Args:
        directory: where to write (e.g. pytest's ``tmp_path``).
        leaf: the first certificate of the file.
        chain: certificates written after the leaf, in this order.
        key: the key to write instead of ``leaf.key`` (e.g. a mismatched one).
        cert_name: certificate file name.
        key_name: key file name.
        key_mode: POSIX mode of the key file.

    Returns:
        ``(cert_file, key_file)``.
    """
    cert_file, key_file = directory / cert_name, directory / key_name
    cert_file.write_text("".join(c.cert_pem for c in (leaf, *chain)))
    key_file.write_text(key_pem(key or leaf.key))
    os.chmod(key_file, key_mode)
    return cert_file, key_file

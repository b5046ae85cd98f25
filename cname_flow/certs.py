"""Certificates: PEM loading, fingerprints, key matching (``cryptography``).

Used by the product (pre-flight before PutCname, verification after) and by the sandbox (to
derive Fingerprint, ValidStartDate and ValidEndDate from an uploaded PEM).
"""

from __future__ import annotations

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric.types import PrivateKeyTypes


def parse_certificate_chain(pem: str | bytes) -> list[x509.Certificate]:
    """Parse every certificate in a PEM bundle, in file order (leaf expected first).

    Raises:
        ValueError: no certificate, or a block that does not parse.
    """
    data = pem.encode() if isinstance(pem, str) else pem
    certs = x509.load_pem_x509_certificates(data)
    if not certs:
        raise ValueError("no PEM certificate found")
    return certs


def load_private_key(pem: str | bytes) -> PrivateKeyTypes:
    """Parse an unencrypted PEM private key.

    Raises:
        ValueError: the data is not an unencrypted PEM private key.
        TypeError: the key is encrypted.
    """
    data = pem.encode() if isinstance(pem, str) else pem
    return serialization.load_pem_private_key(data, password=None)


def sha1_fingerprint(cert: x509.Certificate) -> str:
    """SHA-1 of the DER certificate as upper-case colon-hex, the form ListCname shows."""
    return cert.fingerprint(hashes.SHA1()).hex(":").upper()


def private_key_matches(cert: x509.Certificate, key: PrivateKeyTypes) -> bool:
    """True when ``key`` is the private half of the certificate's public key."""
    spki = serialization.PublicFormat.SubjectPublicKeyInfo
    der = serialization.Encoding.DER
    mine = key.public_key().public_bytes(der, spki)
    return bool(mine == cert.public_key().public_bytes(der, spki))

"""The CAS certificate the default sandbox world holds, so the shipped examples run on it.

``workflows/batch-example.yaml`` and ``workflows/reconcile-example.yaml`` bind
``static.example.com`` with ``cert_id: 4930000-cn-hangzhou`` (the shape of the CAS ids in
Alibaba Cloud's PutCname samples). The default world therefore knows that id: a self-signed
ECDSA P-256 certificate for ``example.com``, ``*.example.com``, ``example.com.cn`` and
``*.example.com.cn``, valid from a day ago for ten years, made once per process (no private key
is kept: the sandbox's CAS only needs the certificate to show its SHA-1 fingerprint and dates in
ListCname, as OSS does for a CAS certificate).
"""

from __future__ import annotations

import functools
from datetime import UTC, datetime, timedelta

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

#: The CAS certificate id the default world knows (the examples' ``cert_id``).
DEMO_CAS_CERT_ID = "4930000-cn-hangzhou"
#: The names the demo certificate covers (RFC 6125 wildcards for one label).
DEMO_CERT_NAMES = ("example.com", "*.example.com", "example.com.cn", "*.example.com.cn")


@functools.cache
def demo_certificate_pem() -> str:
    """The demo certificate as PEM (made on first use, then the same for the process)."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "cname-flow sandbox demo")])
    now = datetime.now(UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name).issuer_name(name).public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(days=1))
        .not_valid_after(now + timedelta(days=3650))
        .add_extension(x509.SubjectAlternativeName(
            [x509.DNSName(n) for n in DEMO_CERT_NAMES]), critical=False)
        .sign(key, hashes.SHA256())
    )
    return cert.public_bytes(serialization.Encoding.PEM).decode("ascii")

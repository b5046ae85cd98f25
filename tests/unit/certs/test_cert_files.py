"""check_certificate at its input boundary (issue 13): what a file is, how big, and certificates
whose extensions cannot be read. Each is a :class:`CertificateError` naming the file.

The helpers that build broken certificates are shared with ``tests/fuzz/test_certs_fuzz.py``.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.x509.oid import NameOID, ObjectIdentifier

from cname_flow.certs import check_certificate
from cname_flow.certs.pem import MAX_PEM_BYTES
from cname_flow.errors import CertificateError
from tests.certgen import Issued, days, make_cert, new_key, write_pem

#: An extension OID no library knows, DER-encoded the same length as SAN's ``2.5.29.17``.
_PLACEHOLDER = ObjectIdentifier("2.5.29.99")
_PLACEHOLDER_DER = b"\x06\x03\x55\x1d\x63"
_SAN_DER = b"\x06\x03\x55\x1d\x11"


def _signed(*extensions: x509.ExtensionType) -> Issued:
    key = new_key()
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "example.com")])
    builder = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
               .public_key(key.public_key()).serial_number(x509.random_serial_number())
               .not_valid_before(days(-1)).not_valid_after(days(60)))
    for ext in extensions:
        builder = builder.add_extension(ext, critical=False)
    return Issued(builder.sign(key, hashes.SHA256()), key)


def malformed_extension_der() -> tuple[bytes, str]:
    """A DER certificate whose BasicConstraints value is not BasicConstraints, and its key PEM."""
    garbage = x509.UnrecognizedExtension(x509.oid.ExtensionOID.BASIC_CONSTRAINTS, b"\x01\x02xx")
    issued = _signed(garbage, x509.SubjectAlternativeName([x509.DNSName("example.com")]))
    return issued.cert.public_bytes(serialization.Encoding.DER), issued.key_pem


def duplicate_extension_der() -> tuple[bytes, str]:
    """A DER certificate carrying SubjectAltName twice (signature broken on purpose), its key."""
    san = x509.SubjectAlternativeName([x509.DNSName("example.com")])
    issued = _signed(san, x509.UnrecognizedExtension(_PLACEHOLDER, b"\x30\x00"))
    der = issued.cert.public_bytes(serialization.Encoding.DER)
    assert der.count(_PLACEHOLDER_DER) == 1
    return der.replace(_PLACEHOLDER_DER, _SAN_DER), issued.key_pem


def der_to_pem(der: bytes) -> bytes:
    """A DER certificate as one PEM block (the library re-encodes; nothing is parsed here)."""
    return x509.load_der_x509_certificate(der).public_bytes(serialization.Encoding.PEM)


def refused(cert_file: Path, key_file: Path) -> str:
    with pytest.raises(CertificateError) as info:
        check_certificate(cert_file, key_file, "example.com")
    return str(info.value)


@pytest.mark.parametrize("which", ["cert", "key"])
def test_dev_zero_should_be_refused_as_not_a_regular_file(tmp_path: Path, which: str) -> None:
    cert_file, key_file = write_pem(tmp_path, make_cert())
    zero = Path("/dev/zero")
    args = (zero, key_file) if which == "cert" else (cert_file, zero)
    text = refused(*args)
    assert "/dev/zero" in text and "not a regular file" in text, text


def test_fifo_should_be_refused_without_blocking(tmp_path: Path) -> None:
    _, key_file = write_pem(tmp_path, make_cert())
    fifo = tmp_path / "cert.fifo"
    os.mkfifo(fifo)
    text = refused(fifo, key_file)
    assert str(fifo) in text and "not a regular file" in text, text


def test_directory_should_be_refused(tmp_path: Path) -> None:
    _, key_file = write_pem(tmp_path, make_cert())
    assert str(tmp_path) in refused(tmp_path, key_file)


@pytest.mark.parametrize("which", ["cert", "key"])
def test_file_over_the_cap_should_be_refused(tmp_path: Path, which: str) -> None:
    leaf = make_cert()
    cert_file, key_file = write_pem(tmp_path, leaf)
    big = cert_file if which == "cert" else key_file
    padding = "# padding\n" * (MAX_PEM_BYTES // 10 + 1)
    big.write_text((leaf.cert_pem if which == "cert" else leaf.key_pem) + padding)
    text = refused(cert_file, key_file)
    assert str(big) in text and "larger than 1 MiB" in text, text


def test_file_at_the_cap_should_still_be_read(tmp_path: Path) -> None:
    leaf = make_cert()
    cert_file, key_file = write_pem(tmp_path, leaf)
    pad = MAX_PEM_BYTES - len(leaf.cert_pem)
    cert_file.write_text(leaf.cert_pem + "\n" * pad)
    assert cert_file.stat().st_size == MAX_PEM_BYTES
    assert check_certificate(cert_file, key_file, "example.com").names == ("example.com",)


@pytest.mark.parametrize("build", [malformed_extension_der, duplicate_extension_der],
                         ids=["malformed", "duplicate"])
@pytest.mark.parametrize("position", [1, 2])
def test_unreadable_extensions_should_name_file_and_certificate(
    tmp_path: Path, build: Callable[[], tuple[bytes, str]], position: int
) -> None:
    der, key = build()
    leaf = make_cert()
    cert_file, key_file = write_pem(tmp_path, leaf)
    pem = der_to_pem(der)
    if position == 1:
        cert_file.write_bytes(pem)
        key_file.write_text(key)
    else:
        cert_file.write_bytes(leaf.cert_pem.encode() + pem)
    text = refused(cert_file, key_file)
    assert f"certificate file {cert_file}: certificate #{position}" in text, text
    kind = "appears twice" if build is duplicate_extension_der else "cannot be read"
    assert kind in text, text

"""Fuzzing check_certificate: bytes, PEM-wrapped DER, a real certificate's DER with bytes
changed, certificates whose extensions under well-known OIDs hold arbitrary bytes (malformed
or duplicated), key files, and domains (issue 13).

Whatever the files hold, :func:`check_certificate` returns a checked certificate or raises a
:class:`~cname_flow.errors.CnameFlowError`; ``bind --cert-file/--key-file`` exits 2 on the bad
ones with no traceback and no API call.
"""

from __future__ import annotations

import base64
import functools
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.x509.oid import ExtensionOID, NameOID
from hypothesis import given
from hypothesis import strategies as st

from cname_flow.certs import LocalCertificate, check_certificate
from cname_flow.errors import CnameFlowError
from tests.certgen import Issued, days, make_cert
from tests.fuzz.budget import FUZZ
from tests.fuzz.test_manifest_fuzz import assert_refused_untouched, run_cli
from tests.unit.certs.test_cert_files import duplicate_extension_der, malformed_extension_der

#: Extensions the pre-flight or the library reads, fuzzed with arbitrary values.
KNOWN = [ExtensionOID.SUBJECT_ALTERNATIVE_NAME, ExtensionOID.BASIC_CONSTRAINTS,
         ExtensionOID.KEY_USAGE, ExtensionOID.EXTENDED_KEY_USAGE,
         ExtensionOID.SUBJECT_KEY_IDENTIFIER, ExtensionOID.AUTHORITY_KEY_IDENTIFIER,
         ExtensionOID.NAME_CONSTRAINTS, ExtensionOID.CERTIFICATE_POLICIES,
         ExtensionOID.AUTHORITY_INFORMATION_ACCESS, ExtensionOID.CRL_DISTRIBUTION_POINTS]


@functools.cache
def leaf() -> Issued:
    """One good certificate and key for the whole module (key generation is the slow part)."""
    return make_cert(["example.com"])


def pem(der: bytes, label: str = "CERTIFICATE") -> bytes:
    body = base64.encodebytes(der).decode("ascii")
    return f"-----BEGIN {label}-----\n{body}-----END {label}-----\n".encode("ascii")


def check_or_refuse(tmp_path: Path, cert: bytes | None = None, key: bytes | None = None,
                    domain: str = "example.com") -> LocalCertificate | None:
    """Pre-flight the files (the good leaf's when None); None when refused with our error."""
    cert_file, key_file = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert_file.write_bytes(cert if cert is not None else leaf().cert_pem.encode())
    key_file.write_bytes(key if key is not None else leaf().key_pem.encode())
    try:
        return check_certificate(cert_file, key_file, domain)
    except CnameFlowError as exc:
        assert str(exc)
        return None


LABELS = ["CERTIFICATE", "PRIVATE KEY", "EC PRIVATE KEY"]


@FUZZ
@given(data=st.binary(max_size=2048) | st.builds(pem, st.binary(max_size=1024),
                                                  st.sampled_from(LABELS)),
       which=st.sampled_from(["cert", "key"]))
def test_any_bytes_or_pem_wrapped_der(tmp_path: Path, data: bytes, which: str) -> None:
    checked = check_or_refuse(tmp_path, **{which: data})  # type: ignore[arg-type]
    assert checked is None


@FUZZ
@given(edits=st.lists(st.tuples(st.integers(0, 10_000), st.integers(0, 255)), min_size=1,
                      max_size=4), cut=st.none() | st.integers(0, 10_000))
def test_real_certificate_with_bytes_changed(tmp_path: Path, edits: list[tuple[int, int]],
                                             cut: int | None) -> None:
    der = bytearray(leaf().cert.public_bytes(serialization.Encoding.DER))
    for at, value in edits:
        der[at % len(der)] = value
    check_or_refuse(tmp_path, cert=pem(bytes(der[:cut])))


@FUZZ
@given(values=st.dictionaries(st.sampled_from(KNOWN), st.binary(max_size=48), min_size=1,
                              max_size=3))
def test_known_extensions_with_arbitrary_values(tmp_path: Path,
                                                values: dict[x509.ObjectIdentifier, bytes]) -> None:
    key = leaf().key
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "example.com")])
    builder = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
               .public_key(key.public_key()).serial_number(1)
               .not_valid_before(days(-1)).not_valid_after(days(60)))
    for oid, value in values.items():
        builder = builder.add_extension(x509.UnrecognizedExtension(oid, value), critical=False)
    cert = builder.sign(key, hashes.SHA256())
    check_or_refuse(tmp_path, cert=cert.public_bytes(serialization.Encoding.PEM))


@FUZZ
@given(edits=st.lists(st.tuples(st.integers(0, 2000), st.integers(0, 255)), max_size=3))
def test_key_file_with_bytes_changed(tmp_path: Path, edits: list[tuple[int, int]]) -> None:
    text = bytearray(leaf().key_pem.encode())
    for at, value in edits:
        text[at % len(text)] = value
    check_or_refuse(tmp_path, key=bytes(text))


@FUZZ
@given(domain=st.text(max_size=40) | st.sampled_from(["*.example.com", "例子.example.com",
                                                      "EXAMPLE.com.", "a..b", "*.*.com"]))
def test_any_domain(tmp_path: Path, domain: str) -> None:
    checked = check_or_refuse(tmp_path, domain=domain)
    if checked is not None:
        assert checked.names == ("example.com",)


# -- the command ------------------------------------------------------------------------------

def _bad_files(tmp_path: Path, bad: str) -> tuple[str, str]:
    cert_file, key_file = tmp_path / "leaf.pem", tmp_path / "leaf.key"
    cert_file.write_text(leaf().cert_pem)
    key_file.write_text(leaf().key_pem)
    key_file.chmod(0o600)
    if bad in ("malformed-extension", "duplicate-extension"):
        der, key = (malformed_extension_der if bad.startswith("malformed")
                    else duplicate_extension_der)()
        cert_file.write_bytes(pem(der))
        key_file.write_text(key)
    return {
        "cert-dev-zero": ("/dev/zero", str(key_file)),
        "key-dev-zero": (str(cert_file), "/dev/zero"),
    }.get(bad, (str(cert_file), str(key_file)))


@pytest.mark.parametrize("bad", ["cert-dev-zero", "key-dev-zero", "malformed-extension",
                                 "duplicate-extension"])
def test_bind_exits_2_on_a_bad_certificate_file(tmp_path: Path, bad: str) -> None:
    cert, key = _bad_files(tmp_path, bad)
    result, world = run_cli(tmp_path, "bind", "example.com", "--cert-file", cert,
                            "--key-file", key)
    assert_refused_untouched(result, world)
    assert (cert if bad != "key-dev-zero" else key) in result.stderr

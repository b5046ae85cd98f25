"""Certificates: PEM loading, fingerprints, pre-flight of a cert/key pair (``cryptography``).

Used by the product (pre-flight before PutCname, the CertificateConfiguration to send, verification
against ListCname afterwards) and by the sandbox (to derive Fingerprint, ValidStartDate and
ValidEndDate from an uploaded PEM).

Name matching and CAS ids live in :mod:`cname_flow.certs.names`, rotation rules in
:mod:`cname_flow.certs.rotation`; :mod:`cname_flow.certs` re-exports all three.

Private keys are read only to check that they match the leaf and to be sent in PutCname: no message,
``repr`` or plan built here ever contains key material.
"""

from __future__ import annotations

import itertools
import os
import stat
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric.types import PrivateKeyTypes

from cname_flow.certs.names import certificate_names, covers
from cname_flow.errors import CertificateError

__all__ = [
    "EXPIRY_WARNING_DAYS",
    "MAX_PEM_BYTES",
    "LocalCertificate",
    "check_certificate",
    "load_private_key",
    "parse_certificate_chain",
    "private_key_matches",
    "sha1_fingerprint",
]

#: A certificate closer than this to its NotAfter gets an "expires in N days" warning.
EXPIRY_WARNING_DAYS = 30.0

#: Largest certificate or key file read, in bytes (a PEM chain is a few KiB).
MAX_PEM_BYTES = 1024 * 1024

_SECONDS_PER_DAY = 86400.0


# --------------------------------------------------------------------------------------------
# Low-level helpers (also used by the sandbox)
# --------------------------------------------------------------------------------------------


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


# --------------------------------------------------------------------------------------------
# Pre-flight of a certificate file and its key
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class LocalCertificate:
    """A certificate file and key file that passed pre-flight, ready for PutCname.

    Attributes:
        cert_file: the PEM certificate file.
        key_file: the PEM private key file.
        chain_pem: the certificates of ``cert_file`` re-encoded as PEM, leaf first (any other
            PEM block of the file, a private key included, is dropped).
        private_key_pem: the key alone re-encoded as PEM in the file's format (any other PEM
            block of the file is dropped); hidden from ``repr``, only ever sent in PutCname.
        fingerprint: SHA-1 of the leaf DER, upper-case colon-hex (the ListCname form).
        not_before: leaf NotBefore, aware UTC.
        not_after: leaf NotAfter, aware UTC.
        names: SAN dNSNames as lower-case A-labels, or the CN when there is no dNSName.
        warnings: human-readable warnings (key file mode, not yet valid, close expiry, chain).
    """

    cert_file: Path
    key_file: Path
    chain_pem: str
    private_key_pem: str = field(repr=False)
    fingerprint: str
    not_before: datetime
    not_after: datetime
    names: tuple[str, ...]
    warnings: tuple[str, ...]

    def days_left(self, now: datetime | None = None) -> float:
        """Days (fractional, negative once expired) from ``now`` (default: now) to NotAfter."""
        return (self.not_after - _utc(now)).total_seconds() / _SECONDS_PER_DAY


def _utc(now: datetime | None) -> datetime:
    """``now`` as an aware UTC datetime; the current time when None, UTC assumed when naive."""
    if now is None:
        return datetime.now(UTC)
    return now.replace(tzinfo=UTC) if now.tzinfo is None else now.astimezone(UTC)


def _read_capped(path: Path, what: str) -> bytes:
    """The bytes of a regular file of at most :data:`MAX_PEM_BYTES`; CertificateError otherwise.

    The file is opened without blocking and checked with ``fstat`` before any read, so
    ``/dev/zero``, a FIFO or a directory is refused at once rather than read forever.
    """
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
    except OSError as exc:
        raise CertificateError(f"{what} {path}: cannot read it ({exc.strerror or exc})") from None
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise CertificateError(f"{what} {path}: not a regular file",
                                   hint="give the path of a PEM file")
        data = b""
        while len(data) <= MAX_PEM_BYTES:
            chunk = os.read(fd, MAX_PEM_BYTES + 1 - len(data))
            if not chunk:
                break
            data += chunk
    except OSError as exc:
        raise CertificateError(f"{what} {path}: cannot read it ({exc.strerror or exc})") from None
    finally:
        os.close(fd)
    if len(data) > MAX_PEM_BYTES:
        raise CertificateError(f"{what} {path}: larger than {MAX_PEM_BYTES >> 20} MiB",
                               hint="a PEM chain or key is a few KiB; is it the right file?")
    return data


def _read_pem_text(path: Path, what: str) -> str:
    """Read ``path`` as ASCII PEM text; CertificateError naming the file otherwise."""
    data = _read_capped(path, what)
    try:
        return data.decode("ascii")
    except UnicodeDecodeError:
        raise CertificateError(
            f"{what} {path}: not PEM text (binary or non-ASCII content)",
            hint="convert DER files with 'openssl x509 -inform der' / 'openssl pkey -inform der'",
        ) from None


def _load_chain(cert_file: Path, text: str) -> list[x509.Certificate]:
    """Parse the PEM chain of ``cert_file``; CertificateError naming the file otherwise."""
    if "CERTIFICATE-----" not in text:
        swapped = "PRIVATE KEY-----" in text
        raise CertificateError(
            f"certificate file {cert_file}: no PEM certificate in it",
            hint="it holds a private key; were the certificate and key files swapped?"
            if swapped
            else "expected '-----BEGIN CERTIFICATE-----' blocks, leaf first",
        )
    try:
        chain = parse_certificate_chain(text)
    except ValueError:
        raise CertificateError(
            f"certificate file {cert_file}: a PEM certificate block does not parse"
        ) from None
    for number, cert in enumerate(chain, 1):
        _inspect(cert_file, number, cert)
    return chain


def _inspect(cert_file: Path, number: int, cert: x509.Certificate) -> None:
    """Read every field the pre-flight uses, so a malformed one is a CertificateError here.

    ``cryptography`` parses extensions, names and keys lazily: without this, a duplicate or
    malformed extension would surface as ``DuplicateExtension``/``ValueError`` mid-check.
    """
    where = f"certificate file {cert_file}: certificate #{number}"
    try:
        cert.extensions  # noqa: B018 - parsing them is the point
        certificate_names(cert)
    except x509.DuplicateExtension as exc:
        raise CertificateError(f"{where}: extension {exc.oid.dotted_string} appears twice",
                               hint="a certificate may carry each extension once (RFC 5280)"
                               ) from None
    except (ValueError, x509.UnsupportedGeneralNameType):
        raise CertificateError(f"{where}: its extensions cannot be read (malformed DER)"
                               ) from None
    for field_name, read in (
        ("subject", lambda: cert.subject.rfc4514_string()),
        ("issuer", lambda: cert.issuer.rfc4514_string()),
        ("validity", lambda: (cert.not_valid_before_utc, cert.not_valid_after_utc)),
        ("public key", cert.public_key),
    ):
        try:
            read()
        except (ValueError, UnsupportedAlgorithm):
            raise CertificateError(f"{where}: its {field_name} cannot be read") from None


def _load_key(key_file: Path, text: str) -> PrivateKeyTypes:
    """Parse the private key of ``key_file``; CertificateError naming the file otherwise.

    The parser's own message is never included: it could quote the input.
    """
    if "PRIVATE KEY-----" not in text:
        raise CertificateError(
            f"key file {key_file}: no PEM private key in it",
            hint="it holds a certificate; were the certificate and key files swapped?"
            if "CERTIFICATE-----" in text
            else "expected a '-----BEGIN PRIVATE KEY-----' block",
        )
    try:
        return load_private_key(text)
    except TypeError:
        raise CertificateError(
            f"key file {key_file}: the private key is encrypted",
            hint="OSS needs an unencrypted key; decrypt it with 'openssl pkey -in <file>'",
        ) from None
    except (ValueError, UnsupportedAlgorithm):
        raise CertificateError(f"key file {key_file}: the private key does not parse") from None


def _key_pem(key: PrivateKeyTypes, text: str) -> str:
    """The key alone as PEM, in the file's format (PKCS#1/SEC1 or PKCS#8); other blocks dropped."""
    traditional = any(f"-----BEGIN {kind} PRIVATE KEY-----" in text for kind in ("RSA", "EC"))
    formats = serialization.PrivateFormat
    fmt = formats.TraditionalOpenSSL if traditional else formats.PKCS8
    pem = key.private_bytes(serialization.Encoding.PEM, fmt, serialization.NoEncryption())
    return pem.decode("ascii")


def _is_ca(cert: x509.Certificate) -> bool:
    try:
        return cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    except x509.ExtensionNotFound:
        return False


def _check_order(cert_file: Path, chain: list[x509.Certificate]) -> list[str]:
    """Error when the first certificate is a CA that issued others; warnings for each link
    that does not chain, and for a lone self-signed CA certificate.

    ``openssl req -x509`` (OpenSSL 3) makes a self-signed certificate with ``CA:TRUE``: alone in
    its file it is the server certificate itself, which OSS takes as any uploaded certificate
    (PutCname checks only that the certificate parses and matches the key), so it is accepted
    with a warning that browsers do not trust it.
    """
    if len(chain) == 1 and _is_ca(chain[0]) and chain[0].issuer == chain[0].subject:
        return [f"certificate file {cert_file}: a self-signed CA certificate "
                f"({chain[0].subject.rfc4514_string()}); browsers will not trust it"]
    if _is_ca(chain[0]):
        raise CertificateError(
            f"certificate file {cert_file}: the first certificate is a CA certificate "
            f"({chain[0].subject.rfc4514_string()}), not the server certificate",
            hint="put the leaf (server) certificate first, then its intermediates",
        )
    return [
        f"certificate file {cert_file}: certificate #{i + 2} "
        f"({upper.subject.rfc4514_string()}) is not the issuer of certificate #{i + 1}"
        for i, (lower, upper) in enumerate(itertools.pairwise(chain))
        if lower.issuer != upper.subject
    ]


def _check_key(cert_file: Path, key_file: Path, chain: list[x509.Certificate],
               key: PrivateKeyTypes) -> None:
    """CertificateError unless ``key`` is the leaf's key (names the cert it fits, if any)."""
    if private_key_matches(chain[0], key):
        return
    other = next((i for i, c in enumerate(chain) if private_key_matches(c, key)), None)
    hint = (
        f"it matches certificate #{other + 1} of the file: is the chain in the wrong order?"
        if other is not None
        else "use the key generated with this certificate's CSR"
    )
    raise CertificateError(
        f"key file {key_file}: the private key does not match the leaf certificate in {cert_file}",
        hint=hint,
    )


def _check_names(cert_file: Path, names: tuple[str, ...], domain: str) -> None:
    if not covers(names, domain):
        shown = ", ".join(names) or "none"
        raise CertificateError(
            f"certificate file {cert_file}: the certificate does not cover {domain} "
            f"(it names: {shown})",
            hint="wildcards cover exactly one left-most label and not the bare parent domain",
        )


def _check_validity(cert_file: Path, leaf: x509.Certificate, now: datetime,
                    min_days_left: float) -> list[str]:
    """Errors for expired / too-short certificates; warnings for not-yet-valid / expiring soon."""
    not_before, not_after = leaf.not_valid_before_utc, leaf.not_valid_after_utc
    if now > not_after:
        raise CertificateError(
            f"certificate file {cert_file}: the certificate expired on {not_after.isoformat()}"
        )
    days = (not_after - now).total_seconds() / _SECONDS_PER_DAY
    if days < min_days_left:
        raise CertificateError(
            f"certificate file {cert_file}: the certificate expires on {not_after.isoformat()}, "
            f"in {days:.1f} days, less than the required {min_days_left:g}"
        )
    warnings = []
    if now < not_before:
        warnings.append(
            f"certificate file {cert_file}: not valid before {not_before.isoformat()}"
        )
    if days < EXPIRY_WARNING_DAYS:
        warnings.append(f"certificate file {cert_file}: expires in {days:.1f} days")
    return warnings


def _key_mode_warnings(key_file: Path) -> list[str]:
    """A warning when the key file grants any permission to group or others (POSIX modes)."""
    try:
        mode = stat.S_IMODE(key_file.stat().st_mode)
    except OSError:
        return []
    if mode & 0o077:
        return [f"key file {key_file}: readable or writable by group/others "
                f"(mode {mode:04o}); run 'chmod 600 {key_file}'"]
    return []


def check_certificate(cert_file: Path, key_file: Path, domain: str, *,
                      now: datetime | None = None, min_days_left: float = 0) -> LocalCertificate:
    """Pre-flight a certificate file and its key for ``domain`` before any API call.

    Checks, in order: both files readable PEM; the first certificate is not a CA (leaf first),
    unless it is a self-signed one alone in the file (a warning, see :func:`_check_order`);
    each certificate's issuer is the next one's subject (warning otherwise); the key parses, is
    unencrypted and matches the leaf; the leaf's names cover ``domain`` (:func:`covers`,
    RFC 6125 §6.4.3); the leaf is not expired and has at least ``min_days_left`` days left;
    not-yet-valid, expiring within :data:`EXPIRY_WARNING_DAYS` and a key file open to
    group/others are warnings.

    Args:
        cert_file: PEM chain, leaf first.
        key_file: unencrypted PEM private key of the leaf.
        domain: the custom domain, A- or U-labels (``*.example.com`` for a wildcard binding).
        now: the time to judge validity at (aware; default the current time).
        min_days_left: refuse a certificate with fewer days (fractional) left.

    Returns:
        The checked certificate, with its warnings.

    Raises:
        CertificateError: any failed check; the message names the file and never contains key
            material.
        InputError: ``domain`` is not a valid domain name.
    """
    at = _utc(now)
    chain = _load_chain(cert_file, _read_pem_text(cert_file, "certificate file"))
    key_text = _read_pem_text(key_file, "key file")
    warnings = _check_order(cert_file, chain)
    key = _load_key(key_file, key_text)
    _check_key(cert_file, key_file, chain, key)
    leaf = chain[0]
    names = certificate_names(leaf)
    _check_names(cert_file, names, domain)
    warnings += _check_validity(cert_file, leaf, at, min_days_left)
    warnings += _key_mode_warnings(key_file)
    pem = "".join(c.public_bytes(serialization.Encoding.PEM).decode("ascii") for c in chain)
    return LocalCertificate(
        cert_file=cert_file,
        key_file=key_file,
        chain_pem=pem,
        private_key_pem=_key_pem(key, key_text),
        fingerprint=sha1_fingerprint(leaf),
        not_before=leaf.not_valid_before_utc,
        not_after=leaf.not_valid_after_utc,
        names=names,
        warnings=tuple(warnings),
    )


"""Certificate identities: RFC 6125 name matching and CAS certificate ids.

Pure functions on names and ids, re-exported by :mod:`cname_flow.certs.pem`.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

import idna
from cryptography import x509
from cryptography.x509.oid import NameOID

from cname_flow.errors import CertificateError
from cname_flow.model import normalize_domain

__all__ = ["CAS_CERT_ID", "certificate_names", "check_cas_cert_id", "covers"]



def _to_alabel(name: str) -> str:
    """Lower-case A-label form of a presented or reference name; ``*`` labels are kept.

    A label that is not valid IDNA is kept lower-cased as is, so it simply never matches.
    """
    labels = name.strip().rstrip(".").lower().split(".")
    out = []
    for label in labels:
        if label == "*" or label.isascii():
            out.append(label)
            continue
        try:
            out.append(idna.encode(label, uts46=True).decode("ascii").lower())
        except idna.IDNAError:
            out.append(label)
    return ".".join(out)


def _reference_name(domain: str) -> str:
    """The domain as an A-label reference identifier; a leading ``*.`` (Agentic wildcard) is kept.

    Raises:
        InputError: the domain is not a valid name (from :func:`normalize_domain`).
    """
    raw = domain.strip()
    if raw.startswith("*."):
        return "*." + normalize_domain(raw[2:])
    return normalize_domain(raw)


def _presented_matches(presented: str, reference: str) -> bool:
    """RFC 6125 §6.4.3 match of one presented identifier against one reference identifier."""
    if presented == reference:
        return True
    first, _, rest = presented.partition(".")
    if first != "*" or "*" in rest or rest.count(".") < 1:
        return False  # no wildcard, partial or non-left-most wildcard, or "*.tld"
    ref_first, _, ref_rest = reference.partition(".")
    return bool(ref_first) and ref_first != "*" and ref_rest == rest


def covers(names: Sequence[str], domain: str) -> bool:
    """Whether any of the certificate ``names`` covers ``domain`` (RFC 6125 §6.4.3).

    Rules: comparison is case-insensitive and on A-labels (``例子.example.com`` and
    ``xn--fsqu00a.example.com`` are the same name); a wildcard is only honoured as the whole
    left-most label (``*.example.com``, not ``f*.example.com`` or ``a.*.example.com``), matches
    exactly one label (not ``example.com``, not ``a.b.example.com``) and needs at least two labels
    after it (``*.com`` matches nothing). A wildcard ``domain`` (``*.example.com``) is covered
    only by the same wildcard name.

    Args:
        names: presented DNS identifiers (SAN dNSNames, or the CN), any case, A- or U-labels.
        domain: the reference identifier, A- or U-labels, optional trailing dot.

    Raises:
        InputError: ``domain`` is not a valid domain name.
    """
    reference = _reference_name(domain)
    return any(_presented_matches(_to_alabel(name), reference) for name in names)


def certificate_names(cert: x509.Certificate) -> tuple[str, ...]:
    """DNS names the certificate presents, as lower-case A-labels.

    The SAN dNSName entries; the subject CN values only when there is no dNSName (RFC 6125 §6.4.4).
    """
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        dns_names = san.get_values_for_type(x509.DNSName)
    except x509.ExtensionNotFound:
        dns_names = []
    if not dns_names:
        cns = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
        dns_names = [str(cn.value) for cn in cns]
    return tuple(dict.fromkeys(_to_alabel(n) for n in dns_names))


# --------------------------------------------------------------------------------------------
# CAS certificate ids
# --------------------------------------------------------------------------------------------

#: ``<digits>-<CAS region id>``, e.g. ``4930000-cn-hangzhou`` or ``1234567-ap-southeast-1``.
CAS_CERT_ID = re.compile(r"^(?P<number>[0-9]+)-(?P<region>[a-z]{2,}(?:-[a-z0-9]+)+)$")

_CAS_ENDPOINT = re.compile(r"^(?P<number>[0-9]+)-cas(?:\.(?P<region>[a-z0-9-]+))?\.aliyuncs\.com$")

_CAS_FORMAT = (
    "a CAS certificate id is '<number>-<CAS region>', e.g. '4930000-cn-hangzhou' "
    "(certificates in the China CAS console) or '4930000-ap-southeast-1' (international)"
)


def check_cas_cert_id(cert_id: str) -> str:
    """Validate a CAS certificate id for PutCname's ``CertId`` and return it normalized.

    The suffix is the region of the CAS service holding the certificate, not the bucket's region.
    A common mistake is the CAS endpoint host as suffix (``19580016-cas.aliyuncs.com``), which
    OSS rejects with ``CertificateInvalidCasId`` (EC 0018-00000204).

    Args:
        cert_id: the id as the user wrote it; surrounding blanks and case are normalized.

    Returns:
        The id, stripped and lower-case, e.g. ``"4930000-cn-hangzhou"``.

    Raises:
        CertificateError: the id does not have the ``<digits>-<region>`` form; the message names
            the id and says how to fix it.
    """
    normalized = cert_id.strip().lower()
    if CAS_CERT_ID.fullmatch(normalized):
        return normalized
    endpoint = _CAS_ENDPOINT.fullmatch(normalized)
    if endpoint:
        region = endpoint["region"] or "cn-hangzhou"
        raise CertificateError(
            f"CAS certificate id {cert_id!r}: the suffix is the CAS endpoint host, not a region",
            hint=f"use '{endpoint['number']}-{region}'; {_CAS_FORMAT}",
        )
    if normalized.isdigit():
        raise CertificateError(
            f"CAS certificate id {cert_id!r}: the region suffix is missing",
            hint=f"use '{normalized}-cn-hangzhou' or '{normalized}-ap-southeast-1'; {_CAS_FORMAT}",
        )
    raise CertificateError(f"CAS certificate id {cert_id!r}: not a CAS id", hint=_CAS_FORMAT)



"""Certificates: PEM loading and the pre-flight of a cert/key pair, names, rotation rules.

* :mod:`cname_flow.certs.pem`: PEM parsing, SHA-1 fingerprints, :func:`check_certificate` (the
  pre-flight before PutCname), :class:`LocalCertificate`;
* :mod:`cname_flow.certs.names`: SAN matching (RFC 6125 §6.4) and CAS certificate ids;
* :mod:`cname_flow.certs.rotation`: what a PutCname must carry to bind, rotate or keep a
  certificate (``PreviousCertId``, ``Force``), and the check of what ListCname shows afterwards.

Callers import from this package; the modules are its implementation.
"""

from cname_flow.certs.names import CAS_CERT_ID, certificate_names, check_cas_cert_id, covers
from cname_flow.certs.pem import (
    EXPIRY_WARNING_DAYS,
    LocalCertificate,
    check_certificate,
    load_private_key,
    parse_certificate_chain,
    private_key_matches,
    sha1_fingerprint,
)
from cname_flow.certs.rotation import CertificatePlan, plan_certificate, verify_bound_certificate

__all__ = [
    "CAS_CERT_ID",
    "EXPIRY_WARNING_DAYS",
    "CertificatePlan",
    "LocalCertificate",
    "certificate_names",
    "check_cas_cert_id",
    "check_certificate",
    "covers",
    "load_private_key",
    "parse_certificate_chain",
    "plan_certificate",
    "private_key_matches",
    "sha1_fingerprint",
    "verify_bound_certificate",
]

"""Certificates in PutCname: the ``CertificateConfiguration`` rules of the sandbox.

Uploaded PEM (``Certificate`` + ``PrivateKey``) must parse and match, and becomes a CAS
certificate (Type ``CAS``, a CertId with the CAS region suffix, reusable by CertId on other domains
of the account: the Java SDK's ``CnameTest.testPutCname``); a bare ``CertId`` must name a CAS
certificate preloaded from the config or made by an upload of the account and still bound;
replacing a bound certificate needs ``PreviousCertId`` (equal to the bound CertId) or ``Force``;
``DeleteCertificate`` unbinds. The private key is checked and dropped, never stored.
Codes and ECs: the PutCname reference
(https://www.alibabacloud.com/help/en/oss/developer-reference/putcname) and
``docs/sandbox-oss.md`` (the other sources, and the guesses).
"""

from __future__ import annotations

from cryptography import x509

from cname_flow.certs import (
    load_private_key,
    parse_certificate_chain,
    private_key_matches,
    sha1_fingerprint,
)
from cname_flow.sandbox.oss.xml import CertificateConfiguration, OssErrorResponse
from cname_flow.sandbox.state import BoundCertificate, Bucket, CnameRecord, SandboxState

#: First number of uploaded-certificate ids (``<n>-<region>``), shaped like the docs' samples.
_UPLOAD_CERT_BASE = 4930000
#: The CAS service's region, the suffix of every CAS CertId whatever the bucket's region (a
#: terraform-provider-alicloud test comment, commit 6e2693809).
CAS_REGION = "cn-hangzhou"


def resolve_certificate(
    state: SandboxState,
    bucket: Bucket,
    current: CnameRecord | None,
    conf: CertificateConfiguration | None,
    now: float,
) -> BoundCertificate | None:
    """The certificate a binding carries after PutCname (None: no certificate).

    Args:
        state: the store (CAS certificates: an upload adds one and advances the counter).
        bucket: the bucket (its owner may reuse the CertIds its uploads made).
        current: the binding as it is now, or None for a first bind.
        conf: the request's CertificateConfiguration, or None (keep what is bound).
        now: Unix seconds (CreationDate).

    Raises:
        OssErrorResponse: 409 CasRenewCertificateConflict (a certificate is bound and neither
            PreviousCertId nor Force was sent: Java ``CnameTest``, terraform commit 6e2693809;
            the status is a guess), 400 InvalidArgument (EC 0018-00000209 PreviousCertId
            mismatch, 0018-00000210 key without certificate, bad PEM, key mismatch), 400
            CertificateInvalidCasId.
    """
    existing = current.certificate if current is not None else None
    if conf is None:
        return existing
    if conf.delete_certificate:
        return None
    bound_id = existing.cert_id if existing is not None else None
    if not conf.force and conf.previous_cert_id is None and bound_id is not None:
        raise OssErrorResponse(
            409, "CasRenewCertificateConflict",
            "A certificate is bound: give PreviousCertId or Force to replace it.",
        )
    if not conf.force and conf.previous_cert_id != bound_id:
        raise OssErrorResponse(
            400,
            "InvalidArgument",
            "PreviousCertId does not match the certificate in use.",
            "0018-00000209",
        )
    if conf.certificate or conf.private_key:
        return _uploaded(state, bucket, conf, now)
    if conf.cert_id:
        return _cas(state, bucket, conf.cert_id, now)
    raise OssErrorResponse(
        400,
        "InvalidArgument",
        "CertificateConfiguration needs CertId, Certificate with PrivateKey, or DeleteCertificate.",
    )


def _uploaded(
    state: SandboxState, bucket: Bucket, conf: CertificateConfiguration, now: float
) -> BoundCertificate:
    if not conf.certificate:
        raise OssErrorResponse(
            400, "InvalidArgument", "Certificate is required with PrivateKey.", "0018-00000210"
        )
    if not conf.private_key:
        raise OssErrorResponse(400, "InvalidArgument", "PrivateKey is required with Certificate.")
    try:
        leaf = parse_certificate_chain(conf.certificate)[0]
    except ValueError:
        raise OssErrorResponse(
            400, "InvalidArgument", "The certificate is not valid PEM X.509."
        ) from None
    try:
        key = load_private_key(conf.private_key)
    except (ValueError, TypeError):
        raise OssErrorResponse(
            400, "InvalidArgument", "The private key is not an unencrypted PEM key."
        ) from None
    if not private_key_matches(leaf, key):
        raise OssErrorResponse(
            400, "InvalidArgument", "The certificate and private key do not match."
        )
    state.uploaded_certs += 1
    cert_id = f"{_UPLOAD_CERT_BASE + state.uploaded_certs}-{CAS_REGION}"
    return _bound("CAS", cert_id, now, leaf)


def _cas(state: SandboxState, bucket: Bucket, cert_id: str, now: float) -> BoundCertificate:
    cas = state.cas.get(cert_id)
    if cas is None:
        # An upload's CAS certificate is known by the bindings of its account that carry it
        # (the real CAS keeps it until deleted: a documented simplification).
        made = _bound_elsewhere(state, bucket.owner, cert_id)
        if made is not None:
            return BoundCertificate(
                "CAS", cert_id, "Enabled", now, made.fingerprint, made.valid_start,
                made.valid_end,
            )
        raise OssErrorResponse(
            400,
            "CertificateInvalidCasId",
            "The CAS ID is invalid: not exist or not belong to the owner of the bucket",
            "0018-00000204",
        )
    try:
        leaf = parse_certificate_chain(cas.pem)[0]
    except ValueError:
        return BoundCertificate("CAS", cert_id, "Enabled", now, "", now, now)
    return _bound("CAS", cert_id, now, leaf)


def _bound_elsewhere(state: SandboxState, owner: str, cert_id: str) -> BoundCertificate | None:
    """A certificate with ``cert_id`` bound on any of ``owner``'s buckets, or None."""
    for b in state.buckets.values():
        if b.owner != owner:
            continue
        for record in b.cnames.values():
            if record.certificate is not None and record.certificate.cert_id == cert_id:
                return record.certificate
    return None


def _bound(kind: str, cert_id: str, now: float, leaf: x509.Certificate) -> BoundCertificate:
    """The Certificate block ListCname shows for ``leaf``: fingerprint and validity from the PEM."""
    return BoundCertificate(
        kind, cert_id, "Enabled", now, sha1_fingerprint(leaf),
        leaf.not_valid_before_utc.timestamp(), leaf.not_valid_after_utc.timestamp(),
    )

"""Certificate rotation rules: the PutCname CertificateConfiguration to send, and the check after.

Re-exported by :mod:`cname_flow.certs.pem`. Implements the OSS PutCname certificate options:
``CertId`` / ``Certificate`` + ``PrivateKey``, ``PreviousCertId`` (compare-and-swap), ``Force``
and ``DeleteCertificate`` (never together with ``Force``).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Literal

from cname_flow.certs.names import check_cas_cert_id
from cname_flow.errors import UnsafePlan
from cname_flow.model import CertificateInfo, CertificateRequest

if TYPE_CHECKING:
    from cname_flow.certs.pem import LocalCertificate

__all__ = ["CertificateAction", "CertificatePlan", "plan_certificate", "verify_bound_certificate"]


CertificateAction = Literal["none", "attach", "rotate", "remove"]


@dataclass(frozen=True, slots=True)
class CertificatePlan:
    """What PutCname should carry so the domain ends up with the desired certificate.

    Attributes:
        action: ``"none"`` (already right, send no CertificateConfiguration), ``"attach"``
            (nothing bound), ``"rotate"`` (another certificate bound) or ``"remove"``.
        request: the CertificateConfiguration to send, or None for ``"none"``.
        reason: one sentence saying why, naming fingerprints / ids (never key material).
    """

    action: CertificateAction
    request: CertificateRequest | None
    reason: str

    def __str__(self) -> str:
        return f"certificate {self.action}: {self.reason}"


def _same_fingerprint(a: str, b: str) -> bool:
    """Fingerprints equal ignoring case and colons."""
    return a.replace(":", "").upper() == b.replace(":", "").upper()


def _describe(desired: LocalCertificate | str) -> str:
    if isinstance(desired, str):
        return f"CAS certificate {desired}"
    return f"certificate {desired.fingerprint} from {desired.cert_file}"


def _request(desired: LocalCertificate | str, *, previous: str | None,
             force: bool) -> CertificateRequest:
    if isinstance(desired, str):
        return CertificateRequest(cert_id=desired, previous_cert_id=previous, force=force)
    return CertificateRequest(certificate=desired.chain_pem, private_key=desired.private_key_pem,
                              previous_cert_id=previous, force=force)


def _plan_removal(current: CertificateInfo | None, force: bool) -> CertificatePlan:
    if current is None:
        return CertificatePlan("none", None, "no certificate is bound, nothing to remove")
    note = " (Force is not sent with DeleteCertificate: OSS rejects the pair)" if force else ""
    return CertificatePlan("remove", CertificateRequest(delete_certificate=True),
                           f"unbind certificate {current.cert_id or current.fingerprint}{note}")


def _already_bound(current: CertificateInfo, desired: LocalCertificate | str) -> bool:
    if isinstance(desired, str):
        return current.cert_id.strip().lower() == desired
    return _same_fingerprint(current.fingerprint, desired.fingerprint)


def plan_certificate(current: CertificateInfo | None, desired: LocalCertificate | str | None, *,
                     force: bool = False, remove: bool = False) -> CertificatePlan:
    """Decide the PutCname CertificateConfiguration from what ListCname shows (OSS PutCname API).

    Rules: the same leaf fingerprint (upload) or the same CertId (CAS) bound → ``none``; nothing
    bound → ``attach`` without PreviousCertId; another certificate bound → ``rotate`` with
    ``PreviousCertId = current.cert_id`` (compare-and-swap, OSS answers a conflict when it changed
    meanwhile), or with ``Force`` and no PreviousCertId when ``force``; ``remove`` →
    ``DeleteCertificate`` and never ``Force`` with it (OSS: MalformedXML). ``desired=None``
    without ``remove`` leaves whatever is bound alone.

    Args:
        current: the Certificate block of the domain's ListCname row, or None.
        desired: a pre-flighted certificate, a CAS certificate id, or None.
        force: overwrite whatever is bound instead of compare-and-swap.
        remove: unbind the certificate (``desired`` must be None).

    Returns:
        The plan; ``str(plan)`` is safe to print (no key material).

    Raises:
        CertificateError: ``desired`` is a malformed CAS id (:func:`check_cas_cert_id`).
        UnsafePlan: rotation is needed but the bound certificate shows no CertId to
            compare-and-swap against, and ``force`` is off.
        ValueError: ``remove`` together with a ``desired`` certificate.
    """
    if remove:
        if desired is not None:
            raise ValueError("remove=True cannot be combined with a desired certificate")
        return _plan_removal(current, force)
    if desired is None:
        return CertificatePlan("none", None, "no certificate configured; the bound one is kept")
    if isinstance(desired, str):
        desired = check_cas_cert_id(desired)
    what = _describe(desired)
    if current is None:
        return CertificatePlan("attach", _request(desired, previous=None, force=force),
                               f"no certificate bound; attach {what}")
    if _already_bound(current, desired):
        return CertificatePlan("none", None, f"{what} is already bound")
    if force:
        bound = current.cert_id or current.fingerprint
        return CertificatePlan("rotate", _request(desired, previous=None, force=True),
                               f"replace {bound} by {what} (Force)")
    if not current.cert_id:
        raise UnsafePlan(
            f"the bound certificate {current.fingerprint} has no CertId to compare-and-swap",
            hint="re-run with --force to overwrite it",
        )
    return CertificatePlan("rotate", _request(desired, previous=current.cert_id, force=False),
                           f"replace {current.cert_id} by {what} (PreviousCertId)")


def _date_mismatch(label: str, shown: datetime | None, expected: datetime) -> list[str]:
    if shown is None:
        return [f"ListCname shows no {label}, expected {expected.isoformat()}"]
    a = shown.astimezone(UTC).replace(microsecond=0)
    b = expected.astimezone(UTC).replace(microsecond=0)
    return [] if a == b else [f"{label} is {a.isoformat()}, expected {b.isoformat()}"]


def verify_bound_certificate(entry_cert: CertificateInfo | None,
                             expected: LocalCertificate | str) -> list[str]:
    """Compare the ListCname Certificate block with the certificate just sent in PutCname.

    For a local certificate: Fingerprint equal (case- and colon-insensitive) and ValidStartDate /
    ValidEndDate equal to the leaf's NotBefore / NotAfter to the second. For a CAS id: CertId
    equal (case-insensitive). In both cases a certificate Status other than ``Enabled`` is a
    mismatch.

    Args:
        entry_cert: the domain's Certificate block from ListCname, or None.
        expected: the pre-flighted certificate or the (normalized) CAS id that was sent.

    Returns:
        One description per mismatch; empty when the bound certificate is the expected one.
    """
    if entry_cert is None:
        return ["ListCname shows no certificate on the domain"]
    problems = []
    if entry_cert.status and entry_cert.status.lower() != "enabled":
        problems.append(f"certificate Status is {entry_cert.status!r}, expected 'Enabled'")
    if isinstance(expected, str):
        want = expected.strip().lower()
        if entry_cert.cert_id.strip().lower() != want:
            problems.append(f"CertId is {entry_cert.cert_id!r}, expected {want!r}")
        return problems
    if not _same_fingerprint(entry_cert.fingerprint, expected.fingerprint):
        problems.append(f"Fingerprint is {entry_cert.fingerprint or 'empty'}, "
                        f"expected {expected.fingerprint}")
    problems += _date_mismatch("ValidStartDate", entry_cert.valid_start, expected.not_before)
    problems += _date_mismatch("ValidEndDate", entry_cert.valid_end, expected.not_after)
    return problems

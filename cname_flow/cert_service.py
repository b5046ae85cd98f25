"""Certificate commands: remove a bound certificate, list every bound certificate with its expiry.

Attaching and rotating go through ``bind`` (the PUT_CNAME step plans the certificate change with
PreviousCertId compare-and-swap); what lives here are the operations that are not a binding.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime

import structlog

from cname_flow import service
from cname_flow.certs.pem import plan_certificate
from cname_flow.errors import VerificationFailed
from cname_flow.journal import BindingOutputs, Journal, JournalEvent
from cname_flow.model import AuxStep, Binding, CnameEntry, Phase
from cname_flow.workflow import putcname as ownership
from cname_flow.workflow.context import BindingRun

log = structlog.get_logger(__name__)


@dataclass(frozen=True, slots=True)
class CertificateRow:
    """One bound domain's certificate as ListCname reports it.

    Attributes:
        days_left: days until ValidEndDate (negative when expired), None without a certificate.
    """

    bucket: str
    domain: str
    status: str
    type: str | None
    cert_id: str | None
    fingerprint: str | None
    valid_end: datetime | None
    days_left: float | None

    def to_json(self) -> dict[str, object]:
        """JSON-able form for ``--json``."""
        return {
            "bucket": self.bucket, "domain": self.domain, "status": self.status,
            "type": self.type, "cert_id": self.cert_id, "fingerprint": self.fingerprint,
            "valid_end": self.valid_end.isoformat() if self.valid_end else None,
            "days_left": None if self.days_left is None else round(self.days_left, 1),
        }


def certificate_rows(
    clients: service.Clients, buckets: Iterable[str], *, now: datetime | None = None
) -> list[CertificateRow]:
    """One row per domain bound to each bucket (one ListCname per bucket)."""
    now = now or datetime.now(UTC)
    rows: list[CertificateRow] = []
    for bucket in sorted(set(buckets)):
        rows.extend(_row(bucket, e, now) for e in clients.oss.list_cnames(bucket))
    return rows


def _row(bucket: str, entry: CnameEntry, now: datetime) -> CertificateRow:
    cert = entry.certificate
    end = cert.valid_end if cert else None
    return CertificateRow(
        bucket=bucket, domain=entry.domain, status=entry.status,
        type=cert.type if cert else None, cert_id=cert.cert_id if cert else None,
        fingerprint=cert.fingerprint if cert else None, valid_end=end,
        days_left=(end - now).total_seconds() / 86400 if end else None,
    )


def remove_certificate(clients: service.Clients, binding: Binding, journal: Journal) -> str:
    """Unbind the domain's certificate (PutCname with DeleteCertificate, never with Force).

    Returns:
        What was done, as one sentence.

    Raises:
        VerificationFailed: ListCname still shows a certificate afterwards.
        OssError: PutCname failed (e.g. the domain is not bound to the bucket).
    """
    ctx = service.step_context(clients, binding)
    run = BindingRun(ctx.ports, binding)
    entry = run.cname_entry(fresh=True)
    if entry is None or entry.certificate is None:
        return f"{binding.domain} on {binding.bucket} has no certificate; nothing to do"
    plan = plan_certificate(entry.certificate, None, remove=True)
    record = journal.get(binding.key)
    policy = ctx.ownership_policy
    window = policy.window_s(record) if record else policy.min_window_s
    request_id = ownership.put_with_retry(ctx.ports.oss, binding, plan.request, window, policy,
                                          ctx.ports.sleep)
    after = run.cname_entry(fresh=True)
    if after is not None and after.certificate is not None:
        raise VerificationFailed(
            f"ListCname still shows certificate {after.certificate.cert_id} on {binding.domain}")
    journal.record(JournalEvent(
        key=binding.key, step=AuxStep.CERT_REMOVE, status="done",
        phase=record.phase if record else Phase.BOUND,
        outputs=BindingOutputs(cert_id=None, fingerprint=None, cert_not_after=None,
                               put_request_id=request_id),
    ))
    log.info("certificate.removed", cert_id=entry.certificate.cert_id)
    return f"removed certificate {entry.certificate.cert_id} from {binding.domain}"

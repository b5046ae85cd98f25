"""The certificate operations that are not a binding: ``cert status`` rows and ``cert remove``.

Attaching and rotating a certificate go through :func:`cname_flow.service.bind` (the PUT_CNAME
step plans the change with PreviousCertId compare-and-swap). OSS PutCname with
``DeleteCertificate``: https://www.alibabacloud.com/help/en/oss/developer-reference/putcname;
ListCname: https://www.alibabacloud.com/help/en/oss/developer-reference/listcname.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime

from cname_flow.certs import EXPIRY_WARNING_DAYS, plan_certificate
from cname_flow.config import Settings
from cname_flow.errors import InputError, OssError, VerificationFailed
from cname_flow.events import Event
from cname_flow.journal import BindingOutputs, JournalEvent
from cname_flow.logs import get_logger
from cname_flow.model import AuxStep, Binding, CnameEntry, Phase
from cname_flow.service import Clients, bucket_listing, read_bindings, step_context
from cname_flow.store.base import BindingStore
from cname_flow.workflow import putcname
from cname_flow.workflow.context import BindingRun

log = get_logger(__name__)

def certificate_buckets(settings: Settings, requested: Iterable[str] = ()) -> list[str]:
    """The buckets whose certificates ``cert status`` lists, sorted.

    ``requested`` when given; otherwise every bucket in the store (whatever made its
    bindings) plus ``defaults.bucket``.

    Raises:
        InputError: nothing requested and neither the store nor the settings name a bucket.
        Locked, JournalCorrupt: as :func:`read_bindings`.
    """
    chosen = set(requested)
    if not chosen:
        chosen = {r.bucket for r in read_bindings(settings).values()}
        if settings.defaults.bucket:
            chosen.add(settings.defaults.bucket)
    if not chosen:
        raise InputError("no bucket to list: pass --bucket or set defaults.bucket")
    return sorted(chosen)


@dataclass(frozen=True, slots=True)
class CertificateRow:
    """One bound domain's certificate as ListCname reports it.

    Attributes:
        days_left: days until ValidEndDate (negative when expired), None without a certificate.
        error: why the bucket could not be listed (``"NoSuchBucket: …"``), else None; such a
            row stands for the whole bucket (``domain`` is ``""``).
    """

    bucket: str
    domain: str
    status: str
    type: str | None
    cert_id: str | None
    fingerprint: str | None
    valid_end: datetime | None
    days_left: float | None
    error: str | None = None

    def to_json(self) -> dict[str, object]:
        """JSON-able form for ``--json``."""
        return {
            "bucket": self.bucket, "domain": self.domain, "status": self.status,
            "type": self.type, "cert_id": self.cert_id, "fingerprint": self.fingerprint,
            "valid_end": self.valid_end.isoformat() if self.valid_end else None,
            "days_left": None if self.days_left is None else round(self.days_left, 1),
            "error": self.error,
        }


def certificate_rows(
    clients: Clients, buckets: Iterable[str], *, now: datetime | None = None
) -> list[CertificateRow]:
    """One row per domain bound to each bucket (one ListCname per bucket).

    A bucket that cannot be listed for good (``NoSuchBucket``, access denied) gets one row
    carrying the error, so one typo'd bucket does not hide the others. Each certificate ending
    within :data:`~cname_flow.certs.EXPIRY_WARNING_DAYS` is published as a
    ``certificate.expiring`` event (``clients.events``).

    Raises:
        OssError: a retryable failure (network, throttling): trying later can succeed.
    """
    now = now or datetime.now(UTC)
    rows: list[CertificateRow] = []
    for bucket in sorted(set(buckets)):
        try:
            entries = bucket_listing(clients, bucket)
        except OssError as exc:
            if exc.retryable:
                raise
            log.warning("certificate.bucket_unlisted", bucket=bucket, code=exc.code)
            rows.append(CertificateRow(bucket, "", "error", None, None, None, None, None,
                                       error=f"{exc.code}: {exc.message}"))
            continue
        rows.extend(_row(bucket, e, now) for e in entries)
    for row in rows:
        if row.days_left is not None and row.days_left < EXPIRY_WARNING_DAYS:
            _expiring(clients, row, now)
    return rows


def _expiring(clients: Clients, row: CertificateRow, now: datetime) -> None:
    data = {k: v for k, v in row.to_json().items() if k in (
        "domain", "bucket", "cert_id", "fingerprint", "days_left") and v is not None}
    data["not_after"] = row.valid_end.isoformat() if row.valid_end else None
    try:
        clients.events.publish(Event("certificate.expiring", f"{row.bucket}/{row.domain}",
                                     data, now))
    except Exception:  # a sink must not raise; if one does, the listing still stands
        log.exception("event.publish_failed", type="certificate.expiring", domain=row.domain)


def _row(bucket: str, entry: CnameEntry, now: datetime) -> CertificateRow:
    cert = entry.certificate
    end = cert.valid_end if cert else None
    return CertificateRow(
        bucket=bucket, domain=entry.domain, status=entry.status,
        type=cert.type if cert else None, cert_id=cert.cert_id if cert else None,
        fingerprint=cert.fingerprint if cert else None, valid_end=end,
        days_left=(end - now).total_seconds() / 86400 if end else None,
    )


def remove_certificate(clients: Clients, binding: Binding, store: BindingStore) -> str:
    """Unbind the domain's certificate (PutCname with DeleteCertificate, never with Force),
    holding the binding's lock.

    Returns:
        What was done, as one sentence.

    Raises:
        Locked: another process drives this binding for longer than ``journal.lock_wait_s``.
        VerificationFailed: ListCname still shows a certificate afterwards.
        OssError: PutCname failed (e.g. the domain is not bound to the bucket).
    """
    with store.lock(binding.key):
        return _remove_certificate(clients, binding, store)


def _remove_certificate(clients: Clients, binding: Binding, store: BindingStore) -> str:
    ctx = step_context(clients, binding)
    run = BindingRun(ctx.ports, binding)
    entry = run.cname_entry(fresh=True)
    if entry is None:
        return (f"{binding.domain} is not bound to {binding.bucket} (not in its ListCname); "
                "nothing to do")
    if entry.certificate is None:
        return f"{binding.domain} on {binding.bucket} has no certificate; nothing to do"
    plan = plan_certificate(entry.certificate, None, remove=True)
    record = store.get(binding.key)
    policy = ctx.ownership_policy
    window = policy.window_s(record) if record else policy.min_window_s
    request_id = putcname.put_with_retry(ctx.ports.oss, binding, plan.request, window, policy,
                                         ctx.ports.sleep)
    after = run.cname_entry(fresh=True)
    if after is not None and after.certificate is not None:
        raise VerificationFailed(
            f"ListCname still shows certificate {after.certificate.cert_id} on {binding.domain}")
    store.record(JournalEvent(
        key=binding.key, step=AuxStep.CERT_REMOVE, status="done",
        phase=record.phase if record else Phase.BOUND,
        outputs=BindingOutputs(cert_id=None, fingerprint=None, cert_not_after=None,
                               put_request_id=request_id),
    ))
    log.info("certificate.removed", cert_id=entry.certificate.cert_id)
    return f"removed certificate {entry.certificate.cert_id} from {binding.domain}"

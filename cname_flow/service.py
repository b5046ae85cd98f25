"""Library entry points behind the commands: clients from settings, bind, unbind, certificates.

The CLI parses arguments, calls one function here, renders the result and picks the exit code;
nothing here prints or exits. Attaching and rotating a certificate go through :func:`bind` (the
PUT_CNAME step plans the change with PreviousCertId compare-and-swap); :func:`remove_certificate`
and :func:`certificate_rows` are the certificate operations that are not a binding.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import structlog

from cname_flow.certs import (
    LocalCertificate,
    check_cas_cert_id,
    check_certificate,
    plan_certificate,
)
from cname_flow.config import Credentials, Settings, resolve_credentials
from cname_flow.dns import build_provider
from cname_flow.dns.base import OWNER_REMARK, DnsProvider
from cname_flow.errors import InputError, RemoteError, VerificationFailed
from cname_flow.journal import BindingOutputs, BindingRecord, Journal, JournalEvent
from cname_flow.model import (
    AuxStep,
    Binding,
    BindingOptions,
    CertificateSpec,
    CnameEntry,
    Phase,
    Step,
    normalize_domain,
    txt_name,
)
from cname_flow.oss.adapter import AlibabaOss
from cname_flow.oss.base import OssCnameApi
from cname_flow.propagation.checker import PropagationChecker, Round
from cname_flow.workflow import putcname
from cname_flow.workflow.context import BindingRun, Ports, StepContext
from cname_flow.workflow.putcname import OwnershipPolicy
from cname_flow.workflow.runner import Runner

log = structlog.get_logger(__name__)

#: Journal file of the one-shot commands (bind, unbind), inside ``journal.dir``.
BIND_JOURNAL = "bindings.jsonl"


@dataclass(slots=True)
class Clients:
    """The adapters one run talks through, built once from the settings."""

    settings: Settings
    oss: OssCnameApi
    dns: DnsProvider
    checker: PropagationChecker

    @classmethod
    def from_settings(
        cls, settings: Settings, env: Mapping[str, str] | None = None, *,
        rate_limiter: Callable[[str], None] | None = None,
        on_error: Callable[[str, RemoteError], None] | None = None,
    ) -> Clients:
        """Resolve credentials and build the OSS adapter, the DNS provider and the checker.

        The DNS provider is the ``dns.provider`` setting, built by
        :func:`cname_flow.dns.build_provider`. ``rate_limiter(action)`` and
        ``on_error(action, error)``, when given, see every attempt of both adapters (their one
        retry layer calls them; a batch job limits and counts through them).

        Raises:
            ConfigError: no usable credentials, or an unknown ``dns.provider``.
        """
        creds = credentials(settings, env)
        o = settings.oss
        oss = AlibabaOss(
            region=o.region, credentials=creds, endpoint=o.endpoint,
            signature_version=o.signature_version, use_path_style=o.use_path_style,
            connect_timeout_s=o.connect_timeout_s, read_timeout_s=o.read_timeout_s,
            rate_limiter=rate_limiter, on_error=on_error,
        )
        dns = build_provider(settings.dns.provider, settings, creds,
                             rate_limiter=rate_limiter, on_error=on_error)
        return cls(settings, oss, dns, PropagationChecker(settings.propagation.to_policy()))


def credentials(settings: Settings, env: Mapping[str, str] | None = None) -> Credentials:
    """The AccessKey for ``settings`` (:func:`~cname_flow.config.resolve_credentials`).

    Raises:
        ConfigError: no usable credentials; SecretNotFound names the key's ``file:line``.
    """
    return resolve_credentials(settings.credentials, env, where=settings.where,
                               source=str(settings.source or ""))


def journal_path(settings: Settings, name: str = BIND_JOURNAL) -> Path:
    """Where a journal lives: ``<journal.dir>/<name>``."""
    return Path(settings.journal.dir) / name


def make_binding(
    settings: Settings, domain: str, *, bucket: str | None = None, region: str | None = None,
    options: BindingOptions | None = None, certificate: CertificateSpec | None = None,
) -> Binding:
    """A validated :class:`Binding` from user input and the settings' defaults.

    Raises:
        InputError: bad domain name, no bucket, or an incomplete certificate spec.
    """
    bucket = bucket or settings.defaults.bucket
    if not bucket:
        raise InputError("no bucket: pass --bucket or set defaults.bucket in the config")
    if certificate is not None and certificate.cert_id is None and not (
        certificate.cert_file and certificate.key_file
    ):
        raise InputError("a certificate needs both --cert-file and --key-file, or --cert-id")
    return Binding(
        domain=normalize_domain(domain), bucket=bucket,
        region=region or settings.defaults.region or settings.oss.region,
        certificate=certificate, options=options or BindingOptions(
            route_target=settings.defaults.route_target),
    )


def preflight_certificate(binding: Binding) -> LocalCertificate | str | None:
    """Check the binding's certificate before any API call (files, key, names, dates, CAS id).

    Raises:
        CertificateError: what is wrong, naming the file or the id.
    """
    spec = binding.certificate
    if spec is None:
        return None
    if spec.cert_id is not None:
        return check_cas_cert_id(spec.cert_id)
    assert spec.cert_file is not None and spec.key_file is not None
    local = check_certificate(spec.cert_file, spec.key_file, binding.domain)
    for warning in local.warnings:
        log.warning("certificate.warning", file=str(spec.cert_file), warning=warning)
    return local


def ports(
    clients: Clients, *, bucket_listing: Callable[[str], list[CnameEntry]] | None = None,
) -> Ports:
    """The workflow's ports over ``clients`` (a batch job adds its shared ListCname)."""
    return Ports(oss=clients.oss, dns=clients.dns, checker=clients.checker,
                 bucket_listing=bucket_listing)


def step_context(
    clients: Clients, binding: Binding, *, on_round: Callable[[Round], None] | None = None,
    shared: Ports | None = None,
) -> StepContext:
    """The step context of one binding (certificate pre-flighted first), over ``shared``
    ports or ports of its own.

    Raises:
        CertificateError: the binding's certificate fails pre-flight.
    """
    certificate = preflight_certificate(binding)
    return StepContext(
        binding=binding, ports=shared or ports(clients), certificate=certificate,
        txt_ttl=clients.settings.defaults.txt_ttl,
        ownership_policy=OwnershipPolicy.from_settings(clients.settings.ownership),
        on_round=on_round,
    )


def bind(
    clients: Clients, binding: Binding, journal: Journal, *,
    on_round: Callable[[Round], None] | None = None,
    on_step: Callable[[str, Step, Phase], None] | None = None,
) -> BindingRecord:
    """Drive one binding to BOUND, resuming from the journal.

    Raises:
        CnameFlowError: the failing step's error (journaled).
    """
    ctx = step_context(clients, binding, on_round=on_round)
    return Runner(journal, on_step=on_step).run(ctx)


def unbind(clients: Clients, binding: Binding, journal: Journal) -> list[str]:
    """DeleteCname, then delete the DNS records cname-flow created for the domain.

    Only records whose id is in the journal or that carry the ownership remark are deleted;
    never a record by name alone. Returns a description of each action taken.
    """
    done = []
    clients.oss.delete_cname(binding.bucket, binding.domain)
    done.append(f"DeleteCname {binding.domain} on {binding.bucket}")
    record = journal.get(binding.key)
    ids = {v for v in (record.txt_record_id, record.route_record_id) if v} if record else set()
    zone = clients.dns.find_zone(txt_name(binding.domain))
    for name, rtype in ((txt_name(binding.domain), "TXT"), (binding.domain, "CNAME")):
        for ref in clients.dns.list_records(zone, name, rtype):
            if ref.record_id in ids or ref.remark == OWNER_REMARK:
                clients.dns.delete_record(ref)
                done.append(f"deleted {rtype} {name} (record {ref.record_id})")
    journal.record(JournalEvent(key=binding.key, step=AuxStep.UNBIND, status="done",
                                phase=Phase.PENDING,
                                outputs=BindingOutputs(txt_record_id=None, route_record_id=None,
                                                       token=None, token_expires_at=None)))
    return done


def bucket_listing(clients: Clients, bucket: str) -> list[CnameEntry]:
    """The bucket's ListCname rows as OSS reports them now (one ListCname call), e.g. to show
    next to a binding just made.

    Raises:
        OssError: ListCname failed (``NoSuchBucket``, access denied, ...).
    """
    return clients.oss.list_cnames(bucket)


# -- certificates -----------------------------------------------------------------------------

def certificate_buckets(settings: Settings, requested: Iterable[str] = ()) -> list[str]:
    """The buckets whose certificates ``cert status`` lists, sorted.

    ``requested`` when given; otherwise every bucket of the bind journal plus
    ``defaults.bucket``.

    Raises:
        InputError: nothing requested and neither the journal nor the settings name a bucket.
    """
    chosen = set(requested)
    if not chosen:
        snapshot = Journal.read_only(journal_path(settings))
        chosen = {r.bucket for r in snapshot.bindings().values()}
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
    clients: Clients, buckets: Iterable[str], *, now: datetime | None = None
) -> list[CertificateRow]:
    """One row per domain bound to each bucket (one ListCname per bucket)."""
    now = now or datetime.now(UTC)
    rows: list[CertificateRow] = []
    for bucket in sorted(set(buckets)):
        rows.extend(_row(bucket, e, now) for e in bucket_listing(clients, bucket))
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


def remove_certificate(clients: Clients, binding: Binding, journal: Journal) -> str:
    """Unbind the domain's certificate (PutCname with DeleteCertificate, never with Force).

    Returns:
        What was done, as one sentence.

    Raises:
        VerificationFailed: ListCname still shows a certificate afterwards.
        OssError: PutCname failed (e.g. the domain is not bound to the bucket).
    """
    ctx = step_context(clients, binding)
    run = BindingRun(ctx.ports, binding)
    entry = run.cname_entry(fresh=True)
    if entry is None or entry.certificate is None:
        return f"{binding.domain} on {binding.bucket} has no certificate; nothing to do"
    plan = plan_certificate(entry.certificate, None, remove=True)
    record = journal.get(binding.key)
    policy = ctx.ownership_policy
    window = policy.window_s(record) if record else policy.min_window_s
    request_id = putcname.put_with_retry(ctx.ports.oss, binding, plan.request, window, policy,
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

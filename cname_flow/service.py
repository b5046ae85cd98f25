"""Library entry points behind the commands: build clients from settings, bind, unbind, status.

The CLI parses arguments, calls one function here, renders the result and picks the exit code;
nothing here prints or exits.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

import structlog

from cname_flow.certs.pem import LocalCertificate, check_cas_cert_id, check_certificate
from cname_flow.config.settings import Settings, resolve_credentials
from cname_flow.dns.alidns import Alidns
from cname_flow.dns.base import OWNER_REMARK, DnsProvider
from cname_flow.errors import InputError
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
from cname_flow.propagation.checker import PropagationChecker, PropagationPolicy, Round
from cname_flow.workflow.context import Ports, StepContext
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
    def from_settings(cls, settings: Settings, env: Mapping[str, str] | None = None) -> Clients:
        """Resolve credentials and build the OSS and Alidns adapters and the checker.

        Raises:
            ConfigError: no usable credentials.
        """
        creds = resolve_credentials(settings, env)
        oss = AlibabaOss(
            region=settings.oss.region, credentials=creds, endpoint=settings.oss.endpoint,
            signature_version=settings.oss.signature_version,
            connect_timeout_s=settings.oss.connect_timeout_s,
            read_timeout_s=settings.oss.read_timeout_s,
        )
        dns = Alidns(credentials=creds, endpoint=settings.alidns.endpoint,
                     region=settings.alidns.region, protocol=settings.alidns.protocol)
        return cls(settings, oss, dns, PropagationChecker(propagation_policy(settings)))


def propagation_policy(settings: Settings) -> PropagationPolicy:
    """The checker's policy from the ``propagation`` settings."""
    p = settings.propagation
    return PropagationPolicy(
        query_timeout_s=p.query_timeout_s, tcp_timeout_s=p.tcp_timeout_s, payload=p.payload,
        first_poll_s=p.first_poll_s, backoff_initial_s=p.backoff_initial_s,
        backoff_exp_base=p.backoff_exp_base, backoff_max_s=p.backoff_max_s,
        backoff_jitter_s=p.backoff_jitter_s, confirmations=p.confirmations,
        confirmation_gap_s=p.confirmation_gap_s, deadline_s=p.deadline_s,
        max_parallel=p.max_parallel, strict=p.strict, dns_port=p.dns_port,
        nameserver_addresses={k: tuple(v) for k, v in p.nameserver_addresses.items()},
    )


def ownership_policy(settings: Settings) -> OwnershipPolicy:
    """The PutCname retry bounds from the ``ownership`` settings."""
    o = settings.ownership
    return OwnershipPolicy(initial_s=o.initial_s, exp_base=o.exp_base, max_s=o.max_s,
                           jitter_s=o.jitter_s, min_window_s=o.min_window_s, cap_s=o.cap_s)


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
        ownership_policy=ownership_policy(clients.settings), on_round=on_round,
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

"""Library entry points behind the commands: clients from settings, bind, unbind, certificates.

The CLI parses arguments, calls one function here, renders the result and picks the exit code;
nothing here prints or exits. Attaching and rotating a certificate go through :func:`bind` (the
PUT_CNAME step plans the change with PreviousCertId compare-and-swap); :func:`remove_certificate`
and :func:`certificate_rows` (in :mod:`cname_flow.certificates`) are the certificate
operations that are not a binding.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from pathlib import Path

from cname_flow.certs import LocalCertificate, check_cas_cert_id, check_certificate
from cname_flow.config import Credentials, Settings, resolve_credentials
from cname_flow.dns import build_dns
from cname_flow.dns.base import OWNER_REMARK, DnsProvider
from cname_flow.errors import ConfigError, InputError, RegionMismatch, RemoteError
from cname_flow.events import EventSink, NullSink
from cname_flow.events.sinks import sink_from_settings
from cname_flow.journal import BindingOutputs, BindingRecord, JournalEvent
from cname_flow.logs import get_logger
from cname_flow.manifest import Manifest
from cname_flow.manual.mode import mode_for
from cname_flow.model import (
    AuxStep,
    Binding,
    BindingOptions,
    CertificateSpec,
    CnameEntry,
    Phase,
    Step,
    txt_name,
)
from cname_flow.oss.adapter import AlibabaOss
from cname_flow.oss.base import OssCnameApi
from cname_flow.oss.regions import RegionalOss
from cname_flow.propagation.checker import PropagationChecker, Round
from cname_flow.quotas import RateLimiter
from cname_flow.store import BindingStore, prunable, read_all
from cname_flow.store import open_store as store_of
from cname_flow.store.jsonl import STORE_FILE
from cname_flow.workflow import runner
from cname_flow.workflow.context import Ports, StepContext
from cname_flow.workflow.putcname import OwnershipPolicy

log = get_logger(__name__)

#: The store of record's file inside ``journal.dir`` (every entry point's bindings).
BIND_JOURNAL = STORE_FILE


@dataclass(slots=True)
class Clients:
    """The adapters one run talks through, built once from the settings."""

    settings: Settings
    oss: OssCnameApi
    dns: DnsProvider
    checker: PropagationChecker
    events: EventSink = field(default_factory=NullSink)

    @classmethod
    def from_settings(
        cls, settings: Settings, env: Mapping[str, str] | None = None, *,
        rate_limiter: Callable[[str], None] | None = None,
        on_error: Callable[[str, RemoteError], None] | None = None,
        credentials: Credentials | None = None,
    ) -> Clients:
        """Resolve credentials and build the OSS router, the DNS provider and the checker.

        OSS: a :class:`~cname_flow.oss.regions.RegionalOss` that builds one ``AlibabaOss`` per
        region it meets, each signing for its region. Without ``oss.endpoint`` each reaches
        the SDK's production endpoint of its region (``oss-<region>.aliyuncs.com``); an
        explicit ``oss.endpoint`` (the sandbox) is shared by every region. The DNS provider is
        the ``dns.provider`` setting, or a router by zone when ``dns.zones`` names other
        providers, built by :func:`cname_flow.dns.build_dns`. Events go where the ``events``
        section says (:func:`cname_flow.events.sinks.sink_from_settings`).
        ``rate_limiter(action)`` and ``on_error(action, error)`` see every attempt of both
        adapters, every region's client included (their one retry layer calls them; a batch
        job limits and counts through them). Without a ``rate_limiter`` the clients pace
        themselves to ``batch.rate_limits`` (:class:`~cname_flow.quotas.RateLimiter`), so every
        entry point (a bind, reconcile's concurrent fixes) keeps to the same rates.

        Raises:
            ConfigError: no usable credentials, or an unknown ``dns.provider``; SecretNotFound:
                a webhook's secret variable is unset.

        ``credentials`` already resolved (e.g. from ``--profile``) are used as given. Every
        secret variable (AccessKey, DNS provider, webhooks) is read from ``env`` (or os.environ).
        """
        creds = credentials if credentials is not None else resolve(settings, env)
        o = settings.oss
        if rate_limiter is None:
            rate_limiter = RateLimiter(settings.batch.rate_limits)

        def regional(region: str) -> OssCnameApi:
            return AlibabaOss(
                region=region, credentials=creds, endpoint=o.endpoint,
                signature_version=o.signature_version, use_path_style=o.use_path_style,
                connect_timeout_s=o.connect_timeout_s, read_timeout_s=o.read_timeout_s,
                rate_limiter=rate_limiter, on_error=on_error,
            )

        oss = RegionalOss(regional, o.region)
        dns = build_dns(settings, creds, rate_limiter=rate_limiter, on_error=on_error, env=env)
        events = sink_from_settings(settings.events, Path(settings.journal.dir), env,
                                    where=settings.where("events"))
        return cls(settings, oss, dns, PropagationChecker(settings.propagation.to_policy()), events)


def credentials(settings: Settings, env: Mapping[str, str] | None = None, *,
                profile: str | None = None) -> Credentials:
    """The AccessKey for ``settings`` (:func:`~cname_flow.config.resolve_credentials`);
    ``profile`` names a profile of the aliyun CLI's ``~/.aliyun/config.json`` (``--profile``).

    Raises:
        ConfigError: no usable credentials; SecretNotFound names the key's ``file:line``.
    """
    return resolve_credentials(settings.credentials, env, where=settings.where,
                               source=str(settings.source or ""), profile=profile)


resolve = credentials  # the name ``Clients.from_settings`` uses (its parameter shadows it)


def journal_path(settings: Settings, name: str = BIND_JOURNAL) -> Path:
    """Where a journal lives: ``<journal.dir>/<name>`` (default: the store of record's file)."""
    return Path(settings.journal.dir) / name


def open_store(settings: Settings) -> BindingStore:
    """The store of record (:func:`cname_flow.store.open_store`: PostgreSQL when ``store.url``
    is set, else the JSON store under ``journal.dir``), not yet open: use it as a context
    manager (``with open_store(settings) as store``).

    Raises (on open):
        Locked: (JSON) the store is being rewritten, or a process of the previous version holds
            it. JournalCorrupt: the store is unreadable. JournalError: (PostgreSQL) unreachable.
    """
    return store_of(Path(settings.journal.dir), url=settings.store.url,
                    lock_wait_s=settings.journal.lock_wait_s)


def read_bindings(settings: Settings) -> Mapping[str, BindingRecord]:
    """Every binding in the store, whatever made it (read-only use: ``status``, ``plan``); a
    fresh machine has none, and nothing is created for it (:func:`cname_flow.store.read_all`).

    Raises:
        ConfigError: ``journal.dir`` cannot be used. Locked, JournalCorrupt, JournalError: as
            :func:`open_store`.
    """
    return read_all(Path(settings.journal.dir), url=settings.store.url,
                    lock_wait_s=settings.journal.lock_wait_s)


def make_binding(
    settings: Settings, domain: str, *, bucket: str | None = None, region: str | None = None,
    options: BindingOptions | None = None, certificate: CertificateSpec | None = None,
    destructive: bool = False,
) -> Binding:
    """A validated :class:`Binding` from user input and the settings' defaults.

    ``region`` is the user's (``--region``); without it the binding's region is left ``""``
    and :func:`preflight_region` fills in the bucket's own. Every field is checked by
    :func:`cname_flow.names.build_binding` before anything is sent or journaled.
    ``destructive`` (``unbind``, ``forget``, ``cert remove``) refuses a domain that is not the
    name the user can see (:func:`cname_flow.names.visible_domain`); otherwise what that check
    would refuse is logged as a ``domain.suspicious`` warning.

    Raises:
        InputError: bad domain name, no bucket, a name OSS forbids for a bucket, a malformed
            region id, a route target that is not a host name, or a certificate spec that is
            incomplete or gives both files and a CAS id; when ``destructive``, a domain
            with hidden characters or a mixed-script Unicode label.
    """
    from cname_flow import names  # here, so this change stays inside make_binding (issue 13)

    bucket = bucket or settings.defaults.bucket
    if not bucket:
        raise InputError("no bucket: pass --bucket or set defaults.bucket in the config")
    binding = names.build_binding(
        domain, bucket=bucket, region=region or "", certificate=certificate,
        options=options or BindingOptions(route_target=settings.defaults.route_target),
        destructive=destructive,
    )
    for warning in [] if destructive else names.domain_warnings(domain):
        log.warning("domain.suspicious", domain=binding.domain, given=domain, warning=warning)
    return binding


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


def preflight_region(clients: Clients, binding: Binding) -> Binding:
    """Check the binding's region against its bucket's before anything is written.

    One GetBucketInfo per bucket per run (the OSS port caches it). A binding that names no
    region (``""``) takes the bucket's; one that names another is refused.

    Returns:
        The binding, its ``region`` the bucket's.

    Raises:
        RegionMismatch: the binding names a region the bucket is not in (exit 2).
        BucketNotFound: OSS has no such bucket (exit 2).
        OssError: GetBucketInfo failed otherwise.
    """
    actual = clients.oss.bucket_region(binding.bucket)
    if binding.region and binding.region != actual:
        raise RegionMismatch(binding.bucket, binding.region, actual)
    return binding if binding.region == actual else replace(binding, region=actual)


def learn_regions(clients: Clients, buckets: Iterable[str], *,
                  threads: int = 16) -> dict[str, InputError]:
    """Learn every bucket's region at once (GetBucketInfo in up to ``threads`` threads; the
    OSS port caches the answers), so a batch's pre-flight costs about one round trip per
    ``threads`` buckets instead of one per bucket.

    Returns:
        bucket → why it cannot be used (:class:`~cname_flow.errors.BucketNotFound`), for the
        buckets that failed so; ``{}`` when all are known.

    Raises:
        OssError: the first other failure (unreachable, access denied...).
    """
    names = sorted(set(buckets))

    def ask(bucket: str) -> InputError | None:
        try:
            clients.oss.bucket_region(bucket)
        except InputError as exc:
            return exc
        return None

    with ThreadPoolExecutor(max_workers=max(1, min(threads, len(names)))) as pool:
        answers = list(pool.map(ask, names))
    return {name: err for name, err in zip(names, answers, strict=True) if err is not None}


def bindings_in_regions(
    clients: Clients, manifest: Manifest, *, threads: int = 16,
) -> tuple[list[Binding], dict[str, str]]:
    """Every binding of ``manifest`` with its region its bucket's (:func:`preflight_region` for
    each, the buckets learned at once by :func:`learn_regions`), before anything is written.

    Returns:
        The usable bindings (manifest order), and binding key → ``"<file>:<line>: <why>"`` for
        each binding whose bucket does not exist or whose region is not its bucket's.

    Raises:
        OssError: GetBucketInfo failed otherwise (e.g. unreachable: retryable).
    """
    unusable = learn_regions(clients, (b.bucket for b in manifest.bindings), threads=threads)
    bindings, reasons = [], {}
    for binding in manifest.bindings:
        try:
            if binding.bucket in unusable:
                raise unusable[binding.bucket]
            bindings.append(preflight_region(clients, binding))
        except InputError as exc:
            reasons[binding.key] = f"{manifest.lines.get(binding.key, manifest.source)}: {exc}"
    return bindings, reasons


def manifest_in_regions(clients: Clients, manifest: Manifest, *, threads: int = 16) -> Manifest:
    """The manifest with every binding's region its bucket's (:func:`bindings_in_regions`).

    Raises:
        ConfigError: every binding whose bucket does not exist or whose region is not its
            bucket's, each with its manifest line (exit 2).
        OssError: GetBucketInfo failed otherwise (e.g. unreachable: retryable).
    """
    bindings, reasons = bindings_in_regions(clients, manifest, threads=threads)
    if reasons:
        raise ConfigError(list(reasons.values()), source=str(manifest.source))
    return replace(manifest, bindings=tuple(bindings))


def ports(
    clients: Clients, *, bucket_listing: Callable[[str], list[CnameEntry]] | None = None,
) -> Ports:
    """The workflow's ports over ``clients`` (a batch job adds its shared ListCname)."""
    return Ports(oss=clients.oss, dns=clients.dns, checker=clients.checker,
                 bucket_listing=bucket_listing, events=clients.events)


def step_context(
    clients: Clients, binding: Binding, *, on_round: Callable[[Round], None] | None = None,
    shared: Ports | None = None, manual: bool = False, manual_wait_s: float = 0.0,
) -> StepContext:
    """The step context of one binding (certificate, then region pre-flighted first, see
    :func:`preflight_region`), over ``shared`` ports or ports of its own. ``manual``
    (``--dns manual``) or a manual zone in ``dns.zones`` makes it a manual binding that this
    run checks for up to ``manual_wait_s`` seconds (:mod:`cname_flow.manual`).

    Raises:
        CertificateError: the binding's certificate fails pre-flight.
        RegionMismatch, BucketNotFound: the bucket is in another region, or does not exist.
    """
    certificate = preflight_certificate(binding)
    binding = preflight_region(clients, binding)
    return StepContext(
        binding=binding, ports=shared or ports(clients), certificate=certificate,
        txt_ttl=clients.settings.defaults.txt_ttl,
        ownership_policy=OwnershipPolicy.from_settings(clients.settings.ownership),
        on_round=on_round,
        manual=mode_for(clients.settings, binding.domain, forced=manual,
                        patience_s=manual_wait_s),
    )


def bind(
    clients: Clients, binding: Binding, store: BindingStore, *,
    on_round: Callable[[Round], None] | None = None,
    on_step: Callable[[str, Step, Phase], None] | None = None, manual: bool = False,
) -> BindingRecord:
    """Drive one binding to BOUND, resuming from the store, holding the binding's lock: a
    batch of one on the engine every entry point shares (:func:`runner.run_one`).

    Args:
        clients: the adapters.
        binding: what to bind (its region and certificate are pre-flighted first).
        store: the store of record.
        on_round: called with each propagation round (display).
        on_step: called with (binding key, step, phase reached) as each step completes.
        manual: ``--dns manual`` (see :func:`step_context`), checking ``manual.bind_wait_s``.

    Raises:
        AwaitingCustomerDns: manual mode, the record was not seen in time (retryable; the
            binding waits in the store).
        Locked: another process drives this binding for longer than ``journal.lock_wait_s``.
        Interrupted: SIGINT or SIGTERM stopped the run (the store shows where; re-run).
        CnameFlowError: the failing step's error (recorded in the store).
    """
    ctx = step_context(clients, binding, on_round=on_round, manual=manual,
                       manual_wait_s=clients.settings.manual.bind_wait_s)

    def on_event(event: JournalEvent) -> None:
        if on_step is not None and event.status == "done" and isinstance(event.step, Step):
            on_step(event.key, event.step, event.phase)

    return runner.run_one(store, ctx, locks=store, on_event=on_event,
                          lock_wait_s=clients.settings.journal.lock_wait_s)


#: Outputs an unbind clears: what pointed at the binding that is gone.
_UNBOUND = BindingOutputs(
    txt_record_id=None, route_record_id=None, token=None, token_expires_at=None,
    put_request_id=None, put=None, status=None, cert_id=None, fingerprint=None,
    cert_not_after=None, route_target=None, fast_path=None, converged_at=None,
    txt_written_at=None, next_attempt_at=None, ownership_failed_at=None,
)


def unbind(clients: Clients, binding: Binding, store: BindingStore) -> list[str]:
    """DeleteCname, then delete the DNS records cname-flow created for the domain; the store
    then shows the binding UNBOUND.

    Only records whose id is in the store or that carry the ownership remark are deleted;
    never a record by name alone. A domain the store does not know and ListCname does not
    show on the bucket was never bound: nothing is done and nothing is written.

    Returns:
        A description of each action taken (empty: nothing to unbind).

    Raises:
        Locked: another process drives this binding for longer than ``journal.lock_wait_s``.
        OssError, DnsProviderError: a call failed (the store is left as it was).
    """
    with store.lock(binding.key):
        record = store.get(binding.key)
        if record is None and not _listed(clients, binding):
            return []
        done = _remove(clients, binding, record)
        if record is not None:
            store.record(JournalEvent(key=binding.key, step=AuxStep.UNBIND, status="done",
                                      phase=Phase.UNBOUND, outputs=_UNBOUND))
        return done


def _listed(clients: Clients, binding: Binding) -> bool:
    return any(e.domain == binding.domain for e in clients.oss.list_cnames(binding.bucket))


def _remove(clients: Clients, binding: Binding, record: BindingRecord | None) -> list[str]:
    done = []
    clients.oss.delete_cname(binding.bucket, binding.domain)
    done.append(f"DeleteCname {binding.domain} on {binding.bucket}")
    ids = {v for v in (record.txt_record_id, record.route_record_id) if v} if record else set()
    zone = clients.dns.find_zone(txt_name(binding.domain))
    for name, rtype in ((txt_name(binding.domain), "TXT"), (binding.domain, "CNAME")):
        for ref in clients.dns.list_records(zone, name, rtype):
            if ref.record_id in ids or ref.remark == OWNER_REMARK:
                clients.dns.delete_record(ref)
                done.append(f"deleted {rtype} {name} (record {ref.record_id})")
    return done


def forget(settings: Settings, key: str) -> bool:
    """Drop ``key``'s entry from the store (nothing is called at OSS or the DNS provider).

    Returns:
        False when the store has no such entry (nothing written).

    Raises:
        Locked: a process drives the binding now (refused at once; nothing written).
    """
    with open_store(settings) as store, store.lock(key, wait_s=0):
        return store.forget(key)


def prune(settings: Settings) -> list[str]:
    """Forget every unbound or never-started entry (:func:`cname_flow.store.prunable`) whose
    binding no process drives now.

    Returns:
        The keys forgotten.
    """
    with open_store(settings) as store:
        return store.prune(prunable)


def bucket_listing(clients: Clients, bucket: str) -> list[CnameEntry]:
    """The bucket's ListCname rows as OSS reports them now (one ListCname call), e.g. to show
    next to a binding just made.

    Raises:
        OssError: ListCname failed (``NoSuchBucket``, access denied, ...).
    """
    return clients.oss.list_cnames(bucket)

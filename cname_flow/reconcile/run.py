"""Reconciliation for cron: desired bindings (a manifest) against the actual state; plan; apply.

One run: take the run lock (``<journal.dir>/reconcile.lock``, non-blocking: a second run gets
:class:`~cname_flow.errors.Locked` at once), observe (ListCname per manifest bucket, the
``_dnsauth`` and routing records at the DNS provider, the bind journal), build the
:class:`~cname_flow.reconcile.plan.ReconcilePlan` (:mod:`cname_flow.reconcile.drift`), then, with
``apply``, check the change budget (and a reviewed plan), and run the allowed actions:
first the removals (unbind, delete leftover TXT, journal bookkeeping), then the binds, each
group concurrently (``batch.concurrency`` at once, paced by the clients' rate limits), until
done or the deadline, which also stops the fixes in flight.

Fixes reuse the bind flow: the binds are one run of the engine every entry point shares
(:func:`cname_flow.workflow.runner.run`), which drives each binding to BOUND through
observe-first steps, so "binding missing", "not Enabled", "certificate drift", "route drift"
and "stuck job" are all the same fix. The store of record (``service.open_store``) is shared
by every entry point: it tells which bindings this tool made (by ``bind``, ``batch`` or a
reconcile), and ``sync`` unbinds only those. Each fix holds its binding's lock, so a binding a
batch or a ``bind`` is driving is never fixed twice at once (the fix then fails as retryable:
Locked).
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from cname_flow import service
from cname_flow.dns.base import RecordRef
from cname_flow.errors import ZoneNotFound
from cname_flow.journal import BindingRecord
from cname_flow.journal.files import HolderLock, ensure_dir, location_error
from cname_flow.logs import get_logger
from cname_flow.manifest import Manifest
from cname_flow.model import Binding, CnameEntry, txt_name
from cname_flow.reconcile.apply import Applier, BindFixer, ItemResult
from cname_flow.reconcile.drift import DesiredState, Finding, Observed, Policy, detect
from cname_flow.reconcile.notify import drift_event, expiring_events, publish
from cname_flow.reconcile.plan import ReconcilePlan

log = get_logger(__name__)

LOCK_NAME = "reconcile.lock"


@dataclass(frozen=True, slots=True)
class ReconcileOptions:
    """How one run behaves.

    Attributes:
        policy: ``upsert-only`` (default), ``sync`` or ``report-only``.
        apply: act; without it the run only plans.
        max_changes: change budget; None means 10 % of the desired bindings, at least 1.
        force: accept a plan over budget.
        deadline_s: seconds for the whole run: no fix starts after it, and fixes in flight
            are stopped at it (propagation waits at once, a step already sent within
            :data:`~cname_flow.reconcile.apply.DEADLINE_GRACE_S`; the next run resumes
            them). None: no limit.
        expiry_days: a bound certificate ending within this many days is drift.
    """

    policy: Policy = Policy.UPSERT_ONLY
    apply: bool = False
    max_changes: int | None = None
    force: bool = False
    deadline_s: float | None = None
    expiry_days: float = 30.0


@dataclass(frozen=True, slots=True)
class BindingStatus:
    """A desired binding's state after the run (for metrics).

    Attributes:
        key: ``"<bucket>/<domain>"``.
        status: ListCname status (``"Enabled"``, ``"Disabled"``) or ``"missing"``.
        cert_not_after: the bound certificate's ValidEndDate, or None.
    """

    key: str
    status: str
    cert_not_after: datetime | None


@dataclass(frozen=True, slots=True)
class ReconcileReport:
    """The outcome of one run.

    Attributes:
        plan: the plan that was made (or the reviewed one that was applied).
        applied: whether actions were run.
        results: one per (key, action) run or skipped by the deadline.
        statuses: every desired binding's state after the run.
        duration_s: wall time of the run, seconds.
    """

    plan: ReconcilePlan
    applied: bool
    results: tuple[ItemResult, ...] = ()
    statuses: tuple[BindingStatus, ...] = ()
    duration_s: float = 0.0

    def remaining(self) -> list[Finding]:
        """Drift findings not fixed by this run."""
        fixed = {(r.key, r.action) for r in self.results if r.status == "fixed"}
        return [f for f in self.plan.drift if (f.key, f.action) not in fixed]

    def outcome(self) -> str:
        """``"clean"`` (no drift left), ``"retry"`` (only retryable failures or deadline skips
        left), or ``"drift"`` (anything else left)."""
        left = self.remaining()
        if not left:
            return "clean"
        by_key = {(r.key, r.action): r for r in self.results}
        later = [by_key.get((f.key, f.action)) for f in left]
        if all(r is not None and (r.retryable or r.status in ("skipped", "stopped"))
               for r in later):
            return "retry"
        return "drift"

    def to_json(self) -> dict[str, object]:
        """JSON-able form for ``--json``."""
        return {
            "outcome": self.outcome(),
            "applied": self.applied,
            "duration_s": round(self.duration_s, 3),
            "plan": self.plan.to_json(),
            "results": [{"key": r.key, "action": str(r.action), "status": r.status,
                         "code": r.code, "message": r.message, "retryable": r.retryable}
                        for r in self.results],
            "remaining": [f.to_json() for f in self.remaining()],
        }


@contextlib.contextmanager
def run_lock(directory: Path) -> Iterator[Path]:
    """Hold ``<directory>/reconcile.lock`` (the journal's :class:`HolderLock`) for one run.

    Raises:
        Locked: another run holds it; the message names the lock file and the holder (pid,
            host, since).
        ConfigError: ``directory`` cannot be used (a file in the way, read-only…; exit 2).
        JournalError: the lock files could not be written (``retryable`` on a full disk).
    """
    path = directory / LOCK_NAME
    lock = HolderLock(
        path, path.with_suffix(".holder"),
        busy=lambda who: f"another reconcile run holds {path} ({who or 'holder unknown'});"
        " nothing was done",
        hint="cron will try again; check for a run that hangs",
    )
    try:
        ensure_dir(directory)
        lock.acquire()
    except OSError as exc:
        raise location_error(exc, path, doing="lock") from exc
    try:
        yield path
    finally:
        lock.release()


def manifest_digest(manifest: Manifest) -> str:
    """SHA-256 hex of the bytes the manifest was loaded from (kept by the loader: the file is
    not read again, so a changed file or a pipe cannot give another digest)."""
    return manifest.sha256


def observe(clients: service.Clients, manifest: Manifest,
            records: Mapping[str, BindingRecord]) -> list[Observed]:
    """Observe every key on the manifest's buckets: desired, journaled, or listed by ListCname.

    Only read APIs are called (ListCname, DescribeDomains, DescribeSubDomainRecords).

    Raises:
        RemoteError: a ListCname or DNS provider call failed (ZoneNotFound only skips DNS reads).
    """
    buckets = sorted(manifest.buckets)
    listed = {b: {e.domain: e for e in clients.oss.list_cnames(b)} for b in buckets}
    desired = {b.key: b for b in manifest.bindings}
    keys = set(desired) | {k for k in records if k.partition("/")[0] in listed}
    keys |= {f"{b}/{d}" for b, rows in listed.items() for d in rows}
    return [_observe_key(clients, k, desired.get(k), listed, records.get(k)) for k in sorted(keys)]


def _observe_key(clients: service.Clients, key: str, binding: Binding | None,
                 listed: Mapping[str, Mapping[str, CnameEntry]],
                 record: BindingRecord | None) -> Observed:
    bucket, _, domain = key.partition("/")
    entry = listed[bucket].get(domain)
    elsewhere = next((b for b, rows in listed.items() if b != bucket and domain in rows), None)
    want_txt = record is not None and (
        (binding is not None and record.txt_record_id is not None)
        or (binding is None and entry is None))
    want_route = binding is not None and binding.options.route
    txt, route = _records(clients, domain, want_txt, want_route)
    return Observed(key, entry, elsewhere, txt, route, record)


def _records(clients: service.Clients, domain: str, want_txt: bool,
             want_route: bool) -> tuple[tuple[RecordRef, ...], tuple[RecordRef, ...]]:
    if not (want_txt or want_route):
        return (), ()
    try:
        zone = clients.dns.find_zone(txt_name(domain))
    except ZoneNotFound:
        return (), ()
    txt = tuple(clients.dns.list_records(zone, txt_name(domain), "TXT")) if want_txt else ()
    route = tuple(clients.dns.list_records(zone, domain, "CNAME")) if want_route else ()
    return txt, route


def desired_state(manifest: Manifest, policy: Policy, expiry_days: float) -> DesiredState:
    """The manifest's bindings with their certificates pre-flighted.

    Raises:
        CertificateError: a certificate file or CAS id of the manifest fails pre-flight.
    """
    certs = {}
    for b in manifest.bindings:
        cert = service.preflight_certificate(b)
        if cert is not None:
            certs[b.key] = cert
    return DesiredState({b.key: b for b in manifest.bindings}, certs, expiry_days, policy)


def build_plan(clients: service.Clients, manifest: Manifest, records: Mapping[str, BindingRecord],
               opts: ReconcileOptions, now: datetime | None = None) -> ReconcilePlan:
    """Observe and plan; read-only.

    Raises:
        CertificateError: a manifest certificate fails pre-flight.
        RemoteError: an observation failed.
    """
    now = now or datetime.now(UTC)
    desired = desired_state(manifest, opts.policy, opts.expiry_days)
    findings = detect(desired, observe(clients, manifest, records), now)
    return ReconcilePlan(str(manifest.source), manifest_digest(manifest), opts.policy,
                         len(manifest.bindings), tuple(findings), now)


def statuses(clients: service.Clients, manifest: Manifest) -> tuple[BindingStatus, ...]:
    """Each desired binding's ListCname status and certificate end (one ListCname per bucket)."""
    listed = {b: {e.domain: e for e in clients.oss.list_cnames(b)}
              for b in sorted(manifest.buckets)}
    out = []
    for b in manifest.bindings:
        e = listed[b.bucket].get(b.domain)
        cert_end = e.certificate.valid_end if e and e.certificate else None
        out.append(BindingStatus(b.key, e.status if e else "missing", cert_end))
    return tuple(out)


def reconcile(clients: service.Clients, manifest: Manifest, opts: ReconcileOptions, *,
              reviewed: ReconcilePlan | None = None,
              clock: Callable[[], float] = time.monotonic,
              fix_binds: BindFixer | None = None) -> ReconcileReport:
    """One reconcile run: lock, observe, plan, and with ``opts.apply`` act.

    Args:
        clients: adapters built from the settings.
        manifest: the desired state.
        opts: policy, apply, budget, deadline, expiry threshold.
        reviewed: a plan from ``--plan-out`` to apply exactly (``opts.apply`` must be set).
        clock: monotonic seconds (injected for tests).
        fix_binds: runs the BIND fixes elsewhere (scale-out: enqueued for DBOS workers) once
            the budget and the reviewed plan are checked; None: this process's engine.

    Returns:
        The report; its :meth:`ReconcileReport.outcome` decides the exit code.

    Raises:
        Locked: another run holds the run lock (nothing was read or written), or the store is
            being rewritten.
        UnsafePlan: over the change budget without ``force``.
        StalePlan: ``reviewed`` no longer matches the observed state.
        CnameFlowError: observation failed (ListCname, DNS provider) or bad certificate input.
    """
    started = clock()
    expires = None if opts.deadline_s is None else started + opts.deadline_s
    path = service.journal_path(clients.settings)
    with run_lock(path.parent):
        if not opts.apply:
            records = service.read_bindings(clients.settings)
            plan = build_plan(clients, manifest, records, opts)
            return _announced(clients, ReconcileReport(
                plan, False, (), statuses(clients, manifest), clock() - started))
        with service.open_store(clients.settings) as journal:
            plan = build_plan(clients, manifest, journal.bindings(), opts)
            publish(clients.events, [drift_event(plan)])  # before the fixes' own events
            if reviewed is not None:
                reviewed.check_same(plan)
            plan.check_budget(opts.max_changes, force=opts.force)
            results = Applier(clients, manifest, journal, expires, clock, fix_binds).run(plan)
        return _announced(clients, ReconcileReport(
            plan, True, results, statuses(clients, manifest), clock() - started))


def _announced(clients: service.Clients, report: ReconcileReport) -> ReconcileReport:
    """Publish the run's ``certificate.expiring`` events, and a plan-only run's
    ``drift.found`` (an applying run published it before its fixes): :mod:`.notify`."""
    ends = {s.key: s.cert_not_after for s in report.statuses}
    first = None if report.applied else drift_event(report.plan)
    publish(clients.events, [first, *expiring_events(report.plan, ends)])
    return report

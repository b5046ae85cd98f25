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
import hashlib
import time
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from cname_flow import service
from cname_flow.dns.base import RecordRef
from cname_flow.errors import CnameFlowError, Interrupted, JournalError, ZoneNotFound
from cname_flow.journal import BindingOutputs, BindingRecord, JournalEvent
from cname_flow.journal.files import HolderLock, ensure_dir, location_error
from cname_flow.logs import get_logger
from cname_flow.manifest import Manifest
from cname_flow.model import AuxStep, Binding, CnameEntry, Phase, txt_name
from cname_flow.reconcile.drift import Action, DesiredState, Finding, Observed, Policy, detect
from cname_flow.reconcile.plan import ReconcilePlan
from cname_flow.store import BindingStore
from cname_flow.workflow import runner

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
            :data:`DEADLINE_GRACE_S`; the next run resumes them). None: no limit.
        expiry_days: a bound certificate ending within this many days is drift.
    """

    policy: Policy = Policy.UPSERT_ONLY
    apply: bool = False
    max_changes: int | None = None
    force: bool = False
    deadline_s: float | None = None
    expiry_days: float = 30.0


@dataclass(frozen=True, slots=True)
class ItemResult:
    """What happened to one (key, action) of the plan.

    Attributes:
        key: ``"<bucket>/<domain>"``.
        action: the action.
        status: ``"fixed"``, ``"failed"``, ``"skipped"`` (the deadline passed before it
            started) or ``"stopped"`` (the deadline stopped it in flight; retryable).
        code: error code for ``failed`` (``"DomainBoundElsewhere"``, an OSS code…), else ``""``.
        message: what happened, one line.
        retryable: a later run may succeed.
    """

    key: str
    action: Action
    status: str
    code: str = ""
    message: str = ""
    retryable: bool = False


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
    """SHA-256 hex of the manifest file's bytes."""
    return hashlib.sha256(Path(manifest.source).read_bytes()).hexdigest()


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


#: Seconds a step already sent may take to finish and be journaled once the deadline passed.
DEADLINE_GRACE_S = 5.0


@dataclass(slots=True)
class _Applier:
    """Runs the plan's allowed actions against the open store, each group concurrently."""

    clients: service.Clients
    manifest: Manifest
    journal: BindingStore
    expires: float | None
    clock: Callable[[], float] = time.monotonic

    def run(self, plan: ReconcilePlan) -> tuple[ItemResult, ...]:
        actions = list(plan.actions())
        removals: dict[str, list[Action]] = {}
        for key, action in actions:
            if action is not Action.BIND:
                removals.setdefault(key, []).append(action)
        done: dict[tuple[str, Action], ItemResult] = {}
        workers = max(1, self.clients.settings.batch.concurrency)
        with ThreadPoolExecutor(max_workers=min(workers, max(1, len(removals)))) as pool:
            for results in pool.map(self._removals, removals.items()):
                done.update(((r.key, r.action), r) for r in results)
        done.update(((r.key, r.action), r) for r in
                    self._binds([k for k, a in actions if a is Action.BIND], workers))
        return tuple(done[item] for item in actions)

    def _remaining_s(self) -> float | None:
        return None if self.expires is None else self.expires - self.clock()

    def _removals(self, item: tuple[str, list[Action]]) -> list[ItemResult]:
        """One key's removals, in plan order (one worker: they touch the same records)."""
        key, actions = item
        out = []
        for action in actions:
            left = self._remaining_s()
            out.append(_skipped(key, action) if left is not None and left <= 0
                       else self._one(key, action))
        return out

    def _binds(self, keys: list[str], workers: int) -> list[ItemResult]:
        """The BIND fixes as one run of the engine, bounded by the deadline."""
        left = self._remaining_s()
        if left is not None and left <= 0:
            return [_skipped(key, Action.BIND) for key in keys]
        by_key = {b.key: b for b in self.manifest.bindings}
        shared = service.ports(self.clients)
        out, contexts = [], []
        for key in keys:
            log.info("reconcile.action", key=key, action=str(Action.BIND))
            try:
                contexts.append(service.step_context(self.clients, by_key[key], shared=shared))
            except CnameFlowError as exc:
                out.append(_failed(key, Action.BIND, exc))
        options = runner.RunOptions(
            concurrency=min(workers, max(1, len(contexts))), backoff=runner.ONE_SHOT,
            lock_wait_s=self.clients.settings.journal.lock_wait_s, deadline_s=left,
            grace_s=DEADLINE_GRACE_S)
        run = runner.run(self.journal, contexts, options, locks=self.journal)
        if run.signal is not None:
            raise Interrupted(run.signal)
        for ctx in contexts:
            out.append(self._bind_result(ctx.binding.key, run))
        return out

    def _bind_result(self, key: str, run: runner.RunResult) -> ItemResult:
        error = run.errors.get(key) or run.locked.get(key)
        if error is not None:
            return _failed(key, Action.BIND, error)
        record = self.journal.get(key)
        if record is not None and record.phase == Phase.BOUND:
            return ItemResult(key, Action.BIND, "fixed", message=str(record.phase))
        where = record.phase if record is not None else "not started"
        return ItemResult(key, Action.BIND, "stopped", retryable=True,
                          message=f"the deadline stopped it at {where}; the next run resumes it")

    def _one(self, key: str, action: Action) -> ItemResult:
        log.info("reconcile.action", key=key, action=str(action))
        try:
            message = self._act(key, action)
        except CnameFlowError as exc:
            return _failed(key, action, exc)
        return ItemResult(key, action, "fixed", message=message)

    def _act(self, key: str, action: Action) -> str:
        bucket, _, domain = key.partition("/")
        if action is Action.UNBIND:
            region = self._record(key).region or self.clients.settings.oss.region
            done = service.unbind(self.clients, Binding(domain, bucket, region), self.journal)
            return "; ".join(done)
        with self.journal.lock(key):  # unbind above takes it itself
            if action is Action.DELETE_TXT:
                return self._delete_txt(key, domain)
            self._forget_txt(key)
        return "stopped tracking the missing _dnsauth record"

    def _record(self, key: str) -> BindingRecord:
        record = self.journal.get(key)
        if record is None:
            raise JournalError(f"{key}: no journal record")
        return record

    def _delete_txt(self, key: str, domain: str) -> str:
        record = self._record(key)
        zone = self.clients.dns.find_zone(txt_name(domain))
        probe = Observed(key, None, None, (), (), record)
        gone = []
        for ref in self.clients.dns.list_records(zone, txt_name(domain), "TXT"):
            if probe.ours(ref):
                self.clients.dns.delete_record(ref)
                gone.append(ref.record_id)
        self._forget_txt(key)
        return f"deleted TXT record(s) {', '.join(gone) or 'none left'}"

    def _forget_txt(self, key: str) -> None:
        record = self._record(key)
        self.journal.record(JournalEvent(key=key, step=AuxStep.RECONCILE, status="done",
                                         phase=record.phase,
                                         outputs=BindingOutputs(txt_record_id=None)))


def _skipped(key: str, action: Action) -> ItemResult:
    return ItemResult(key, action, "skipped", message="deadline passed before it could start",
                      retryable=True)


def _failed(key: str, action: Action, exc: CnameFlowError) -> ItemResult:
    log.warning("reconcile.failed", key=key, action=str(action), code=exc.code,
                error=exc.message)
    return ItemResult(key, action, "failed", exc.code, exc.message, exc.retryable)


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
              clock: Callable[[], float] = time.monotonic) -> ReconcileReport:
    """One reconcile run: lock, observe, plan, and with ``opts.apply`` act.

    Args:
        clients: adapters built from the settings.
        manifest: the desired state.
        opts: policy, apply, budget, deadline, expiry threshold.
        reviewed: a plan from ``--plan-out`` to apply exactly (``opts.apply`` must be set).
        clock: monotonic seconds (injected for tests).

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
            return ReconcileReport(plan, False, (), statuses(clients, manifest),
                                   clock() - started)
        with service.open_store(clients.settings) as journal:
            plan = build_plan(clients, manifest, journal.bindings(), opts)
            if reviewed is not None:
                reviewed.check_same(plan)
            plan.check_budget(opts.max_changes, force=opts.force)
            results = _Applier(clients, manifest, journal, expires, clock).run(plan)
        return ReconcileReport(plan, True, results, statuses(clients, manifest),
                               clock() - started)


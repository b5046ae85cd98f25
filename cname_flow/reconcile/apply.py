"""Applying a reconcile plan: removals first (concurrently, one worker per key), then the binds
as one run of the engine every entry point shares (:func:`cname_flow.workflow.runner.run`),
bounded by the run's deadline, which also stops fixes in flight."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from cname_flow import service
from cname_flow.errors import CnameFlowError, Interrupted, JournalError
from cname_flow.journal import BindingOutputs, BindingRecord, JournalEvent
from cname_flow.logs import get_logger
from cname_flow.manifest import Manifest
from cname_flow.model import AuxStep, Binding, Phase, txt_name
from cname_flow.reconcile.drift import Action, Observed
from cname_flow.reconcile.plan import ReconcilePlan
from cname_flow.store import BindingStore
from cname_flow.workflow import runner

log = get_logger(__name__)


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


#: Seconds a step already sent may take to finish and be journaled once the deadline passed.
DEADLINE_GRACE_S = 5.0

#: Runs the BIND fixes elsewhere (scale-out: submitted to DBOS workers): called with the
#: bindings (pre-flighted, in plan order), the open store and the seconds left before the
#: deadline (None: no deadline); returns one :class:`ItemResult` per binding.
BindFixer = Callable[[Sequence[Binding], BindingStore, "float | None"], list[ItemResult]]


@dataclass(slots=True)
class Applier:
    """Runs a plan's allowed actions against the open store, each group concurrently.

    Args:
        clients: the adapters (paced by their rate limiter).
        manifest: the desired bindings (the BIND fixes' bindings, regions learned).
        journal: the open store of record.
        expires: the deadline on ``clock``, or None.
        clock: monotonic seconds.
        fix_binds: runs the BIND fixes instead of this process's engine (:data:`BindFixer`).
    """

    clients: service.Clients
    manifest: Manifest
    journal: BindingStore
    expires: float | None
    clock: Callable[[], float] = time.monotonic
    fix_binds: BindFixer | None = None

    def run(self, plan: ReconcilePlan) -> tuple[ItemResult, ...]:
        """One result per action of ``plan``, in plan order.

        Raises:
            Interrupted: SIGINT or SIGTERM stopped the binds (their state is in the store).
        """
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
        if self.fix_binds is not None:
            return out + self.fix_binds([c.binding for c in contexts], self.journal, left)
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



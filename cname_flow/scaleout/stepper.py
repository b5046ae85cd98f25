"""One machine step of one binding, as a DBOS step runs it: lock, observe the record, run, journal.

The decisions are :mod:`cname_flow.workflow.driver`'s, the same the asyncio engine makes
(start or resume, ``running`` before the step, ``done``/``failed`` after, the expired-token
back-edge, the backoff journaled as ``next_attempt_at``); only the scheduling differs: each
call of :meth:`Stepper.advance` is one DBOS step (https://docs.dbos.dev/python/tutorials/step-tutorial),
so a worker that dies mid-step leaves the step to be run again by whoever recovers the
workflow, which is safe because every step observes before it acts and the binding's lock
keeps two runners apart.

The propagation wait is one step, blocking its DBOS thread on the threaded checker.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Literal, Protocol, TypedDict

from cname_flow import service
from cname_flow.errors import CnameFlowError, Locked, TokenExpired
from cname_flow.journal import BindingRecord
from cname_flow.logs import get_logger
from cname_flow.model import Binding, Phase
from cname_flow.scaleout.spec import BindingSpec, decode
from cname_flow.store.base import BindingLocks, RecordLog
from cname_flow.workflow import driver, machine
from cname_flow.workflow.context import BindingRun, Ports, StepContext
from cname_flow.workflow.driver import BackoffPolicy

log = get_logger(__name__)

Status = Literal["done", "ended", "failed", "renewed", "locked"]

#: Phases at which a binding's workflow ends at once: a binding already bound (enqueued
#: again, or its last step re-run after a crash). A binding FAILED or UNBOUND earlier starts a
#: fresh pass at PENDING, as a local ``bind`` of it does; a submitter that means to skip
#: failed bindings (``batch run`` without ``--retry-failed``) does not enqueue them.
ENDED: frozenset[Phase] = frozenset({Phase.BOUND})

#: Seconds a workflow waits before trying a binding another process holds again.
LOCKED_RETRY_S = 1.0


class StepOutcome(TypedDict):
    """What one :meth:`Stepper.advance` did (JSON-safe: DBOS checkpoints it).

    Keys: ``status`` (``done``: a step ran; ``ended``: the binding was already BOUND, nothing
    ran; ``failed``: the step failed, journaled; ``renewed``: the CNAME token had
    expired, back to PENDING; ``locked``: another process holds the binding, nothing ran),
    ``phase`` (the binding's phase now), ``step`` (the step run, or None), ``retryable``
    (whether trying again may succeed), ``delay_s`` (seconds to wait before that), ``error``
    (the error's code, or None).
    """

    status: Status
    phase: str
    step: str | None
    retryable: bool
    delay_s: float
    error: str | None


class StepStore(RecordLog, BindingLocks, Protocol):
    """The store port the stepper needs: records (get, record) and per-binding locks
    (:mod:`cname_flow.store.base`); the JSON store and the PostgreSQL store both are one."""


@dataclass(slots=True)
class _Run:
    ctx: StepContext
    run: BindingRun


class Stepper:
    """Runs one step of a binding per :meth:`advance`; one per worker process, shared by its
    DBOS threads (thread-safe: each binding's state is touched under its lock only).

    Args:
        clients: the adapters (rate-limited by the shared limiter).
        store: an open store of record (PostgreSQL, or the JSON store on one host).
        backoff: the retry schedule (as a batch job's).
        lock_wait_s: how long a binding another process holds is waited for per attempt.
    """

    def __init__(self, clients: service.Clients, store: StepStore, *,
                 backoff: BackoffPolicy | None = None, lock_wait_s: float = 0.0) -> None:
        self.clients = clients
        self.store = store
        self.backoff = backoff or BackoffPolicy()
        self.lock_wait_s = lock_wait_s
        self._ports: Ports = service.ports(clients)
        self._runs: dict[str, _Run] = {}
        self._mutex = threading.Lock()

    def advance(self, spec: BindingSpec, renewals: int = 0) -> StepOutcome:
        """Run the next step of ``spec``'s binding, under its lock; journal it.

        Args:
            spec: the workflow's input.
            renewals: expired-token back-edges this workflow took so far.

        Returns:
            What happened (:class:`StepOutcome`).

        Raises:
            Exception: what is not a step's error (the store failing, a lost connection):
                the DBOS step is retried, and after that the workflow is recovered.
        """
        binding = decode(spec)
        key = binding.key
        try:
            lease = self.store.lock(key, wait_s=self.lock_wait_s)
        except Locked as exc:
            log.info("binding.locked", binding=key, holder=exc.holder)
            return _outcome("locked", self.store.get(key), None, retryable=True,
                            delay_s=LOCKED_RETRY_S)
        with lease:
            return self._advance_locked(binding, self.store, renewals)

    def _advance_locked(self, binding: Binding, records: RecordLog,
                        renewals: int) -> StepOutcome:
        key = binding.key
        start = driver.start_or_resume(records, binding)
        if start.record is not None and start.record.phase in ENDED:
            return _outcome("ended", start.record, None)
        phase = start.phase
        step = driver.next_step(phase)
        if start.events:
            records.record_many(start.events)
        record = records.record(driver.running_event(key, step, phase))
        try:
            state = self._state(binding)
            reached, done = driver.run_step(state.ctx, state.run, record, phase,
                                            crash_as_failure=True)
        except TokenExpired as exc:
            try:
                back = driver.on_token_expired(key, exc, renewals + 1)
            except TokenExpired:
                event, _ = driver.backoff_failure(record, exc, self.backoff)
                self._forget(key)
                failed = records.record(event)
                driver.announce(self._ports, failed, event)
                return _outcome("failed", failed, exc, retryable=False)
            return _outcome("renewed", records.record(back), exc, retryable=True)
        except CnameFlowError as exc:
            if exc.step is None:  # preflight (certificate, region): name the binding and step
                exc.binding_key, exc.step = key, str(step)
            event, delay = driver.backoff_failure(record, exc, self.backoff)
            failed = records.record(event)
            if not exc.retryable:
                self._forget(key)
                driver.announce(self._ports, failed, event)
            return _outcome("failed", failed, exc, retryable=exc.retryable,
                            delay_s=delay or 0.0, step=str(step))
        after = records.record(done)
        if reached in machine.TERMINAL:
            self._forget(key)
            driver.announce(self._ports, after, done)
        return _outcome("done", after, None, step=str(step))

    def finished(self, spec: BindingSpec) -> None:
        """Forget the in-process reads of ``spec``'s binding (its workflow ended)."""
        self._forget(decode(spec).key)

    def _state(self, binding: Binding) -> _Run:
        """The binding's context (pre-flighted: certificate, region) and this process's reads
        of it, kept while its workflow runs here (a recovered workflow starts afresh).

        Raises:
            CertificateError, RegionMismatch, BucketNotFound: pre-flight refused it.
        """
        with self._mutex:
            state = self._runs.get(binding.key)
        if state is None:
            ctx = service.step_context(self.clients, binding, shared=self._ports)
            state = _Run(ctx, BindingRun(ctx.ports, ctx.binding, ctx.manual))
            with self._mutex:
                self._runs[binding.key] = state
        return state

    def _forget(self, key: str) -> None:
        with self._mutex:
            self._runs.pop(key, None)


def _outcome(status: Status, record: BindingRecord | None, exc: CnameFlowError | None, *,
             retryable: bool = False, delay_s: float = 0.0,
             step: str | None = None) -> StepOutcome:
    return StepOutcome(status=status, phase=str(record.phase if record else Phase.PENDING),
                       step=step, retryable=retryable, delay_s=delay_s,
                       error=None if exc is None else exc.code)

"""The asyncio engine: the one driver of the machine, for a one-shot bind (a batch of one), a
batch job and reconcile's fixes alike (:func:`cname_flow.workflow.runner.drive` runs it).

What a job does for the user: README, "Batch jobs".

Design:

* One task per binding drives it through :mod:`cname_flow.workflow.driver`: ``running`` is
  journaled before each step, ``done``/``failed`` after; the driver dispatches, follows the
  expired-token back-edge and builds every event. The engine only schedules: hops, group
  commit, backoff.
* A binding's consecutive synchronous steps run in one *hop* on one worker thread
  (create_token → write_txt, then put_cname → verify → finish): the worker journals each
  transition itself through the group committer (a step's ``running`` shares a group with
  the previous step's ``done`` and is durable before the step starts), so the event loop
  sees a binding only at the start of a hop and for its propagation wait.
* Synchronous SDK calls run in a bounded thread pool (``concurrency`` workers,
  :class:`~cname_flow.workflow.pool.Workers`) behind a priority gate that hands a freed worker
  to the binding furthest along the machine, so bindings finish instead of all crowding the
  first steps; no step kind may hold more than half the workers (a step blocked on its API's
  token bucket cannot starve the others).
* WAIT_PROPAGATION holds no worker: it runs :func:`~cname_flow.workflow.steps.await_propagation`
  on the loop, so thousands of waiting bindings cost a few sockets and objects each.
* Journal writes go through a :class:`~cname_flow.workflow.commit.GroupCommitter`: every
  event that lands while the previous ``fsync`` runs is written with the next one.
* A retryable failure is journaled with ``next_attempt_at`` and retried after an exponential
  backoff, at most ``max_attempts`` times per run; a resumed job first waits out a recorded
  backoff (unless ``honour_recorded`` is off: a one-shot bind the user re-runs starts at
  once). A permanent failure ends only its own binding (phase FAILED); the last error of
  each binding is kept in :attr:`Engine.errors`.
* Each binding's lock (:class:`~cname_flow.store.base.BindingLocks`) is held while the binding
  is in flight, so a ``bind`` of one of its domains (or another job) waits and never does the
  work twice; a binding another process holds for longer than ``lock_wait_s`` is left for a
  resume. Once locked, the binding's record is read afresh and a binding that no longer needs
  a run (``needs_run``) is skipped.
* :meth:`Engine.stop` stops new work: propagation waits and backoffs are cancelled at once
  (their ``running`` step is re-run on resume, which is safe because steps observe first);
  steps already in a worker are given ``grace_s`` to finish and be journaled.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime

from cname_flow.errors import CnameFlowError, Locked, TokenExpired
from cname_flow.journal import BindingRecord, JournalEvent
from cname_flow.logs import get_logger
from cname_flow.manual import mode as manual_mode
from cname_flow.manual import wait as manual_wait
from cname_flow.manual.errors import AwaitingCustomerDns
from cname_flow.model import Phase, Step
from cname_flow.store.base import BindingLock, BindingLocks
from cname_flow.workflow import driver, machine, steps
from cname_flow.workflow.commit import GroupCommitter
from cname_flow.workflow.context import BindingRun, StepContext
from cname_flow.workflow.driver import BackoffPolicy as BackoffPolicy
from cname_flow.workflow.pool import Workers

log = get_logger(__name__)


class Engine:
    """Drives a job's bindings concurrently; see the module docstring.

    Args:
        committer: the job's journal writer.
        workers: the thread pool.
        backoff: retry schedule of failing bindings.
        on_event: called with every journaled event, after it is durable, from a worker
            thread or the loop: it must be thread-safe.
        grace_s: after :meth:`stop`, how long steps already in a worker may take to finish.
        locks: the store's per-binding locks, held while a binding is in flight (None: none).
        lock_wait_s: how long a binding held by another process is waited for, seconds.
        needs_run: whether a binding's fresh record (after locking) still needs a run.
        step_level: the ``logging`` level of the ``step.start``/``step.done`` events (a
            one-shot bind's are INFO; a job's thousands are DEBUG, its progress is per binding).
        window: bindings in flight at once (each holds its lock, a task and its state; the
            others wait their turn in manifest order); default 1,024 or 16 per worker, which
            keeps every worker and the rate limits busy while memory stays flat in N.
    """

    def __init__(
        self, committer: GroupCommitter, workers: Workers, *,
        backoff: BackoffPolicy | None = None,
        on_event: Callable[[JournalEvent], None] | None = None, grace_s: float = 20.0,
        locks: BindingLocks | None = None, lock_wait_s: float = 0.0,
        needs_run: Callable[[BindingRecord | None], bool] | None = None,
        step_level: int = logging.DEBUG, window: int | None = None,
    ) -> None:
        self.window = window or max(1024, 16 * workers.concurrency)
        self._log_step = log.info if step_level >= logging.INFO else log.debug
        self.locks = locks
        self.lock_wait_s = lock_wait_s
        self.needs_run = needs_run
        #: binding key → the refusal, for bindings left because another process held them.
        self.locked: dict[str, Locked] = {}
        #: binding key → the error of its last failed step in this run.
        self.errors: dict[str, CnameFlowError] = {}
        self.committer = committer
        self.workers = workers
        self.backoff = backoff or BackoffPolicy()
        self.on_event = on_event
        self.grace_s = grace_s
        self.stopping = False
        self._idle: set[asyncio.Task[None]] = set()  # tasks in a wait or backoff: cancel at stop
        self._tasks: set[asyncio.Task[None]] = set()  # the bindings in flight

    async def run(self, contexts: Sequence[StepContext]) -> list[BaseException]:
        """Drive every binding until BOUND, FAILED, retries exhausted, or :meth:`stop`.

        Returns:
            What ended a binding's task other than an error of its steps (which is journaled
            and kept in :attr:`errors`): KeyboardInterrupt, SystemExit, a test's simulated
            kill. The caller raises the first once every binding has stopped.
        """
        loop = asyncio.get_running_loop()
        room = asyncio.Semaphore(self.window)
        crashes: list[BaseException] = []

        def finished(task: asyncio.Task[None]) -> None:
            self._tasks.discard(task)
            room.release()
            if not task.cancelled() and (exc := task.exception()) is not None:
                crashes.append(exc)

        for ctx in contexts:  # at most ``window`` bindings in flight: memory flat in N
            await room.acquire()
            if self.stopping:
                break
            task = loop.create_task(self._guarded(ctx))
            self._tasks.add(task)
            task.add_done_callback(finished)
        if self._tasks:
            await asyncio.wait(set(self._tasks))
        return crashes

    def stop(self) -> None:
        """Stop new work; cancel waits and backoffs; leave worker steps ``grace_s`` to finish."""
        if self.stopping:
            return
        self.stopping = True
        for task in list(self._idle):
            task.cancel()
        asyncio.get_running_loop().call_later(self.grace_s, self._abandon)

    def _abandon(self) -> None:
        for task in list(self._tasks):
            task.cancel()

    async def _guarded(self, ctx: StepContext) -> None:
        try:
            lease = await self._lock(ctx.binding.key)
            if lease is None:
                return
            try:
                if self.needs_run is None or self.needs_run(
                        self.committer.journal.get(ctx.binding.key)):
                    await self._drive(ctx)
            finally:
                lease.release()
        except asyncio.CancelledError:
            log.info("binding.interrupted", binding=ctx.binding.key)
        except Exception:  # isolation: a bug in one binding must not stop the others
            log.exception("binding.crashed", binding=ctx.binding.key)

    async def _lock(self, key: str) -> BindingLock | None:
        """Take ``key``'s lock, polling up to ``lock_wait_s`` without holding the loop.

        Returns:
            The lock (a no-op one without :attr:`locks`), or None when another process kept
            it (recorded in :attr:`locked`) or the engine is stopping.
        """
        if self.locks is None:
            return _NoLock(key)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.lock_wait_s
        while True:
            try:
                return self.locks.lock(key, wait_s=0)
            except Locked as exc:
                if self.stopping or loop.time() >= deadline:
                    log.warning("binding.locked", binding=key, holder=exc.holder)
                    self.locked[key] = exc
                    return None
            with self._idle_while():
                await asyncio.sleep(_LOCK_POLL_S)

    async def _drive(self, ctx: StepContext) -> None:
        """Alternate worker hops and propagation waits until the binding is done or stopped.

        ``carry`` holds the events to journal with the next hop's first ``running`` (a new
        binding's start, a finished wait's ``done``): one group, durable before that step.
        """
        key = ctx.binding.key
        start = driver.start_or_resume(self.committer.journal, ctx.binding)
        carry = list(start.events)
        if start.record is not None and self.backoff.honour_recorded:
            await self._wait_backoff(start.record)
        mode = manual_mode.effective(ctx.manual, start.record)
        if mode is not None:  # a manual binding (by config, flag, or its record in the store)
            ctx = replace(ctx, manual=mode)
        run = BindingRun(ctx.ports, ctx.binding, mode)
        phase, renewals, failures = start.phase, 0, 0
        try:
            while phase not in machine.TERMINAL and not self.stopping:
                try:
                    phase, carry = await self._leg(ctx, run, phase, carry)
                except TokenExpired as exc:
                    renewals += 1
                    try:
                        back = driver.on_token_expired(key, exc, renewals)
                    except TokenExpired:  # renewed too often: a failure like any other
                        self.errors[key] = exc
                        await self._failed(ctx, exc, self.backoff.max_attempts)
                        return
                    phase = (await self._commit(back)).phase
                except AwaitingCustomerDns as exc:  # manual mode: waits in the store, no failure
                    self.errors[key] = exc
                    return
                except CnameFlowError as exc:
                    failures += 1
                    self.errors[key] = exc
                    record = await self._failed(ctx, exc, failures)
                    if not exc.retryable or failures >= self.backoff.max_attempts:
                        return
                    await self._wait_backoff(record)
                    phase = record.phase
        finally:
            if carry:  # a finished wait whose next hop never started (stop): keep its outcome
                await self._commit(*carry)

    async def _leg(self, ctx: StepContext, run: BindingRun, phase: Phase,
                   carry: list[JournalEvent]) -> tuple[Phase, list[JournalEvent]]:
        """One leg: a propagation wait on the loop, or a hop of synchronous steps in a worker.

        Returns:
            (the phase reached, the events still to journal).
        """
        hop = await self._hop(ctx, run, phase, carry)
        if hop.wait is None:
            return hop.record.phase, []
        if ctx.manual is not None and ctx.manual.active:
            return await self._wait_manual(ctx, run, hop.record)
        return await self._wait_propagation(ctx, hop.wait)

    async def _hop(self, ctx: StepContext, run: BindingRun, phase: Phase,
                   carry: list[JournalEvent]) -> Hop:
        """Take a worker for the step leaving ``phase`` and run :meth:`_run_hop` in it."""
        step = driver.next_step(phase)
        async with self._worker(step):
            carry_now = list(carry)
            carry.clear()  # from here the hop owns them (it journals them first)
            return await self.workers.call(
                ctx.binding.key, lambda: self._run_hop(ctx, run, phase, carry_now))

    def _run_hop(self, ctx: StepContext, run: BindingRun, phase: Phase,
                 carry: list[JournalEvent]) -> Hop:
        """In a worker: run consecutive synchronous steps from ``phase``, journaling each.

        Each step's ``running`` is durable before the step starts (it shares a group commit
        with the previous step's ``done``). Stops before WAIT_PROPAGATION (returning what the
        wait needs), at a terminal phase, or when the engine is stopping.

        Raises:
            CnameFlowError: the step that failed (``binding_key``/``step`` set); its
                ``running`` is journaled, so the journal's phase is the failed step's.
        """
        key = ctx.binding.key
        while True:
            step = driver.next_step(phase)
            record = self._commit_blocking(*carry, driver.running_event(key, step, phase))
            self._log_step("step.start", step=str(step), phase=str(phase))
            if step is Step.WAIT_PROPAGATION:
                with driver.binding_context(key, step, crash_as_failure=True):
                    return Hop(record, steps.plan_wait(ctx, run, record))
            phase, done = driver.run_step(ctx, run, record, phase, crash_as_failure=True)
            self._log_step("step.done", step=str(step), phase=str(phase))
            carry = [done]
            if phase in machine.TERMINAL or self.stopping:
                after = self._commit_blocking(*carry)
                driver.announce(ctx.ports, after, done)  # BOUND: binding.verified
                return Hop(after, None)

    @contextlib.asynccontextmanager
    async def _worker(self, step: Step) -> AsyncIterator[None]:
        """Hold a worker for ``step``; waiting for it is cancelled by :meth:`stop`."""
        with self._idle_while():
            await self.workers.acquire(step)
        try:
            yield
        finally:
            self.workers.release(step)

    async def _wait_propagation(
        self, ctx: StepContext, plan: steps.WaitPlan
    ) -> tuple[Phase, list[JournalEvent]]:
        """The WAIT_PROPAGATION step on the loop.

        Returns:
            (the phase reached, the step's ``done`` event, not journaled yet).

        Raises:
            PropagationTimeout: the deadline passed (``binding_key``/``step`` set).
        """
        key, step = ctx.binding.key, Step.WAIT_PROPAGATION
        with driver.binding_context(key, step), self._idle_while():
            result = await steps.await_propagation(ctx, plan)
        phase, done = driver.done_event(key, step, Phase.TXT_WRITTEN, result)
        self._log_step("step.done", binding=key, step=str(step), phase=str(phase))
        return phase, [done]

    async def _wait_manual(
        self, ctx: StepContext, run: BindingRun, record: BindingRecord
    ) -> tuple[Phase, list[JournalEvent]]:
        """WAIT_PROPAGATION of a manual binding on the loop (:func:`manual_wait.wait_async`):
        its checks and token renewals are journaled as they happen.

        Raises:
            AwaitingCustomerDns: the run's patience ran out; the binding waits in the store.
        """
        key, step = ctx.binding.key, Step.WAIT_PROPAGATION
        assert ctx.manual is not None
        with driver.binding_context(key, step), self._idle_while():
            result = await manual_wait.wait_async(
                ctx, run, record, ctx.manual, self._commit,
                lambda fn: asyncio.to_thread(fn))
        phase, done = driver.done_event(key, step, Phase.TXT_WRITTEN, result)
        self._log_step("step.done", binding=key, step=str(step), phase=str(phase))
        return phase, [done]

    async def _failed(self, ctx: StepContext, exc: CnameFlowError,
                      failures: int) -> BindingRecord:
        """Journal the failure of the step whose ``running`` is the binding's last event
        (a permanent one is announced: ``binding.failed``)."""
        record = self.committer.journal.get(ctx.binding.key)
        assert record is not None  # the failed step's running event was journaled
        event, _ = driver.backoff_failure(record, exc, self.backoff, failures=failures)
        after = await self._commit(event)
        driver.announce(ctx.ports, after, event)
        return after

    async def _wait_backoff(self, record: BindingRecord) -> None:
        """Sleep until the binding's persisted ``next_attempt_at`` (if it is in the future)."""
        due = record.next_attempt_at
        if due is None or record.last_status != "failed":
            return
        delay = (due - datetime.now(UTC)).total_seconds()
        if delay > 0:
            log.info("binding.backoff", binding=record.key, wait_s=round(delay, 1))
            with self._idle_while():
                await asyncio.sleep(delay)

    @contextlib.contextmanager
    def _idle_while(self) -> Iterator[None]:
        task = asyncio.current_task()
        assert task is not None
        if self.stopping:
            raise asyncio.CancelledError
        self._idle.add(task)
        try:
            yield
        finally:
            self._idle.discard(task)

    async def _commit(self, *events: JournalEvent) -> BindingRecord:
        record = await self.committer.commit(*events)
        self._changed(events)
        return record

    def _commit_blocking(self, *events: JournalEvent) -> BindingRecord:
        record = self.committer.commit_blocking(*events)
        self._changed(events)
        return record

    def _changed(self, events: Sequence[JournalEvent]) -> None:
        if self.on_event is not None:
            for event in events:
                self.on_event(event)


#: Seconds between two attempts at a binding another process holds.
_LOCK_POLL_S = 0.25


class _NoLock:
    """The lock of an engine without :attr:`Engine.locks`: nothing to hold."""

    def __init__(self, key: str) -> None:
        self.key = key

    def release(self) -> None:
        """Nothing to free."""

    def __enter__(self) -> _NoLock:
        return self

    def __exit__(self, *exc: object) -> None:
        return None


@dataclass(frozen=True, slots=True)
class Hop:
    """The outcome of a worker hop: the record after it, and the wait it stopped before."""

    record: BindingRecord
    wait: steps.WaitPlan | None

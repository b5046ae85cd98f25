"""Runs the engine over a set of bindings: the one entry to the machine for every use.

A one-shot ``bind`` is a batch of one (:func:`run_one`), a batch job a batch of many, and
reconcile's fixes a batch of the bindings it found drifting: each is :func:`drive` (async, for
callers with a running loop) or :func:`run` (its synchronous facade, which owns a loop of its
own) over :class:`~cname_flow.workflow.engine.Engine`. The engine decides nothing about a
step; :mod:`cname_flow.workflow.driver` does. What differs between the uses is only a
:class:`RunOptions`: workers, backoff, how long a binding another process holds is waited
for, a deadline, and whether SIGINT/SIGTERM stop the run gracefully.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from cname_flow.errors import CnameFlowError, Interrupted, Locked
from cname_flow.journal import BindingRecord, JournalEvent
from cname_flow.logs import get_logger
from cname_flow.store.base import BindingLocks, RecordLog
from cname_flow.workflow.commit import GroupCommitter
from cname_flow.workflow.context import StepContext
from cname_flow.workflow.engine import BackoffPolicy, Engine
from cname_flow.workflow.pool import Workers

log = get_logger(__name__)

#: A one-shot run: one attempt (the retry layer under each API call already retried), and a
#: backoff journaled by an earlier run is not waited out (the user asked for a run now).
ONE_SHOT = BackoffPolicy(max_attempts=1, honour_recorded=False)


@dataclass(frozen=True, slots=True)
class RunOptions:
    """How one run of the engine behaves.

    Attributes:
        concurrency: worker threads for the synchronous SDK calls (≥ 1).
        backoff: the retry schedule of failing bindings within the run.
        lock_wait_s: how long a binding another process drives is waited for, seconds.
        needs_run: whether a binding's fresh record (read after its lock is taken) still
            needs a run; None: every binding runs.
        deadline_s: seconds after the start at which the run stops as on a signal: waits are
            cancelled at once, steps in a worker get ``grace_s``; None: no deadline.
        grace_s: after a stop, how long steps already in a worker may take, seconds.
        stop_on_signals: SIGINT and SIGTERM stop the run gracefully (only when it runs on the
            main thread; elsewhere signals stay the host's).
        step_level: the ``logging`` level of each step's start and end events.
    """

    concurrency: int = 1
    backoff: BackoffPolicy = ONE_SHOT
    lock_wait_s: float = 0.0
    needs_run: Callable[[BindingRecord | None], bool] | None = None
    deadline_s: float | None = None
    grace_s: float = 20.0
    stop_on_signals: bool = True
    step_level: int = logging.DEBUG


@dataclass(slots=True)
class RunResult:
    """What one run of the engine left behind (the records themselves are in the store).

    Attributes:
        signal: the signal that stopped the run, or None.
        deadline_passed: the run was stopped by :attr:`RunOptions.deadline_s`.
        errors: binding key → the error of its last failed step in this run.
        locked: binding key → the refusal, for bindings another process held.
        flushes: journal groups written (one ``fsync`` each).
    """

    signal: int | None = None
    deadline_passed: bool = False
    errors: dict[str, CnameFlowError] = field(default_factory=dict)
    locked: dict[str, Locked] = field(default_factory=dict)
    flushes: int = 0

    @property
    def stopped(self) -> bool:
        """A signal or the deadline stopped the run before every binding ended."""
        return self.signal is not None or self.deadline_passed


async def drive(
    store: RecordLog, contexts: Sequence[StepContext], options: RunOptions, *,
    locks: BindingLocks | None = None, on_event: Callable[[JournalEvent], None] | None = None,
) -> RunResult:
    """Drive every binding of ``contexts`` until it ends, fails ``backoff.max_attempts``
    times, or the run is stopped (signal, deadline); on the running loop.

    Args:
        store: the record log every transition is journaled to (group-committed).
        contexts: one per binding (preflighted: region and certificate).
        options: see :class:`RunOptions`.
        locks: the per-binding locks held while a binding is in flight (None: none).
        on_event: called with every journaled event once it is durable (thread-safe).

    Returns:
        What the run left behind; each binding's record is in ``store``.

    Raises:
        BaseException: what is not an error of a step (KeyboardInterrupt, a test's simulated
            kill) ends the run and is raised once every binding has stopped.
    """
    loop = asyncio.get_running_loop()
    committer = GroupCommitter(store)
    committer.start()
    workers = Workers(options.concurrency)
    engine = Engine(committer, workers, backoff=options.backoff, on_event=on_event,
                    grace_s=options.grace_s, locks=locks, lock_wait_s=options.lock_wait_s,
                    needs_run=options.needs_run, step_level=options.step_level)
    result = RunResult()

    def on_signal(signum: int) -> None:
        if result.signal is None:
            result.signal = signum
        log.warning("run.stopping", signal=signal.Signals(signum).name)
        engine.stop()

    def on_deadline() -> None:
        result.deadline_passed = True
        log.warning("run.deadline", deadline_s=options.deadline_s)
        engine.stop()

    stoppers = (signal.SIGINT, signal.SIGTERM) if options.stop_on_signals and \
        threading.current_thread() is threading.main_thread() else ()
    for signum in stoppers:
        loop.add_signal_handler(signum, on_signal, signum)
    timer = None if options.deadline_s is None else loop.call_later(options.deadline_s,
                                                                  on_deadline)
    try:
        crashes = await engine.run(contexts)
    finally:
        if timer is not None:
            timer.cancel()
        for signum in stoppers:
            loop.remove_signal_handler(signum)
        await committer.close()
        workers.shutdown()
    result.errors, result.locked, result.flushes = engine.errors, engine.locked, \
        committer.flushes
    if crashes:
        raise crashes[0]
    return result


def run(
    store: RecordLog, contexts: Sequence[StepContext], options: RunOptions, *,
    locks: BindingLocks | None = None, on_event: Callable[[JournalEvent], None] | None = None,
) -> RunResult:
    """:func:`drive` on a loop of its own (uvloop's when installed), for synchronous callers.

    Raises:
        RuntimeError: called from a thread whose event loop is running (use :func:`drive`,
            or call this through ``asyncio.to_thread``).
        BaseException: as :func:`drive`.
    """
    with asyncio.Runner(loop_factory=loop_factory()) as runner:
        return runner.run(drive(store, contexts, options, locks=locks, on_event=on_event))


def run_one(
    store: RecordLog, ctx: StepContext, *, locks: BindingLocks | None = None,
    lock_wait_s: float = 0.0, on_event: Callable[[JournalEvent], None] | None = None,
) -> BindingRecord:
    """Drive one binding to BOUND: a batch of one (:func:`run` with :data:`ONE_SHOT`).

    Args:
        store: the record log.
        ctx: the binding's step context (preflighted).
        locks: the store's per-binding locks; the binding's is held while it runs.
        lock_wait_s: how long another process driving the binding is waited for, seconds.
        on_event: called with every journaled event once it is durable.

    Returns:
        The binding's record after the run (phase BOUND).

    Raises:
        Locked: another process drove the binding for longer than ``lock_wait_s``.
        Interrupted: SIGINT or SIGTERM stopped the run; the record shows where (resumable).
        CnameFlowError: the failing step's error, with ``binding_key`` and ``step`` set; the
            store holds the failure (phase FAILED when not retryable).
    """
    key = ctx.binding.key
    result = run(store, [ctx], RunOptions(lock_wait_s=lock_wait_s, step_level=logging.INFO),
                 locks=locks, on_event=on_event)
    if key in result.locked:
        raise result.locked[key]
    if key in result.errors:
        raise result.errors[key]
    if result.signal is not None:
        raise Interrupted(result.signal, key)
    record = store.get(key)
    assert record is not None  # the binding ran: at least its start event is journaled
    return record


def loop_factory() -> Callable[[], asyncio.AbstractEventLoop] | None:
    """uvloop's loop when it is installed (a faster loop for thousands of waits), else None."""
    try:
        import uvloop
    except ImportError:
        return None
    return uvloop.new_event_loop

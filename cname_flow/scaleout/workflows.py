"""The binding workflow: one DBOS step per machine step, durable backoff between attempts.

``bind_workflow`` is registered as :data:`~cname_flow.scaleout.spec.BIND_WORKFLOW`; a
submitter enqueues it on :data:`~cname_flow.scaleout.spec.BIND_QUEUE` with the id
:func:`~cname_flow.scaleout.spec.workflow_id` (DBOS workflows and steps:
https://docs.dbos.dev/python/tutorials/workflow-tutorial). DBOS checkpoints each step's
outcome, so a recovered workflow replays the steps already done (their outcomes, not their
calls) and runs the rest; the step in flight at a crash runs again, safely (observe, then act;
the binding's lock in the store).

A retryable failure waits ``delay_s`` with ``DBOS.sleep`` (durable: a recovered workflow
sleeps only what is left) and tries again, at most ``BackoffPolicy.max_attempts`` failures per
workflow, as a batch job; the binding is then left with its journaled ``next_attempt_at`` for
a later run. A binding another process holds is tried again every second, for at most
:data:`MAX_LOCKED_ROUNDS` rounds.
"""

from __future__ import annotations

import threading
from typing import Protocol

from dbos import DBOS

from cname_flow.scaleout.spec import BIND_WORKFLOW, BindingSpec
from cname_flow.scaleout.stepper import StepOutcome
from cname_flow.workflow.driver import BackoffPolicy

#: Rounds a workflow waits for a binding another process holds before leaving it.
MAX_LOCKED_ROUNDS = 600

#: Failures of an unexpected kind (the store unreachable, a lost connection) DBOS retries a
#: step for, with backoff from 1 s doubling (about 8.5 minutes in all), before the workflow
#: errors out.
STEP_ATTEMPTS = 10



class Advancer(Protocol):
    """What a binding workflow drives: :class:`~cname_flow.scaleout.stepper.Stepper`."""

    backoff: BackoffPolicy

    def advance(self, spec: BindingSpec, renewals: int = 0) -> StepOutcome:
        """Run the binding's next step (see :meth:`Stepper.advance`)."""
        ...

    def finished(self, spec: BindingSpec) -> None:
        """Forget what this process kept of the binding."""
        ...


_installed: list[Advancer] = []
_install_lock = threading.Lock()


def install(stepper: Advancer) -> None:
    """Make ``stepper`` the one this process's binding workflows use (a worker's, built once
    at start: its store, clients and shared limiter)."""
    with _install_lock:
        _installed[:] = [stepper]


def installed() -> Advancer:
    """The process's stepper.

    Raises:
        RuntimeError: no stepper installed (the process is not a worker).
    """
    with _install_lock:
        if not _installed:
            raise RuntimeError("no stepper installed: binding workflows run in "
                               "`cname-flow worker` processes only")
        return _installed[0]


@DBOS.step(retries_allowed=True, max_attempts=STEP_ATTEMPTS, interval_seconds=1.0,
           backoff_rate=2.0)
def advance(spec: BindingSpec, renewals: int) -> StepOutcome:
    """One machine step of the binding (:meth:`Stepper.advance`), checkpointed by DBOS.

    Raises:
        Exception: what is not a step's error; DBOS retries the step, see :data:`STEP_ATTEMPTS`.
    """
    return installed().advance(spec, renewals)


@DBOS.workflow(name=BIND_WORKFLOW)
def bind_workflow(spec: BindingSpec) -> str:
    """Drive the binding of ``spec`` until BOUND, FAILED, or its retries are spent.

    Returns:
        The binding's phase when the workflow ends (``"BOUND"``, ``"FAILED"``, or the phase a
        retryable failure left it at).
    """
    renewals = failures = locked = 0
    try:
        while True:
            outcome = advance(spec, renewals)
            status = outcome["status"]
            if status == "ended":
                return outcome["phase"]
            if status == "renewed":
                renewals += 1
            elif status == "locked":
                locked += 1
                if locked >= MAX_LOCKED_ROUNDS:
                    return outcome["phase"]
                DBOS.sleep(outcome["delay_s"])
            elif status == "failed":
                failures += 1
                if not outcome["retryable"] or failures >= _max_attempts():
                    return outcome["phase"]
                DBOS.sleep(outcome["delay_s"])
            elif outcome["phase"] in ("BOUND", "FAILED", "UNBOUND"):
                return outcome["phase"]
    finally:
        _finished(spec)


def _max_attempts() -> int:
    return installed().backoff.max_attempts


def _finished(spec: BindingSpec) -> None:
    with _install_lock:
        stepper = _installed[0] if _installed else None
    if stepper is not None:
        stepper.finished(spec)

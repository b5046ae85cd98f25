"""What a step does and which events it leaves behind: start or resume, dispatch, the
expired-token back-edge, failure events, and naming the binding and step on every error.

The engine (:class:`~cname_flow.workflow.engine.Engine`, the one driver of every entry point)
owns only *when* and *where* a step runs and how its events reach the journal; the rest is
decided here, once::

    start = start_or_resume(journal, ctx.binding)      # journal start.events first
    run = BindingRun(ctx.ports, ctx.binding)
    while phase not in machine.TERMINAL:
        journal running_event(key, step, phase)
        try:
            target, done = run_step(ctx, run, record, phase)    # journal done
        except TokenExpired as exc:
            journal on_token_expired(key, exc, renewals)        # back to PENDING
        except CnameFlowError as exc:
            journal failure_event(key, step, phase, exc)
        announce(ctx.ports, record, event)   # once journaled: binding.verified / binding.failed

Journal events are described in :class:`~cname_flow.journal.BindingOutputs`.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from cname_flow.errors import CnameFlowError, OwnershipNotVerified, StepError, TokenExpired
from cname_flow.events import Event
from cname_flow.journal import BindingOutputs, BindingRecord, ErrorInfo, JournalEvent
from cname_flow.logs import get_logger
from cname_flow.model import AuxStep, Binding, Phase, Step
from cname_flow.store.base import RecordReader
from cname_flow.workflow import machine, steps
from cname_flow.workflow.context import BindingRun, Ports, StepContext, StepResult

log = get_logger(__name__)

StepFn = Callable[[StepContext, BindingRun, BindingRecord], StepResult]

#: The function of each step; WAIT_PROPAGATION's asynchronous form is
#: :func:`~cname_flow.workflow.steps.await_propagation`.
STEP_FUNCTIONS: dict[Step, StepFn] = {
    Step.CREATE_TOKEN: steps.create_token,
    Step.WRITE_TXT: steps.write_txt,
    Step.WAIT_PROPAGATION: steps.wait_propagation,
    Step.PUT_CNAME: steps.put_cname,
    Step.VERIFY: steps.verify,
    Step.FINISH: steps.finish,
}

#: How many times one run follows the expired-token back-edge before giving up.
MAX_TOKEN_RENEWALS = 2


@dataclass(frozen=True, slots=True)
class BackoffPolicy:
    """Backoff between attempts of a binding's failing step (seconds).

    Shared by every driver of the machine: the asyncio engine and the DBOS binding workflow
    (:mod:`cname_flow.scaleout.workflows`).

    Attributes:
        initial_s: delay after the first failure.
        factor: growth per further failure.
        max_s: cap of one delay.
        max_attempts: failures of one binding within one run before it is left for a resume.
        honour_recorded: wait out a ``next_attempt_at`` journaled by an earlier run.
    """

    initial_s: float = 2.0
    factor: float = 2.0
    max_s: float = 60.0
    max_attempts: int = 5
    honour_recorded: bool = True

    def delay_s(self, failures: int) -> float:
        """Delay before the next attempt after ``failures`` consecutive failures (≥ 1)."""
        return min(self.max_s, self.initial_s * self.factor ** max(0, failures - 1))


@dataclass(frozen=True, slots=True)
class Start:
    """Where a run of a binding starts.

    Attributes:
        phase: the phase whose step runs first.
        events: to journal before (or with) that step's ``running``: the start event of a
            binding never seen, else nothing.
        record: the binding's journaled record, None when never seen.
    """

    phase: Phase
    events: tuple[JournalEvent, ...]
    record: BindingRecord | None


def start_or_resume(journal: RecordReader, binding: Binding) -> Start:
    """Start a binding never seen at PENDING, or resume it (:func:`machine.resume_phase`).

    A ``running`` step found on resume is simply run again: steps observe before they act.
    """
    record = journal.get(binding.key)
    if record is None:
        return Start(Phase.PENDING, (start_event(binding),), None)
    return Start(machine.resume_phase(record.phase), (), record)


def start_event(binding: Binding) -> JournalEvent:
    """The first event of a binding never seen before: PENDING with its domain, bucket, region."""
    return JournalEvent(key=binding.key, step=AuxStep.START, status="done", phase=Phase.PENDING,
                        outputs=BindingOutputs(domain=binding.domain, bucket=binding.bucket,
                                               region=binding.region))


def next_step(phase: Phase) -> Step:
    """The step that leaves ``phase``.

    Raises:
        TransitionNotAllowed: ``phase`` is terminal.
    """
    return machine.transition(phase).step


def running_event(key: str, step: Step, phase: Phase) -> JournalEvent:
    """The intent of ``step``, journaled (durably) before the step acts."""
    return JournalEvent(key, step, "running", phase)


def run_step(
    ctx: StepContext, run: BindingRun, record: BindingRecord, phase: Phase, *,
    crash_as_failure: bool = False,
) -> tuple[Phase, JournalEvent]:
    """Run the step leaving ``phase`` (its ``running`` already journaled).

    Returns:
        (the phase reached, the step's ``done`` event, not journaled yet).

    Raises:
        CnameFlowError: the step's error, naming the binding and the step
            (:func:`binding_context`); TokenExpired is the caller's to turn into
            :func:`on_token_expired`.
    """
    step = next_step(phase)
    with binding_context(ctx.binding.key, step, crash_as_failure=crash_as_failure):
        result = STEP_FUNCTIONS[step](ctx, run, record)
        return done_event(ctx.binding.key, step, phase, result)


def done_event(
    key: str, step: Step, phase: Phase, result: StepResult
) -> tuple[Phase, JournalEvent]:
    """The ``done`` event of ``step`` leaving ``phase`` with ``result``.

    Returns:
        (the phase reached, the event).

    Raises:
        TransitionNotAllowed: the machine does not let ``step`` lead to ``result.phase``.
    """
    target = machine.check_target(phase, result.phase)
    return target, JournalEvent(key, step, "done", target, result.outputs)


def on_token_expired(key: str, exc: TokenExpired, renewals: int) -> JournalEvent:
    """The expired-token back-edge: clear the token and go back to PENDING.

    Args:
        key: the binding.
        exc: the error that sent the machine back.
        renewals: how many times this run has come here, this time included.

    Raises:
        TokenExpired: ``exc``, when ``renewals`` exceeds :data:`MAX_TOKEN_RENEWALS`.
    """
    if renewals > MAX_TOKEN_RENEWALS:
        raise exc
    return JournalEvent(key, AuxStep.TOKEN, "done", machine.ON_TOKEN_EXPIRED,
                        BindingOutputs(token=None, token_expires_at=None))


def error_info(exc: CnameFlowError) -> ErrorInfo:
    """The journal's view of an error: code, message, retryable flag, request id."""
    return ErrorInfo(
        code=exc.code,
        message=str(exc),
        retryable=exc.retryable,
        request_id=exc.request_id,
    )


def failure_event(
    key: str, step: Step, phase: Phase, exc: CnameFlowError,
    outputs: BindingOutputs | None = None, **log_fields: object,
) -> JournalEvent:
    """The ``failed`` event of ``step`` (logged as ``step.failed``): FAILED unless retryable
    (then the phase is kept).

    ``outputs`` are merged in (e.g. a persisted backoff's ``next_attempt_at``); an ownership
    failure also records ``ownership_failed_at`` (it bounds the next PutCname window).
    """
    info = error_info(exc)
    log.warning("step.failed", binding=key, step=str(step), code=info.code,
                retryable=exc.retryable, error=str(exc), **log_fields)
    merged = BindingOutputs() if outputs is None else outputs.copy()
    if isinstance(exc, OwnershipNotVerified):
        merged["ownership_failed_at"] = datetime.now(UTC).isoformat()
    after = phase if exc.retryable else Phase.FAILED
    return JournalEvent(key, step, "failed", after, merged, error=info)


def backoff_failure(
    record: BindingRecord, exc: CnameFlowError, backoff: BackoffPolicy, **log_fields: object,
) -> tuple[JournalEvent, float | None]:
    """The ``failed`` event of the step whose ``running`` is ``record``'s last event, with the
    retry time a retryable failure waits for (``next_attempt_at``, journaled so a resume
    honours it).

    Returns:
        (the event, not journaled yet; the backoff in seconds, None when not retryable).
    """
    outputs, delay = BindingOutputs(), None
    if exc.retryable:
        delay = backoff.delay_s(record.attempts + 1)
        outputs["next_attempt_at"] = (datetime.now(UTC) + timedelta(seconds=delay)).isoformat()
    phase = record.phase
    event = failure_event(record.key, next_step(phase), phase, exc, outputs, **log_fields)
    return event, delay


#: Outputs a ``binding.verified`` event carries (never a token or a secret).
_VERIFIED_FIELDS = ("region", "status", "fast_path", "cert_id", "fingerprint", "cert_not_after",
                    "route_target", "put_request_id", "converged_at")


def outcome_event(record: BindingRecord, event: JournalEvent, now: datetime) -> Event | None:
    """The event to publish for a journaled transition that ends a binding, else None:
    ``binding.verified`` for a ``done`` reaching BOUND, ``binding.failed`` for a ``failed``
    reaching FAILED (a retryable failure keeps its phase, so it publishes nothing).

    Args:
        record: the binding's record after ``event`` was journaled.
        event: the transition.
        now: the event's time, aware UTC.
    """
    base: dict[str, object] = {"domain": record.domain, "bucket": record.bucket}
    if event.status == "done" and event.phase is Phase.BOUND:
        extra = {k: record.outputs.get(k) for k in _VERIFIED_FIELDS}
        data = base | {k: v for k, v in extra.items() if v is not None}
        return Event("binding.verified", record.key, data, now)
    if event.status == "failed" and event.phase is Phase.FAILED and event.error is not None:
        err = event.error
        data = base | {"step": str(event.step), "code": err.code, "message": err.message,
                       "request_id": err.request_id or None}
        return Event("binding.failed", record.key, data, now)
    return None


def announce(ports: Ports, record: BindingRecord, event: JournalEvent) -> None:
    """Publish :func:`outcome_event` (if any) to ``ports.events``, once ``event`` is
    journaled. Called by every driver (the engine, the DBOS stepper), so a binding ends with
    exactly one such event per run. A sink that raises is logged, never propagated: the
    binding's outcome is already durable."""
    published = outcome_event(record, event, ports.now())
    if published is None:
        return
    try:
        ports.events.publish(published)
    except Exception:
        log.exception("event.publish_failed", binding=record.key, type=published.type)


@contextlib.contextmanager
def binding_context(key: str, step: Step, *, crash_as_failure: bool = False) -> Iterator[None]:
    """Name the binding and the step on every error raised in the block (as httpx's
    ``request_context`` names the request).

    Args:
        key: the binding, ``"<bucket>/<domain>"``.
        step: the step running in the block.
        crash_as_failure: turn any other exception (a bug) into a permanent StepError, so a
            driver of many bindings journals it and carries on with the others.

    Raises:
        CnameFlowError: from the block, with ``binding_key`` and ``step`` set.
        StepError: not retryable; a bug in the block, when ``crash_as_failure``.
    """
    try:
        yield
    except CnameFlowError as exc:
        exc.binding_key, exc.step = key, str(step)
        raise
    except Exception as exc:
        if not crash_as_failure:
            raise
        log.exception("step.crashed", binding=key, step=str(step))
        error = StepError(f"internal error in {step}: {type(exc).__name__}: {exc}",
                          retryable=False)
        error.binding_key, error.step = key, str(step)
        raise error from exc

"""Drives one binding through the machine, journaling intent before each step and its outcome after.

The runner holds no state between bindings: everything it needs to resume is in the journal.
On resume a ``running`` step is simply re-run, which is safe because steps observe first.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

import structlog

from cname_flow.errors import CnameFlowError, OwnershipNotVerified, TokenExpired
from cname_flow.journal import (
    BindingOutputs,
    BindingRecord,
    ErrorInfo,
    EventStatus,
    EventStep,
    Journal,
    JournalEvent,
)
from cname_flow.model import AuxStep, Binding, Phase, Step
from cname_flow.workflow import machine, steps
from cname_flow.workflow.context import BindingRun, StepContext, StepResult

log = structlog.get_logger(__name__)

StepFn = Callable[[StepContext, BindingRun, BindingRecord], StepResult]

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


def error_info(exc: CnameFlowError) -> ErrorInfo:
    """The journal's view of an error: code, message, retryable flag, request id."""
    return ErrorInfo(
        code=getattr(exc, "code", type(exc).__name__),
        message=str(exc),
        retryable=exc.retryable,
        request_id=getattr(exc, "request_id", ""),
    )


def start_event(binding: Binding) -> JournalEvent:
    """The first event of a binding never seen before: PENDING with its domain, bucket, region."""
    return JournalEvent(key=binding.key, step=AuxStep.START, status="done", phase=Phase.PENDING,
                        outputs=BindingOutputs(domain=binding.domain, bucket=binding.bucket,
                                               region=binding.region))


def failure_event(
    key: str, step: Step, phase: Phase, exc: CnameFlowError,
    outputs: BindingOutputs | None = None,
) -> JournalEvent:
    """The ``failed`` event of ``step``: FAILED unless retryable (then the phase is kept).

    ``outputs`` are merged in (e.g. a persisted backoff's ``next_attempt_at``); an ownership
    failure also records ``ownership_failed_at`` (it bounds the next PutCname window).
    """
    after = phase if exc.retryable else Phase.FAILED
    merged = BindingOutputs() if outputs is None else outputs.copy()
    if isinstance(exc, OwnershipNotVerified):
        merged["ownership_failed_at"] = datetime.now(UTC).isoformat()
    return JournalEvent(key=key, step=step, status="failed", phase=after,
                        outputs=merged, error=error_info(exc))


class Runner:
    """Runs bindings to BOUND (or FAILED), one step at a time.

    Args:
        journal: the open journal (its lock held by the caller).
        on_step: called with (binding key, step, phase after) when a step completes (display).
    """

    def __init__(
        self, journal: Journal, *,
        on_step: Callable[[str, Step, Phase], None] | None = None,
    ) -> None:
        self.journal = journal
        self.on_step = on_step

    def run(self, ctx: StepContext) -> BindingRecord:
        """Drive ``ctx.binding`` until BOUND.

        Returns:
            The binding's replayed record after the last step.

        Raises:
            CnameFlowError: the step that failed, with ``binding_key`` and ``step`` set; the
                journal holds the failure (phase FAILED when not retryable).
        """
        key = ctx.binding.key
        structlog.contextvars.bind_contextvars(binding=key)
        try:
            record = self._start(ctx)
            run = BindingRun(ctx.ports, ctx.binding)
            phase = machine.resume_phase(record.phase)
            renewals = 0
            while phase not in machine.TERMINAL:
                try:
                    record = self._step(ctx, run, record, phase)
                except TokenExpired:
                    renewals += 1
                    if renewals > MAX_TOKEN_RENEWALS:
                        raise
                    record = self._record(key, AuxStep.TOKEN, "done", machine.ON_TOKEN_EXPIRED,
                                          BindingOutputs(token=None, token_expires_at=None))
                phase = record.phase
            return record
        finally:
            structlog.contextvars.unbind_contextvars("binding")

    def _start(self, ctx: StepContext) -> BindingRecord:
        record = self.journal.get(ctx.binding.key)
        if record is not None:
            log.info("binding.resume", phase=record.phase, last_step=record.last_step)
            return record
        return self.journal.record(start_event(ctx.binding))

    def _step(
        self, ctx: StepContext, run: BindingRun, record: BindingRecord, phase: Phase
    ) -> BindingRecord:
        t = machine.transition(phase)
        key = ctx.binding.key
        self._record(key, t.step, "running", phase)
        log.info("step.start", step=str(t.step), phase=str(phase))
        try:
            result = STEP_FUNCTIONS[t.step](ctx, run, record)
            target = machine.check_target(phase, result.phase)
        except TokenExpired:
            raise
        except CnameFlowError as exc:
            exc.binding_key, exc.step = key, str(t.step)
            self._fail(key, t.step, phase, exc)
            raise
        log.info("step.done", step=str(t.step), phase=str(target))
        record = self._record(key, t.step, "done", target, result.outputs)
        if self.on_step is not None:
            self.on_step(key, t.step, target)
        return record

    def _fail(self, key: str, step: Step, phase: Phase, exc: CnameFlowError) -> None:
        log.warning("step.failed", step=str(step), code=error_info(exc).code,
                    retryable=exc.retryable, error=str(exc))
        self.journal.record(failure_event(key, step, phase, exc))

    def _record(
        self, key: str, step: EventStep, status: EventStatus, phase: Phase,
        outputs: BindingOutputs | None = None,
    ) -> BindingRecord:
        return self.journal.record(JournalEvent(
            key=key, step=step, status=status, phase=phase, outputs=outputs or BindingOutputs(),
        ))

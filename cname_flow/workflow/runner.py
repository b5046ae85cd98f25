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
    BindingRecord,
    ErrorInfo,
    EventStatus,
    Journal,
    JournalEvent,
    OutputValue,
)
from cname_flow.model import Binding, Phase, Step
from cname_flow.workflow import machine, steps

log = structlog.get_logger(__name__)

StepFn = Callable[[steps.StepContext, BindingRecord], steps.StepResult]

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
    return JournalEvent(key=binding.key, step="start", status="done", phase=str(Phase.PENDING),
                        outputs={"domain": binding.domain, "bucket": binding.bucket,
                                 "region": binding.region})


def failure_event(
    key: str, step: Step, phase: Phase, exc: CnameFlowError,
    outputs: dict[str, OutputValue] | None = None,
) -> JournalEvent:
    """The ``failed`` event of ``step``: FAILED unless retryable (then the phase is kept).

    ``outputs`` are merged in (e.g. a persisted backoff's ``next_attempt_at``); an ownership
    failure also records ``ownership_failed_at`` (it bounds the next PutCname window).
    """
    after = phase if exc.retryable else Phase.FAILED
    merged: dict[str, OutputValue] = dict(outputs or {})
    if isinstance(exc, OwnershipNotVerified):
        merged["ownership_failed_at"] = datetime.now(UTC).isoformat()
    return JournalEvent(key=key, step=str(step), status="failed", phase=str(after),
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

    def run(self, ctx: steps.StepContext) -> BindingRecord:
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
            phase = machine.resume_phase(Phase(record.phase))
            renewals = 0
            while phase not in machine.TERMINAL:
                try:
                    record = self._step(ctx, record, phase)
                except TokenExpired:
                    renewals += 1
                    if renewals > MAX_TOKEN_RENEWALS:
                        raise
                    record = self._record(key, "token", "done", machine.ON_TOKEN_EXPIRED,
                                          {"token": None, "token_expires_at": None})
                phase = Phase(record.phase)
            return record
        finally:
            structlog.contextvars.unbind_contextvars("binding")

    def _start(self, ctx: steps.StepContext) -> BindingRecord:
        record = self.journal.get(ctx.binding.key)
        if record is not None:
            log.info("binding.resume", phase=record.phase, last_step=record.last_step)
            return record
        return self.journal.record(start_event(ctx.binding))

    def _step(self, ctx: steps.StepContext, record: BindingRecord, phase: Phase) -> BindingRecord:
        t = machine.transition(phase)
        key = ctx.binding.key
        self._record(key, t.step, "running", phase)
        log.info("step.start", step=str(t.step), phase=str(phase))
        try:
            result = STEP_FUNCTIONS[t.step](ctx, record)
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
        self, key: str, step: str, status: EventStatus, phase: Phase,
        outputs: dict[str, OutputValue] | None = None,
    ) -> BindingRecord:
        return self.journal.record(JournalEvent(
            key=key, step=str(step), status=status, phase=str(phase), outputs=outputs or {},
        ))

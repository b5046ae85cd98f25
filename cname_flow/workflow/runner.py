"""Drives one binding through the machine, journaling intent before each step and its outcome after.

The runner holds no state between bindings: everything it needs to resume is in the journal.
On resume a ``running`` step is simply re-run, which is safe because steps observe first. What
a step does and which events it leaves behind is :mod:`cname_flow.workflow.driver`'s; the
runner only runs the steps one after another in the calling thread.
"""

from __future__ import annotations

from collections.abc import Callable

import structlog

from cname_flow.errors import CnameFlowError, TokenExpired
from cname_flow.journal import BindingRecord
from cname_flow.logs import get_logger
from cname_flow.model import Phase, Step
from cname_flow.store.base import RecordLog
from cname_flow.workflow import driver, machine
from cname_flow.workflow.context import BindingRun, StepContext

log = get_logger(__name__)


class Runner:
    """Runs bindings to BOUND (or FAILED), one step at a time.

    Args:
        journal: the store's record log (the binding's lock held by the caller).
        on_step: called with (binding key, step, phase after) when a step completes (display).
    """

    def __init__(
        self, journal: RecordLog, *,
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
            start = driver.start_or_resume(self.journal, ctx.binding)
            record = start.record
            if record is not None:
                log.info("binding.resume", phase=record.phase, last_step=record.last_step)
            for event in start.events:
                record = self.journal.record(event)
            assert record is not None  # a binding never seen got its start event
            run = BindingRun(ctx.ports, ctx.binding)
            phase, renewals = start.phase, 0
            while phase not in machine.TERMINAL:
                try:
                    record = self._step(ctx, run, record, phase)
                except TokenExpired as exc:
                    renewals += 1
                    record = self.journal.record(driver.on_token_expired(key, exc, renewals))
                phase = record.phase
            return record
        finally:
            structlog.contextvars.unbind_contextvars("binding")

    def _step(
        self, ctx: StepContext, run: BindingRun, record: BindingRecord, phase: Phase
    ) -> BindingRecord:
        key, step = ctx.binding.key, driver.next_step(phase)
        self.journal.record(driver.running_event(key, step, phase))
        log.info("step.start", step=str(step), phase=str(phase))
        try:
            target, done = driver.run_step(ctx, run, record, phase)
        except TokenExpired:
            raise
        except CnameFlowError as exc:
            self.journal.record(driver.failure_event(key, step, phase, exc))
            raise
        log.info("step.done", step=str(step), phase=str(target))
        record = self.journal.record(done)
        if self.on_step is not None:
            self.on_step(key, step, target)
        return record

"""The driver seam: start or resume, the token back-edge, failure events, error naming, and
the wait step's outputs, each decided once for the runner and the batch engine."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from pathlib import Path

import pytest

from cname_flow.errors import (
    OwnershipNotVerified,
    StepError,
    TokenExpired,
    TransitionNotAllowed,
    VerificationFailed,
)
from cname_flow.journal import BindingOutputs, BindingRecord, Journal, JournalEvent
from cname_flow.journal.records import apply_event
from cname_flow.model import AuxStep, Binding, Phase, Step, txt_name
from cname_flow.workflow import driver, steps
from cname_flow.workflow.context import BindingRun, Ports, StepContext, StepResult
from tests.fakes import FakeChecker, FakeDnsProvider, FakeOss

BINDING = Binding(domain="www.example.com", bucket="examplebucket", region="cn-hangzhou")
KEY = BINDING.key
NOW = datetime(2025, 1, 1, tzinfo=UTC)


def _ctx() -> tuple[StepContext, FakeOss, FakeDnsProvider]:
    dns = FakeDnsProvider()
    oss = FakeOss(txt_lookup=dns.txt_values)
    ports = Ports(oss=oss, dns=dns, checker=FakeChecker(dns), sleep=lambda s: None,
                  now=lambda: NOW)
    return StepContext(binding=BINDING, ports=ports), oss, dns


def test_a_binding_never_seen_starts_at_pending_with_its_start_event(tmp_path: Path) -> None:
    with Journal(tmp_path / "j.jsonl") as journal:
        start = driver.start_or_resume(journal, BINDING)
    assert start.phase is Phase.PENDING and start.record is None
    (event,) = start.events
    assert (event.step, event.status, event.phase) == (AuxStep.START, "done", Phase.PENDING)
    assert event.outputs == BindingOutputs(domain=BINDING.domain, bucket=BINDING.bucket,
                                           region=BINDING.region)


@pytest.mark.parametrize(("last", "resumed"), [
    (JournalEvent(KEY, Step.WRITE_TXT, "running", Phase.TOKEN_READY), Phase.TOKEN_READY),
    (JournalEvent(KEY, Step.FINISH, "done", Phase.BOUND), Phase.PENDING),
    (JournalEvent(KEY, Step.VERIFY, "failed", Phase.FAILED), Phase.PENDING),
])
def test_a_journaled_binding_resumes_where_the_machine_says(
    tmp_path: Path, last: JournalEvent, resumed: Phase
) -> None:
    with Journal(tmp_path / "j.jsonl") as journal:
        journal.record(last)
        start = driver.start_or_resume(journal, BINDING)
    assert (start.phase, start.events) == (resumed, ())
    assert start.record is not None and start.record.phase is last.phase


def test_the_token_back_edge_clears_the_token_until_renewals_run_out() -> None:
    exc = TokenExpired("gone")
    for renewals in range(1, driver.MAX_TOKEN_RENEWALS + 1):
        event = driver.on_token_expired(KEY, exc, renewals)
        assert (event.step, event.status, event.phase) == (AuxStep.TOKEN, "done", Phase.PENDING)
        assert event.outputs == BindingOutputs(token=None, token_expires_at=None)
    with pytest.raises(TokenExpired) as raised:
        driver.on_token_expired(KEY, exc, driver.MAX_TOKEN_RENEWALS + 1)
    assert raised.value is exc


def test_failure_events_keep_a_retryable_phase_and_fail_for_good_otherwise() -> None:
    backoff = BindingOutputs(next_attempt_at="2025-01-01T00:01:00+00:00")
    retry = driver.failure_event(KEY, Step.WRITE_TXT, Phase.TOKEN_READY,
                                 StepError("slow", retryable=True), backoff)
    assert (retry.status, retry.phase, retry.outputs) == ("failed", Phase.TOKEN_READY, backoff)
    assert retry.error is not None and retry.error.retryable
    final = driver.failure_event(KEY, Step.VERIFY, Phase.CNAME_PUT,
                                 VerificationFailed("x", retryable=False))
    assert final.phase is Phase.FAILED and final.outputs == {}
    assert final.error is not None and final.error.code == "VerificationFailed"
    owned = driver.failure_event(KEY, Step.PUT_CNAME, Phase.TXT_VISIBLE,
                                 OwnershipNotVerified("not yet"), backoff)
    assert "ownership_failed_at" in owned.outputs and "ownership_failed_at" not in backoff


def test_binding_context_names_the_binding_and_step_on_errors() -> None:
    with pytest.raises(VerificationFailed) as raised, driver.binding_context(KEY, Step.VERIFY):
        raise VerificationFailed("missing")
    assert (raised.value.binding_key, raised.value.step) == (KEY, "verify")
    with pytest.raises(KeyError), driver.binding_context(KEY, Step.VERIFY):
        raise KeyError("a bug")
    with pytest.raises(StepError) as crashed, driver.binding_context(
            KEY, Step.VERIFY, crash_as_failure=True):
        raise KeyError("a bug")
    assert not crashed.value.retryable and crashed.value.binding_key == KEY
    assert "internal error in verify: KeyError" in str(crashed.value)


def test_run_step_dispatches_and_refuses_a_transition_the_table_does_not_allow(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    ctx, _, _ = _ctx()
    run = BindingRun(ctx.ports, BINDING)
    monkeypatch.setitem(driver.STEP_FUNCTIONS, Step.VERIFY,
                        lambda c, r, rec: StepResult(Phase.VERIFIED, BindingOutputs(status="Ok")))
    fake_record = _record(JournalEvent(KEY, Step.PUT_CNAME, "done", Phase.CNAME_PUT))
    target, done = driver.run_step(ctx, run, fake_record, Phase.CNAME_PUT)
    assert target is Phase.VERIFIED
    assert (done.key, done.step, done.status, done.phase) == (KEY, Step.VERIFY, "done", target)
    assert done.outputs == BindingOutputs(status="Ok")
    monkeypatch.setitem(driver.STEP_FUNCTIONS, Step.VERIFY,
                        lambda c, r, rec: StepResult(Phase.BOUND))
    with pytest.raises(TransitionNotAllowed) as raised:
        driver.run_step(ctx, run, fake_record, Phase.CNAME_PUT)
    assert (raised.value.binding_key, raised.value.step) == (KEY, "verify")


def _record(event: JournalEvent) -> BindingRecord:
    return apply_event(None, event)


def test_the_wait_step_has_the_same_outputs_sync_and_async() -> None:
    ctx, oss, dns = _ctx()
    token = oss.create_token(BINDING.bucket, BINDING.domain).token
    zone = dns.find_zone(txt_name(BINDING.domain))
    dns.upsert(zone, txt_name(BINDING.domain), "TXT", token, 600)
    record = _record(JournalEvent(KEY, Step.WRITE_TXT, "done", Phase.TXT_WRITTEN, BindingOutputs(
        token=token, token_expires_at="2030-01-01T00:00:00+00:00")))
    run = BindingRun(ctx.ports, BINDING)
    sync = steps.wait_propagation(ctx, run, record)
    plan = steps.plan_wait(ctx, run, record)
    assert plan.written_at is None  # no txt_written_at journaled
    asynchronous = asyncio.run(steps.await_propagation(ctx, plan))
    assert sync == asynchronous == StepResult(Phase.TXT_VISIBLE, BindingOutputs(
        converged_at=NOW.isoformat(), nameserver_addresses=0))

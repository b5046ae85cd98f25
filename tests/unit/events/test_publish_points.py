"""Where events are published: the engine once a binding's end is journaled (over the fakes),
and reconcile's plan (drift.found, certificate.expiring)."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from cname_flow.events import Event
from cname_flow.journal import Journal
from cname_flow.model import Binding, Phase
from cname_flow.reconcile.drift import Action, DriftKind, Finding, Policy
from cname_flow.reconcile.notify import drift_event, expiring_events
from cname_flow.reconcile.plan import ReconcilePlan
from cname_flow.workflow.commit import GroupCommitter
from cname_flow.workflow.context import Ports, StepContext
from cname_flow.workflow.engine import BackoffPolicy, Engine
from cname_flow.workflow.pool import Workers
from tests.fakes import FakeChecker, FakeDnsProvider, FakeOss, oss_error

BUCKET = "examplebucket"
T0 = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)


class Keep:
    def __init__(self) -> None:
        self.events: list[Event] = []

    def publish(self, event: Event) -> None:
        self.events.append(event)


class DeniedOss(FakeOss):
    """ListCname refused for good once PutCname ran (VERIFY fails, not retryable)."""

    def list_cnames(self, bucket: str) -> list[Any]:
        if self.calls["PutCname"]:
            raise oss_error("AccessDenied", 403)
        return super().list_cnames(bucket)


class ThrottledOss(FakeOss):
    """CreateCnameToken throttled every time (retryable)."""

    def create_token(self, bucket: str, domain: str) -> Any:
        raise oss_error("Throttling", 503)


def drive(path: Path, oss: FakeOss, dns: FakeDnsProvider, domains: list[str]) -> Keep:
    sink = Keep()
    ports = Ports(oss=oss, dns=dns, checker=FakeChecker(dns), sleep=lambda s: None,
                  events=sink)
    contexts = [StepContext(binding=Binding(domain=d, bucket=BUCKET, region="cn-hangzhou"),
                            ports=ports) for d in domains]

    async def scenario(journal: Journal) -> None:
        committer = GroupCommitter(journal)
        committer.start()
        engine = Engine(committer, Workers(2),
                        backoff=BackoffPolicy(initial_s=0.01, max_s=0.02, max_attempts=2))
        await engine.run(contexts)
        await committer.close()

    with Journal(path) as journal:
        asyncio.run(scenario(journal))
    return sink


def test_each_bound_binding_is_announced_once_as_verified_without_its_token(
    tmp_path: Path,
) -> None:
    dns = FakeDnsProvider()
    oss = FakeOss(txt_lookup=dns.txt_values)
    sink = drive(tmp_path / "j.jsonl", oss, dns, ["a.example.com", "b.example.com"])
    assert sorted((e.type, e.subject) for e in sink.events) == [
        ("binding.verified", f"{BUCKET}/a.example.com"),
        ("binding.verified", f"{BUCKET}/b.example.com")]
    for e in sink.events:
        assert e.data["domain"] in ("a.example.com", "b.example.com")
        assert e.data["bucket"] == BUCKET and e.data["status"] == "Enabled"
        assert "token" not in e.data
        record = Journal.read_only(tmp_path / "j.jsonl").get(e.subject)
        assert record is not None and record.phase is Phase.BOUND
        assert str(record.outputs.get("token")) not in repr(e.as_json())


def test_a_permanent_failure_is_announced_once_and_a_retryable_one_not_at_all(
    tmp_path: Path,
) -> None:
    dns = FakeDnsProvider()
    sink = drive(tmp_path / "j.jsonl", DeniedOss(txt_lookup=dns.txt_values), dns,
                 ["a.example.com"])
    [event] = sink.events
    assert (event.type, event.subject) == ("binding.failed", f"{BUCKET}/a.example.com")
    assert event.data["code"] == "AccessDenied" and event.data["step"] == "verify"
    dns2 = FakeDnsProvider()
    assert drive(tmp_path / "k.jsonl", ThrottledOss(txt_lookup=dns2.txt_values), dns2,
                 ["c.example.com"]).events == []


def plan(*findings: Finding) -> ReconcilePlan:
    return ReconcilePlan("desired.yaml", "0" * 64, Policy.UPSERT_ONLY, 3, findings, T0)


def test_a_plan_with_drift_gives_one_drift_event_listing_the_drift_not_the_notices() -> None:
    missing = Finding(f"{BUCKET}/a.example.com", DriftKind.BINDING_MISSING, "not listed",
                      Action.BIND, "d1")
    notice = Finding(f"{BUCKET}/e.example.com", DriftKind.UNMANAGED, "not ours", Action.NONE,
                     "d2")
    event = drift_event(plan(missing, notice))
    assert event is not None and (event.type, event.subject) == ("drift.found", "reconcile")
    assert event.data["count"] == 1 and event.data["findings"] == [missing.to_json()]
    assert event.created_at == T0
    assert drift_event(plan(notice)) is None


def test_an_expiring_certificate_gives_its_own_event_with_its_end_date() -> None:
    key = f"{BUCKET}/b.example.com"
    expiring = Finding(key, DriftKind.CERTIFICATE_EXPIRING, "expires in 9 day(s)", Action.NONE,
                       "d3")
    end = T0 + timedelta(days=9, hours=12)
    [event] = expiring_events(plan(expiring), {key: end})
    assert (event.type, event.subject) == ("certificate.expiring", key)
    assert event.data == {"domain": "b.example.com", "bucket": BUCKET,
                          "detail": "expires in 9 day(s)", "not_after": end.isoformat(),
                          "days_left": 9.5}
    assert expiring_events(plan(), {}) == []

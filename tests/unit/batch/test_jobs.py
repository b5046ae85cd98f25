"""Unit tests of the batch building blocks: token buckets, coalesced ListCname, the priority
gate, group commit, and the engine over the fakes (failure isolation, persisted backoff)."""

from __future__ import annotations

import asyncio
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path

import pytest

from cname_flow.batch import jobs
from cname_flow.batch.checker import CachingChecker
from cname_flow.batch.jobs import JobResult, outcome
from cname_flow.batch.limits import BatchOss
from cname_flow.errors import DnsThrottled, OssError, OssThrottled, RemoteError
from cname_flow.journal import BindingRecord, Journal, JournalEvent
from cname_flow.journal.records import EventStatus
from cname_flow.model import AuxStep, Binding, CnameEntry, Phase, Step
from cname_flow.propagation.checker import NameserverAddress, PropagationChecker
from cname_flow.quotas import ApiStats, RateLimiter, TokenBucket
from cname_flow.workflow.commit import GroupCommitter
from cname_flow.workflow.context import BindingRun, Ports, StepContext
from cname_flow.workflow.engine import BackoffPolicy, Engine
from cname_flow.workflow.pool import PriorityGate, Workers
from tests.fakes import FakeDnsProvider, FakeOss


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0
        self.slept: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


def test_token_bucket_spends_its_burst_then_paces_at_the_rate() -> None:
    clock = FakeClock()
    bucket = TokenBucket(10, 3, clock=clock, sleep=clock.sleep)
    waits = [bucket.acquire() for _ in range(6)]
    assert waits[:3] == [0.0, 0.0, 0.0]
    assert waits[3:] == [0.1, 0.1, 0.1] or all(abs(w - 0.1) < 1e-9 for w in waits[3:])
    assert abs(clock.now - 0.3) < 1e-9


def test_rate_limiter_counts_every_action_and_limits_only_listed_ones() -> None:
    clock = FakeClock()
    stats = ApiStats()
    limiter = RateLimiter({"AddDomainRecord": 2}, stats, burst_s=0.5, sleep=clock.sleep)
    for _ in range(3):
        limiter("AddDomainRecord")
        limiter("Unlisted")
    assert stats.calls == {"AddDomainRecord": 3, "Unlisted": 3}
    assert len(clock.slept) == 2  # burst of one token, then one wait per call


def _throttled(service: str) -> RemoteError:
    if service == "oss":
        return OssThrottled("slow down", service="oss", code="SlowDown", status=503)
    return DnsThrottled("slow down", service="alidns", code="Throttling.User", status=400)


@pytest.mark.parametrize("service", ["oss", "alidns"])
def test_api_stats_counts_a_throttled_error_of_either_adapter(service: str) -> None:
    stats = ApiStats()
    stats.count_error("Act", _throttled(service))
    stats.count_error("Act", OssError("gone", service="oss", code="NoSuchBucket", status=404))
    assert stats.throttled == {"Act": 1}


def test_batch_oss_counts_throttled_answers_by_class_not_by_code() -> None:
    stats = ApiStats()
    inner = FakeOss()
    inner.fail("CreateCnameToken", _throttled("oss"), times=1)
    inner.fail("GetCnameToken", OssError("x", service="oss", code="SlowDownish"), times=1)
    oss = BatchOss(inner, lambda action: None, stats)
    with pytest.raises(OssThrottled):
        oss.create_token("examplebucket", "a.example.com")
    with pytest.raises(OssError):
        oss.get_token("examplebucket", "a.example.com")
    assert stats.throttled == {"CreateCnameToken": 1}


class SlowListOss(FakeOss):
    """ListCname takes ``delay`` seconds, so concurrent callers overlap."""

    def __init__(self, delay: float) -> None:
        super().__init__()
        self.delay = delay
        self.lists = 0

    def list_cnames(self, bucket: str) -> list[CnameEntry]:
        self.lists += 1
        time.sleep(self.delay)
        return super().list_cnames(bucket)


def test_list_cname_is_coalesced_and_never_older_than_the_request() -> None:
    inner = SlowListOss(0.05)
    oss = BatchOss(inner, lambda action: None)
    inner.bind("b", "a.example.com")
    results: list[int] = []

    def ask() -> None:
        results.append(len(oss.list_cnames("b")))

    threads = [threading.Thread(target=ask) for _ in range(20)]
    for t in threads:
        t.start()
    time.sleep(0.01)
    inner.bind("b", "c.example.com")  # a caller asking from now on must see it
    late = oss.list_cnames("b")
    for t in threads:
        t.join()
    assert len(results) == 20
    assert inner.lists <= 4  # 21 callers, at most one call in flight and one queued
    assert {e.domain for e in late} == {"a.example.com", "c.example.com"}


def test_list_cname_failure_reaches_every_waiter() -> None:
    inner = FakeOss()
    inner.fail("ListCname", _oss_error())
    oss = BatchOss(inner, lambda action: None, ApiStats())
    try:
        oss.list_cnames("b")
    except OssError as exc:
        assert exc.code == "InternalError"
    else:
        raise AssertionError("the failure was swallowed")


def test_recent_list_reuses_a_young_listing_and_reads_again_once_it_aged(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    inner = FakeOss(("b",))
    oss = BatchOss(inner, lambda action: None)
    now = [100.0]
    monkeypatch.setattr(time, "monotonic", lambda: now[0])
    assert oss.recent_list("b") == []                 # nothing listed yet: one call
    inner.bind("b", "a.example.com")
    now[0] += 29.0
    assert oss.recent_list("b", max_age_s=30) == []   # 29 s old: served as is
    assert inner.calls["ListCname"] == 1
    now[0] += 2.0
    assert [e.domain for e in oss.recent_list("b", max_age_s=30)] == ["a.example.com"]
    assert inner.calls["ListCname"] == 2
    assert len(oss.list_cnames("b")) == 1 and inner.calls["ListCname"] == 3  # never cached


def test_recent_list_never_serves_a_failed_listing() -> None:
    inner = FakeOss(("b",))
    inner.fail("ListCname", _oss_error())
    oss = BatchOss(inner, lambda action: None)
    with pytest.raises(OssError):
        oss.recent_list("b")
    assert oss.recent_list("b") == [] and inner.calls["ListCname"] == 2


def test_shared_listing_is_trusted_for_absence_and_a_listed_domain_is_read_afresh() -> None:
    inner = FakeOss(("b",))
    shared: list[list[CnameEntry]] = [[]]
    binding = Binding(domain="a.example.com", bucket="b", region="cn-hangzhou")
    ctx = BindingRun(Ports(oss=inner, dns=FakeDnsProvider(), checker=PropagationChecker(),
                           bucket_listing=lambda bucket: shared[0]), binding)
    assert ctx.cname_entry() is None and inner.calls["ListCname"] == 0
    stale = CnameEntry("a.example.com", "Enabled", datetime.now(UTC), None)
    ctx2 = BindingRun(Ports(oss=inner, dns=FakeDnsProvider(), checker=PropagationChecker(),
                            bucket_listing=lambda bucket: [stale]), binding)
    assert ctx2.cname_entry() is None     # the shared listing showed it; OSS no longer does
    assert inner.calls["ListCname"] == 1


def _oss_error() -> OssError:
    from tests.fakes import oss_error

    return oss_error("InternalError", 500)


def test_priority_gate_serves_the_lowest_priority_value_first() -> None:
    async def scenario() -> list[str]:
        gate = PriorityGate(1)
        order: list[str] = []
        await gate.acquire(0)

        async def waiter(name: str, prio: int) -> None:
            await gate.acquire(prio)
            order.append(name)
            gate.release()

        tasks = [asyncio.create_task(waiter("early-step", 0)),
                 asyncio.create_task(waiter("late-step", -5))]
        await asyncio.sleep(0)
        gate.release()
        await asyncio.gather(*tasks)
        return order

    assert asyncio.run(scenario()) == ["late-step", "early-step"]


def test_group_commit_writes_concurrent_events_with_few_fsyncs(tmp_path: Path) -> None:
    async def scenario(journal: Journal) -> int:
        committer = GroupCommitter(journal)
        committer.start()
        await asyncio.gather(*(committer.commit(JournalEvent(
            f"b/d{i}.example.com", AuxStep.START, "done", Phase.PENDING)) for i in range(200)))
        await committer.close()
        return committer.flushes

    with Journal(tmp_path / "j.jsonl") as journal:
        flushes = asyncio.run(scenario(journal))
        assert len(journal.bindings()) == 200
    assert flushes < 20
    assert len(Journal.read_only(tmp_path / "j.jsonl").bindings()) == 200


def _contexts(oss: FakeOss, dns: FakeDnsProvider, domains: list[str]) -> list[StepContext]:
    ports = Ports(oss=oss, dns=dns, checker=PropagationChecker())
    return [StepContext(binding=Binding(domain=d, bucket="examplebucket", region="cn-hangzhou"),
                        ports=ports) for d in domains]


def test_a_permanent_failure_stops_only_its_binding_and_retryable_ones_persist_backoff(
    tmp_path: Path,
) -> None:
    oss, dns = FakeOss(), FakeDnsProvider()
    oss.fail("CreateCnameToken", _oss_error(), times=100)  # a 500 every time: retryable

    async def scenario(journal: Journal) -> None:
        committer = GroupCommitter(journal)
        committer.start()
        engine = Engine(committer, Workers(4),
                        backoff=BackoffPolicy(initial_s=0.01, max_s=0.02, max_attempts=2))
        await engine.run(_contexts(oss, dns, ["www.not-hosted.test", "a.example.com"]))
        await committer.close()

    with Journal(tmp_path / "j.jsonl") as journal:
        asyncio.run(scenario(journal))
        taken = journal.get("examplebucket/www.not-hosted.test")  # no zone: permanent
        other = journal.get("examplebucket/a.example.com")
    assert taken is not None and outcome(taken) == "failed"
    assert taken.last_error is not None and not taken.last_error.retryable
    assert taken.attempts == 1  # never retried
    assert other is not None and outcome(other) == "retryable"
    assert other.phase == Phase.PENDING and other.attempts == 2  # max_attempts, then left
    assert other.next_attempt_at is not None and other.next_attempt_at > datetime(2000, 1, 1,
                                                                                 tzinfo=UTC)


def test_exit_status_prefers_failed_over_retryable() -> None:
    def result(*phases: tuple[str, str | None]) -> JobResult:
        records = []
        for i, (phase, status) in enumerate(phases):
            from cname_flow.journal.records import apply_event

            rec = apply_event(None, JournalEvent(f"b/d{i}.example.com", AuxStep.JOB,
                                                 status or "done", Phase(phase)))  # type: ignore[arg-type]
            records.append(rec)
        return JobResult("j", Path("j"), tuple(records), tuple(r.key for r in records), {}, 0.0)

    assert result(("BOUND", None)).exit_status == "ok"
    assert result(("BOUND", None), ("TOKEN_READY", "failed")).exit_status == "retryable"
    assert result(("FAILED", "failed"), ("TOKEN_READY", "failed")).exit_status == "failed"


def test_targets_are_discovered_once_however_many_workers_ask_at_once(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    calls: list[str] = []

    def slow_discovery(self: PropagationChecker, zone: str,
                       provider_nameservers: list[str]) -> list[NameserverAddress]:
        calls.append(zone)
        time.sleep(0.05)
        return [NameserverAddress("ns1.example.net", "127.0.0.1", 53)]

    monkeypatch.setattr(PropagationChecker, "targets", slow_discovery)
    checker = CachingChecker(PropagationChecker(), threads=2)
    try:
        with ThreadPoolExecutor(16) as pool:
            got = list(pool.map(lambda _: checker.targets("example.com", ["ns1.example.net"]),
                                range(16)))
        assert calls == ["example.com"]
        assert all(g == got[0] for g in got)
        checker.targets("example.org", ["ns1.example.net"])
        assert calls == ["example.com", "example.org"]          # per zone
    finally:
        checker.close()


def _record(phase: Phase, status: EventStatus) -> BindingRecord:
    t0 = datetime(2026, 12, 2, tzinfo=UTC)
    return BindingRecord(key="bk/d.example.com", domain="d.example.com", bucket="bk",
                         phase=phase, outputs={}, last_step=Step.CREATE_TOKEN,
                         last_status=status, last_error=None, attempts=0, started_at=t0,
                         updated_at=t0)


def test_a_run_reports_what_it_ended_while_another_process_passes_over_the_binding() -> None:
    bound, again = _record(Phase.BOUND, "done"), _record(Phase.PENDING, "running")
    assert outcome(jobs._reported(again, bound)) == "bound"  # a `bind` re-checking it now
    assert jobs._reported(again, None) is again  # not ended by this run: the store's record
    failed = _record(Phase.FAILED, "failed")
    assert jobs._reported(failed, bound) is failed  # a terminal state since then wins
    assert jobs._reported(None, bound) is bound  # forgotten since: what the run did

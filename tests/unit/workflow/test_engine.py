"""The batch engine's worker hops over the fakes: each step's intent is on disk before the step
acts, the whole machine runs with few loop round trips, and a failure deep in a hop is
journaled against the step that failed."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from cname_flow.journal import Journal, JournalEvent
from cname_flow.model import Binding, CertificateRequest, CnameToken, Phase
from cname_flow.workflow.commit import GroupCommitter
from cname_flow.workflow.context import Ports, StepContext
from cname_flow.workflow.engine import BackoffPolicy, Engine
from cname_flow.workflow.pool import Workers
from tests.fakes import FakeChecker, FakeDnsProvider, FakeOss, oss_error

BUCKET = "examplebucket"


class AuditingOss(FakeOss):
    """Checks, at each side effect, that the journal *on disk* already holds its ``running``."""

    def __init__(self, journal: Path, dns: FakeDnsProvider) -> None:
        super().__init__(txt_lookup=dns.txt_values)
        self.journal = journal
        self.seen: list[tuple[str, str]] = []

    def _last_on_disk(self, domain: str) -> JournalEvent:
        return list(Journal.read_only(self.journal).events(f"{BUCKET}/{domain}"))[-1]

    def create_token(self, bucket: str, domain: str) -> CnameToken:
        last = self._last_on_disk(domain)
        self.seen.append((last.step, last.status))
        return super().create_token(bucket, domain)

    def put_cname(self, bucket: str, domain: str,
                  certificate: CertificateRequest | None = None) -> str:
        last = self._last_on_disk(domain)
        self.seen.append((last.step, last.status))
        return super().put_cname(bucket, domain, certificate)


def _run(path: Path, oss: FakeOss, dns: FakeDnsProvider, domains: list[str]) -> int:
    ports = Ports(oss=oss, dns=dns, checker=FakeChecker(dns), sleep=lambda s: None)
    contexts = [StepContext(binding=Binding(domain=d, bucket=BUCKET, region="cn-hangzhou"),
                            ports=ports) for d in domains]

    async def scenario(journal: Journal) -> int:
        committer = GroupCommitter(journal)
        committer.start()
        engine = Engine(committer, Workers(4),
                        backoff=BackoffPolicy(initial_s=0.01, max_s=0.02, max_attempts=1))
        await engine.run(contexts)
        await committer.close()
        return committer.flushes

    with Journal(path) as journal:
        return asyncio.run(scenario(journal))


def test_every_side_effect_starts_after_its_intent_is_on_disk(tmp_path: Path) -> None:
    dns = FakeDnsProvider()
    path = tmp_path / "j.jsonl"
    oss = AuditingOss(path, dns)
    domains = [f"d{i}.example.com" for i in range(6)]
    _run(path, oss, dns, domains)
    assert oss.seen.count(("create_token", "running")) == 6
    assert oss.seen.count(("put_cname", "running")) == 6
    assert len(oss.seen) == 12
    snap = Journal.read_only(path)
    for domain in domains:
        events = [(e.step, e.status) for e in snap.events(f"{BUCKET}/{domain}")]
        steps = ["create_token", "write_txt", "wait_propagation", "put_cname", "verify",
                 "finish"]
        assert events == [("start", "done")] + [(s, st) for s in steps
                                                for st in ("running", "done")]
        record = snap.get(f"{BUCKET}/{domain}")
        assert record is not None and record.phase == Phase.BOUND


def test_a_done_and_the_next_running_share_one_fsync(tmp_path: Path) -> None:
    dns = FakeDnsProvider()
    path = tmp_path / "j.jsonl"
    flushes = _run(path, FakeOss(txt_lookup=dns.txt_values), dns, ["one.example.com"])
    events = list(Journal.read_only(path).events("examplebucket/one.example.com"))
    assert len(events) == 13
    # start+running, then done+running per step (5), the last done: at most 7 groups
    assert flushes <= 7


class FailingVerifyOss(FakeOss):
    """ListCname fails for good, so VERIFY (the second step of a hop) fails."""

    def list_cnames(self, bucket: str) -> list[Any]:
        if self.calls["PutCname"]:
            raise oss_error("AccessDenied", 403)
        return super().list_cnames(bucket)


def test_a_failure_inside_a_hop_is_journaled_against_its_own_step(tmp_path: Path) -> None:
    dns = FakeDnsProvider()
    path = tmp_path / "j.jsonl"
    oss = FailingVerifyOss(txt_lookup=dns.txt_values)
    _run(path, oss, dns, ["a.example.com"])
    record = Journal.read_only(path).get("examplebucket/a.example.com")
    assert record is not None
    assert record.last_step == "verify" and record.last_status == "failed"
    assert record.last_error is not None and record.last_error.code == "AccessDenied"

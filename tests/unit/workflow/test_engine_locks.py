"""The batch engine on the store of record: each binding's lock is held while it is in flight;
a binding another holder keeps is left (and said so); a binding bound meanwhile is skipped."""

from __future__ import annotations

import asyncio
from pathlib import Path

from cname_flow.batch.jobs import outcome
from cname_flow.journal import BindingRecord, JournalEvent
from cname_flow.model import AuxStep, Binding, CnameToken, Phase
from cname_flow.store import JsonStore
from cname_flow.workflow.commit import GroupCommitter
from cname_flow.workflow.context import Ports, StepContext
from cname_flow.workflow.engine import BackoffPolicy, Engine
from cname_flow.workflow.pool import Workers
from tests.fakes import FakeChecker, FakeDnsProvider, FakeOss

BUCKET = "examplebucket"


class WatchingOss(FakeOss):
    """Records, at each CreateCnameToken, whether the engine's store holds the binding's lock."""

    def __init__(self, dns: FakeDnsProvider, store: JsonStore) -> None:
        super().__init__(txt_lookup=dns.txt_values)
        self.store = store
        self.locked_at_create: list[bool] = []

    def create_token(self, bucket: str, domain: str) -> CnameToken:
        assert self.store._ranges is not None
        self.locked_at_create.append(self.store._ranges.holds(f"{bucket}/{domain}"))
        return super().create_token(bucket, domain)


def run(store: JsonStore, oss: FakeOss, dns: FakeDnsProvider, domains: list[str],
        lock_wait_s: float = 0.0) -> Engine:
    ports = Ports(oss=oss, dns=dns, checker=FakeChecker(dns), sleep=lambda s: None)
    contexts = [StepContext(binding=Binding(domain=d, bucket=BUCKET, region="cn-hangzhou"),
                            ports=ports) for d in domains]

    def needs(record: BindingRecord | None) -> bool:
        return outcome(record) in ("pending", "retryable")

    async def scenario() -> Engine:
        committer = GroupCommitter(store)
        committer.start()
        engine = Engine(committer, Workers(4), backoff=BackoffPolicy(max_attempts=1),
                        locks=store, lock_wait_s=lock_wait_s, needs_run=needs)
        await engine.run(contexts)
        await committer.close()
        return engine

    return asyncio.run(scenario())


def test_bindings_are_driven_under_their_lock_and_released_after(tmp_path: Path) -> None:
    dns = FakeDnsProvider()
    with JsonStore(tmp_path, fsync=False) as store:
        oss = WatchingOss(dns, store)
        run(store, oss, dns, ["a.example.com", "b.example.com"])
        assert oss.locked_at_create == [True, True]
        assert {r.phase for r in store.bindings().values()} == {Phase.BOUND}
        with store.lock(f"{BUCKET}/a.example.com", wait_s=0):
            pass  # released


def test_a_binding_held_elsewhere_is_left_and_said_so(tmp_path: Path) -> None:
    dns = FakeDnsProvider()
    with JsonStore(tmp_path, fsync=False) as store, JsonStore(tmp_path) as other:
        oss = WatchingOss(dns, store)
        with other.lock(f"{BUCKET}/held.example.com"):
            engine = run(store, oss, dns, ["held.example.com", "free.example.com"],
                         lock_wait_s=0.3)
        assert list(engine.locked) == [f"{BUCKET}/held.example.com"]
        assert "is in use by" in str(engine.locked[f"{BUCKET}/held.example.com"])
        assert store.get(f"{BUCKET}/held.example.com") is None  # nothing done for it
        record = store.get(f"{BUCKET}/free.example.com")
        assert record is not None and record.phase == Phase.BOUND


def test_a_binding_bound_by_another_process_meanwhile_is_skipped(tmp_path: Path) -> None:
    dns = FakeDnsProvider()
    with JsonStore(tmp_path, fsync=False) as store, JsonStore(tmp_path) as other:
        other.record(JournalEvent(f"{BUCKET}/done.example.com", AuxStep.START, "done",
                                  Phase.BOUND))  # written after the job chose its work
        oss = WatchingOss(dns, store)
        run(store, oss, dns, ["done.example.com"])
        assert oss.locked_at_create == []  # fresh record read after locking: no work

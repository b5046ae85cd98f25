"""The engine keeps at most ``window`` bindings in flight (each holding its lock, a task and its
state), so memory stays flat in the size of a job; the others start as those end, in order."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from pathlib import Path

from cname_flow.model import Binding, Phase
from cname_flow.propagation.model import NameserverAddress, Round
from cname_flow.store import JsonStore
from cname_flow.workflow.commit import GroupCommitter
from cname_flow.workflow.context import Ports, RoundCallback, StepContext
from cname_flow.workflow.engine import BackoffPolicy, Engine
from cname_flow.workflow.pool import Workers
from tests.fakes import FakeChecker, FakeDnsProvider, FakeOss

BUCKET = "examplebucket"


class CountingChecker(FakeChecker):
    """Counts the propagation waits in flight at once, and the order waits start in."""

    def __init__(self, dns: FakeDnsProvider) -> None:
        super().__init__(dns)
        self.in_flight = self.most = 0
        self.started: list[str] = []

    async def wait_async(
        self, name: str, value: str, targets: Sequence[NameserverAddress], *,
        written_at: float | None = None, on_round: RoundCallback | None = None,
    ) -> Round:
        self.started.append(name)
        self.in_flight += 1
        self.most = max(self.most, self.in_flight)
        try:
            await asyncio.sleep(0.3)
        finally:
            self.in_flight -= 1
        return self.wait(name, value, targets, written_at=written_at, on_round=on_round)


def test_no_more_than_the_window_is_in_flight_and_every_binding_ends(tmp_path: Path) -> None:
    dns = FakeDnsProvider()
    oss, checker = FakeOss(txt_lookup=dns.txt_values), CountingChecker(dns)
    ports = Ports(oss=oss, dns=dns, checker=checker, sleep=lambda s: None)
    domains = [f"w{i}.example.com" for i in range(9)]
    contexts = [StepContext(binding=Binding(domain=d, bucket=BUCKET, region="cn-hangzhou"),
                            ports=ports) for d in domains]

    async def scenario(store: JsonStore) -> None:
        committer = GroupCommitter(store)
        committer.start()
        engine = Engine(committer, Workers(8), backoff=BackoffPolicy(max_attempts=1),
                        locks=store, window=3)
        assert await engine.run(contexts) == []
        await committer.close()

    with JsonStore(tmp_path, fsync=False) as store:
        asyncio.run(scenario(store))
        assert {store.get(f"{BUCKET}/{d}").phase for d in domains} == {  # type: ignore[union-attr]
            Phase.BOUND}
    assert checker.most == 3           # eight workers, but three bindings at a time
    assert set(checker.started[:3]) == {f"_dnsauth.{d}" for d in domains[:3]}  # in order

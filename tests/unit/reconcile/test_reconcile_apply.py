"""Reconcile's fixes run on the engine every entry point shares: concurrently, and stopped in
flight by ``--deadline`` (the next run resumes them)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Sequence
from pathlib import Path

from cname_flow.model import Phase, txt_name
from cname_flow.propagation.model import NameserverAddress, Round
from cname_flow.store import JsonStore
from cname_flow.workflow.context import RoundCallback
from tests.fakes import FakeChecker
from tests.unit.cli.clikit import BUCKET, CliWorld


class SlowChecker(FakeChecker):
    """A checker whose TXT wait takes ``wait_s`` on the loop and counts waits in flight."""

    def __init__(self, world: CliWorld, wait_s: float) -> None:
        super().__init__(world.dns)
        self.wait_s = wait_s
        self.in_flight = 0
        self.most_in_flight = 0

    async def wait_async(
        self, name: str, value: str, targets: Sequence[NameserverAddress], *,
        written_at: float | None = None, on_round: RoundCallback | None = None,
    ) -> Round:
        self.in_flight += 1
        self.most_in_flight = max(self.most_in_flight, self.in_flight)
        try:
            await asyncio.sleep(self.wait_s)
        finally:
            self.in_flight -= 1
        return self.wait(name, value, targets, written_at=written_at, on_round=on_round)


def _world(tmp_path: Path, wait_s: float) -> tuple[CliWorld, SlowChecker]:
    cli = CliWorld(tmp_path)
    checker = SlowChecker(cli, wait_s)
    cli.checker = checker
    return cli, checker


DOMAINS = [f"d{i}.example.com" for i in range(6)]


def test_reconcile_fixes_missing_bindings_concurrently(tmp_path: Path) -> None:
    cli, checker = _world(tmp_path, wait_s=0.2)
    manifest = cli.manifest(*DOMAINS)
    result = cli.invoke("reconcile", "-f", str(manifest), "--apply", "--max-changes", "10",
                        "--json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert [(r["key"], r["status"]) for r in report["results"]] == [
        (f"{BUCKET}/{d}", "fixed") for d in DOMAINS]
    assert checker.most_in_flight > 1          # the propagation waits overlapped
    assert sorted(e.domain for e in cli.oss.list_cnames(BUCKET)) == sorted(DOMAINS)


def test_reconcile_deadline_stops_fixes_in_flight_and_the_next_run_resumes(
    tmp_path: Path,
) -> None:
    cli, _ = _world(tmp_path, wait_s=3600.0)   # propagation that would outlast any run
    manifest = cli.manifest(*DOMAINS[:2])
    result = cli.invoke("reconcile", "-f", str(manifest), "--apply", "--max-changes", "10",
                        "--deadline", "0.5", "--json")
    assert result.exit_code == 75, result.output  # only retryable work left
    report = json.loads(result.stdout)
    assert {r["status"] for r in report["results"]} == {"stopped"}
    assert all(r["retryable"] for r in report["results"])
    assert report["outcome"] == "retry"
    assert cli.oss.list_cnames(BUCKET) == []       # stopped before PutCname
    with JsonStore(tmp_path / "journal") as store:
        phases = {store.get(f"{BUCKET}/{d}").phase for d in DOMAINS[:2]}  # type: ignore[union-attr]
    assert phases == {Phase.TXT_WRITTEN}

    cli.checker = FakeChecker(cli.dns)             # propagation now answers at once
    again = cli.invoke("reconcile", "-f", str(manifest), "--apply", "--max-changes", "10")
    assert again.exit_code == 0, again.output
    assert sorted(e.domain for e in cli.oss.list_cnames(BUCKET)) == DOMAINS[:2]
    for domain in DOMAINS[:2]:
        assert len(cli.dns.txt_values(txt_name(domain))) == 1   # the resumed run reused it
    assert cli.oss.minted == 2                     # one token per domain, never re-minted

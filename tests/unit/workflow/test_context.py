"""The step context: immutable inputs over shared ports, and a per-run memo of reads."""

from __future__ import annotations

import dataclasses
import inspect
from collections.abc import Callable
from datetime import UTC, datetime

import pytest

from cname_flow.dns.base import Zone
from cname_flow.model import Binding, CnameEntry
from cname_flow.workflow.context import BindingRun, Ports, StepContext
from tests.fakes import FakeChecker, FakeDnsProvider, FakeOss

BINDING = Binding(domain="www.example.com", bucket="examplebucket", region="cn-hangzhou")


def _ports(
    bucket_listing: Callable[[str], list[CnameEntry]] | None = None,
) -> tuple[Ports, FakeOss, FakeDnsProvider]:
    dns = FakeDnsProvider()
    oss = FakeOss(txt_lookup=dns.txt_values)
    ports = Ports(oss=oss, dns=dns, checker=FakeChecker(dns), bucket_listing=bucket_listing)
    return ports, oss, dns


def test_context_holds_inputs_only_and_the_memo_keeps_no_constructor_caches() -> None:
    fields = {f.name for f in dataclasses.fields(StepContext)}
    assert fields == {"binding", "ports", "certificate", "txt_ttl", "ownership_policy", "on_round",
                      "manual"}
    assert list(inspect.signature(BindingRun).parameters) == ["ports", "binding", "manual"]
    ctx = StepContext(binding=BINDING, ports=_ports()[0])
    with pytest.raises(dataclasses.FrozenInstanceError):
        ctx.txt_ttl = 60  # type: ignore[misc]


def test_zone_and_addresses_are_read_once_per_run(monkeypatch: pytest.MonkeyPatch) -> None:
    ports, _, dns = _ports()
    asked: list[str] = []
    find_zone = dns.find_zone

    def counting(name: str) -> Zone:
        asked.append(name)
        return find_zone(name)

    monkeypatch.setattr(dns, "find_zone", counting)
    run = BindingRun(ports, BINDING)
    assert run.zone() is run.zone()
    assert run.authoritative_addresses() is run.authoritative_addresses()
    assert [a.host for a in run.authoritative_addresses()] == list(run.zone().nameservers)
    assert asked == ["_dnsauth.www.example.com"]
    BindingRun(ports, BINDING).zone()           # a new run reads again
    assert len(asked) == 2


def test_cname_entry_is_listed_once_unless_fresh() -> None:
    ports, oss, _ = _ports()
    run = BindingRun(ports, BINDING)
    assert run.cname_entry() is None and run.cname_entry() is None
    assert oss.calls["ListCname"] == 1
    oss.bind("examplebucket", BINDING.domain)
    assert run.cname_entry() is None                         # the run's memo
    entry = run.cname_entry(fresh=True)
    assert entry is not None and entry.status == "Enabled"
    assert oss.calls["ListCname"] == 2


def test_a_shared_listing_answers_absence_only_and_not_when_refused() -> None:
    stale = CnameEntry(BINDING.domain, "Enabled", datetime.now(UTC), None)
    shared: list[CnameEntry] = []
    ports, oss, _ = _ports(bucket_listing=lambda bucket: shared)
    assert BindingRun(ports, BINDING).cname_entry() is None
    assert oss.calls["ListCname"] == 0                       # absence from the shared listing
    assert BindingRun(ports, BINDING).cname_entry(shared=False) is None
    assert oss.calls["ListCname"] == 1                       # refused: read afresh
    shared.append(stale)
    assert BindingRun(ports, BINDING).cname_entry() is None  # shown there: OSS asked, not there
    assert oss.calls["ListCname"] == 2

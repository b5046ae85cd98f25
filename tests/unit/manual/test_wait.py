"""The manual wait's pieces with in-memory ports: schedule, token re-mint, events, patience."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta

import pytest

from cname_flow.events import Event
from cname_flow.journal import BindingOutputs, BindingRecord, JournalEvent
from cname_flow.journal.records import merge_outputs
from cname_flow.manual import wait
from cname_flow.manual.cadence import Cadence
from cname_flow.manual.errors import AwaitingCustomerDns, CustomerDnsAbandoned
from cname_flow.manual.mode import ManualMode, effective
from cname_flow.model import Binding, Phase
from cname_flow.propagation.model import AddressAnswer, AnswerState, NameserverAddress, Round
from cname_flow.workflow.context import BindingRun, Ports, StepContext, StepResult
from tests.fakes import FakeDnsProvider, FakeOss

BINDING = Binding(domain="shop.example.com", bucket="examplebucket", region="cn-hangzhou")
NS = NameserverAddress("ns1.example.net", "192.0.2.1", 53)
T0 = datetime(2026, 12, 1, tzinfo=UTC)


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> datetime:
        return self.now


class Served:
    """An observing checker: ``served[name]`` is the TXT set every address serves."""

    def __init__(self) -> None:
        self.served: dict[str, set[str]] = {}
        self.asked: list[str] = []

    def targets(self, zone: str, provider_nameservers: Sequence[str]) -> list[NameserverAddress]:
        return [NS]

    def observe(self, name: str, value: str, targets: Sequence[NameserverAddress]) -> Round:
        self.asked.append(name)
        values = frozenset(self.served.get(name, set()))
        state = AnswerState.OK if value in values else AnswerState.PENDING
        return Round.judge([AddressAnswer(NS, state, values, None, 1, 0.001, "")], strict=False)

    async def observe_async(self, name: str, value: str,
                            targets: Sequence[NameserverAddress]) -> Round:
        return self.observe(name, value, targets)


class Sink:
    def __init__(self) -> None:
        self.events: list[Event] = []

    def publish(self, event: Event) -> None:
        self.events.append(event)


def record(**outputs: object) -> BindingRecord:
    merged = merge_outputs(BindingOutputs(), {"dns_mode": "manual", "manual_zone": "example.com",
                                              **outputs})
    return BindingRecord(BINDING.key, BINDING.domain, BINDING.bucket, Phase.TXT_WRITTEN, merged,
                         None, None, None, 0, T0, T0)


def setup(token_validity: timedelta = timedelta(hours=72)) -> tuple[
        StepContext, BindingRun, Clock, FakeOss, Served, Sink, ManualMode]:
    clock, checker, sink = Clock(), Served(), Sink()
    oss = FakeOss(clock=clock, token_validity=token_validity)
    ports = Ports(oss=oss, dns=FakeDnsProvider(), checker=checker,  # type: ignore[arg-type]
                  now=clock, events=sink)
    mode = ManualMode(active=True, zone="example.com",
                      cadence=Cadence(first_check_s=60, renew_before_s=12 * 3600),
                      nameserver_hosts=("ns1.example.net",))
    ctx = StepContext(BINDING, ports, manual=mode)
    return ctx, BindingRun(ports, BINDING, mode), clock, oss, checker, sink, mode


def test_instructions_are_recorded_and_published_and_nothing_is_written() -> None:
    ctx, run, _clock, oss, _, sink, mode = setup()
    token = oss.create_token(BINDING.bucket, BINDING.domain)
    rec = record(token=token.token, token_expires_at=token.expires_at.isoformat())
    result = wait.give_instructions(ctx, run, rec, mode)
    assert result.phase == Phase.TXT_WRITTEN
    out = dict(result.outputs)
    assert out["manual_host"] == "_dnsauth.shop"
    assert out["dns_next_check_at"] == (T0 + timedelta(seconds=60)).isoformat()
    [event] = sink.events
    assert event.type == "binding.instructions" and event.data["value"] == token.token
    assert ctx.ports.dns.list_records(run.zone(), "_dnsauth.shop.example.com", "TXT") == []


def test_check_schedules_the_next_one_and_counts() -> None:
    ctx, run, clock, _, checker, _, mode = setup()
    rec = record(token="tok", manual_since=T0.isoformat(),
                 token_expires_at=(T0 + timedelta(hours=72)).isoformat())
    clock.now = T0 + timedelta(seconds=60)
    event = wait.check_event(ctx, rec, mode, wait.observe_now(ctx, run, rec, "tok"))
    out = dict(event.outputs)
    assert out["dns_check_count"] == 1 and out["dns_check_ok"] is False
    assert out["dns_next_check_at"] == (T0 + timedelta(seconds=120)).isoformat()
    assert set(checker.asked) == {"_dnsauth.shop.example.com",
                                  "_dnsauth.shop.example.com.example.com",
                                  "_dnsauth.example.com"}


def test_same_token_while_valid_is_no_renewal_and_a_new_one_is_published() -> None:
    ctx, _, clock, oss, _, sink, mode = setup(token_validity=timedelta(hours=72))
    token = oss.create_token(BINDING.bucket, BINDING.domain)
    rec = record(token=token.token, token_expires_at=token.expires_at.isoformat())
    assert wait.renewal(ctx, rec, mode) is None and oss.calls["CreateCnameToken"] == 1
    clock.now = T0 + timedelta(hours=61)  # inside the 12 h window: OSS answers the same value
    assert wait.renewal(ctx, rec, mode) is None and oss.calls["CreateCnameToken"] == 2
    clock.now = T0 + timedelta(hours=72, seconds=1)  # expired: a new value
    event = wait.renewal(ctx, rec, mode)
    assert event is not None
    out = dict(event.outputs)
    assert out["token_previous"] == token.token
    assert out["token"] != token.token and out["token_renewals"] == 1
    renewed, instr = sink.events
    assert renewed.type == "binding.token_renewed" and renewed.data["old_value"] == token.token
    assert instr.type == "binding.instructions" and instr.data["value"] == out["token"]


def _run(ctx: StepContext, run: BindingRun, rec: BindingRecord, mode: ManualMode,
         journal: list[JournalEvent]) -> StepResult:
    state = {"record": rec}

    async def commit(event: JournalEvent) -> BindingRecord:
        journal.append(event)
        old = state["record"]
        new = record(**merge_outputs(BindingOutputs(**old.outputs), event.outputs))
        state["record"] = new
        return new

    async def offload(fn: Callable[[], JournalEvent | None]) -> JournalEvent | None:
        return fn()

    return asyncio.run(wait.wait_async(ctx, run, rec, mode, commit, offload))


def test_no_patience_and_not_due_leaves_at_once_without_asking() -> None:
    ctx, run, _, _, checker, _, mode = setup()
    rec = record(token="tok", manual_since=T0.isoformat(),
                 token_expires_at=(T0 + timedelta(hours=72)).isoformat(),
                 dns_next_check_at=(T0 + timedelta(minutes=5)).isoformat())
    journal: list[JournalEvent] = []
    with pytest.raises(AwaitingCustomerDns) as exc:
        _run(ctx, run, rec, mode, journal)
    assert checker.asked == [] and journal == []
    assert exc.value.next_check_at == (T0 + timedelta(minutes=5)).isoformat()


def test_due_check_finds_the_record_and_the_wait_ends() -> None:
    ctx, run, _, _, checker, _, mode = setup()
    checker.served["_dnsauth.shop.example.com"] = {"tok"}
    rec = record(token="tok", manual_since=T0.isoformat(),
                 token_expires_at=(T0 + timedelta(hours=72)).isoformat(),
                 dns_next_check_at=T0.isoformat())
    journal: list[JournalEvent] = []
    result = _run(ctx, run, rec, mode, journal)
    assert result.phase == Phase.TXT_VISIBLE
    assert [dict(e.outputs)["dns_check_ok"] for e in journal] == [True]


def test_gives_up_after_the_configured_days() -> None:
    ctx, run, clock, _, _, _, mode = setup()
    clock.now = T0 + timedelta(days=7)
    rec = record(token="tok", manual_since=T0.isoformat())
    with pytest.raises(CustomerDnsAbandoned, match="7 days"):
        _run(ctx, run, rec, mode, [])


def test_a_record_marked_manual_stays_manual() -> None:
    rec = record(token="tok")
    mode = effective(ManualMode(), rec)
    assert mode is not None and mode.active and mode.zone == "example.com"
    assert effective(ManualMode(), None) is None
    assert effective(None, record(dns_mode=None)) is None

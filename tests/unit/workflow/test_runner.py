"""A one-shot run (a batch of one on the engine) over fakes: crash after any step or side effect,
resume, no duplicate side effects."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from cname_flow.dns.base import OWNER_REMARK
from cname_flow.errors import DomainBoundElsewhere, PropagationTimeout, ZoneNotFound
from cname_flow.journal import Journal
from cname_flow.model import Binding, Phase, txt_name
from cname_flow.workflow.context import Ports, StepContext
from cname_flow.workflow.runner import run_one
from tests.fakes import FakeChecker, FakeDnsProvider, FakeOss, utc_now

DOMAIN = "www.example.com"
BINDING = Binding(domain=DOMAIN, bucket="examplebucket", region="cn-hangzhou")


class Crash(BaseException):
    """Stands for SIGKILL: not an error the runner handles, so nothing is journaled after it."""


class World:
    """Fakes wired together the way the services are."""

    def __init__(self, tmp: Path) -> None:
        self.dns = FakeDnsProvider()
        self.oss = FakeOss(txt_lookup=self.dns.txt_values)
        self.checker = FakeChecker(self.dns)
        self.journal_path = tmp / "journal.jsonl"

    def run(self, binding: Binding = BINDING) -> Any:
        ports = Ports(oss=self.oss, dns=self.dns, checker=self.checker, sleep=lambda s: None)
        ctx = StepContext(binding=binding, ports=ports)
        with Journal(self.journal_path) as journal:
            return run_one(journal, ctx)

    def txt_records(self) -> list[str]:
        return self.dns.txt_values(txt_name(DOMAIN))


def crash_after(obj: object, method: str) -> None:
    """Make ``obj.method`` do its work, then crash once (a kill right after a side effect)."""
    original: Callable[..., Any] = getattr(obj, method)

    def crashing(*args: Any, **kwargs: Any) -> Any:
        setattr(obj, method, original)
        original(*args, **kwargs)
        raise Crash(method)

    setattr(obj, method, crashing)


def crash_before(obj: object, method: str) -> None:
    """Make the next ``obj.method`` call crash once before doing anything."""
    original: Callable[..., Any] = getattr(obj, method)

    def crashing(*args: Any, **kwargs: Any) -> Any:
        setattr(obj, method, original)
        raise Crash(method)

    setattr(obj, method, crashing)


@pytest.mark.parametrize(("target", "method"), [
    ("oss", "list_cnames"), ("oss", "create_token"),
    ("dns", "list_records"), ("dns", "upsert"), ("checker", "wait"),
    ("oss", "put_cname"),
])
def test_run_when_killed_right_after_a_call_should_resume_to_one_binding(
    tmp_path: Path, target: str, method: str
) -> None:
    world = World(tmp_path)
    crash_after(getattr(world, target), method)
    with pytest.raises(Crash):
        world.run()
    record = world.run()
    assert record.phase == Phase.BOUND
    assert world.oss.minted == 1                              # the token is reused, never re-minted
    assert world.oss.calls["GetCnameToken"] == 0              # CreateCnameToken is idempotent
    assert len(world.txt_records()) == 1                      # no duplicate TXT record
    assert world.oss.list_cnames("examplebucket")[0].domain == DOMAIN


def test_run_without_certificate_should_reuse_the_run_s_listing_before_put_cname(
    tmp_path: Path,
) -> None:
    world = World(tmp_path)
    assert world.run().phase == Phase.BOUND
    assert world.oss.calls["ListCname"] == 2      # the pre-flight read and the verification


def test_run_resumed_before_put_cname_should_read_the_bucket_afresh(tmp_path: Path) -> None:
    world = World(tmp_path)
    crash_after(world.checker, "wait")
    with pytest.raises(Crash):
        world.run()
    assert world.oss.calls["ListCname"] == 1
    world.oss.bind("examplebucket", DOMAIN)       # bound meanwhile, out of band
    assert world.run().phase == Phase.BOUND
    assert world.oss.calls["ListCname"] == 3      # a fresh read before PutCname, then verify
    assert world.oss.calls["PutCname"] == 0       # it saw the binding and did not re-put


def test_run_when_already_bound_should_only_read(tmp_path: Path) -> None:
    world = World(tmp_path)
    world.oss.bind("examplebucket", DOMAIN)
    assert world.run().phase == Phase.BOUND
    assert world.dns.calls["AddDomainRecord"] == 0
    assert world.oss.calls["PutCname"] == world.oss.calls["CreateCnameToken"] == 0


def test_run_when_propagation_times_out_should_stay_resumable(tmp_path: Path) -> None:
    world = World(tmp_path)
    world.checker.wait = lambda *a, **k: (_ for _ in ()).throw(  # type: ignore[method-assign]
        PropagationTimeout("slow", name="n", expected="v", table="t"))
    with pytest.raises(PropagationTimeout):
        world.run()
    with Journal(world.journal_path) as journal:
        record = journal.get(BINDING.key)
    assert record is not None and record.phase == Phase.TXT_WRITTEN   # retryable: not FAILED
    assert record.last_error is not None and record.last_error.retryable


def test_run_when_bound_elsewhere_should_fail_for_good_without_writing(tmp_path: Path) -> None:
    world = World(tmp_path)
    world.oss.buckets["otherbucket"] = type(world.oss.buckets["examplebucket"])()
    world.oss.bind("otherbucket", DOMAIN)
    with pytest.raises(DomainBoundElsewhere):
        world.run()
    assert world.txt_records() == []
    with Journal(world.journal_path) as journal:
        assert journal.get(BINDING.key).phase == Phase.FAILED  # type: ignore[union-attr]


def test_run_when_zone_not_hosted_should_fail_before_any_oss_call(tmp_path: Path) -> None:
    world = World(tmp_path)
    with pytest.raises(ZoneNotFound):
        world.run(Binding(domain="a.not-hosted.org", bucket="examplebucket", region="cn-hangzhou"))
    assert sum(world.oss.calls.values()) == 0


def test_run_when_token_expired_on_resume_should_mint_a_new_one_and_update_our_record(
    tmp_path: Path,
) -> None:
    world = World(tmp_path)
    now = [utc_now()]
    world.oss.clock = lambda: now[0]
    crash_after(world.checker, "wait")
    with pytest.raises(Crash):
        world.run()
    first = world.txt_records()
    now[0] += timedelta(hours=73)                        # the token ran out while we were away
    ctx_now = now[0]
    ctx = StepContext(binding=BINDING, ports=Ports(
        oss=world.oss, dns=world.dns, checker=world.checker,
        sleep=lambda s: None, now=lambda: ctx_now))
    with Journal(world.journal_path) as journal:
        record = run_one(journal, ctx)
    assert record.phase == Phase.BOUND
    assert world.oss.calls["CreateCnameToken"] == 2 and world.oss.minted == 2
    assert len(world.txt_records()) == 1 and world.txt_records() != first   # updated in place
    assert world.dns.calls["AddDomainRecord"] == 1


def _txt_refs(world: World) -> list[Any]:
    return [r for r in world.dns.records.values() if r.fqdn == txt_name(DOMAIN)]


@pytest.mark.parametrize("hook", ["_create", "_set_remark"])
def test_run_when_killed_after_the_record_was_added_should_claim_it_on_resume(
    tmp_path: Path, hook: str
) -> None:
    """The add ran but its answer (or the remark after it) never came back: the record holds
    exactly our token, so the resumed run marks it and journals its id."""
    world = World(tmp_path)
    if hook == "_set_remark":
        crash_before(world.dns, hook)          # killed before the remark call left the client
    else:
        crash_after(world.dns, hook)           # killed while the add's answer was in flight
    with pytest.raises(Crash):
        world.run()
    [unmarked] = _txt_refs(world)
    assert unmarked.remark == ""
    record = world.run()
    assert record.phase == Phase.BOUND
    [claimed] = _txt_refs(world)
    assert claimed.record_id == unmarked.record_id and claimed.remark == OWNER_REMARK
    assert record.txt_record_id == claimed.record_id
    assert world.dns.calls["AddDomainRecord"] == 1     # found by value, not added again


def test_run_when_our_token_sits_in_a_record_someone_else_marked_should_leave_it(
    tmp_path: Path,
) -> None:
    world = World(tmp_path)
    crash_after(world.dns, "_create")
    with pytest.raises(Crash):
        world.run()
    [added] = _txt_refs(world)
    world.dns.records[added.record_id] = replace(added, remark="owner:platform-team")
    record = world.run()
    assert record.phase == Phase.BOUND
    assert [r.remark for r in _txt_refs(world)] == ["owner:platform-team"]
    assert record.txt_record_id is None
    assert world.dns.calls["UpdateDomainRecordRemark"] == 0


def test_run_on_the_happy_path_should_not_claim(tmp_path: Path) -> None:
    world = World(tmp_path)
    record = world.run()
    [ours] = _txt_refs(world)
    assert ours.remark == OWNER_REMARK and record.txt_record_id == ours.record_id
    assert world.dns.calls["UpdateDomainRecordRemark"] == 1   # the mark after the add, no more

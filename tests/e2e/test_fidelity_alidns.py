"""Sandbox fidelity round 2, Alidns, end to end: the product's real Alidns SDK client (and the
``cname-flow bind`` process) against a sandbox that behaves as the evidence says.

* MinTtl comes back only with ``NeedDetailAttributes=true``: the zone lookup asks for it, so a
  paid edition's lower TTL floor decides the TXT record's TTL instead of the free 600 s;
* ``LastOperationNotFinished`` on rapid changes to one host record: the one retry layer retries
  it with backoff, every attempt passing the rate limiter and the error hook, and a bind still
  ends with one TXT record carrying the ownership remark.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from cname_flow.config.credentials import Credentials
from cname_flow.dns.alidns import Alidns
from cname_flow.errors import DnsProviderError
from cname_flow.retry import RetryPolicy
from cname_flow.sandbox.app import Sandbox
from cname_flow.sandbox.config import AlidnsLimits, ZoneConfig
from cname_flow.workflow.steps import record_ttl
from tests.e2e.bindkit import count_calls, sandbox_env, world

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(120)]

#: zone → its TTL floor (seconds): an Exclusive-like 1 s, a Personal-like 120 s, the free 600 s.
FLOORS = {"example.com": 1, "example.com.cn": 120, "example.net": 600}
WINDOW_S = 1.0


def _zones() -> list[ZoneConfig]:
    return [ZoneConfig(name=name, min_ttl=floor) for name, floor in FLOORS.items()]


def _alidns(box: Sandbox, **kw: object) -> Alidns:
    info = box.info
    return Alidns(credentials=Credentials(info.access_key_id, info.access_key_secret),
                  endpoint=info.alidns_endpoint, protocol="http", **kw)  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def floors_box(no_proxy: None) -> Iterator[Sandbox]:
    with Sandbox(world(zones=_zones())) as box:
        yield box


@pytest.mark.parametrize(("zone", "floor"), FLOORS.items())
def test_zone_lookup_should_learn_the_editions_ttl_floor(
    floors_box: Sandbox, zone: str, floor: int
) -> None:
    found = _alidns(floors_box).find_zone(f"img.{zone}")
    assert (found.name, found.min_ttl) == (zone, floor)


@pytest.mark.parametrize(("zone", "ttl"), [("example.com", 60), ("example.com.cn", 120)])
def test_bind_should_write_the_txt_with_the_ttl_the_zones_floor_allows(
    tmp_path: Path, zone: str, ttl: int
) -> None:
    domain = f"d{uuid.uuid4().hex[:8]}.{zone}"
    with sandbox_env(tmp_path, world(zones=_zones())) as sb:
        done = sb.cli("bind", domain, "--json")
        assert done.returncode == 0, done.stderr
        assert json.loads(done.stdout)["phase"] == "BOUND"
        [txt] = sb.records(f"_dnsauth.{domain}")
        zone_now = _alidns(sb.sandbox).find_zone(domain)
        assert txt.ttl == ttl == record_ttl(None, zone_now)  # not the free edition's 600


def _busy_world() -> dict[str, object]:
    return {"alidns": AlidnsLimits(last_operation_not_finished=True,
                                   last_operation_window_s=WINDOW_S)}


def test_adapter_should_retry_last_operation_not_finished_counting_every_attempt(
    no_proxy: None,
) -> None:
    with Sandbox(world(**_busy_world())) as box:
        attempts: list[str] = []
        errors: list[DnsProviderError] = []
        waits: list[float] = []

        def sleep(seconds: float) -> None:
            waits.append(seconds)
            time.sleep(seconds)

        dns = _alidns(box, retry=RetryPolicy(attempts=8, initial_s=0.3, max_s=1.0, jitter_s=0.1),
                      sleep=sleep, rate_limiter=attempts.append,
                      on_error=lambda action, err: errors.append(err))
        served = count_calls(box, ["UpdateDomainRecordRemark", "DeleteDomainRecord"])
        zone = dns.find_zone("example.com")
        ref, changed = dns.upsert(zone, "_dnsauth.busy.example.com", "TXT", "tok", 600)
        assert changed and ref.owned
        dns.delete_record(ref)                       # right after the remark: busy again
        assert dns.list_records(zone, "_dnsauth.busy.example.com", "TXT") == []
        assert errors and {e.code for e in errors} == {"LastOperationNotFinished"}
        assert all(e.retryable and e.status == 400 for e in errors)
        assert len(waits) == len(errors)             # each refusal waited, then tried again
        for action in ("UpdateDomainRecordRemark", "DeleteDomainRecord"):
            assert attempts.count(action) == len(served[action]) >= 2  # all counted


def test_bind_with_last_operation_not_finished_should_end_with_one_marked_txt(
    tmp_path: Path,
) -> None:
    domain = f"d{uuid.uuid4().hex[:8]}.example.com"
    with sandbox_env(tmp_path, world(**_busy_world())) as sb:
        served = count_calls(sb.sandbox, ["AddDomainRecord", "UpdateDomainRecordRemark"])
        done = sb.cli("bind", domain, "--json")
        assert done.returncode == 0, done.stderr
        assert json.loads(done.stdout)["phase"] == "BOUND"
        [txt] = sb.records(f"_dnsauth.{domain}")
        assert txt.value == sb.token("examplebucket", domain)
        assert txt.remark == "managed-by:cname-flow"
        assert len(served["AddDomainRecord"]) == 1
        assert len(served["UpdateDomainRecordRemark"]) >= 2  # refused at least once, retried

"""Sandbox fidelity round 2, Alidns (docs/sandbox-alidns.md, fidelity-round2 A14 and A17):
the real SDK client against the sandbox's Alidns API.

* DescribeDomainInfo returns MinTtl (and LineType, RegionLines, SlaveDns) only with
  ``NeedDetailAttributes=true``, as the API page says;
* with ``last_operation_not_finished`` on, a second change to one host record inside the window
  answers ``LastOperationNotFinished`` (400, the Alidns error envelope) and changes nothing.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator

import pytest
from alibabacloud_alidns20150109 import models as dns
from alibabacloud_tea_openapi.exceptions import ClientException

from cname_flow.sandbox.alidns.pending import RecentChanges
from cname_flow.sandbox.config import AlidnsLimits, SandboxConfig, ZoneConfig
from tests.sandbox import test_alidns as base
from tests.sandbox.test_alidns import Sandbox, add, add_txt, expect, update, world

pytestmark = [pytest.mark.e2e, pytest.mark.usefixtures("no_proxy")]

WINDOW_S = 0.4
Start = Callable[[SandboxConfig], Sandbox]


@pytest.fixture
def start() -> Iterator[Start]:
    """test_alidns's ``start`` (the Alidns app alone under uvicorn, one per config)."""
    yield from base.start.__wrapped__()  # type: ignore[attr-defined]


def _info(box: Sandbox, detail: bool | None) -> dns.DescribeDomainInfoResponseBody:
    return box.client().describe_domain_info(dns.DescribeDomainInfoRequest(
        domain_name="example.com", need_detail_attributes=detail)).body


@pytest.mark.parametrize("detail", [None, False])
def test_domain_info_without_detail_attributes_should_hide_min_ttl(
    start: Start, detail: bool | None
) -> None:
    box = start(world(zones=[ZoneConfig(name="example.com", min_ttl=1)]))
    body = _info(box, detail)
    assert (body.min_ttl, body.line_type, body.region_lines, body.slave_dns) == (
        None, None, None, None)
    assert body.available_ttls is None and body.record_lines is None
    assert body.domain_name == "example.com" and body.dns_servers.dns_server  # the rest stays


def test_domain_info_with_detail_attributes_should_show_the_editions_floor(start: Start) -> None:
    box = start(world(zones=[ZoneConfig(name="example.com", min_ttl=1)]))
    body = _info(box, True)
    assert (body.min_ttl, body.line_type) == (1, "default")
    assert "1" in body.available_ttls.available_ttl


def _busy_world(on: bool = True) -> SandboxConfig:
    return world(alidns=AlidnsLimits(last_operation_not_finished=on,
                                     last_operation_window_s=WINDOW_S))


def _refused(call: Callable[[], object]) -> None:
    err = expect(ClientException, "LastOperationNotFinished", 400, call)
    assert err.data["Message"] and "Recommend" in err.data


def test_second_change_to_one_record_within_the_window_should_be_refused(start: Start) -> None:
    box = start(_busy_world())
    c = box.client()
    record_id = add_txt(c, value="first")
    _refused(add(c, value="second"))                                   # add at the same RR
    _refused(update(c, record_id, value="changed"))
    _refused(lambda: c.update_domain_record_remark(dns.UpdateDomainRecordRemarkRequest(
        record_id=record_id, remark="x")))
    _refused(lambda: c.delete_domain_record(dns.DeleteDomainRecordRequest(record_id=record_id)))
    [rec] = box.state.zones["example.com"].records.values()           # nothing changed
    assert (rec.value, rec.remark) == ("first", "")
    add_txt(c, rr="_dnsauth.other", value="v")                         # another RR is free
    c.describe_sub_domain_records(dns.DescribeSubDomainRecordsRequest(  # reads are never refused
        sub_domain="_dnsauth.img.example.com"))
    time.sleep(WINDOW_S + 0.1)
    c.update_domain_record_remark(dns.UpdateDomainRecordRemarkRequest(
        record_id=record_id, remark="x"))
    assert rec.remark == "x"


def test_refused_attempts_should_not_extend_the_window(start: Start) -> None:
    box = start(_busy_world())
    c = box.client()
    add_txt(c, value="first")
    time.sleep(WINDOW_S * 0.6)
    _refused(add(c, value="second"))
    time.sleep(WINDOW_S * 0.6)                      # past the first change's window only
    add_txt(c, value="second")


def test_update_should_keep_both_its_old_and_new_host_records_busy(start: Start) -> None:
    box = start(_busy_world())
    c = box.client()
    record_id = add_txt(c, rr="_dnsauth.a", value="v")
    time.sleep(WINDOW_S + 0.1)
    c.update_domain_record(dns.UpdateDomainRecordRequest(
        record_id=record_id, rr="_dnsauth.b", type="TXT", value="v"))
    _refused(add(c, rr="_dnsauth.a", value="w"))
    _refused(add(c, rr="_dnsauth.b", value="w"))


def test_switch_off_should_allow_rapid_changes(start: Start) -> None:
    c = start(_busy_world(on=False)).client()
    record_id = add_txt(c, value="first")
    add_txt(c, value="second")
    c.update_domain_record_remark(dns.UpdateDomainRecordRemarkRequest(
        record_id=record_id, remark="x"))
    c.delete_domain_record(dns.DeleteDomainRecordRequest(record_id=record_id))


def test_recent_changes_window_on_a_fake_clock() -> None:
    now = [100.0]
    recent = RecentChanges(3.0, clock=lambda: now[0])
    key = ("example.com", "_dnsauth.img")
    recent.check([key])                              # never changed: free
    recent.note([key])
    now[0] += 2.999
    with pytest.raises(Exception, match="not finished"):
        recent.check([key])
    recent.check([("example.com", "www")])
    now[0] += 0.001
    recent.check([key])                              # exactly the window later: free

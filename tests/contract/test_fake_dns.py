"""The in-memory FakeDnsProvider passes the provider contract, plus what only a fake can show."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from cname_flow.dns.base import RecordRef, Zone
from cname_flow.errors import DnsProviderError, OssError
from tests.contract.dns_provider_contract import DnsProviderContract, fresh
from tests.fakes import FakeDnsProvider, FakeOss, dns_error


class TestFakeDnsContract(DnsProviderContract):
    @pytest.fixture
    def provider(self) -> FakeDnsProvider:
        return FakeDnsProvider()


def test_upsert_when_value_present_should_not_call_add() -> None:
    fake = FakeDnsProvider()
    zone = fake.find_zone("example.com")
    fake.upsert(zone, "_dnsauth.img.example.com", "TXT", "tok", 600)
    fake.upsert(zone, "_dnsauth.img.example.com", "TXT", "tok", 600)
    assert fake.calls["AddDomainRecord"] == 1
    assert fake.calls["UpdateDomainRecordRemark"] == 1
    assert fake.calls["DescribeSubDomainRecords"] == 2


def test_find_zone_should_list_zones_once_and_cache_details() -> None:
    fake = FakeDnsProvider()
    for _ in range(3):
        fake.find_zone("a.example.com")
    assert (fake.calls["DescribeDomains"], fake.calls["DescribeDomainInfo"]) == (1, 1)


def test_find_zone_when_zone_added_later_should_refresh_the_list_once() -> None:
    fake = FakeDnsProvider(zones=["example.com"])
    fake.find_zone("example.com")
    fake.zones["example.org"] = Zone("example.org", "z9", ("ns1.fake.test",), 600)
    assert fake.find_zone("www.example.org").name == "example.org"
    assert fake.calls["DescribeDomains"] == 2


def test_scripted_error_should_surface_once_then_clear() -> None:
    fake = FakeDnsProvider()
    zone = fake.find_zone("example.com")
    fake.fail("AddDomainRecord", dns_error("Throttling.User", retryable=True))
    with pytest.raises(DnsProviderError) as info:
        fake.upsert(zone, "_dnsauth.x.example.com", "TXT", "tok", 600)
    assert (info.value.code, info.value.retryable) == ("Throttling.User", True)
    _, changed = fake.upsert(zone, "_dnsauth.x.example.com", "TXT", "tok", 600)
    assert changed is True


def test_add_when_txt_conflicts_with_cname_should_raise_conflict() -> None:
    fake = FakeDnsProvider()
    zone = fake.find_zone("example.com")
    fake.upsert(zone, "img.example.com", "CNAME", "b.oss-cn-hangzhou.aliyuncs.com", 600)
    with pytest.raises(DnsProviderError) as info:
        fake.upsert(zone, "img.example.com", "TXT", "tok", 600)
    assert info.value.code == "DomainRecordConflict"


class _StaleListing(FakeDnsProvider):
    """Lists nothing the first time: another writer adds the same record between look and act."""

    def _records(self, zone: Zone, rr: str, rtype: str) -> list[RecordRef]:
        found = super()._records(zone, rr, rtype)
        return [] if self.calls["DescribeSubDomainRecords"] == 1 else found


def test_upsert_when_add_reports_duplicate_should_return_existing_unchanged() -> None:
    fake = _StaleListing()
    zone = fake.find_zone("example.com")
    existing = RecordRef("42", "example.com", "_dnsauth.r", "TXT", "tok", 600, "")
    fake.records["42"] = existing
    ref, changed = fake.upsert(zone, "_dnsauth.r.example.com", "TXT", "tok", 600)
    assert (ref, changed) == (existing, False)
    assert fake.calls["UpdateDomainRecordRemark"] == 0


def test_fake_oss_put_cname_should_need_the_txt_proof_from_the_fake_dns() -> None:
    dns = FakeDnsProvider()
    oss = FakeOss(txt_lookup=dns.txt_values)
    domain = f"{fresh()}.example.com"
    token = oss.create_token("examplebucket", domain)
    with pytest.raises(OssError) as info:
        oss.put_cname("examplebucket", domain)
    assert info.value.code == "NeedVerifyDomainOwnership"
    zone = dns.find_zone(domain)
    dns.upsert(zone, f"_dnsauth.{domain}", "TXT", token.token, 600)
    oss.put_cname("examplebucket", domain)
    assert [e.domain for e in oss.list_cnames("examplebucket")] == [domain]
    assert oss.calls["PutCname"] == 2


def test_upsert_when_marking_fails_should_take_the_record_back_and_raise() -> None:
    fake = FakeDnsProvider()
    zone = fake.find_zone("example.com")
    fake.fail("UpdateDomainRecordRemark", dns_error("Throttling.User", retryable=True))
    with pytest.raises(DnsProviderError):
        fake.upsert(zone, "_dnsauth.m.example.com", "TXT", "tok", 600)
    assert fake.records == {}
    ref, changed = fake.upsert(zone, "_dnsauth.m.example.com", "TXT", "tok", 600)
    assert (changed, ref.owned) == (True, True)
    assert fake.calls["DeleteDomainRecord"] == 1


def test_upsert_with_observed_records_should_not_list_again() -> None:
    fake = FakeDnsProvider()
    zone = fake.find_zone("example.com")
    name = "_dnsauth.seen.example.com"
    observed = fake.list_records(zone, name, "TXT")
    ref, changed = fake.upsert(zone, name, "TXT", "tok", 600, observed=observed)
    again, changed_again = fake.upsert(zone, name, "TXT", "tok", 600,
                                       observed=fake.list_records(zone, name, "TXT"))
    assert (changed, changed_again, again.record_id) == (True, False, ref.record_id)
    assert fake.calls["DescribeSubDomainRecords"] == 2  # only the caller's own listings
    assert fake.calls["AddDomainRecord"] == 1


def test_upsert_with_stale_observation_should_find_the_duplicate_not_add_twice() -> None:
    fake = FakeDnsProvider()
    zone = fake.find_zone("example.com")
    name = "_dnsauth.race.example.com"
    stale = fake.list_records(zone, name, "TXT")
    first, _ = fake.upsert(zone, name, "TXT", "tok", 600)   # lands after the observation
    ref, changed = fake.upsert(zone, name, "TXT", "tok", 600, observed=stale)
    assert (ref.record_id, changed) == (first.record_id, False)
    assert fake.txt_values(name) == ["tok"]


class _SlowZoneInfo(FakeDnsProvider):
    def _zone(self, zone_name: str) -> Zone:
        time.sleep(0.05)  # a real DescribeDomainInfo: every thread misses the cache meanwhile
        return super()._zone(zone_name)


def test_find_zone_from_many_threads_should_describe_the_zone_once() -> None:
    fake = _SlowZoneInfo()
    barrier = threading.Barrier(16)

    def find() -> str:
        barrier.wait()
        return fake.find_zone(f"_dnsauth.t{threading.get_ident()}.example.com").name

    with ThreadPoolExecutor(max_workers=16) as pool:
        names = set(pool.map(lambda _: find(), range(16)))
    assert names == {"example.com"}
    assert fake.calls["DescribeDomainInfo"] == 1

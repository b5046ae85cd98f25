"""The DNS port routed by zone (:class:`cname_flow.dns.router.ZoneRouter`) and
:func:`cname_flow.dns.build_dns`, which builds it from ``dns.zones``. Unit tests over in-memory
providers; the end-to-end run over a real BIND and the Alidns sandbox is
``tests/e2e/test_zone_routing.py``."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from cname_flow import dns as dns_registry
from cname_flow.config import Credentials, Settings, load_settings
from cname_flow.dns import build_dns
from cname_flow.dns.alidns import Alidns
from cname_flow.dns.base import DnsProvider
from cname_flow.dns.powerdns import PowerDns
from cname_flow.dns.rfc2136 import Rfc2136
from cname_flow.dns.router import MANUAL, ZoneRouter
from cname_flow.errors import ConfigError, InputError, ZoneNotFound
from cname_flow.manual.errors import ManualZone
from tests.fakes import FakeDnsProvider

CREDS = Credentials("LTAIid", "SENTINEL-secret")


@pytest.fixture
def world() -> tuple[ZoneRouter, FakeDnsProvider, FakeDnsProvider]:
    """alidns (default) hosts example.com; rfc2136 hosts corp.example.com and example.org;
    customer.example.com is manual."""
    alidns = FakeDnsProvider(("example.com",), nameservers=("ns1.alidns.test",))
    rfc = FakeDnsProvider(("corp.example.com", "example.org"), nameservers=("ns1.bind.test",))
    router = ZoneRouter({"corp.example.com": "rfc2136", "example.org": "rfc2136",
                         "Customer.Example.COM.": MANUAL},
                        {"alidns": alidns, "rfc2136": rfc}, "alidns")
    return router, alidns, rfc


@pytest.mark.parametrize(("name", "expected"), [
    ("img.example.com", ("alidns", "")),
    ("_dnsauth.img.corp.example.com", ("rfc2136", "corp.example.com")),
    ("corp.example.com", ("rfc2136", "corp.example.com")),
    ("notcorp.example.com", ("alidns", "")),
    ("IMG.Example.ORG.", ("rfc2136", "example.org")),
    ("a.customer.example.com", (MANUAL, "customer.example.com")),
])
def test_route_should_take_the_longest_listed_zone_else_the_default(
    world: tuple[ZoneRouter, FakeDnsProvider, FakeDnsProvider], name: str,
    expected: tuple[str, str]
) -> None:
    assert world[0].route(name) == expected


def test_find_zone_should_ask_only_the_provider_of_the_name(
    world: tuple[ZoneRouter, FakeDnsProvider, FakeDnsProvider]
) -> None:
    router, _alidns, _rfc = world
    zone = router.find_zone("_dnsauth.img.corp.example.com")
    assert (zone.name, zone.nameservers) == ("corp.example.com", ("ns1.bind.test",))
    assert router.find_zone("_dnsauth.img.example.com").nameservers == ("ns1.alidns.test",)
    with pytest.raises(ZoneNotFound):  # example.net routes to alidns, which lacks it
        router.find_zone("img.example.net")


def test_writes_should_land_at_the_provider_of_their_zone_only(
    world: tuple[ZoneRouter, FakeDnsProvider, FakeDnsProvider]
) -> None:
    router, alidns, rfc = world
    corp = router.find_zone("_dnsauth.a.corp.example.com")
    ref, changed = router.upsert(corp, "_dnsauth.a.corp.example.com", "TXT", "tok-corp", 600)
    main = router.find_zone("_dnsauth.a.example.com")
    _other, _ = router.upsert(main, "_dnsauth.a.example.com", "TXT", "tok-main", 600)
    assert changed and ref.owned
    assert [r.value for r in rfc.records.values()] == ["tok-corp"]
    assert [r.value for r in alidns.records.values()] == ["tok-main"]
    assert [r.value for r in router.list_records(corp, ref.fqdn, "TXT")] == ["tok-corp"]
    assert router.rr_for(corp, ref.fqdn) == "_dnsauth.a"


def test_claim_and_delete_should_route_a_stored_ref_with_no_find_zone_first(
    world: tuple[ZoneRouter, FakeDnsProvider, FakeDnsProvider]
) -> None:
    _router, alidns, rfc = world
    zone = rfc.find_zone("example.org")
    ref, _ = rfc.upsert(zone, "_dnsauth.x.example.org", "TXT", "tok", 600)
    fresh = ZoneRouter({"example.org": "rfc2136"}, {"alidns": alidns, "rfc2136": rfc},
                       "alidns")  # a later run: the ref comes from the journal
    assert fresh.claim(replace(ref, remark="")).owned
    fresh.delete_record(ref)
    assert rfc.records == {}


def test_a_manual_zone_should_raise_manual_zone_and_ask_no_provider(
    world: tuple[ZoneRouter, FakeDnsProvider, FakeDnsProvider]
) -> None:
    router, alidns, rfc = world
    with pytest.raises(ManualZone) as info:
        router.find_zone("_dnsauth.shop.customer.example.com")
    error = info.value
    assert (error.zone, error.name) == ("customer.example.com",
                                        "_dnsauth.shop.customer.example.com")
    assert isinstance(error, ZoneNotFound) and error.retryable is False
    assert error.code == "ManualZone" and "dns.zones" in error.hint
    assert alidns.calls == rfc.calls  # neither was asked anything
    assert sum(alidns.calls.values()) == 0


def test_manual_as_the_default_should_name_dns_provider() -> None:
    rfc = FakeDnsProvider(("example.org",))
    router = ZoneRouter({"example.org": "rfc2136"}, {"rfc2136": rfc}, MANUAL)
    assert router.find_zone("a.example.org").name == "example.org"
    with pytest.raises(ManualZone) as info:
        router.find_zone("a.example.com")
    assert info.value.zone == "" and "dns.provider manual" in str(info.value)


def test_a_zone_from_one_provider_should_not_be_used_for_a_name_of_another(
    world: tuple[ZoneRouter, FakeDnsProvider, FakeDnsProvider]
) -> None:
    router, alidns, _ = world
    zone = router.find_zone("example.com")  # found at alidns
    with pytest.raises(InputError, match="routes to the rfc2136 provider"):
        router.upsert(zone, "_dnsauth.a.corp.example.com", "TXT", "tok", 600)
    assert alidns.records == {}


def test_a_router_missing_a_provider_should_refuse_to_start() -> None:
    with pytest.raises(InputError, match="rfc2136"):
        ZoneRouter({"example.org": "rfc2136"}, {"alidns": FakeDnsProvider()}, "alidns")


def test_the_router_should_satisfy_the_port() -> None:
    port: DnsProvider = ZoneRouter({}, {"alidns": FakeDnsProvider()}, "alidns")
    assert port.id == "router"
    assert MANUAL == dns_registry.MANUAL


# ------------------------------------------------------------------------------- build_dns
def settings_of(tmp_path: Path, text: str) -> Settings:
    path = tmp_path / "config.yaml"
    path.write_text(text, encoding="utf-8")
    return load_settings(path, env={})


PDNS = "powerdns:\n  api_url: http://127.0.0.1:8081\n  api_key: {env: PDNS_KEY}\n"
RFC = ("rfc2136:\n  host: 127.0.0.1\n  key_name: k\n  secret: {env: TSIG_SECRET}\n")


def test_build_dns_without_other_zones_should_build_the_one_provider(tmp_path: Path) -> None:
    settings = settings_of(tmp_path, "dns:\n  provider: alidns\n  zones: {a.example: alidns}\n")
    assert isinstance(build_dns(settings, CREDS), Alidns)


def test_build_dns_with_other_zones_should_build_a_router_of_each_provider(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PDNS_KEY", "k")
    monkeypatch.setenv("TSIG_SECRET", "c2VjcmV0")
    settings = settings_of(tmp_path, "dns:\n  provider: alidns\n  zones:\n"
                           "    corp.example: rfc2136\n    org.example: powerdns\n"
                           "    customer.example: manual\n" + PDNS + RFC)
    router = build_dns(settings, CREDS)
    assert isinstance(router, ZoneRouter)
    assert isinstance(router.provider_for("a.corp.example"), Rfc2136)
    assert isinstance(router.provider_for("a.org.example"), PowerDns)
    assert isinstance(router.provider_for("a.example.com"), Alidns)
    with pytest.raises(ManualZone):
        router.provider_for("a.customer.example")


def test_build_dns_with_only_a_manual_zone_should_still_route(tmp_path: Path) -> None:
    settings = settings_of(tmp_path, "dns:\n  zones: {customer.example: manual}\n")
    router = build_dns(settings, CREDS)
    assert isinstance(router, ZoneRouter)
    with pytest.raises(ManualZone):
        router.find_zone("_dnsauth.www.customer.example")


def test_build_dns_should_name_an_unknown_zone_provider_where_it_was_set(
    tmp_path: Path
) -> None:
    settings = settings_of(tmp_path, "dns:\n  provider: alidns\n  zones:\n"
                           "    a.example: route53\n")
    with pytest.raises(ConfigError) as info:
        build_dns(settings, CREDS)
    [reason] = info.value.reasons
    assert "dns.zones.a.example: unknown DNS provider 'route53'" in reason
    assert reason.startswith(f"{settings.source}:")


def test_build_dns_should_report_a_zone_providers_missing_settings(tmp_path: Path) -> None:
    settings = settings_of(tmp_path, "dns:\n  zones: {a.example: powerdns}\n")
    with pytest.raises(ConfigError) as info:
        build_dns(settings, CREDS)
    assert any("powerdns.api_url" in r for r in info.value.reasons)

"""The Cloudflare adapter passes the provider contract against a replay of Cloudflare's API v4.

The real ``cloudflare`` SDK talks real HTTP over a loopback socket to
:mod:`tests.contract.cloudflare_replay`, whose answers are shaped from Cloudflare's API
documentation (``recordings/cloudflare/``), not recorded live: no Cloudflare server can run here
and there is no network. Beyond the contract: what the server holds after each write (quoted
TXT content, the ``comment`` marker, unproxied CNAMEs), that the customer's record at the same
name survives, the requests the SDK sends (token only, ``name.exact`` filter), and the errors a
wrong token, a token without DNS:Edit, throttling and a dead port give, without the token.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from cname_flow.dns.base import OWNER_REMARK
from cname_flow.dns.cloudflare import Cloudflare
from cname_flow.errors import DnsAuthError, DnsProviderError, DnsThrottled
from cname_flow.retry import RetryPolicy
from tests.contract.cloudflare_replay import CloudflareReplay, serving
from tests.contract.dns_provider_contract import DnsProviderContract, fresh

TOKEN = "SENTINEL-cf-token-5b7e0d1a9c"
ZONES = {"example.com": "a" * 32, "example.com.cn": "b" * 32, "other.test": "c" * 32}


@pytest.fixture
def replay(no_proxy: None) -> Iterator[CloudflareReplay]:
    with serving(CloudflareReplay(token=TOKEN, zones=dict(ZONES),
                                  read_only={"SENTINEL-read-only-token"})) as server:
        yield server


def cloudflare_for(replay: CloudflareReplay, **overrides: Any) -> Cloudflare:
    """An adapter talking to ``replay``; the contract's TTL floor of 600 s, no backoff waits."""
    options: dict[str, Any] = {"api_token": TOKEN, "base_url": replay.url, "min_ttl": 600,
                               "retry": RetryPolicy(attempts=3, jitter_s=0),
                               "sleep": lambda _s: None}
    options.update(overrides)
    return Cloudflare(**options)


@pytest.fixture
def adapter(replay: CloudflareReplay) -> Iterator[Cloudflare]:
    provider = cloudflare_for(replay)
    yield provider
    provider.close()


class TestCloudflareOnReplay(DnsProviderContract):
    @pytest.fixture
    def provider(self, adapter: Cloudflare) -> Cloudflare:
        return adapter


def test_upsert_should_write_quoted_txt_with_the_owner_comment(
    replay: CloudflareReplay, adapter: Cloudflare
) -> None:
    zone = adapter.find_zone("example.com")
    name = f"_dnsauth.{fresh()}.example.com"
    ref, _ = adapter.upsert(zone, name, "TXT", 'token with "quote"', 600)
    [stored] = [r for r in replay.records.values() if r["name"] == name]
    assert (stored["content"], stored["comment"], stored["ttl"]) == (
        '"token with \\"quote\\""', OWNER_REMARK, 600)
    assert ref.record_id == f"{ZONES['example.com']}/{stored['id']}"
    assert adapter.list_records(zone, name, "TXT")[0].value == 'token with "quote"'


def test_cname_should_be_created_unproxied(replay: CloudflareReplay, adapter: Cloudflare) -> None:
    zone = adapter.find_zone("example.com")
    name = f"{fresh()}.example.com"
    adapter.upsert(zone, name, "CNAME", "b.oss-cn-hangzhou.aliyuncs.com.", 600)
    [stored] = [r for r in replay.records.values() if r["name"] == name]
    assert (stored["content"], stored["proxied"]) == ("b.oss-cn-hangzhou.aliyuncs.com", False)


def test_customers_record_should_survive_our_update_and_delete(
    replay: CloudflareReplay, adapter: Cloudflare
) -> None:
    name = f"_dnsauth.{fresh()}.example.com"
    theirs = replay.add_record("example.com", name, "TXT", "unquoted legacy value",
                               comment="set by the customer")
    zone = adapter.find_zone("example.com")
    [listed] = adapter.list_records(zone, name, "TXT")
    assert (listed.value, listed.owned, listed.remark) == (
        "unquoted legacy value", False, "set by the customer")
    ours, _ = adapter.upsert(zone, name, "TXT", "ours-1", 600)
    ours, _ = adapter.upsert(zone, name, "TXT", "ours-2", 600, replace=ours)
    adapter.delete_record(ours)
    assert list(replay.records) == [theirs]
    assert replay.records[theirs]["comment"] == "set by the customer"


def test_requests_should_carry_the_token_only_and_filter_by_exact_name(
    replay: CloudflareReplay, adapter: Cloudflare, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CLOUDFLARE_API_KEY", "SENTINEL-global-key")
    monkeypatch.setenv("CLOUDFLARE_EMAIL", "someone@example.com")
    provider = cloudflare_for(replay)  # built with the SDK's other credentials in the env
    zone = provider.find_zone("_dnsauth.img.example.com")
    provider.list_records(zone, "_dnsauth.img.example.com", "TXT")
    provider.close()
    assert [(s.method, s.path, s.query.get("name")) for s in replay.seen[:3]] == [
        ("GET", "/zones", ["_dnsauth.img.example.com"]), ("GET", "/zones", ["img.example.com"]),
        ("GET", "/zones", ["example.com"])]
    last = replay.seen[-1]
    assert last.query["name.exact"] == ["_dnsauth.img.example.com"]
    assert last.query["type"] == ["TXT"]
    assert all(s.headers["authorization"] == f"Bearer {TOKEN}" for s in replay.seen)
    assert not any("x-auth-key" in s.headers or "x-auth-email" in s.headers for s in replay.seen)


def test_zone_lookups_should_be_remembered(replay: CloudflareReplay, adapter: Cloudflare) -> None:
    adapter.find_zone("a.example.com")
    before = len(replay.seen)
    assert adapter.find_zone("a.example.com").name == "example.com"
    assert len(replay.seen) == before


def test_listing_should_follow_every_page(replay: CloudflareReplay, adapter: Cloudflare) -> None:
    name = f"_dnsauth.{fresh()}.example.com"
    for i in range(105):
        replay.add_record("example.com", name, "TXT", f'"v{i}"')
    zone = adapter.find_zone("example.com")
    assert len(adapter.list_records(zone, name, "TXT")) == 105


def test_wrong_token_should_raise_auth_error_without_the_token(replay: CloudflareReplay) -> None:
    sentinel = "SENTINEL-wrong-cf-token-0c2d"
    provider = cloudflare_for(replay, api_token=sentinel)
    with pytest.raises(DnsAuthError) as info:
        provider.find_zone("example.com")
    provider.close()
    error = info.value
    assert (error.code, error.status, error.refused, error.retryable) == (
        "Unauthorized", 401, "credentials", False)
    assert "DNS:Edit" in error.hint
    assert sentinel not in f"{error} {error.hint} {error!r} {error.__cause__!r}"


def test_read_only_token_should_raise_permission_refused_on_write(
    replay: CloudflareReplay,
) -> None:
    provider = cloudflare_for(replay, api_token="SENTINEL-read-only-token")
    zone = provider.find_zone("example.com")
    with pytest.raises(DnsAuthError) as info:
        provider.upsert(zone, f"_dnsauth.{fresh()}.example.com", "TXT", "t", 600)
    provider.close()
    assert (info.value.code, info.value.status, info.value.refused) == (
        "Forbidden", 403, "permission")
    assert "10000" in str(info.value)
    assert "SENTINEL-read-only-token" not in str(info.value)


def test_throttling_should_be_retried_after_the_servers_wait(replay: CloudflareReplay) -> None:
    sleeps: list[float] = []
    provider = cloudflare_for(replay, sleep=sleeps.append)
    replay.fail_next("rate_limited")
    assert provider.find_zone("example.com").name == "example.com"
    assert sleeps and sleeps[0] >= 2.0
    replay.fail_next("rate_limited", times=3)
    with pytest.raises(DnsThrottled):
        provider.find_zone("other.test")
    provider.close()


def test_server_errors_should_be_retried(replay: CloudflareReplay, adapter: Cloudflare) -> None:
    replay.fail_next("server_error", times=2)
    assert adapter.find_zone("example.com").name == "example.com"


def test_nothing_listening_should_raise_retryable_unreachable_error(no_proxy: None) -> None:
    from tests.dnsservers import free_port

    provider = Cloudflare(api_token=TOKEN, base_url=f"http://127.0.0.1:{free_port()}/client/v4",
                          retry=RetryPolicy(attempts=2, jitter_s=0), sleep=lambda _s: None)
    with pytest.raises(DnsProviderError) as info:
        provider.find_zone("example.com")
    provider.close()
    assert (info.value.code, info.value.retryable, info.value.unreachable) == (
        "ConnectionRefused", True, True)
    assert TOKEN not in str(info.value)

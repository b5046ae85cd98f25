"""The PowerDNS adapter's error mapping (unit: answers from ``httpx.MockTransport``; the
adapter against a real server is ``tests/contract/test_powerdns.py``), its settings section
and its factory."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from cname_flow.config import Credentials, load_settings
from cname_flow.dns import PROVIDERS, build_provider
from cname_flow.dns.powerdns import PowerDns
from cname_flow.dns.powerdns_errors import (
    HINTS,
    POWERDNS_ERRORS,
    StatusError,
    code_of,
    map_powerdns_error,
)
from cname_flow.errors import (
    ConfigError,
    DnsAuthError,
    DnsProviderError,
    DnsThrottled,
    SecretNotFound,
    ZoneNotFound,
)
from cname_flow.retry import RetryPolicy

KEY = "SENTINEL-pdns-api-key-77e1"
URL = "http://pdns.test:8081"
CREDS = Credentials("LTAIid", "SENTINEL-secret")
SECTION = ("dns:\n  provider: powerdns\npowerdns:\n  api_url: http://192.0.2.8:8081/\n"
           "  server_id: ns1\n  api_key: {env: PDNS_KEY}\n  min_ttl: 300\n")


def answering(status: int, body: str, sleeps: list[float] | None = None,
              seen: list[httpx.Request] | None = None) -> PowerDns:
    """An adapter whose every request gets ``status`` and ``body``."""
    def handler(request: httpx.Request) -> httpx.Response:
        if seen is not None:
            seen.append(request)
        return httpx.Response(status, text=body)

    return PowerDns(api_url=URL, api_key=KEY, transport=httpx.MockTransport(handler),
                    retry=RetryPolicy(attempts=3, jitter_s=0),
                    sleep=(sleeps if sleeps is not None else []).append)


@pytest.mark.parametrize(("status", "body", "cls", "code", "retryable"), [
    (401, "Unauthorized", DnsAuthError, "Unauthorized", False),
    (403, "Forbidden", DnsAuthError, "Forbidden", False),
    (404, "Not Found", ZoneNotFound, "ZoneNotFound", False),
    (422, '{"error": "Could not find domain \'x.\'"}', ZoneNotFound, "ZoneNotFound", False),
    (422, '{"error": "RRset a. IN CNAME: Conflicts with pre-existing RRset"}',
     DnsProviderError, "Conflict", False),
    (422, '{"error": "Name is out of zone"}', DnsProviderError, "Unprocessable", False),
    (429, "slow down", DnsThrottled, "Throttled", True),
    (500, '{"error": "database is locked"}', DnsProviderError, "ServerError", True),
    (503, "", DnsProviderError, "ServerError", True),
])
def test_each_status_should_map_once_to_its_class_with_a_hint(
    status: int, body: str, cls: type[DnsProviderError], code: str, retryable: bool
) -> None:
    sleeps: list[float] = []
    with pytest.raises(DnsProviderError) as info:
        answering(status, body, sleeps).find_zone("img.example.com")
    error = info.value
    assert type(error) is cls
    assert (error.code, error.status, error.retryable, error.service) == (
        code, status, retryable, "powerdns")
    assert error.hint == HINTS[code]
    assert len(sleeps) == (2 if retryable else 0)  # 3 attempts for a retryable answer


def test_the_servers_json_error_text_should_be_in_the_message() -> None:
    with pytest.raises(DnsProviderError) as info:
        answering(422, '{"error": "Name is out of zone"}').find_zone("example.com")
    assert "ListZones" in str(info.value) and "Name is out of zone" in str(info.value)


def test_the_key_should_reach_the_server_in_the_header_and_no_error() -> None:
    seen: list[httpx.Request] = []
    with pytest.raises(DnsAuthError) as info:
        answering(401, f"Unauthorized (you sent {KEY})", seen=seen).find_zone("example.com")
    assert seen[0].headers["X-API-Key"] == KEY
    assert str(seen[0].url) == f"{URL}/api/v1/servers/localhost/zones"
    error = info.value
    assert KEY not in f"{error} {error.hint} {error!r} {error.args}"
    assert "***" in str(error)


def test_an_answer_that_is_not_json_should_be_bad_answer_not_a_crash() -> None:
    with pytest.raises(DnsProviderError) as info:
        answering(200, "<html>hello</html>").find_zone("example.com")
    assert info.value.code == "BadAnswer"
    assert "/api/v1" in info.value.hint


@pytest.mark.parametrize(("exc", "code"), [
    (httpx.ConnectError("refused"), "ConnectionRefused"),
    (httpx.ReadTimeout("slow"), "Timeout"),
    (httpx.RemoteProtocolError("eof"), "NetworkError"),
])
def test_transport_errors_should_be_retryable(exc: Exception, code: str) -> None:
    mapped = map_powerdns_error(exc, "ListZones", URL)
    assert (mapped.code, mapped.retryable, mapped.status) == (code, True, 0)
    assert mapped.hint == HINTS[code]


def test_every_code_of_the_mapping_should_have_a_hint() -> None:
    statuses = [401, 403, 404, 422, 429, 500]
    codes = {code_of(StatusError(s, "")) for s in statuses}
    codes |= {code_of(StatusError(422, "RRset: Conflicts with pre-existing RRset"))}
    assert codes <= set(HINTS)
    assert httpx.HTTPError in POWERDNS_ERRORS and StatusError in POWERDNS_ERRORS


def test_repr_should_not_show_the_key() -> None:
    assert KEY not in repr(answering(200, "[]"))


# ------------------------------------------------------------------------ settings, factory
def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "config.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def test_section_should_load_and_the_factory_should_read_the_key(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PDNS_KEY", KEY)
    settings = load_settings(write(tmp_path, SECTION), env={})
    section = settings.powerdns
    assert (section.api_url, section.server_id, section.min_ttl) == (
        "http://192.0.2.8:8081", "ns1", 300)
    provider = build_provider(settings.dns.provider, settings, CREDS)
    assert isinstance(provider, PowerDns)
    assert provider.api_url == "http://192.0.2.8:8081"
    assert "powerdns" in PROVIDERS


def test_a_literal_api_key_should_be_refused_without_echoing_it(tmp_path: Path) -> None:
    path = write(tmp_path, SECTION.replace("{env: PDNS_KEY}", KEY))
    with pytest.raises(ConfigError) as info:
        load_settings(path, env={})
    assert info.value.reasons[0].startswith(f"{path}:6: powerdns.api_key: ")
    assert KEY not in str(info.value)


@pytest.mark.parametrize("url", ["ftp://h:1", "http://h:1/api/v1", "h:8081", "http://h:99999"])
def test_a_bad_api_url_should_be_named(tmp_path: Path, url: str) -> None:
    with pytest.raises(ConfigError) as info:
        load_settings(write(tmp_path, SECTION.replace("http://192.0.2.8:8081/", url)), env={})
    assert "powerdns.api_url" in info.value.reasons[0]


def test_missing_pieces_should_each_be_named(tmp_path: Path) -> None:
    path = write(tmp_path, "dns:\n  provider: powerdns\npowerdns:\n  server_id: localhost\n")
    with pytest.raises(ConfigError) as info:
        build_provider("powerdns", load_settings(path, env={}), CREDS)
    assert info.value.reasons == [
        f"{path}:3: powerdns.{key}: required when the powerdns provider is used"
        for key in ("api_url", "api_key")]


def test_an_unset_key_variable_should_be_secret_not_found(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("PDNS_KEY", raising=False)
    path = write(tmp_path, SECTION)
    with pytest.raises(SecretNotFound) as info:
        build_provider("powerdns", load_settings(path, env={}), CREDS)
    assert info.value.reasons == [
        f"{path}:6: powerdns.api_key: environment variable PDNS_KEY is not set"]

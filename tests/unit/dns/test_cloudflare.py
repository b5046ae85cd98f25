"""The Cloudflare adapter's error mapping (unit: SDK exceptions built by hand; the adapter over the
real SDK and a loopback replay is ``tests/contract/test_cloudflare.py``), its settings section,
its factory, and that importing the registry loads no SDK."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import cloudflare
import httpx
import pytest

from cname_flow.config import Credentials, load_settings
from cname_flow.dns import PROVIDERS, build_dns, build_provider
from cname_flow.dns.cloudflare import Cloudflare
from cname_flow.dns.cloudflare_errors import (
    HINTS,
    code_of,
    map_cloudflare_error,
    retry_after_s,
)
from cname_flow.dns.router import ZoneRouter
from cname_flow.errors import (
    ConfigError,
    DnsAuthError,
    DnsProviderError,
    DnsThrottled,
    SecretNotFound,
    ZoneNotFound,
)

TOKEN = "SENTINEL-cf-unit-token-31aa7c"
CREDS = Credentials("LTAIid", "SENTINEL-secret")
SECTION = ("dns:\n  provider: cloudflare\ncloudflare:\n  api_token: {env: CF_TOKEN}\n"
           "  base_url: http://127.0.0.1:9/client/v4/\n  min_ttl: 120\n")
ZONE_PATH = "/client/v4/zones"
RECORD_PATH = "/client/v4/zones/" + "a" * 32 + "/dns_records/" + "b" * 32


def status_error(status: int, errors: list[dict[str, Any]], *, path: str = ZONE_PATH,
                 headers: dict[str, str] | None = None) -> cloudflare.APIStatusError:
    """What the SDK raises for an answer with ``status`` and the envelope's ``errors``."""
    body = {"success": False, "errors": errors, "messages": [], "result": None}
    request = httpx.Request("GET", f"https://api.cloudflare.com{path}",
                            headers={"Authorization": f"Bearer {TOKEN}"})
    response = httpx.Response(status, json=body, headers=headers, request=request)
    classes: dict[int, type[cloudflare.APIStatusError]] = {
        400: cloudflare.BadRequestError, 401: cloudflare.AuthenticationError,
        403: cloudflare.PermissionDeniedError, 404: cloudflare.NotFoundError,
        409: cloudflare.ConflictError, 429: cloudflare.RateLimitError}
    cls = classes.get(status, cloudflare.InternalServerError)
    return cls(f"Error code: {status} - {json.dumps(body)} {TOKEN}", response=response, body=body)


@pytest.mark.parametrize(("status", "errors", "path", "cls", "code", "refused"), [
    (401, [{"code": 10000, "message": "Authentication error"}], ZONE_PATH, DnsAuthError,
     "Unauthorized", "credentials"),
    (400, [{"code": 6003, "message": "Invalid request headers",
            "error_chain": [{"code": 6111, "message": "Invalid format for Authorization header"}]}],
     ZONE_PATH, DnsAuthError, "InvalidToken", "credentials"),
    (403, [{"code": 10000, "message": "Authentication error"}], ZONE_PATH, DnsAuthError,
     "Forbidden", "permission"),
    (404, [], ZONE_PATH, ZoneNotFound, "ZoneNotFound", None),
    (404, [{"code": 81044, "message": "Record does not exist."}], RECORD_PATH, DnsProviderError,
     "RecordNotFound", None),
    (400, [{"code": 81058, "message": "An identical record already exists."}], ZONE_PATH,
     DnsProviderError, "RecordExists", None),
    (400, [{"code": 81057, "message": "The record already exists."}], ZONE_PATH,
     DnsProviderError, "RecordExists", None),
    (400, [{"code": 81054, "message": "A CNAME record with that host already exists."}],
     ZONE_PATH, DnsProviderError, "Conflict", None),
    (400, [{"message": "bad ttl"}], ZONE_PATH, DnsProviderError, "BadRequest", None),
    (429, [], ZONE_PATH, DnsThrottled, "Throttled", None),
    (502, [], ZONE_PATH, DnsProviderError, "ServerError", None),
])
def test_each_answer_should_map_once_to_its_class_with_a_hint(
    status: int, errors: list[dict[str, Any]], path: str, cls: type[DnsProviderError],
    code: str, refused: str | None,
) -> None:
    mapped = map_cloudflare_error(status_error(status, errors, path=path), "ListZones", (TOKEN,))
    assert type(mapped) is cls
    assert (mapped.code, mapped.status, mapped.service) == (code, status, "cloudflare")
    assert mapped.hint == HINTS[code]
    assert mapped.retryable is (code in ("Throttled", "ServerError"))
    if refused is not None:
        assert isinstance(mapped, DnsAuthError)
        assert mapped.refused == refused
    assert str(mapped).startswith(f"Cloudflare ListZones: {code} (HTTP {status})")


def test_auth_hints_should_name_the_token_scopes() -> None:
    for code in ("Unauthorized", "Forbidden"):
        assert "Zone:Read" in HINTS[code] and "DNS:Edit" in HINTS[code]


def test_the_token_should_never_reach_a_message() -> None:
    errors = [{"code": 10000, "message": f"Authentication error for {TOKEN}"}]
    for exc in (status_error(401, errors), status_error(403, errors), status_error(502, errors)):
        mapped = map_cloudflare_error(exc, "ListZones", (TOKEN,))
        assert TOKEN not in f"{mapped} {mapped.hint} {mapped!r}"
    request = httpx.Request("GET", f"https://api.cloudflare.com/client/v4/zones?x={TOKEN}")
    connection = cloudflare.APIConnectionError(message=f"failed {TOKEN}", request=request)
    assert TOKEN not in str(map_cloudflare_error(connection, "ListZones", (TOKEN,)))


def test_a_refused_connection_should_be_retryable_and_unreachable() -> None:
    request = httpx.Request("GET", "https://api.cloudflare.com/client/v4/zones")
    try:
        try:
            raise httpx.ConnectError("refused") from ConnectionRefusedError(111, "refused")
        except httpx.ConnectError as inner:
            raise cloudflare.APIConnectionError(request=request) from inner
    except cloudflare.APIConnectionError as exc:
        mapped = map_cloudflare_error(exc, "ListZones")
    assert (mapped.code, mapped.retryable, mapped.unreachable) == (
        "ConnectionRefused", True, True)


@pytest.mark.parametrize(("exc", "code"), [
    (cloudflare.APITimeoutError(request=httpx.Request("GET", "https://x/")), "Timeout"),
    (cloudflare.APIConnectionError(request=httpx.Request("GET", "https://x/")), "NetworkError"),
])
def test_transport_errors_should_be_retryable_but_not_unreachable(
    exc: Exception, code: str
) -> None:
    mapped = map_cloudflare_error(exc, "ListRecords")
    assert (code_of(exc), mapped.code, mapped.retryable, mapped.unreachable) == (
        code, code, True, False)


def test_retry_after_should_be_read_from_the_throttled_answer() -> None:
    exc = status_error(429, [], headers={"Retry-After": "7"})
    mapped = map_cloudflare_error(exc, "ListZones")
    mapped.__cause__ = exc
    assert retry_after_s(mapped) == 7.0
    assert retry_after_s(map_cloudflare_error(status_error(429, []), "ListZones")) is None


def test_repr_should_not_show_the_token() -> None:
    provider = Cloudflare(api_token=TOKEN, base_url="http://127.0.0.1:9/client/v4")
    assert TOKEN not in repr(provider)
    provider.close()


# --------------------------------------------------------------------- settings and factory
def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "config.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def test_section_should_load_and_the_factory_should_read_the_token(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CF_TOKEN", TOKEN)
    settings = load_settings(write(tmp_path, SECTION), env={})
    provider = build_provider(settings.dns.provider, settings, CREDS)
    assert isinstance(provider, Cloudflare)
    assert provider.base_url == "http://127.0.0.1:9/client/v4"
    assert "cloudflare" in PROVIDERS
    provider.close()


def test_a_zone_sent_to_cloudflare_should_get_a_router(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CF_TOKEN", TOKEN)
    text = SECTION.replace("provider: cloudflare", "provider: manual\n  zones:\n"
                           "    example.com: cloudflare")
    dns = build_dns(load_settings(write(tmp_path, text), env={}), CREDS)
    assert isinstance(dns, ZoneRouter)


def test_a_literal_token_should_be_refused_without_echoing_it(tmp_path: Path) -> None:
    path = write(tmp_path, SECTION.replace("{env: CF_TOKEN}", TOKEN))
    with pytest.raises(ConfigError) as info:
        load_settings(path, env={})
    assert info.value.reasons[0].startswith(f"{path}:4: cloudflare.api_token: ")
    assert TOKEN not in str(info.value)


def test_a_missing_token_should_be_named_with_its_file_and_line(tmp_path: Path) -> None:
    path = write(tmp_path, "dns:\n  provider: cloudflare\ncloudflare:\n  min_ttl: 60\n")
    with pytest.raises(ConfigError) as info:
        build_provider("cloudflare", load_settings(path, env={}), CREDS)
    assert not isinstance(info.value, SecretNotFound)
    assert info.value.reasons == [
        f"{path}:3: cloudflare.api_token: required when the cloudflare provider is used"]


def test_an_unset_token_variable_should_be_secret_not_found(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("CF_TOKEN", raising=False)
    path = write(tmp_path, SECTION)
    with pytest.raises(SecretNotFound) as info:
        build_provider("cloudflare", load_settings(path, env={}), CREDS)
    assert info.value.reasons == [
        f"{path}:4: cloudflare.api_token: environment variable CF_TOKEN is not set"]


@pytest.mark.parametrize("url", ["ftp://h/client/v4", "h:443", "http://h:99999/x",
                                 "https://h/client/v4?x=1"])
def test_a_bad_base_url_should_be_named(tmp_path: Path, url: str) -> None:
    with pytest.raises(ConfigError) as info:
        load_settings(write(tmp_path, SECTION.replace("http://127.0.0.1:9/client/v4/", url)),
                      env={})
    assert "cloudflare.base_url" in info.value.reasons[0]


def test_importing_the_registry_should_not_load_the_sdk() -> None:
    code = ("import json, sys\nimport cname_flow.dns\n"
            "print(json.dumps(sorted(m for m in sys.modules if m.split('.')[0] == 'cloudflare')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, timeout=60).stdout
    assert json.loads(out.splitlines()[-1]) == []

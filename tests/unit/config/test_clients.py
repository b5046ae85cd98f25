"""The settings reach the adapters: oss.use_path_style, dns.provider and the alidns section."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from cname_flow import service
from cname_flow.config import Credentials, Settings, load_settings
from cname_flow.dns import PROVIDERS, alidns_options, build_provider
from cname_flow.dns import alidns as alidns_module
from cname_flow.errors import ConfigError, DnsProviderError

ENV = {"OSS_ACCESS_KEY_ID": "LTAIid", "OSS_ACCESS_KEY_SECRET": "SENTINEL-secret"}
CREDS = Credentials("LTAIid", "SENTINEL-secret")


def settings_from(tmp_path: Path, text: str) -> Settings:
    path = tmp_path / "config.yaml"
    path.write_text(text, encoding="utf-8")
    return load_settings(path, env={})


class SdkConfigSpy:
    """Stands in for ``alibabacloud_oss_v2.Client``: keeps the Config the adapter built."""

    configs: list[Any]

    def __init__(self, cfg: Any) -> None:
        type(self).configs.append(cfg)


@pytest.fixture
def oss_configs(monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    SdkConfigSpy.configs = []
    monkeypatch.setattr("alibabacloud_oss_v2.Client", SdkConfigSpy)  # what AlibabaOss calls
    return SdkConfigSpy.configs


@pytest.mark.parametrize(
    ("setting", "endpoint", "expected"),
    [
        ("null", "http://localhost:9000", True),  # inferred: not *.aliyuncs.com
        ("null", "oss-cn-hangzhou.aliyuncs.com", False),  # inferred: virtual-hosted
        ("false", "http://localhost:9000", False),  # forced off
        ("true", "oss-cn-hangzhou.aliyuncs.com", True),  # forced on
    ],
)
def test_use_path_style_should_reach_the_oss_sdk(
    tmp_path: Path, oss_configs: list[Any], setting: str, endpoint: str, expected: bool
) -> None:
    settings = settings_from(
        tmp_path, f"oss:\n  endpoint: '{endpoint}'\n  use_path_style: {setting}\n"
    )
    service.Clients.from_settings(settings, ENV)
    [cfg] = oss_configs
    assert cfg.use_path_style is expected


def test_use_path_style_true_without_endpoint_should_reach_the_oss_sdk(
    tmp_path: Path, oss_configs: list[Any]
) -> None:
    service.Clients.from_settings(settings_from(tmp_path, "oss:\n  use_path_style: true\n"), ENV)
    assert oss_configs[0].use_path_style is True


class AlidnsSpy:
    """Stands in for the Alidns adapter: keeps its keyword arguments."""

    def __init__(self, **kwargs: Any) -> None:
        self.kwargs = kwargs


def test_build_provider_alidns_should_pass_the_whole_alidns_section(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(alidns_module, "Alidns", AlidnsSpy)
    settings = settings_from(
        tmp_path,
        "alidns:\n  endpoint: 127.0.0.1:8053\n  protocol: http\n  region: cn-shanghai\n"
        "  connect_timeout_s: 1.5\n  read_timeout_s: 7\n",
    )
    def limiter(action: str) -> None: ...

    def on_error(action: str, error: DnsProviderError) -> None: ...

    provider = build_provider("alidns", settings, CREDS, rate_limiter=limiter, on_error=on_error)

    assert isinstance(provider, AlidnsSpy)
    assert provider.kwargs == {
        "credentials": CREDS, "rate_limiter": limiter, "on_error": on_error,
        "endpoint": "127.0.0.1:8053", "region": "cn-shanghai", "protocol": "http",
        "connect_timeout_s": 1.5, "read_timeout_s": 7.0,
    }
    assert alidns_options(settings.alidns) == {
        k: v for k, v in provider.kwargs.items()
        if k not in ("credentials", "rate_limiter", "on_error")
    }


def test_clients_should_build_the_configured_provider(
    tmp_path: Path, oss_configs: list[Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(alidns_module, "Alidns", AlidnsSpy)
    settings = settings_from(tmp_path, "dns:\n  provider: alidns\n")
    clients = service.Clients.from_settings(settings, ENV)
    assert isinstance(clients.dns, AlidnsSpy)
    assert clients.dns.kwargs["credentials"].access_key_id == "LTAIid"


def test_unknown_provider_should_be_a_config_error_naming_the_known_ones(
    tmp_path: Path, oss_configs: list[Any]
) -> None:
    settings = settings_from(tmp_path, "dns:\n  provider: route53\n")
    with pytest.raises(ConfigError) as info:
        service.Clients.from_settings(settings, ENV)
    assert info.value.reasons == [
        f"{settings.source}:2: dns.provider: unknown DNS provider 'route53' "
        f"(known: {', '.join(sorted(PROVIDERS))})"
    ]
    assert {"alidns", "rfc2136", "powerdns"} <= set(PROVIDERS)


def test_provider_id_should_be_validated_as_an_id(tmp_path: Path) -> None:
    path = tmp_path / "config.yaml"
    path.write_text("dns:\n  provider: Ali DNS\n", encoding="utf-8")
    with pytest.raises(ConfigError) as info:
        load_settings(path, env={})
    [reason] = info.value.reasons
    assert reason.startswith(f"{path}:2: dns.provider: ")


def test_importing_the_registry_should_load_no_vendor_sdk() -> None:
    code = (
        "import sys, cname_flow.dns, cname_flow.dns.base\n"
        "bad = sorted(m for m in sys.modules if m.startswith('alibabacloud'))\n"
        "assert not bad, bad\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)

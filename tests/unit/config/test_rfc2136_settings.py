"""The ``rfc2136`` settings section and ``dns.provider: rfc2136``: the TSIG secret only ever comes
from the environment, and a missing piece is named with its file and line."""

from __future__ import annotations

from pathlib import Path
from typing import get_args

import pytest

from cname_flow import service
from cname_flow.config import Credentials, load_settings
from cname_flow.config.dns_sections import TsigAlgorithm
from cname_flow.dns import build_provider
from cname_flow.dns.rfc2136 import ALGORITHMS, Rfc2136
from cname_flow.errors import ConfigError, SecretNotFound

SECRET = "U0VOVElORUwtcmZjMjEzNi1zZXR0aW5ncw=="  # base64, a sentinel
CREDS = Credentials("LTAIid", "SENTINEL-secret")
SECTION = ("dns:\n  provider: rfc2136\nrfc2136:\n  host: 192.0.2.53\n  port: 5353\n"
           "  key_name: cname-flow-upd\n  algorithm: hmac-sha512\n"
           "  secret: {env: TSIG_SECRET}\n  min_ttl: 300\n")


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "config.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def test_section_should_load_with_an_env_reference(tmp_path: Path) -> None:
    settings = load_settings(write(tmp_path, SECTION), env={})
    section = settings.rfc2136
    assert (section.host, section.port, section.key_name, section.algorithm) == (
        "192.0.2.53", 5353, "cname-flow-upd", "hmac-sha512")
    assert section.secret is not None and section.secret.env == "TSIG_SECRET"
    assert (section.min_ttl, section.timeout_s) == (300, 5.0)


def test_a_literal_secret_should_be_refused_without_echoing_it(tmp_path: Path) -> None:
    path = write(tmp_path, SECTION.replace("{env: TSIG_SECRET}", SECRET))
    with pytest.raises(ConfigError) as info:
        load_settings(path, env={})
    [reason] = info.value.reasons
    assert reason.startswith(f"{path}:8: rfc2136.secret: ")
    assert SECRET not in str(info.value)


@pytest.mark.parametrize(("host", "expected"), [("dns1.example.net", "dns1.example.net"),
                                                ("[2001:db8::53]", "2001:db8::53")])
def test_host_should_take_a_name_or_an_address(tmp_path: Path, host: str,
                                               expected: str) -> None:
    path = write(tmp_path, SECTION.replace("192.0.2.53", f"'{host}'"))
    assert load_settings(path, env={}).rfc2136.host == expected


def test_host_with_a_port_should_point_to_the_port_setting(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        load_settings(write(tmp_path, SECTION.replace("192.0.2.53", "192.0.2.53:53")), env={})
    assert "rfc2136.port" in info.value.reasons[0]


def test_build_provider_should_pass_the_section_and_read_the_secret(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TSIG_SECRET", SECRET)
    settings = load_settings(write(tmp_path, SECTION), env={})
    provider = build_provider(settings.dns.provider, settings, CREDS)
    assert isinstance(provider, Rfc2136)
    assert provider.server == "192.0.2.53:5353"
    assert SECRET not in repr(provider)


def test_clients_should_build_the_rfc2136_provider(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("TSIG_SECRET", raising=False)  # the mapping passed is what is read
    settings = load_settings(write(tmp_path, SECTION), env={})
    env = {"OSS_ACCESS_KEY_ID": "LTAIid", "OSS_ACCESS_KEY_SECRET": "SENTINEL-secret",
           "TSIG_SECRET": SECRET}
    clients = service.Clients.from_settings(settings, env)
    assert isinstance(clients.dns, Rfc2136)


def test_missing_pieces_should_each_be_named(tmp_path: Path) -> None:
    path = write(tmp_path, "dns:\n  provider: rfc2136\nrfc2136:\n  port: 53\n")
    settings = load_settings(path, env={})
    with pytest.raises(ConfigError) as info:
        build_provider("rfc2136", settings, CREDS)
    assert info.value.reasons == [
        f"{path}:3: rfc2136.{key}: required when the rfc2136 provider is used"
        for key in ("host", "key_name", "secret")
    ]


def test_an_unset_secret_variable_should_be_secret_not_found(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("TSIG_SECRET", raising=False)
    path = write(tmp_path, SECTION)
    settings = load_settings(path, env={})
    with pytest.raises(SecretNotFound) as info:
        build_provider("rfc2136", settings, CREDS)
    assert info.value.reasons == [
        f"{path}:8: rfc2136.secret: environment variable TSIG_SECRET is not set"]


def test_env_overrides_should_reach_the_section() -> None:
    settings = load_settings(None, env={"CNAME_FLOW__RFC2136__HOST": "127.0.0.1",
                                        "CNAME_FLOW__RFC2136__SECRET": "env/TSIG_SECRET"})
    assert settings.rfc2136.host == "127.0.0.1"
    assert settings.rfc2136.secret is not None and settings.rfc2136.secret.env == "TSIG_SECRET"


def test_a_secret_that_is_not_base64_should_be_a_config_error_not_showing_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TSIG_SECRET", "SENTINEL not base64!")
    path = write(tmp_path, SECTION)
    with pytest.raises(ConfigError) as info:
        build_provider("rfc2136", load_settings(path, env={}), CREDS)
    [reason] = info.value.reasons
    assert reason.startswith(f"{path}:8: rfc2136.secret: environment variable TSIG_SECRET: ")
    assert "SENTINEL" not in str(info.value)


def test_the_settings_accept_exactly_the_algorithms_the_adapter_knows() -> None:
    assert set(get_args(TsigAlgorithm)) == set(ALGORITHMS)

"""The DNS providers read their secret from the environment mapping the caller passes
(:func:`cname_flow.dns.build_dns` → :func:`~cname_flow.dns.build_provider` → the factory), the
one :meth:`cname_flow.service.Clients.from_settings` and batch jobs resolve credentials from,
not from ``os.environ`` behind the caller's back."""

from __future__ import annotations

import base64
from pathlib import Path

import pytest

from cname_flow import service
from cname_flow.config import Credentials, load_settings
from cname_flow.dns import build_dns, build_provider
from cname_flow.dns.cloudflare import Cloudflare
from cname_flow.dns.powerdns import PowerDns
from cname_flow.dns.rfc2136 import Rfc2136
from cname_flow.errors import SecretNotFound

CREDS = Credentials("LTAIid", "SENTINEL-secret")
VAR = "CNAME_FLOW_TEST_ONLY_IN_MAPPING"
SECRET = base64.b64encode(b"SENTINEL-only-in-the-mapping").decode()
SECTIONS = {
    "rfc2136": ("rfc2136:\n  host: 192.0.2.53\n  key_name: k\n  secret: {env: " + VAR + "}\n",
                Rfc2136),
    "powerdns": ("powerdns:\n  api_url: http://192.0.2.8:8081\n  api_key: {env: " + VAR + "}\n",
                 PowerDns),
    "cloudflare": ("cloudflare:\n  api_token: {env: " + VAR + "}\n"
                   "  base_url: http://127.0.0.1:9/client/v4\n", Cloudflare),
}


def config(tmp_path: Path, kind: str) -> Path:
    path = tmp_path / "config.yaml"
    path.write_text(f"dns:\n  provider: {kind}\n{SECTIONS[kind][0]}", encoding="utf-8")
    return path


@pytest.fixture(autouse=True)
def not_in_os_environ(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(VAR, raising=False)


@pytest.mark.parametrize("kind", sorted(SECTIONS))
def test_a_secret_only_in_the_passed_mapping_should_be_used(tmp_path: Path, kind: str) -> None:
    settings = load_settings(config(tmp_path, kind), env={})
    provider = build_dns(settings, CREDS, env={VAR: SECRET})
    assert isinstance(provider, SECTIONS[kind][1])
    also = build_provider(kind, settings, CREDS, env={VAR: SECRET})
    assert isinstance(also, SECTIONS[kind][1])


@pytest.mark.parametrize("kind", sorted(SECTIONS))
def test_a_secret_absent_from_the_mapping_should_be_secret_not_found(
    tmp_path: Path, kind: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(VAR, SECRET)  # in os.environ, but the caller's mapping is what counts
    path = config(tmp_path, kind)
    with pytest.raises(SecretNotFound) as info:
        build_dns(load_settings(path, env={}), CREDS, env={"OTHER": "x"})
    assert info.value.reasons[0].startswith(f"{path}:")
    assert f"environment variable {VAR} is not set" in info.value.reasons[0]
    assert SECRET not in str(info.value)


def test_clients_from_settings_should_hand_its_env_to_the_dns_provider(tmp_path: Path) -> None:
    settings = load_settings(config(tmp_path, "cloudflare"), env={})
    clients = service.Clients.from_settings(settings, {VAR: SECRET}, credentials=CREDS)
    assert isinstance(clients.dns, Cloudflare)
    with pytest.raises(SecretNotFound):
        service.Clients.from_settings(settings, {}, credentials=CREDS)


def test_without_a_mapping_os_environ_should_still_be_read(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(VAR, SECRET)
    settings = load_settings(config(tmp_path, "powerdns"), env={})
    assert isinstance(build_dns(settings, CREDS), PowerDns)


def test_batch_clients_should_hand_their_env_to_the_dns_provider(tmp_path: Path) -> None:
    from cname_flow.batch.jobs import batch_clients
    from cname_flow.quotas import ApiStats

    path = tmp_path / "config.yaml"
    path.write_text(config(tmp_path, "powerdns").read_text(encoding="utf-8") + (
        "credentials:\n  access_key_id: {env: AK_ID}\n  access_key_secret: {env: AK_SECRET}\n"),
        encoding="utf-8")
    settings = load_settings(path, env={})
    env = {VAR: SECRET, "AK_ID": "LTAIid", "AK_SECRET": "SENTINEL-secret"}
    clients, checker = batch_clients(settings, ApiStats(), env)
    checker.close()
    assert isinstance(clients.dns, PowerDns)

"""resolve_credentials: config references, environment pairs, the SDK chain, and secret hygiene."""

from __future__ import annotations

import traceback
from collections.abc import Mapping
from pathlib import Path

import pytest
from alibabacloud_credentials.utils import auth_util

from cname_flow.config import (
    Credentials,
    CredentialSettings,
    Settings,
    load_settings,
    resolve_credentials,
)
from cname_flow.config.credentials import (
    NOTHING_FOUND_HINT,
    DefaultChain,
    scrub,
    sdk_default_chain,
    secret_values,
)
from cname_flow.errors import ConfigError, SecretNotFound

SECRET = "SENTINEL-secret-4b1d"
TOKEN = "SENTINEL-token-9e2c"

OSS_ENV = {"OSS_ACCESS_KEY_ID": "LTAIoss", "OSS_ACCESS_KEY_SECRET": SECRET}
ALI_ENV = {"ALIBABA_CLOUD_ACCESS_KEY_ID": "LTAIali", "ALIBABA_CLOUD_ACCESS_KEY_SECRET": SECRET}
REFS = (
    "credentials:\n"  # 1
    "  access_key_id: {env: MY_ID}\n"  # 2
    "  access_key_secret: {env: MY_SECRET}\n"  # 3
    "  security_token: {env: MY_TOKEN, optional: true}\n"  # 4
)


class ChainSpy:
    """A default chain that records calls and returns what it was given."""

    def __init__(self, result: Credentials | None) -> None:
        self.result = result
        self.calls = 0

    def __call__(self) -> Credentials | None:
        self.calls += 1
        return self.result


def resolve(
    settings: Settings, env: Mapping[str, str], default_chain: DefaultChain = sdk_default_chain
) -> Credentials:
    """resolve_credentials as the service calls it: the section, its locator and its file."""
    return resolve_credentials(
        settings.credentials,
        env,
        where=settings.where,
        source=str(settings.source or ""),
        default_chain=default_chain,
    )


@pytest.fixture
def ref_settings(tmp_path: Path) -> Settings:
    path = tmp_path / "config.yaml"
    path.write_text(REFS, encoding="utf-8")
    return load_settings(path, env={})


def test_config_refs_should_be_read_from_the_named_variables(ref_settings: Settings) -> None:
    spy = ChainSpy(None)
    env = {"MY_ID": "LTAIcfg", "MY_SECRET": SECRET, "MY_TOKEN": TOKEN, **OSS_ENV}
    creds = resolve(ref_settings, env, default_chain=spy)

    assert (creds.access_key_id, creds.access_key_secret, creds.security_token) == (
        "LTAIcfg",
        SECRET,
        TOKEN,
    )
    assert creds.is_sts
    assert "MY_ID" in creds.source
    assert spy.calls == 0


def test_optional_token_when_unset_should_give_a_long_term_key(ref_settings: Settings) -> None:
    creds = resolve(ref_settings, {"MY_ID": "LTAIcfg", "MY_SECRET": SECRET})
    assert creds.security_token is None and not creds.is_sts


def test_missing_named_variables_should_raise_secret_not_found_with_file_line_key(
    ref_settings: Settings,
) -> None:
    with pytest.raises(SecretNotFound) as info:
        resolve(ref_settings, {**OSS_ENV}, default_chain=ChainSpy(None))

    path = ref_settings.source
    assert info.value.reasons == [
        f"{path}:2: credentials.access_key_id: environment variable MY_ID is not set",
        f"{path}:3: credentials.access_key_secret: environment variable MY_SECRET is not set",
    ]


def test_required_token_when_unset_should_raise(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text(REFS.replace(", optional: true", ""), encoding="utf-8")
    settings = load_settings(path, env={})
    with pytest.raises(SecretNotFound) as info:
        resolve(settings, {"MY_ID": "LTAIcfg", "MY_SECRET": SECRET})
    [reason] = info.value.reasons
    assert reason.startswith(f"{path}:4: credentials.security_token: ")
    assert "MY_TOKEN" in reason


def test_a_bare_credentials_section_should_resolve_without_settings() -> None:
    """resolve_credentials needs the section and a locator, not the whole Settings."""
    refs = CredentialSettings.model_validate(
        {"access_key_id": "env/MY_ID", "access_key_secret": "env/MY_SECRET"}
    )
    creds = resolve_credentials(refs, {"MY_ID": "LTAIcfg", "MY_SECRET": SECRET})
    assert (creds.access_key_id, creds.source) == ("LTAIcfg", "env MY_ID (named in config)")

    with pytest.raises(SecretNotFound) as info:
        resolve_credentials(refs, {}, where=lambda *path: "here:7")
    assert info.value.reasons[0] == (
        "here:7: credentials.access_key_id: environment variable MY_ID is not set"
    )


def test_oss_variables_should_win_over_alibaba_cloud_variables() -> None:
    settings = load_settings(None, env={})
    env = {**ALI_ENV, **OSS_ENV, "OSS_SESSION_TOKEN": TOKEN, "ALIBABA_CLOUD_SECURITY_TOKEN": "x"}
    creds = resolve(settings, env, default_chain=ChainSpy(None))
    assert (creds.access_key_id, creds.security_token) == ("LTAIoss", TOKEN)
    assert creds.source == "env OSS_ACCESS_KEY_ID"


def test_alibaba_cloud_variables_when_no_oss_pair_should_be_used() -> None:
    settings = load_settings(None, env={})
    env = {**ALI_ENV, "ALIBABA_CLOUD_SECURITY_TOKEN": TOKEN, "OSS_SESSION_TOKEN": "stray"}
    creds = resolve(settings, env, default_chain=ChainSpy(None))
    assert (creds.access_key_id, creds.security_token) == ("LTAIali", TOKEN)
    assert creds.source == "env ALIBABA_CLOUD_ACCESS_KEY_ID"


def test_default_chain_should_run_only_when_nothing_else_matched() -> None:
    settings = load_settings(None, env={})
    chained = Credentials("LTAIchain", SECRET, None, "alibabacloud-credentials chain (profile)")
    spy = ChainSpy(chained)

    assert resolve(settings, {**OSS_ENV}, default_chain=spy).access_key_id == "LTAIoss"
    assert spy.calls == 0
    assert resolve(settings, {"OSS_ACCESS_KEY_ID": ""}, default_chain=spy) is chained
    assert spy.calls == 1


def test_nothing_found_should_raise_config_error_listing_the_variables() -> None:
    settings = load_settings(None, env={})
    with pytest.raises(ConfigError) as info:
        resolve(settings, {}, default_chain=ChainSpy(None))
    assert info.value.reasons == [NOTHING_FOUND_HINT]
    for name in ("OSS_ACCESS_KEY_ID", "OSS_ACCESS_KEY_SECRET", "ALIBABA_CLOUD_ACCESS_KEY_ID"):
        assert name in str(info.value)


def test_half_an_environment_pair_should_be_an_error_without_the_value() -> None:
    settings = load_settings(None, env={})
    with pytest.raises(ConfigError) as info:
        resolve(
            settings, {"OSS_ACCESS_KEY_SECRET": SECRET}, default_chain=ChainSpy(None)
        )
    [reason] = info.value.reasons
    assert "OSS_ACCESS_KEY_SECRET is set but OSS_ACCESS_KEY_ID is not" in reason
    assert SECRET not in "".join(traceback.format_exception(info.value))


def test_credentials_repr_should_hide_secret_and_token() -> None:
    creds = Credentials("LTAIid", SECRET, TOKEN, "env OSS_ACCESS_KEY_ID")
    text = repr(creds) + str(creds)
    assert "LTAIid" in text
    assert SECRET not in text and TOKEN not in text


def test_scrub_should_hide_every_secret_value() -> None:
    creds = Credentials("LTAIid", SECRET, TOKEN, "test")
    assert secret_values(creds) == (SECRET, TOKEN)
    assert secret_values(Credentials("LTAIid", SECRET)) == (SECRET,)
    message = f"bad signature for {SECRET} with token {TOKEN}; id LTAIid"
    assert scrub(message, secret_values(creds)) == "bad signature for *** with token ***; id LTAIid"


def test_sdk_default_chain_should_read_the_sdk_profile_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The real alibabacloud-credentials chain, kept off the network (no ECS metadata)."""
    profile = tmp_path / "credentials.ini"
    profile.write_text(
        "[default]\nenable = true\ntype = access_key\n"
        f"access_key_id = LTAIprofile\naccess_key_secret = {SECRET}\n",
        encoding="utf-8",
    )
    _isolate_sdk_chain(monkeypatch, profile)

    creds = sdk_default_chain()

    assert creds is not None
    assert (creds.access_key_id, creds.access_key_secret) == ("LTAIprofile", SECRET)
    assert creds.source.startswith("alibabacloud-credentials chain (")


def test_sdk_default_chain_when_empty_should_return_none(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _isolate_sdk_chain(monkeypatch, tmp_path / "absent.ini")
    assert sdk_default_chain() is None


def _isolate_sdk_chain(monkeypatch: pytest.MonkeyPatch, profile: Path) -> None:
    """The SDK reads its environment once at import into auth_util; patch those copies."""
    for name in (
        "environment_access_key_id",
        "environment_access_key_secret",
        "environment_security_token",
        "environment_credentials_uri",
    ):
        monkeypatch.setattr(auth_util, name, None)
    monkeypatch.setattr(auth_util, "enable_oidc_credential", False)
    monkeypatch.setattr(auth_util, "environment_ecs_metadata_disabled", "true")
    monkeypatch.setattr(auth_util, "environment_cli_profile_disabled", "true")
    monkeypatch.setattr(auth_util, "environment_credentials_file", str(profile))

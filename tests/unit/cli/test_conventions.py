"""ossutil / aliyun CLI conventions: --profile and ALIBABA_CLOUD_PROFILE, --region/--endpoint
and OSS_REGION/OSS_ENDPOINT, the production banner, and a quiet credentials library."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from cname_flow.cli import main
from cname_flow.cli.common import CliState
from cname_flow.cli.conventions import (
    GlobalOptions,
    load_with_conventions,
    production_banner,
    real_clients,
)
from cname_flow.config.credentials import resolve_credentials
from cname_flow.config.sections import CredentialSettings
from cname_flow.errors import ConfigError

SECRET = "SENTINEL-profile-secret-0123456789"


def _aliyun_home(tmp_path: Path) -> dict[str, str]:
    """A HOME whose ~/.aliyun/config.json has an AK profile 'dev' and an StsToken 'sts'."""
    folder = tmp_path / ".aliyun"
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps({
        "current": "dev",
        "profiles": [
            {"name": "dev", "mode": "AK", "access_key_id": "LTAIdevkey",
             "access_key_secret": SECRET, "region_id": "cn-hangzhou"},
            {"name": "sts", "mode": "StsToken", "access_key_id": "STS.key",
             "access_key_secret": SECRET, "sts_token": "SENTINEL-sts-token-0123456789",
             "region_id": "cn-shanghai"},
        ],
    }), encoding="utf-8")
    return {"HOME": str(tmp_path)}


def _no_chain() -> None:
    raise AssertionError("the default chain must not be reached")


def test_profile_flag_reads_an_ak_profile(tmp_path: Path) -> None:
    env = {**_aliyun_home(tmp_path), "OSS_ACCESS_KEY_ID": "LTAIenv",
           "OSS_ACCESS_KEY_SECRET": "x" * 30}
    creds = resolve_credentials(CredentialSettings(), env, profile="dev", default_chain=_no_chain)
    assert (creds.access_key_id, creds.access_key_secret) == ("LTAIdevkey", SECRET)
    assert "profile dev" in creds.source


def test_profile_env_reads_an_sts_profile_after_the_key_variables(tmp_path: Path) -> None:
    env = {**_aliyun_home(tmp_path), "ALIBABA_CLOUD_PROFILE": "sts"}
    creds = resolve_credentials(CredentialSettings(), env, default_chain=_no_chain)
    assert (creds.access_key_id, creds.security_token) == ("STS.key",
                                                           "SENTINEL-sts-token-0123456789")
    env |= {"OSS_ACCESS_KEY_ID": "LTAIenv", "OSS_ACCESS_KEY_SECRET": "y" * 30}
    assert resolve_credentials(CredentialSettings(), env).access_key_id == "LTAIenv"


def test_unknown_profile_is_a_config_error_naming_it_and_no_secret(tmp_path: Path) -> None:
    env = _aliyun_home(tmp_path)
    with pytest.raises(ConfigError) as info:
        resolve_credentials(CredentialSettings(), env, profile="prod", default_chain=_no_chain)
    assert "'prod'" in str(info.value) and "config.json" in str(info.value)
    assert SECRET not in str(info.value)


def test_missing_profile_file_says_how_to_create_it(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="aliyun configure"):
        resolve_credentials(CredentialSettings(), {"HOME": str(tmp_path)}, profile="dev")


def test_region_and_endpoint_precedence(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CNAME_FLOW__OSS__REGION", raising=False)
    monkeypatch.delenv("CNAME_FLOW__OSS__ENDPOINT", raising=False)
    monkeypatch.setenv("OSS_REGION", "cn-beijing")
    monkeypatch.setenv("OSS_ENDPOINT", "http://127.0.0.1:9")
    settings = load_with_conventions(None, GlobalOptions())
    assert (settings.oss.region, settings.oss.endpoint) == ("cn-beijing", "http://127.0.0.1:9")
    settings = load_with_conventions(None, GlobalOptions(region="cn-shanghai"))
    assert settings.oss.region == "cn-shanghai"


def test_a_bad_region_flag_is_named_as_the_flag(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CNAME_FLOW__OSS__REGION", raising=False)
    with pytest.raises(ConfigError) as info:
        load_with_conventions(None, GlobalOptions(region="Not A Region"))
    assert "--region" in str(info.value)
    assert "CNAME_FLOW__OSS__REGION" not in str(info.value)


def test_root_options_reach_the_settings(tmp_path: Path,
                                         monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    state = CliState()
    result = CliRunner().invoke(
        main, ["--region", "cn-shenzhen", "--endpoint", "http://127.0.0.1:9", "status"],
        obj=state)
    assert result.exit_code == 0, result.output
    assert (state.settings.oss.region, state.settings.oss.endpoint) == (
        "cn-shenzhen", "http://127.0.0.1:9")


def test_banner_names_endpoint_region_and_key_id_never_the_secret(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.chdir(tmp_path)
    for name in ("OSS_ENDPOINT", "OSS_REGION", "CNAME_FLOW__OSS__ENDPOINT",
                 "CNAME_FLOW__OSS__REGION", "CNAME_FLOW_CONFIG"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("OSS_ACCESS_KEY_ID", "LTAIbannerkey")
    monkeypatch.setenv("OSS_ACCESS_KEY_SECRET", SECRET)
    options = GlobalOptions(region="cn-shanghai")
    real_clients(load_with_conventions(None, options), options)
    err = capsys.readouterr().err
    assert "oss-cn-shanghai.aliyuncs.com" in err and "cn-shanghai" in err
    assert "LTAIbannerkey" in err and SECRET not in err


def test_no_banner_with_a_config_file_or_off_production(tmp_path: Path,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OSS_ENDPOINT", raising=False)
    monkeypatch.delenv("CNAME_FLOW__OSS__ENDPOINT", raising=False)
    config = tmp_path / "c.yaml"
    config.write_text("oss:\n  region: cn-hangzhou\n", encoding="utf-8")
    assert production_banner(load_with_conventions(config, GlobalOptions()), "LTAI") is None
    sandbox = load_with_conventions(None, GlobalOptions(endpoint="http://127.0.0.1:9"))
    assert production_banner(sandbox, "LTAI") is None
    prod = load_with_conventions(None, GlobalOptions())
    assert "aliyuncs.com" in (production_banner(prod, "LTAI") or "")


def test_no_credentials_prints_our_message_and_no_traceback(tmp_path: Path) -> None:
    """Issue 16: three tracebacks from alibabacloud-credentials came before our message."""
    config = tmp_path / "c.yaml"
    config.write_text(f"journal:\n  dir: {tmp_path / 'j'}\ndefaults:\n  bucket: examplebucket\n",
                      encoding="utf-8")
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("OSS_", "ALIBABA_CLOUD_", "ALICLOUD_"))}
    env["HOME"] = str(tmp_path)
    done = subprocess.run(
        [sys.executable, "-m", "cname_flow", "--config", str(config), "bind", "www.example.com"],
        capture_output=True, text=True, env=env, timeout=120, check=False)
    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stderr
    assert "CredentialException" not in done.stderr
    assert done.stderr.lstrip().startswith("error")
    assert "no Alibaba Cloud credentials found" in done.stderr


def test_shell_completion_as_documented_lists_lazy_commands_too() -> None:
    """docs/conventions.md: ``_CNAME_FLOW_COMPLETE=bash_complete`` (click's completion)."""
    env = {**os.environ, "_CNAME_FLOW_COMPLETE": "bash_complete",
           "COMP_WORDS": "cname-flow batch r", "COMP_CWORD": "2"}
    done = subprocess.run(
        [sys.executable, "-c", "from cname_flow.cli import main; main(prog_name='cname-flow')"],
        capture_output=True, text=True, env=env, timeout=60, check=False)
    assert done.stdout.split() == ["plain,resume", "plain,run"], done.stderr

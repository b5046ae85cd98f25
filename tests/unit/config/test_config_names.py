"""The config's names follow the same rule as the command line's (:mod:`cname_flow.names`): a
value the config accepts is one ``bind`` accepts, and one it refuses names the config's
``file:line`` (issue 13)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from cname_flow import names
from cname_flow.config import load_settings
from cname_flow.errors import ConfigError, InputError
from tests.unit.cli.clikit import CliWorld

#: (setting, the names.py rule for it, values on both sides of the rule).
CASES: list[tuple[str, Callable[[str], str], list[str]]] = [
    ("defaults.route_target", names.check_route_target, [
        "cdn.example.com", "CDN.Example.com.", "cdn_edge.example.com", "_x.example.com",
        "1.2.3.4", "cdn.example.123", "localhost", "https://cdn.example.com",
        "cdn.example.com:443", "例子.中国"]),
    ("defaults.bucket", names.check_bucket, [
        "examplebucket", "ab", "a" * 64, "Bad_Bucket", "-bucket", "bucket-", "b.c.d"]),
    ("defaults.region", names.check_region, [
        "cn-hangzhou", "ap-southeast-1", "rg-china-mainland", "cn-" + "a" * 60, "CN_Hangzhou",
        "hangzhou", "1n-hangzhou", "cn--hangzhou"]),
    ("oss.region", names.check_region, ["cn-shanghai", "cn-" + "a" * 60, "cn_shanghai"]),
    ("alidns.region", names.check_region, ["cn-shanghai", "cn-" + "a" * 60, "cn_shanghai"]),
]


def _config(tmp_path: Path, setting: str, value: str) -> Path:
    section, key = setting.split(".")
    path = tmp_path / "config.yaml"
    path.write_text(f"# a comment\n{section}:\n  {key}: {value!r}\n", encoding="utf-8")
    return path


def _accepted(check: Callable[[str], str], value: str) -> bool:
    try:
        check(value)
    except InputError:
        return False
    return True


@pytest.mark.parametrize(("setting", "check", "value"),
                         [(s, c, v) for s, c, values in CASES for v in values])
def test_the_config_accepts_a_name_exactly_when_names_does(
        tmp_path: Path, setting: str, check: Callable[[str], str], value: str) -> None:
    path = _config(tmp_path, setting, value)
    if _accepted(check, value):
        settings = load_settings(path, env={})
        section, key = setting.split(".")
        assert getattr(getattr(settings, section), key) == check(value)
        return
    with pytest.raises(ConfigError) as info:
        load_settings(path, env={})
    assert len(info.value.reasons) == 1, info.value.reasons
    reason = info.value.reasons[0]
    assert reason.startswith(f"{path}:3: {setting}: "), reason
    with pytest.raises(InputError) as refused:
        check(value)
    assert refused.value.message in reason  # the same words as on the command line


def test_a_route_target_bind_refuses_is_refused_at_config_load_with_file_line(
        tmp_path: Path) -> None:
    world = CliWorld(tmp_path)
    world.config.write_text(world.config.read_text(encoding="utf-8")
                            + "  route_target: cdn_edge.example.com\n", encoding="utf-8")
    result = world.invoke("bind", "www.example.com", "--route")
    assert result.exit_code == 2, result.output
    assert f"{world.config}:6: defaults.route_target: " in result.output
    assert not world.oss.calls and not world.dns.calls


@pytest.mark.parametrize("endpoint", ["oss_sandbox:8080", "-oss.example.com", "a..b"])
def test_an_endpoint_host_follows_the_host_name_rule(tmp_path: Path, endpoint: str) -> None:
    path = _config(tmp_path, "oss.endpoint", endpoint)
    with pytest.raises(ConfigError) as info:
        load_settings(path, env={})
    assert info.value.reasons[0].startswith(f"{path}:3: oss.endpoint: "), info.value.reasons
    with pytest.raises(InputError):
        names.check_host(endpoint.split(":")[0])


@pytest.mark.parametrize("endpoint", ["localhost:8080", "127.0.0.1:9000", "[::1]:9000",
                                      "oss-cn-hangzhou.aliyuncs.com", "http://sandbox:80"])
def test_an_endpoint_host_name_or_address_is_accepted(tmp_path: Path, endpoint: str) -> None:
    assert load_settings(_config(tmp_path, "oss.endpoint", endpoint), env={}).oss.endpoint \
        == endpoint

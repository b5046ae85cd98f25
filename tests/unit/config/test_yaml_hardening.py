"""Hostile YAML through both loaders that use it, the config file and a YAML manifest (issue 13).

Control characters, nesting past :data:`MAX_DEPTH`, integers Python will not read, impossible
dates and any anchor or alias (a "billion laughs" bomb is built from them) are each one
:class:`ConfigError` reason ``"<file>:<line>: not valid YAML: …"``, raised before the document
is walked, with no traceback and no echo of the text.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import pytest

from cname_flow.config import load_settings
from cname_flow.config.yaml_source import MAX_DEPTH, load_located
from cname_flow.errors import ConfigError
from cname_flow.manifest import load_manifest

Loader = Callable[[Path], object]

LOADERS: dict[str, Loader] = {
    "config": lambda p: load_settings(p, env={}),
    "manifest": load_manifest,
}

BOMB = "".join(
    [
        "bindings: []\n",
        "a: &a [x, x, x, x, x, x, x, x, x, x]\n",
        *(f"{chr(98 + i)}: &{chr(98 + i)} [{', '.join([f'*{chr(97 + i)}'] * 10)}]\n"
          for i in range(8)),
    ]
)


def reason_of(tmp_path: Path, loader: str, text: str) -> str:
    path = tmp_path / "doc.yaml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ConfigError) as info:
        LOADERS[loader](path)
    [reason] = info.value.reasons
    assert reason.startswith(f"{path}:"), reason
    return reason.removeprefix(f"{path}:")


@pytest.fixture(params=sorted(LOADERS))
def loader(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def test_control_character_should_name_its_line(tmp_path: Path, loader: str) -> None:
    reason = reason_of(tmp_path, loader, "bindings: []\n# a comment\nx: \"a\x07b\"\n")
    assert reason.startswith("3: not valid YAML: control character U+0007"), reason
    assert "a\x07b" not in reason


def test_nul_should_name_its_line(tmp_path: Path, loader: str) -> None:
    reason = reason_of(tmp_path, loader, "bindings: []\nx: a\x00b\n")
    assert reason.startswith("2: not UTF-8 text (NUL byte at offset 17)"), reason
    with pytest.raises(ConfigError) as info:
        load_located("bindings: []\nx: a\x00b\n", "doc.yaml")
    assert info.value.reasons == ["doc.yaml:2: not valid YAML: control character U+0000"]


@pytest.mark.parametrize("shape", ["flow-seq", "flow-map", "block"])
def test_deep_nesting_should_be_refused(tmp_path: Path, loader: str, shape: str) -> None:
    n = 5000 if shape != "block" else MAX_DEPTH + 5
    text = {
        "flow-seq": "x: " + "[" * n + "]" * n + "\n",
        "flow-map": "x: " + "{a: " * n + "1" + "}" * n + "\n",
        "block": "x:\n" + "".join(f"{'  ' * (i + 1)}k{i}:\n" for i in range(n)),
    }[shape]
    reason = reason_of(tmp_path, loader, "bindings: []\n" + text)
    assert f"nested deeper than {MAX_DEPTH} levels" in reason, reason


def test_flow_nesting_should_stop_the_scanner_before_it_reads_ahead() -> None:
    # PyYAML's scanner looks ahead (quadratically) past every "[" for a simple key; a bracket
    # past the limit must end the scan there, not at the bad character 500 brackets later
    with pytest.raises(ConfigError) as info:
        load_located("x: " + "[" * 500 + "@", "doc.yaml")
    assert info.value.reasons == [
        f"doc.yaml:1: not valid YAML: nested deeper than {MAX_DEPTH} levels"]


def test_nesting_up_to_the_limit_should_parse() -> None:
    n = MAX_DEPTH - 1
    doc = load_located("x: " + "[" * n + "]" * n + "\n", "doc.yaml")
    depth, node = 1, doc.data["x"]
    while node:
        depth, node = depth + 1, node[0]
    assert depth == n


def test_integer_over_4300_digits_should_name_its_line(tmp_path: Path, loader: str) -> None:
    reason = reason_of(tmp_path, loader, f"bindings: []\n\nx: {'9' * 4301}\n")
    assert reason.startswith("3: not valid YAML: integer of more than 4300 digits"), reason


def test_impossible_date_should_name_its_line(tmp_path: Path, loader: str) -> None:
    reason = reason_of(tmp_path, loader, "bindings: []\nx: 2024-13-45\n")
    assert reason.startswith("2: not valid YAML: not a valid date/time"), reason


def test_alias_bomb_should_be_refused_at_once(tmp_path: Path, loader: str) -> None:
    started = time.monotonic()
    reason = reason_of(tmp_path, loader, BOMB)
    assert time.monotonic() - started < 2.0
    assert reason.startswith("2: not valid YAML: anchors and aliases"), reason


def test_a_single_alias_should_be_refused_too(tmp_path: Path, loader: str) -> None:
    text = "bindings: []\nbase: &base {a: 1}\nother:\n  <<: *base\n"
    reason = reason_of(tmp_path, loader, text)
    assert reason.startswith("2: not valid YAML: anchors and aliases"), reason


def test_env_override_that_is_not_plain_yaml_should_stay_a_string() -> None:
    env = {"CNAME_FLOW__OSS__REGION": "[" * 5000, "CNAME_FLOW__DEFAULTS__BUCKET": "9" * 5000}
    with pytest.raises(ConfigError) as info:
        load_settings(None, env=env)
    assert all(r.startswith("env CNAME_FLOW__") for r in info.value.reasons), info.value.reasons


def test_config_not_in_utf8_should_name_line_and_offset(tmp_path: Path) -> None:
    path = tmp_path / "config.yaml"
    path.write_bytes("oss:\n  region: cn-hangzhou\n# café\n".encode("latin-1"))
    [reason] = reasons_of_config(path)
    assert reason.startswith(f"{path}:3: not UTF-8 text (byte 0xe9 at offset 32)"), reason


def test_config_with_a_bom_should_load(tmp_path: Path) -> None:
    path = tmp_path / "config.yaml"
    path.write_bytes(b"\xef\xbb\xbfoss:\n  region: cn-shanghai\n")
    assert load_settings(path, env={}).oss.region == "cn-shanghai"


def reasons_of_config(path: Path) -> list[str]:
    with pytest.raises(ConfigError) as info:
        load_settings(path, env={})
    return info.value.reasons

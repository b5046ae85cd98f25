"""Fuzzing load_settings: bytes, YAML built from the real sections and keys, token soup,
environment overrides, and the YAML hazards spliced into a good config (issue 13).

Whatever the file or the environment holds, :func:`load_settings` returns settings or raises a
:class:`~cname_flow.errors.ConfigError`; a command given such a ``--config`` exits 2 with no
traceback and no API call.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st
from pydantic import BaseModel

from cname_flow.config import ENV_PREFIX, Settings, load_settings
from cname_flow.errors import ConfigError
from tests.fuzz.budget import FUZZ
from tests.fuzz.test_manifest_fuzz import HAZARDS, assert_refused_untouched, run_cli


def _sections() -> dict[str, list[str]]:
    """Section name → its keys, read from the settings model (so new settings get fuzzed)."""
    out: dict[str, list[str]] = {}
    for name, field in Settings.model_fields.items():
        model = field.annotation
        if isinstance(model, type) and issubclass(model, BaseModel):
            out[name] = list(model.model_fields)
    return out


SECTIONS = _sections()
KEYS = sorted({k for keys in SECTIONS.values() for k in keys})
GOOD = "oss:\n  region: cn-hangzhou\ndefaults:\n  bucket: bucket1\n"

scalars = st.one_of(st.none(), st.booleans(), st.integers(), st.text(max_size=10),
                    st.sampled_from([0.5, -1.0, 1e309, "cn-hangzhou", "alidns", "1s", "-1",
                                     "127.0.0.1:53", "oss-cn-hangzhou.aliyuncs.com"]))
values = st.recursive(scalars, lambda inner: st.lists(inner, max_size=2)
                      | st.dictionaries(st.sampled_from([*KEYS, "env", "zzz"]), inner,
                                        max_size=2), max_leaves=4)
sections = st.dictionaries(st.sampled_from([*SECTIONS, "source", "zzz"]),
                           st.one_of(st.dictionaries(st.sampled_from([*KEYS, "zzz"]), scalars,
                                                     max_size=4), values), max_size=3)


def load_or_refuse(path: Path | None, env: dict[str, str] | None = None) -> Settings | None:
    """Settings, or None when refused with a ConfigError; anything else propagates."""
    try:
        return load_settings(path, env=env or {})
    except ConfigError as exc:
        assert exc.reasons and all(isinstance(r, str) and r for r in exc.reasons)
        return None


def write(tmp_path: Path, data: bytes) -> Path:
    path = tmp_path / "config.yaml"
    path.write_bytes(data)
    return path


@FUZZ
@given(data=st.binary(max_size=2048))
def test_any_bytes(tmp_path: Path, data: bytes) -> None:
    load_or_refuse(write(tmp_path, data))


@FUZZ
@given(doc=st.one_of(sections, values))
def test_generated_sections(tmp_path: Path, doc: object) -> None:
    loaded = load_or_refuse(write(tmp_path, yaml.safe_dump(doc, allow_unicode=True).encode()))
    if loaded is not None:
        assert loaded.source == tmp_path / "config.yaml"


@FUZZ
@given(text=st.text(alphabet=st.sampled_from(list("[]{}:,-?&*!|>'\"#%@`\n\t 0123456789.eE"
                                                  "abxé\x07\x00\x85\u2028")), max_size=300))
def test_yaml_token_soup(tmp_path: Path, text: str) -> None:
    load_or_refuse(write(tmp_path, text.encode()))


@FUZZ
@given(hazard=st.sampled_from(sorted(HAZARDS)), at=st.integers(0, GOOD.count("\n")))
def test_hazard_spliced_into_a_good_config(tmp_path: Path, hazard: str, at: int) -> None:
    lines = GOOD.splitlines(keepends=True)
    text = "".join(lines[:at]) + HAZARDS[hazard] + "".join(lines[at:])
    assert load_or_refuse(write(tmp_path, text.encode())) is None


names = st.lists(st.sampled_from([*SECTIONS, *KEYS, "", "x"]), max_size=3).map(
    lambda parts: ENV_PREFIX + "__".join(parts).upper())
env_values = st.one_of(st.text(max_size=20), st.sampled_from(list(HAZARDS.values())),
                       st.just("9" * 5000), st.just("[" * 3000))


@FUZZ
@given(env=st.dictionaries(names, env_values, max_size=4))
def test_environment_overrides(env: dict[str, str]) -> None:
    load_or_refuse(None, env)


# -- the commands -----------------------------------------------------------------------------

BAD_CONFIGS = {
    **{name: (GOOD + text).encode() for name, text in HAZARDS.items()},
    "latin-1": (GOOD + "# café\n").encode("latin-1"),
    "utf-16-no-bom": GOOD.encode("utf-16-le"),
}


@pytest.mark.parametrize("command", ["status", "batch list", "bind www.example.com"])
@pytest.mark.parametrize("bad", sorted(BAD_CONFIGS))
def test_commands_exit_2_on_a_bad_config(tmp_path: Path, command: str, bad: str) -> None:
    path = tmp_path / "bad-config.yaml"
    path.write_bytes(BAD_CONFIGS[bad])
    result, world = run_cli(tmp_path, *command.split(), config=path)
    assert_refused_untouched(result, world)
    assert str(path) in result.stderr

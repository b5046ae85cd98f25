"""Fuzzing load_manifest: bytes, CSV built from its columns, YAML built from its fields, YAML
token soup and known hazards spliced into good manifests (issue 13).

Whatever the file holds, :func:`load_manifest` returns a manifest or raises a
:class:`~cname_flow.errors.CnameFlowError`; the commands that read manifests (``batch run``,
``reconcile``) exit 2 on each hazard without a traceback and without one API call.
"""

from __future__ import annotations

import csv
import io
from pathlib import Path

import pytest
import structlog
import yaml
from click.testing import Result
from hypothesis import given
from hypothesis import strategies as st

from cname_flow.errors import CnameFlowError
from cname_flow.manifest import Manifest, load_manifest
from tests.fuzz.budget import FUZZ
from tests.unit.cli.clikit import CliWorld

COLUMNS = ["domain", "bucket", "region", "route", "route_target", "remove_txt", "cert_file",
           "key_file", "cert_id", "force_cert"]

#: Values a real manifest holds, so generated rows sometimes get past validation.
PLAUSIBLE = ["a.example.com", "例子.example.com", "*.example.com", "bucket1", "cn-hangzhou", "true",
             "no", "1", "4930000-cn-hangzhou", "cert.pem", "", " ", "bad..example.com"]

#: Text a hostile or broken file holds: each must be refused with a line, never a traceback.
HAZARDS = {
    "alias-bomb": "x: &a [1, 1, 1, 1, 1, 1, 1, 1, 1, 1]\n" + "".join(
        f"x{i}: &a{i} [{', '.join(['*a' if i == 0 else f'*a{i - 1}'] * 10)}]\n"
        for i in range(8)),
    "deep-nesting": "x: " + "[" * 3000 + "]" * 3000 + "\n",
    "big-int": f"x: {'9' * 5000}\n",
    "bad-date": "x: 2024-02-30\n",
    "control-char": "x: \"a\x1bb\"\n",
}

GOOD_YAML = "defaults: {bucket: bucket1}\nbindings:\n  - domain: a.example.com\n"


def write(tmp_path: Path, data: bytes, suffix: str) -> Path:
    path = tmp_path / f"manifest{suffix}"
    path.write_bytes(data)
    return path


def load_or_refuse(path: Path) -> Manifest | None:
    """The manifest, or None when refused with one of our errors; anything else propagates."""
    try:
        manifest = load_manifest(path, bucket="fallback")
    except CnameFlowError as exc:
        assert str(exc)
        return None
    assert manifest.bindings
    assert len({b.domain for b in manifest.bindings}) == len(manifest.bindings)
    return manifest


def run_cli(tmp_path: Path, *args: str, config: Path | None = None) -> tuple[Result, CliWorld]:
    """Run ``cname-flow --config <config> ARGS`` over fresh fakes; logging reset after.

    ``config`` defaults to the world's own good config file.
    """
    world = CliWorld(tmp_path)
    if config is not None:
        world.config = config
    try:
        return world.invoke(*args), world
    finally:
        structlog.reset_defaults()


def assert_refused_untouched(result: Result, world: CliWorld) -> None:
    """Exit 2, an error message, no traceback, and no call to OSS or DNS."""
    assert result.exit_code == 2, (result.exit_code, result.output, result.exception)
    assert "Traceback" not in result.output
    assert "error" in result.stderr
    assert not world.oss.calls and not world.dns.calls


# -- bytes ------------------------------------------------------------------------------------

@FUZZ
@given(data=st.binary(max_size=2048), suffix=st.sampled_from([".csv", ".yaml"]))
def test_any_bytes(tmp_path: Path, data: bytes, suffix: str) -> None:
    load_or_refuse(write(tmp_path, data, suffix))


# -- CSV built from the columns ---------------------------------------------------------------

cells = st.one_of(st.sampled_from(PLAUSIBLE), st.text(max_size=24))
headers = st.lists(st.sampled_from([*COLUMNS, " domain", "\ufeffdomain", "", "colour"]),
                   max_size=7)


@FUZZ
@given(header=headers, rows=st.lists(st.lists(cells, max_size=7), max_size=4),
       codec=st.sampled_from(["utf-8", "utf-8-sig", "utf-16", "utf-16-le", "latin-1", "cp1252"]),
       newline=st.sampled_from(["\n", "\r\n", "\r"]))
def test_generated_csv(tmp_path: Path, header: list[str], rows: list[list[str]], codec: str,
                       newline: str) -> None:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator=newline)
    writer.writerow(header)
    writer.writerows(rows)
    limit = csv.field_size_limit(20)  # 128 KiB fields, cheaply: text cells go past 20
    try:
        manifest = load_or_refuse(write(tmp_path, out.getvalue().encode(codec, "replace"),
                                        ".csv"))
    finally:
        csv.field_size_limit(limit)
    if manifest is not None:  # then the header did name a domain column
        assert "domain" in {h.strip().lstrip("\ufeff") for h in header}


# -- YAML built from the fields ---------------------------------------------------------------

scalars = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False),
                    st.sampled_from(PLAUSIBLE), st.text(max_size=12))
values = st.recursive(scalars, lambda inner: st.lists(inner, max_size=3)
                      | st.dictionaries(st.text(max_size=6), inner, max_size=3), max_leaves=5)
entries = st.dictionaries(st.sampled_from([*COLUMNS, "colour"]),
                          st.one_of(st.sampled_from(PLAUSIBLE), scalars, values), max_size=4)
documents = st.fixed_dictionaries(
    {"bindings": st.one_of(st.lists(entries, max_size=3), values)},
    optional={"defaults": entries, "extra": values},
)


@FUZZ
@given(doc=st.one_of(documents, values))
def test_generated_yaml(tmp_path: Path, doc: object) -> None:
    text = yaml.safe_dump(doc, allow_unicode=True)
    load_or_refuse(write(tmp_path, text.encode(), ".yaml"))


@FUZZ
@given(text=st.text(alphabet=st.sampled_from(list("[]{}:,-?&*!|>'\"#%@`\n\t 0123456789.eE"
                                                  "abxé\x07\x00\x85\u2028")), max_size=300))
def test_yaml_token_soup(tmp_path: Path, text: str) -> None:
    load_or_refuse(write(tmp_path, text.encode(), ".yaml"))


@FUZZ
@given(hazard=st.sampled_from(sorted(HAZARDS)), at=st.integers(0, GOOD_YAML.count("\n")))
def test_hazard_spliced_into_a_good_manifest(tmp_path: Path, hazard: str, at: int) -> None:
    lines = GOOD_YAML.splitlines(keepends=True)  # spliced at a line start: still YAML-shaped
    text = "".join(lines[:at]) + HAZARDS[hazard] + "".join(lines[at:])
    assert load_or_refuse(write(tmp_path, text.encode(), ".yaml")) is None


# -- the commands -----------------------------------------------------------------------------

BAD_FILES: dict[str, tuple[str, bytes]] = {
    **{name: (".yaml", (GOOD_YAML + text).encode()) for name, text in HAZARDS.items()},
    "latin-1": (".csv", "domain,bucket\ncafé.example.com,bucket1\n".encode("latin-1")),
    "duplicate-column": (".csv", b"domain,bucket,domain\na.example.com,bucket1,c.example.com\n"),
    "huge-field": (".csv", b"domain,bucket\n" + b"a" * 140_000 + b",bucket1\n"),
}


@pytest.mark.parametrize("command", ["batch run", "reconcile"])
@pytest.mark.parametrize("bad", sorted(BAD_FILES))
def test_commands_exit_2_on_a_bad_manifest(tmp_path: Path, command: str, bad: str) -> None:
    suffix, data = BAD_FILES[bad]
    path = write(tmp_path, data, suffix)
    result, world = run_cli(tmp_path, *command.split(), "-f", str(path))
    assert_refused_untouched(result, world)
    assert str(path) in result.stderr
    assert not list((tmp_path / "journal").rglob("*.jsonl"))

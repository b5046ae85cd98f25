"""Every ``--json`` output is a versioned document (``"schema": "cname-flow/<kind>/v1"``), and
a failing ``--json`` command prints the error document with its exit code unchanged: each
command run in-process with click's ``CliRunner`` against the sandbox (real SDK clients).

Not run here: ``store migrate --json`` (``store-migrate``, needs PostgreSQL: its document is
checked in ``tests/unit/store/test_migrate.py``) and ``--no-wait`` (``batch-submitted``, needs
workers)."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import structlog
from click.testing import CliRunner

from cname_flow.cli import main
from cname_flow.cli.common import CliState
from tests.e2e.bindkit import SandboxEnv, sandbox_env

pytestmark = pytest.mark.e2e

DOCS = Path(__file__).resolve().parents[2] / "docs" / "json-output.md"


@pytest.fixture(scope="module")
def sb(tmp_path_factory: pytest.TempPathFactory, no_proxy: None) -> Iterator[SandboxEnv]:
    with sandbox_env(tmp_path_factory.mktemp("json")) as env:
        yield env


@pytest.fixture(autouse=True)
def _reset_logging() -> Iterator[None]:
    yield
    structlog.reset_defaults()


def run_json(sb: SandboxEnv, *args: str, code: int = 0) -> dict[str, Any]:
    """Run ``cname-flow --config <config> ARGS`` and parse its stdout: one JSON object."""
    env = {k: sb.env[k] for k in ("OSS_ACCESS_KEY_ID", "OSS_ACCESS_KEY_SECRET")}
    done = CliRunner().invoke(main, ["--config", str(sb.config), *args], obj=CliState(),
                              env=env)
    assert done.exit_code == code, (args, done.output[-3000:])
    data = json.loads(done.stdout)
    assert isinstance(data, dict), args
    return data


def test_every_json_output_names_its_schema(sb: SandboxEnv, tmp_path: Path) -> None:
    manifest = tmp_path / "m.yaml"
    manifest.write_text("bindings:\n  - domain: j1.example.com\n  - domain: j2.example.com\n")
    plan_file = tmp_path / "plan.json"
    runs: list[tuple[str, list[str], int]] = [
        ("bind", ["bind", "js.example.com", "--json"], 0),
        ("plan", ["plan", "jp.example.com", "--json"], 0),
        ("plan", ["bind", "jp.example.com", "--dry-run", "--json"], 0),
        ("status", ["status", "--json"], 0),
        ("cert-status", ["cert", "status", "--json"], 0),
        ("cert-remove", ["cert", "remove", "js.example.com", "--dry-run", "--json"], 0),
        ("batch-report", ["batch", "run", "-f", str(manifest), "--job", "jj", "--json"], 0),
        ("batch-report", ["batch", "resume", "jj", "--json"], 0),
        ("batch-status", ["batch", "status", "jj", "--json"], 0),
        ("batch-list", ["batch", "list", "--json"], 0),
        ("reconcile-report", ["reconcile", "-f", str(manifest), "--json", "--plan-out",
                              str(plan_file)], 0),
        ("unbind", ["unbind", "js.example.com", "--dry-run", "--json"], 0),
        ("unbind", ["unbind", "js.example.com", "--yes", "--json"], 0),
        ("forget", ["forget", "js.example.com", "--json"], 0),
        ("store-info", ["store", "info", "--json"], 0),
        ("error", ["bind", "taken.example.com", "--json"], 1),           # bound elsewhere
        ("error", ["forget", "nothing.example.com", "--json"], 2),        # no such entry
    ]
    seen = set()
    for kind, args, code in runs:
        data = run_json(sb, *args, code=code)
        assert data["schema"] == f"cname-flow/{kind}/v1", args
        assert next(iter(data)) == "schema", args
        seen.add(kind)
    plan = json.loads(plan_file.read_text())
    assert plan["schema"] == "cname-flow/reconcile-plan/v1" and plan["version"] == 1
    documented = set(re.findall(r"`cname-flow/([a-z-]+)/v1`", DOCS.read_text()))
    assert seen | {"reconcile-plan"} <= documented


def test_the_error_document_keeps_the_exit_code_and_its_fields(sb: SandboxEnv) -> None:
    data = run_json(sb, "bind", "bad..example.com", "--json", code=2)
    error = data["error"]
    assert set(error) >= {"code", "message", "hint", "retryable", "step"}
    assert error["code"] == "InputError" and error["retryable"] is False
    assert "bad..example.com" in error["message"]


def test_existing_keys_are_kept(sb: SandboxEnv) -> None:
    bound = run_json(sb, "bind", "keep.example.com", "--json")
    assert {"key", "domain", "bucket", "phase", "outputs", "last_error"} <= set(bound)
    plan = run_json(sb, "plan", "keep2.example.com", "--json")
    assert {"binding", "blocked", "changes", "actions"} <= set(plan)

"""The commands in worker mode, end to end: real ``cname-flow`` processes submitting to real
``cname-flow worker`` processes over a real PostgreSQL, the real SDKs against the sandbox.

``batch run`` and ``bind`` submit and follow with the local exit codes; ``--no-wait`` returns a
job id that ``batch status --follow`` follows; a reconcile schedule registered by three workers
runs each slot once across them and its fixes are bound by the workers, one TXT record and one
token per domain even when several slots submit the same binding.
"""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

from cname_flow.model import Binding
from tests.e2e.batch_world import PER_BUCKET, buckets_for
from tests.e2e.bindkit import SandboxEnv, count_calls, sandbox_env
from tests.e2e.test_workers import (
    WATCHED,
    bindings,
    check_sandbox,
    configure,
    lagging_world,
    store_phases,
    workers,
)

pytestmark = [pytest.mark.e2e, pytest.mark.usefixtures("no_proxy"), pytest.mark.timeout(600)]


def write_manifest(path: Path, todo: list[Binding]) -> Path:
    path.write_text(yaml.safe_dump({
        "defaults": {"region": "cn-hangzhou"},
        "bindings": [{"domain": b.domain, "bucket": b.bucket} for b in todo]}),
        encoding="utf-8")
    return path


def as_json(done: subprocess.CompletedProcess[str]) -> Any:
    assert done.returncode == 0, (done.returncode, done.stderr[-3000:])
    return json.loads(done.stdout)


def test_batch_run_bind_and_no_wait_through_real_workers(tmp_path: Path, pg_url: str) -> None:
    first, later = bindings("c", 30), bindings("n", 10)
    later = [Binding(b.domain, buckets_for(2 * PER_BUCKET)[1], "") for b in later]
    with sandbox_env(tmp_path, lagging_world(2 * PER_BUCKET)) as sb:
        configure(sb, pg_url)
        with workers(sb, tmp_path, ["c1", "c2"]):
            run_commands(tmp_path, sb, first, later)


def run_commands(tmp_path: Path, sb: SandboxEnv, first: list[Binding],
                 later: list[Binding]) -> None:
    """batch run, bind, batch run --no-wait + batch status --follow; then the checks."""
    calls = count_calls(sb.sandbox, WATCHED)
    result = as_json(sb.cli("batch", "run", "-f",
                            str(write_manifest(tmp_path / "m.yaml", first)), "--json",
                            timeout=300))
    assert result["counts"].get("bound") == len(first), result["counts"]

    solo = sb.cli("bind", "solo.w.example.com", "--bucket", "examplebucket", timeout=120)
    assert solo.returncode == 0, solo.stderr[-3000:]
    phases = {r["domain"]: r["phase"]
              for r in as_json(sb.cli("status", "--json"))["bindings"]}
    assert phases["solo.w.example.com"] == "BOUND"

    submitted = as_json(sb.cli("batch", "run", "-f",
                               str(write_manifest(tmp_path / "n.yaml", later)),
                               "--no-wait", "--json"))
    assert submitted["workflows"] == len(later)
    followed = as_json(sb.cli("batch", "status", submitted["job_id"], "--follow", "--json",
                              timeout=300))
    assert followed["counts"].get("bound") == len(later), followed["counts"]
    check_sandbox(sb, [*first, *later], calls)
    assert store_phases(sb, [*first, *later]) == {"BOUND": len(first) + len(later)}


def scheduled_passes(tmp_path: Path, names: list[str]) -> list[tuple[str, str]]:
    """(slot, worker) of every ``reconcile.scheduled`` event in the workers' JSON logs."""
    passes = []
    for name in names:
        for line in (tmp_path / f"{name}.log").read_text(errors="replace").splitlines():
            if line.startswith("{"):
                event = json.loads(line)
                if event.get("event") == "reconcile.scheduled":
                    passes.append((str(event["slot"]), name))
    return passes


def wait_bound(sb: SandboxEnv, todo: list[Binding], deadline_s: float) -> None:
    end = time.monotonic() + deadline_s
    while store_phases(sb, todo) != {"BOUND": len(todo)}:
        assert time.monotonic() < end, store_phases(sb, todo)
        time.sleep(0.5)


def test_a_schedule_on_three_workers_runs_each_slot_once_and_fixes_drift(
        tmp_path: Path, pg_url: str) -> None:
    drifting = bindings("s", 4)
    manifest = write_manifest(tmp_path / "desired.yaml", drifting)
    names = ["s1", "s2", "s3"]
    schedule = ["--reconcile-schedule", "* * * * * *", "--reconcile-manifest", str(manifest),
                "--reconcile-apply", "--reconcile-max-changes", "10"]
    with sandbox_env(tmp_path, lagging_world(PER_BUCKET)) as sb:
        configure(sb, pg_url)
        calls = count_calls(sb.sandbox, WATCHED)
        with workers(sb, tmp_path, names, extra=schedule):
            wait_bound(sb, drifting, 120)
            time.sleep(4.0)  # a few clean slots after the fixes
        passes = scheduled_passes(tmp_path, names)
        # bound, one TXT record holding the one token each, however many slots submitted it
        check_sandbox(sb, drifting, calls)
    slots = [slot for slot, _ in passes]
    assert len(slots) >= 5, passes
    assert len(set(slots)) == len(slots), sorted(slots)  # no slot ran twice, on any host

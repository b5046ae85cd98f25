"""The commands with ``store.url`` set: ``bind``, ``batch run`` and ``reconcile --apply`` submit
to DBOS workers (real PostgreSQL) and follow them with the local exit codes; ``--no-wait``
returns the job id at once; ``batch status --follow`` follows later. A stand-in "worker"
writes the records a worker would (the workers are tested with their own module)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from cname_flow import service
from cname_flow.cli.common import CliState
from cname_flow.config import Settings
from cname_flow.model import Phase
from tests.unit.cli.clikit import BUCKET
from tests.unit.scaleout.submitkit import (
    WorkerWorld,
    bind_at_oss,
    bound,
    dbos_text,
    failed,
    fake_worker,
    key,
    write,
)

DOMAINS = [f"d{i}.example.com" for i in range(4)]


@pytest.fixture
def world(tmp_path: Path, pg_url: str) -> WorkerWorld:
    return WorkerWorld(tmp_path, pg_url)


def test_batch_run_no_wait_prints_the_job_id_with_a_workflow_per_binding(
    world: WorkerWorld,
) -> None:
    result = world.invoke("batch", "run", "-f", str(world.manifest(*DOMAINS)), "--no-wait")
    assert result.exit_code == 0, result.output
    job_id = result.stdout.strip()
    rows = world.workflows(job_id)
    assert sorted(r.input["args"][0]["domain"] for r in rows) == DOMAINS
    assert world.oss.list_cnames(BUCKET) == []          # nothing was bound here
    assert f"cname-flow batch status {job_id} --follow" in result.stderr
    # `batch status` reads a worker job from the store like any other
    shown = world.invoke("batch", "status", job_id, "--json")
    assert shown.exit_code == 0, shown.output
    info = json.loads(shown.stdout)
    assert info["meta"]["mode"] == "workers" and info["counts"]["pending"] == 0
    assert info["job_id"] == job_id


def test_batch_status_follow_ends_with_the_batch_exit_code(world: WorkerWorld) -> None:
    job_id = world.invoke("batch", "run", "-f", str(world.manifest(*DOMAINS)),
                          "--no-wait").stdout.strip()
    write(world.settings, *(bound(key(d)) for d in DOMAINS[:3]), failed(key(DOMAINS[3])))
    followed = world.invoke("batch", "status", job_id, "--follow", "--json")
    assert followed.exit_code == 1, followed.output
    report = json.loads(followed.stdout)
    assert report["counts"]["bound"] == 3 and report["counts"]["failed"] == 1
    assert report["job_id"] == job_id


def test_batch_run_follows_the_workers_to_the_end(world: WorkerWorld) -> None:
    with fake_worker(world, lambda k: [bound(k)]) as handled:
        result = world.invoke("batch", "run", "-f", str(world.manifest(*DOMAINS)), "--json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["counts"]["bound"] == len(DOMAINS) and report["status"] == "ok"
    assert sorted(handled) == sorted(key(d) for d in DOMAINS)


def test_batch_run_refuses_a_bad_manifest_before_submitting(world: WorkerWorld) -> None:
    manifest = world.tmp / "bad.yaml"
    manifest.write_text("bindings:\n  - domain: a.example.com\n    bucket: nosuchbucket\n",
                        encoding="utf-8")
    result = world.invoke("batch", "run", "-f", str(manifest), "--no-wait")
    assert result.exit_code == 2, result.output
    assert "bad.yaml:2" in result.output and "NoSuchBucket" in result.output
    with world.client() as client:
        assert client.list_workflows() == []


def test_bind_is_a_job_of_one_with_the_local_output_and_exit_code(world: WorkerWorld) -> None:
    def bind_it(k: str) -> list[object]:
        bind_at_oss(world, k)
        return [bound(k)]

    with fake_worker(world, bind_it):  # type: ignore[arg-type]
        result = world.invoke("bind", "www.example.com")
    assert result.exit_code == 0, result.output
    assert "bound www.example.com → examplebucket" in result.stdout


def test_bind_fails_with_the_failing_steps_error(world: WorkerWorld) -> None:
    with fake_worker(world, lambda k: [failed(k, "CnameTaken")]):
        result = world.invoke("bind", "www.example.com")
    assert result.exit_code == 1, result.output
    assert "CnameTaken" in result.stderr and "put_cname" in result.stderr


def test_bind_no_wait_returns_at_once(world: WorkerWorld) -> None:
    result = world.invoke("bind", "www.example.com", "--no-wait")
    assert result.exit_code == 0, result.output
    job_id = result.stdout.strip()
    assert job_id.startswith("bind-")
    assert [r.input["args"][0]["domain"] for r in world.workflows(job_id)] == ["www.example.com"]


def test_no_wait_without_workers_is_refused(tmp_path: Path) -> None:
    from tests.unit.cli.clikit import CliWorld

    local = CliWorld(tmp_path)
    result = local.invoke("bind", "www.example.com", "--no-wait")
    assert result.exit_code == 2, result.output
    assert "--no-wait needs workers" in result.output


def test_reconcile_apply_submits_the_fixes_within_the_change_budget(world: WorkerWorld) -> None:
    manifest = str(world.manifest(*DOMAINS))
    over = world.invoke("reconcile", "-f", manifest, "--apply", "--max-changes", "2",
                        "--no-wait")
    assert over.exit_code == 3, over.output          # refused before anything was submitted
    with world.client() as client:
        assert client.list_workflows() == []
    result = world.invoke("reconcile", "-f", manifest, "--apply", "--max-changes", "4",
                          "--no-wait")
    assert result.exit_code == 0, result.output
    job_id = result.stdout.strip().splitlines()[-1]
    assert job_id.startswith("reconcile-")
    assert sorted(r.input["args"][0]["domain"] for r in world.workflows(job_id)) == DOMAINS


def test_reconcile_apply_follows_the_fixes(world: WorkerWorld) -> None:
    def bind_it(k: str) -> list[object]:
        bind_at_oss(world, k)
        return [bound(k)]

    with fake_worker(world, bind_it):  # type: ignore[arg-type]
        result = world.invoke("reconcile", "-f", str(world.manifest(*DOMAINS[:2])), "--apply",
                              "--max-changes", "2", "--json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert [r["status"] for r in report["results"]] == ["fixed", "fixed"]
    with service.open_store(world.settings) as store:
        assert {store.get(key(d)).phase for d in DOMAINS[:2]} == {Phase.BOUND}  # type: ignore[union-attr]


def test_no_secret_reaches_dbos_or_the_output(tmp_path: Path, pg_url: str,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    sentinel_secret, sentinel_password = "SENTINEL-SECRET-8d1f", "SENTINEL-PW-77aa"
    user, _, rest = pg_url.partition("@")
    world = WorkerWorld(tmp_path, f"{user}:{sentinel_password}@{rest}")
    monkeypatch.setenv("OSS_ACCESS_KEY_ID", "LTAIsentinelid")
    monkeypatch.setenv("OSS_ACCESS_KEY_SECRET", sentinel_secret)
    resolved: list[str] = []

    def clients(settings: Settings) -> service.Clients:
        resolved.append(service.credentials(settings).access_key_secret)  # as the real one
        return world.clients(settings)

    from click.testing import CliRunner

    from cname_flow.cli import main

    outputs: list[str] = []
    for args in (["batch", "run", "-f", str(world.manifest(*DOMAINS)), "--no-wait"],
                 ["bind", "www.example.com", "--no-wait"],
                 ["reconcile", "-f", str(world.manifest("z.example.com")), "--apply",
                  "--no-wait"]):
        result = CliRunner().invoke(main, ["--config", str(world.config), *args],
                                    obj=CliState(clients_factory=clients))
        assert result.exit_code == 0, result.output
        outputs.append(result.output)
    assert resolved and set(resolved) == {sentinel_secret}   # the secret was in the process
    persisted = dbos_text(pg_url)
    assert "www.example.com" in persisted                     # the inputs are in there
    for sentinel in (sentinel_secret, sentinel_password):
        assert sentinel not in persisted
        assert all(sentinel not in out for out in outputs)
        for path in (tmp_path / "journal").rglob("*"):
            if path.is_file():
                assert sentinel not in path.read_text(encoding="utf-8", errors="replace")


def test_ctrl_c_while_following_leaves_the_job_to_the_workers(
    world: WorkerWorld, monkeypatch: pytest.MonkeyPatch,
) -> None:
    import functools

    from cname_flow.scaleout import routing
    from cname_flow.scaleout.submit import follow

    def ctrl_c(seconds: float) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(routing, "follow", functools.partial(follow, sleep=ctrl_c))
    result = world.invoke("batch", "run", "-f", str(world.manifest(*DOMAINS)))
    assert result.exit_code == 130, result.output
    job_id = world.invoke("batch", "list", "--json")
    listed = json.loads(job_id.stdout)["jobs"]
    assert len(listed) == 1
    job = listed[0]["job_id"]
    assert f"stopped following job {job}; it goes on in the workers" in result.stderr
    assert f"cname-flow batch status {job} --follow" in result.stderr
    assert {r.status for r in world.workflows(job)} == {"ENQUEUED"}


def test_a_launched_dbos_worker_runs_what_batch_run_submits(world: WorkerWorld) -> None:
    import os
    import subprocess
    import sys
    import time

    root = Path(__file__).resolve().parents[3]
    host = subprocess.Popen(
        [sys.executable, "-m", "tests.unit.scaleout.bind_host", world.pg_url,
         str(world.config), "60"],
        cwd=root, env={**os.environ, "PYTHONPATH": str(root)}, stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, text=True)
    try:
        assert host.stdout is not None and host.stdout.readline().strip() == "launched"
        result = world.invoke("batch", "run", "-f", str(world.manifest(*DOMAINS)), "--json")
        job_id = json.loads(result.stdout)["job_id"] if result.exit_code == 0 else ""
        deadline = time.monotonic() + 20    # the workflows return just after their record
        while time.monotonic() < deadline and {
                r.status for r in world.workflows(job_id)} != {"SUCCESS"}:
            time.sleep(0.1)
    finally:
        host.terminate()
        _, err = host.communicate(timeout=60)
    assert result.exit_code == 0, (result.output, err[-2000:])
    report = json.loads(result.stdout)
    assert report["counts"]["bound"] == len(DOMAINS)
    rows = world.workflows(job_id)
    assert {r.status for r in rows} == {"SUCCESS"}            # run by the worker, not here
    assert {r.executor_id for r in rows} == {"stand-in"}
    assert sorted(r.output for r in rows) == sorted(key(d) for d in DOMAINS)

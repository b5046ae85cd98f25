"""Three real ``cname-flow worker`` processes over a real PostgreSQL and the sandbox: 300
bindings enqueued through DBOS's client, one worker SIGKILLed mid-way and never restarted (its
bindings are recovered by a survivor once its heartbeat lapses); then PostgreSQL restarted under
load. Checked at the sandbox: every domain bound, exactly one TXT record and one token each, no
sliding second with more calls of an API than its limit."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import psycopg
import yaml
from dbos import DBOSClient

import cname_flow
from cname_flow import service
from cname_flow.config import load_settings
from cname_flow.model import Binding
from cname_flow.sandbox.config import BucketConfig, OssLimits, SandboxConfig
from cname_flow.scaleout import spec as specs
from tests.e2e.batch_world import PER_BUCKET, buckets_for
from tests.e2e.bindkit import SandboxEnv, count_calls, sandbox_env, world
from tests.postgres import postgres
from tests.unit.scaleout.test_limits import max_in_window

#: Client-side limits lower than the defaults, so the shared limiter is what paces the run.
RATES = {"AddDomainRecord": 30, "PutCname": 20, "CreateCnameToken": 40}
WATCHED = ("AddDomainRecord", "PutCname", "CreateCnameToken", "DescribeSubDomainRecords")
LAPSE_S = 3.0


def lagging_world(n: int) -> SandboxConfig:
    """Two nameservers, the second 0.3 s behind; buckets for ``n`` domains (100 each, the
    documented CNAME limit per bucket)."""
    base = world(0.0, 0.3)
    return base.model_copy(update={
        "buckets": [*base.buckets, *(BucketConfig(name=b) for b in buckets_for(n))],
        "oss": OssLimits(max_cnames_per_bucket=PER_BUCKET)})


def bindings(prefix: str, n: int) -> list[Binding]:
    """``n`` bindings in zone example.com, :data:`PER_BUCKET` per bucket."""
    names = buckets_for(n)
    return [Binding(domain=f"{prefix}{i:04d}.w.example.com", bucket=names[i // PER_BUCKET],
                    region="") for i in range(n)]


def configure(sb: SandboxEnv, url: str) -> None:
    """Point the sandbox's config at PostgreSQL, with the test's rate limits."""
    cfg = yaml.safe_load(sb.config.read_text(encoding="utf-8"))
    cfg["store"] = {"url": url}
    cfg["batch"] = {"rate_limits": RATES, "concurrency": 16}
    sb.config.write_text(yaml.safe_dump(cfg, sort_keys=False), encoding="utf-8")


def start_worker(sb: SandboxEnv, tmp_path: Path, name: str, *, log_name: str | None = None,
                 lapse_s: float = LAPSE_S, extra: Sequence[str] = ()) -> subprocess.Popen[bytes]:
    """Start ``cname-flow worker --executor-id NAME [EXTRA…]`` and wait for its startup line
    (DBOS creates its tables at the first launch)."""
    log_file = tmp_path / f"{log_name or name}.log"
    with log_file.open("wb") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "cname_flow", "--config", str(sb.config), "worker",
             "--executor-id", name, "--concurrency", "16", "--heartbeat-s", "0.5",
             "--lapse-s", str(lapse_s), *extra],
            env=sb.env, stdout=log, stderr=subprocess.STDOUT)
    end = time.monotonic() + 90
    while f"worker {name}: queue" not in log_file.read_text(errors="replace"):
        assert proc.poll() is None, log_file.read_text(errors="replace")
        assert time.monotonic() < end, log_file.read_text(errors="replace")
        time.sleep(0.1)
    return proc


@contextmanager
def workers(sb: SandboxEnv, tmp_path: Path, names: Sequence[str], *, lapse_s: float = LAPSE_S,
            extra: Sequence[str] = ()) -> Iterator[dict[str, subprocess.Popen[bytes]]]:
    """Start workers; at the end SIGTERM (then kill) every process left in the dict (a test
    adds the ones it starts later)."""
    procs: dict[str, subprocess.Popen[bytes]] = {}
    try:
        for name in names:
            procs[name] = start_worker(sb, tmp_path, name, lapse_s=lapse_s, extra=extra)
        yield procs
    finally:
        for proc in procs.values():
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in procs.values():
            try:
                proc.wait(timeout=40)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def enqueue(url: str, job: str, todo: Sequence[Binding]) -> None:
    client = DBOSClient(system_database_url=url)
    try:
        for binding in todo:
            client.enqueue({"queue_name": specs.BIND_QUEUE, "workflow_name": specs.BIND_WORKFLOW,
                            "workflow_id": specs.workflow_id(job, binding.key),
                            "app_version": cname_flow.__version__},
                           specs.encode(binding, job))
    finally:
        client.destroy()


def statuses(url: str) -> dict[str, int]:
    """DBOS workflow statuses of the binding workflows, counted ({} while PG is down)."""
    try:
        with psycopg.connect(url, connect_timeout=2) as conn:
            rows = conn.execute("SELECT status, count(*) FROM dbos.workflow_status "
                                "WHERE name = %s GROUP BY status",
                                (specs.BIND_WORKFLOW,)).fetchall()
    except psycopg.OperationalError:
        return {}
    return {str(s): int(n) for s, n in rows}


def pending_of(url: str, executor: str) -> int:
    with psycopg.connect(url) as conn:
        row = conn.execute("SELECT count(*) FROM dbos.workflow_status WHERE executor_id = %s "
                           "AND status = 'PENDING'", (executor,)).fetchone()
    return int(row[0]) if row else 0


def wait_for(url: str, n: int, deadline_s: float, procs: dict[str, subprocess.Popen[bytes]],
             tmp_path: Path) -> dict[str, int]:
    end = time.monotonic() + deadline_s
    while time.monotonic() < end:
        counts = statuses(url)
        if counts.get("SUCCESS", 0) + counts.get("ERROR", 0) >= n:
            return counts
        time.sleep(0.5)
    logs = {name: (tmp_path / f"{name}.log").read_text(errors="replace")[-2000:]
            for name in procs}
    raise AssertionError(f"not done after {deadline_s} s: {statuses(url)}; logs: {logs}")


def outputs(url: str) -> dict[str, str]:
    """Workflow id → what each binding workflow returned (DBOS's client decodes it)."""
    with psycopg.connect(url) as conn:
        ids = [str(r[0]) for r in conn.execute(
            "SELECT workflow_uuid FROM dbos.workflow_status WHERE name = %s",
            (specs.BIND_WORKFLOW,))]
    client = DBOSClient(system_database_url=url)
    try:
        return {wid: str(client.retrieve_workflow(wid).get_result()) for wid in ids}
    finally:
        client.destroy()


def store_phases(sb: SandboxEnv, todo: Sequence[Binding]) -> dict[str, int]:
    """How many of ``todo`` the store of record (``store.url``'s) holds in each phase."""
    records = service.read_bindings(load_settings(sb.config, env=sb.env))
    counted: dict[str, int] = {}
    for binding in todo:
        record = records.get(binding.key)
        phase = str(record.phase) if record else "missing"
        counted[phase] = counted.get(phase, 0) + 1
    return counted


def check_sandbox(sb: SandboxEnv, todo: Sequence[Binding],
                  calls: dict[str, list[float]]) -> None:
    for binding in todo:
        domain = binding.domain
        assert sb.sandbox.state.buckets[binding.bucket].cnames[domain].status == "Enabled"
        txt = sb.records(f"_dnsauth.{domain}")
        assert len(txt) == 1, (domain, txt)
        token = sb.token(binding.bucket, domain)
        assert token is not None and txt[0].value.strip('"') == token, domain
    for op, limit in RATES.items():
        assert max_in_window(calls[op]) <= limit, (op, max_in_window(calls[op]))


def test_three_workers_bind_300_domains_with_one_killed(tmp_path: Path) -> None:
    n = 300
    todo = bindings("d", n)
    with postgres() as server, sandbox_env(tmp_path, lagging_world(n)) as sb:
        url = server.create_database()
        configure(sb, url)
        calls = count_calls(sb.sandbox, WATCHED)
        started = time.monotonic()
        with workers(sb, tmp_path, ["w1", "w2", "w3"]) as procs:
            enqueue(url, "job-kill", todo)
            end = time.monotonic() + 120
            while not (statuses(url).get("SUCCESS", 0) >= 60 and pending_of(url, "w2") > 0):
                assert time.monotonic() < end, statuses(url)
                time.sleep(0.1)
            orphaned = pending_of(url, "w2")
            procs["w2"].send_signal(signal.SIGKILL)
            procs["w2"].wait()
            counts = wait_for(url, n, 240, procs, tmp_path)
            elapsed = time.monotonic() - started
            for name in ("w1", "w3"):
                procs[name].send_signal(signal.SIGTERM)
                assert procs[name].wait(timeout=40) == 128 + signal.SIGTERM
        with psycopg.connect(url) as conn:
            claim = conn.execute("SELECT recovered_by FROM cname_flow.executors "
                                 "WHERE executor_id = 'w2'").fetchone()
        results = outputs(url)
        phases = store_phases(sb, todo)
    print(f"\n3 workers, {n} bindings, w2 killed with {orphaned} in flight: {elapsed:.1f} s; "
          f"calls: { {op: len(t) for op, t in calls.items()} }; max per sliding second: "
          f"{ {op: max_in_window(t) for op, t in calls.items()} }")
    assert counts == {"SUCCESS": n}
    assert len(results) == n and set(results.values()) == {"BOUND"}
    assert claim is not None and claim[0] in ("w1", "w3")  # recovered by a survivor
    assert phases == {"BOUND": n}  # the store of record agrees
    check_sandbox(sb, todo, calls)
    # observe-then-act: a step the dead worker had started may run again, but never
    # writes again: one TXT record per domain (above), and few extra writes at all
    assert len(calls["AddDomainRecord"]) == n
    assert n <= len(calls["PutCname"]) <= n + orphaned


def test_postgres_restarted_mid_job_loses_nothing(tmp_path: Path) -> None:
    n = 120
    todo = bindings("r", n)
    with postgres() as server, sandbox_env(tmp_path, lagging_world(n)) as sb:
        url = server.create_database()
        configure(sb, url)
        calls = count_calls(sb.sandbox, WATCHED)
        with workers(sb, tmp_path, ["p1", "p2"]) as procs:
            enqueue(url, "job-restart", todo)
            end = time.monotonic() + 120
            while statuses(url).get("SUCCESS", 0) < 20:
                assert time.monotonic() < end, statuses(url)
                time.sleep(0.1)
            before = statuses(url).get("SUCCESS", 0)
            server.restart()
            counts = wait_for(url, n, 240, procs, tmp_path)
            alive = {name: proc.poll() for name, proc in procs.items()}
        results = outputs(url)
        settings = load_settings(sb.config, env=sb.env)
        phases = store_phases(sb, todo)
    assert before < n  # the restart came mid-job
    assert alive == {"p1": None, "p2": None}  # the workers rode out the restart
    assert counts == {"SUCCESS": n}
    assert set(results.values()) == {"BOUND"}
    assert settings.store.url == url
    assert phases == {"BOUND": n}
    check_sandbox(sb, todo, calls)


def test_a_killed_worker_restarted_with_its_id_finishes_its_bindings(tmp_path: Path) -> None:
    """No survivor (one worker, a lapse far away): the restart itself recovers the pending
    workflows of its executor id (DBOS's recovery at launch)."""
    n = 60
    todo = bindings("k", n)
    with postgres() as server, sandbox_env(tmp_path, lagging_world(n)) as sb:
        url = server.create_database()
        configure(sb, url)
        calls = count_calls(sb.sandbox, WATCHED)
        with workers(sb, tmp_path, ["solo"], lapse_s=600) as procs:
            enqueue(url, "job-restart-worker", todo)
            end = time.monotonic() + 120
            while not (statuses(url).get("SUCCESS", 0) >= 10 and pending_of(url, "solo") > 0):
                assert time.monotonic() < end, statuses(url)
                time.sleep(0.1)
            procs["solo"].send_signal(signal.SIGKILL)
            procs["solo"].wait()
            orphaned = pending_of(url, "solo")
            assert orphaned > 0 and statuses(url).get("SUCCESS", 0) < n
            procs["solo-again"] = start_worker(sb, tmp_path, "solo", log_name="solo-again",
                                               lapse_s=600)
            counts = wait_for(url, n, 240, procs, tmp_path)
        results = outputs(url)
        phases = store_phases(sb, todo)
    assert counts == {"SUCCESS": n}
    assert set(results.values()) == {"BOUND"}
    assert phases == {"BOUND": n}
    check_sandbox(sb, todo, calls)
    assert len(calls["AddDomainRecord"]) == n

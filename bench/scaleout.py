"""Scale-out bench: N bindings over W `cname-flow worker` processes (DBOS over PostgreSQL).

One host: a throwaway PostgreSQL (``tests/postgres.py``, with ``pg_stat_statements`` loaded),
the sandbox in its own process (every API operation answering after 20 ms ± 10 ms, the second
nameserver lagging 2 s, the documented Alidns rate limits enforced, 100 domains per bucket),
W worker processes, and one `batch run` process that submits the manifest and follows it to the
end (worker mode: ``store.url`` set).

Printed per run: the makespan (the follower's ``elapsed_s``: from submission to the last
binding BOUND) against the physical bound of ``bench/batch.py`` (the slowest rate-limited
action's calls ÷ its rate, plus the nameserver lag, plus one round trip), PostgreSQL statements
per binding (``pg_stat_statements``: every round trip the workers, the store and DBOS made),
PostgreSQL transactions per binding, the workers' CPU per binding (``os.wait4`` after SIGTERM)
and the server's (its processes' ``/proc`` times), and the workers' peak RSS.

``--kill`` runs the same once more with one worker SIGKILLed when half the bindings are BOUND
and not restarted: its bindings finish on the survivors once its heartbeat lapses
(``--lapse-s``), which the makespan then includes.

Usage: ``python bench/scaleout.py [--n 10000] [--workers 4] [--kill | --kill-only] [--lapse-s 10]
[--top 12]``
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import psycopg

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from batch import lower_bound, manifest, start_sandbox  # noqa: E402

from cname_flow.config import DEFAULT_RATE_LIMITS  # noqa: E402
from tests.e2e.batch_world import CLI, env_for, write_config  # noqa: E402
from tests.postgres import PostgresServer, postgres  # noqa: E402


def server_cpu_s(server: PostgresServer) -> float:
    """CPU seconds of the server's postmaster and its live children (``/proc``)."""
    pid_file = server.directory / "data" / "postmaster.pid"
    postmaster = int(pid_file.read_text().split()[0])
    tick = os.sysconf("SC_CLK_TCK")
    total = 0.0
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        pid, ppid = int(entry.name), int(fields[1])
        if pid == postmaster or ppid == postmaster:
            total += (int(fields[11]) + int(fields[12])) / tick
    return total


def pg_counters(url: str) -> tuple[int, int]:
    """(statements executed, transactions) so far in the bench's database."""
    with psycopg.connect(url, autocommit=True) as conn:
        calls = conn.execute("SELECT coalesce(sum(calls), 0) FROM pg_stat_statements").fetchone()
        xacts = conn.execute("SELECT xact_commit + xact_rollback FROM pg_stat_database "
                             "WHERE datname = current_database()").fetchone()
    assert calls is not None and xacts is not None
    return int(calls[0]), int(xacts[0])


def top_statements(url: str, limit: int) -> list[tuple[int, str]]:
    """The ``limit`` statements executed most often: (calls, first 110 characters)."""
    with psycopg.connect(url, autocommit=True) as conn:
        rows = conn.execute("SELECT calls, regexp_replace(query, '\\s+', ' ', 'g') "
                            "FROM pg_stat_statements ORDER BY calls DESC LIMIT %s",
                            (limit,)).fetchall()
    return [(int(calls), str(query)[:110]) for calls, query in rows]


def bound_count(url: str) -> int:
    """Bindings BOUND in the store now (0 before the store's tables exist)."""
    with psycopg.connect(url, autocommit=True) as conn:
        try:
            row = conn.execute("SELECT count(*) FROM cname_flow.bindings "
                               "WHERE record->>'phase' = 'BOUND'").fetchone()
        except psycopg.errors.UndefinedTable:
            return 0
    return 0 if row is None else int(row[0])


def start_workers(config: Path, env: dict[str, str], count: int, concurrency: int,
                  lapse_s: float) -> list[subprocess.Popen[bytes]]:
    """``count`` worker processes with stable executor ids ``w1``…"""
    return [subprocess.Popen([*CLI, "--config", str(config), "--json-logs", "worker",
                              "--executor-id", f"w{i + 1}", "--concurrency", str(concurrency),
                              "--heartbeat-s", "2", "--lapse-s", str(lapse_s)],
                             env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                             cwd=ROOT) for i in range(count)]


def stop_workers(workers: list[subprocess.Popen[bytes]]) -> tuple[float, float]:
    """SIGTERM every live worker; (CPU seconds of all, peak RSS MB of the largest)."""
    cpu, rss = 0.0, 0.0
    for proc in workers:
        if proc.returncode is None:
            proc.send_signal(signal.SIGTERM)
    for proc in workers:
        try:
            _, _, usage = os.wait4(proc.pid, 0)
        except ChildProcessError:
            continue
        cpu += usage.ru_utime + usage.ru_stime
        rss = max(rss, usage.ru_maxrss / 1024)
    return cpu, rss


def run(n: int, workers_n: int, concurrency: int, kill: bool, lapse_s: float,
        top: int = 0) -> dict[str, Any]:
    """One bench run on fresh PostgreSQL, sandbox and workers."""
    with tempfile.TemporaryDirectory(prefix="bench-scaleout-") as tmp_name, \
            postgres("shared_preload_libraries=pg_stat_statements") as server:
        tmp = Path(tmp_name)
        url = server.create_database()
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
        sandbox, info = start_sandbox(n, tmp)
        workers: list[subprocess.Popen[bytes]] = []
        try:
            env = env_for(info) | {"CNAME_FLOW_STORE_URL": url}
            config = write_config(info, tmp / "c.yaml", fast=False)
            names = [f"d{i:05d}.bench.example.com" for i in range(n)]
            manifest_file = manifest(tmp / "m.yaml", names, 0)
            workers = start_workers(config, env, workers_n, concurrency, lapse_s)
            time.sleep(3.0)  # the workers launch DBOS and create their tables
            statements0, xacts0 = pg_counters(url)
            cpu0 = server_cpu_s(server)
            killed: list[float] = []
            if kill:
                def killer() -> None:
                    while bound_count(url) < n // 2:
                        time.sleep(0.5)
                    workers[0].send_signal(signal.SIGKILL)
                    killed.append(time.monotonic())
                threading.Thread(target=killer, daemon=True).start()
            started = time.monotonic()
            proc = subprocess.run([*CLI, "--config", str(config), "--json-logs", "batch", "run",
                                   "-f", str(manifest_file), "--json"], env=env,
                                  capture_output=True, text=True, cwd=ROOT, check=False)
            wall = time.monotonic() - started
            statements1, xacts1 = pg_counters(url)
            server_cpu = server_cpu_s(server) - cpu0
            tops = top_statements(url, top) if top else []
            result: dict[str, Any] = json.loads(proc.stdout) if proc.stdout.strip() else {}
        finally:
            worker_cpu, worker_rss = stop_workers(workers)
            sandbox.terminate()
            sandbox.wait()
    return {"n": n, "exit": proc.returncode, "wall_s": wall, "result": result,
            "statements": statements1 - statements0, "xacts": xacts1 - xacts0,
            "worker_cpu_s": worker_cpu, "worker_rss_mb": worker_rss, "server_cpu_s": server_cpu,
            "killed_at_s": killed[0] - started if killed else None, "top": tops,
            "stderr": proc.stderr[-2000:] if proc.returncode else ""}


def report(label: str, fig: dict[str, Any], bound: tuple[float, str]) -> float:
    """Print one run's figures; returns its makespan over the bound."""
    n, result = fig["n"], fig["result"]
    makespan = float(result.get("elapsed_s", fig["wall_s"]))
    counts = result.get("counts", {})
    ratio = makespan / bound[0]
    print(f"\n== {label}: N = {n} ==")
    print(f"makespan {makespan:.1f} s (follower's wall {fig['wall_s']:.1f} s), "
          f"bound {counts.get('bound', '?')}/{n}, exit {fig['exit']}")
    print(f"  physical bound {bound[0]:.1f} s ({bound[1]}), ratio {ratio:.3f}")
    if fig["killed_at_s"] is not None:
        print(f"  worker w1 SIGKILLed {fig['killed_at_s']:.1f} s after submission (not restarted)")
    print(f"  PostgreSQL: {fig['statements'] / n:.1f} statements and {fig['xacts'] / n:.1f} "
          f"transactions per binding; server CPU {1000 * fig['server_cpu_s'] / n:.1f} ms per "
          f"binding")
    print(f"  workers: CPU {1000 * fig['worker_cpu_s'] / n:.1f} ms per binding (all workers, "
          f"start-up included), peak RSS {fig['worker_rss_mb']:.0f} MB (largest worker)")
    for calls, query in fig["top"]:
        print(f"    {calls / n:6.1f} per binding  {query}")
    if fig["stderr"]:
        print(f"  stderr: {fig['stderr']}")
    return ratio


def main() -> None:
    """Parse arguments, run the bench, print the figures."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=10000)
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--concurrency", type=int, default=64, help="per worker")
    parser.add_argument("--kill", action="store_true",
                        help="also run once with one worker SIGKILLed at half-way")
    parser.add_argument("--kill-only", action="store_true",
                        help="only the run with one worker SIGKILLed at half-way")
    parser.add_argument("--lapse-s", type=float, default=10.0)
    parser.add_argument("--top", type=int, default=0,
                        help="print the N statements PostgreSQL ran most often")
    args = parser.parse_args()
    print(f"bench host: {os.cpu_count()} CPUs; Python {sys.version.split()[0]}; "
          f"{args.workers} workers × concurrency {args.concurrency}")
    bound = lower_bound(args.n, dict(DEFAULT_RATE_LIMITS))
    if not args.kill_only:
        report("all workers", run(args.n, args.workers, args.concurrency, False,
                                  args.lapse_s, args.top), bound)
    if args.kill or args.kill_only:
        report("one worker killed at half-way",
               run(args.n, args.workers, args.concurrency, True, args.lapse_s), bound)


if __name__ == "__main__":
    main()

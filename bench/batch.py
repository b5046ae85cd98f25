"""Batch bench: makespan of `cname-flow batch run` against its lower bound, vs a sequential script.

The sandbox runs in its own process (``cname-flow sandbox serve``) with every API operation
answering after 20 ms ± 10 ms, the second nameserver lagging 2 s, and the documented Alidns rate
limits enforced. Buckets hold 100 domains each (the documented OSS limit), so N = 1,000 uses
10 buckets. The orchestrator is a separate `batch run` process too; its CPU seconds and peak
RSS come from ``os.wait4``. Makespan is the engine's own ``elapsed_s`` (interpreter start-up
and manifest loading excluded); the process wall time is printed beside it.

Physical lower bound (issue 11): the slowest rate-limited action's calls ÷ its rate (calls
needed per binding: 1 CreateCnameToken, 1 PutCname, 1 AddDomainRecord, 1
UpdateDomainRecordRemark, 1 DescribeSubDomainRecords; ListCname is coalesced per bucket and not
counted), plus the nameserver lag (the last TXT record written still has to reach the lagging
nameserver), plus one round trip. The makespan of a one-domain job (the critical path of one
binding) is printed beside it. Also printed: orchestrator CPU per binding, and, when several N
are run, the peak RSS of the largest N over that of the smallest.

Sequential baseline: one binding after another, as users script it today: CreateCnameToken,
AddDomainRecord, poll every nameserver once a second until all serve the token, PutCname,
ListCname. It is measured on a sample of ``--sample`` domains and extrapolated to N (printed
as such).

Usage: ``python bench/batch.py [--n 100 --n 1000] [--sample 20]``
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from cname_flow.config import DEFAULT_RATE_LIMITS  # noqa: E402
from cname_flow.sandbox.app import SandboxInfo  # noqa: E402
from tests.e2e.batch_world import (  # noqa: E402
    CLI,
    buckets_for,
    env_for,
    world,
    write_config,
)

NEEDED_PER_BINDING = {"CreateCnameToken": 1, "PutCname": 1, "AddDomainRecord": 1,
                      "UpdateDomainRecordRemark": 1, "DescribeSubDomainRecords": 1}


def start_sandbox(n: int, tmp: Path) -> tuple[subprocess.Popen[bytes], SandboxInfo]:
    """``cname-flow sandbox serve`` in its own process; returns it and its endpoints."""
    cfg = world(n + 1 + 20 + 1, lag=2.0, latency_ms=20, jitter_ms=10)
    (tmp / "sandbox.yaml").write_text(yaml.safe_dump(cfg.model_dump(mode="json")))
    info_file = tmp / "info.json"
    proc = subprocess.Popen([sys.executable, "-m", "cname_flow", "sandbox", "serve",
                             "--config", str(tmp / "sandbox.yaml"), "--info-file",
                             str(info_file)], stdout=subprocess.DEVNULL, cwd=ROOT)
    while not info_file.exists() or not info_file.read_text().strip():
        if proc.poll() is not None:
            raise SystemExit("sandbox failed to start")
        time.sleep(0.1)
    time.sleep(0.2)
    return proc, SandboxInfo(**json.loads(info_file.read_text()))


def manifest(path: Path, names: list[str], offset: int) -> Path:
    """Bind ``names`` to the buckets of the world, 100 per bucket, starting at slot ``offset``."""
    buckets = buckets_for(offset + len(names))
    entries = [{"domain": d, "bucket": buckets[(offset + i) // 100]}
               for i, d in enumerate(names)]
    path.write_text(yaml.safe_dump({"defaults": {"region": "cn-hangzhou"},
                                    "bindings": entries}))
    return path


def run_batch(config: Path, manifest_file: Path, env: dict[str, str],
              concurrency: int) -> dict[str, Any]:
    """One `batch run` process; its JSON result plus wall time, CPU seconds and peak RSS."""
    started = time.monotonic()
    proc = subprocess.Popen([*CLI, "--config", str(config), "--json-logs", "batch", "run",
                             "-f", str(manifest_file), "--json", "--concurrency",
                             str(concurrency)], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.DEVNULL, cwd=ROOT)
    assert proc.stdout is not None
    out = proc.stdout.read()
    _, status, usage = os.wait4(proc.pid, 0)
    result: dict[str, Any] = json.loads(out)
    result |= {"wall_s": time.monotonic() - started, "cpu_s": usage.ru_utime + usage.ru_stime,
               "rss_mb": usage.ru_maxrss / 1024, "exit": os.waitstatus_to_exitcode(status)}
    return result


#: The bench world's lag of its second nameserver and its API round trip, seconds.
LAG_S, ROUND_TRIP_S = 2.0, 0.020


def lower_bound(n: int, rates: dict[str, float]) -> tuple[float, str]:
    """The slowest action's calls ÷ rate, plus the nameserver lag and one round trip."""
    bounds = {a: n * k / rates[a] for a, k in NEEDED_PER_BINDING.items() if a in rates}
    action = max(bounds, key=lambda a: bounds[a])
    return bounds[action] + LAG_S + ROUND_TRIP_S, f"{action} at its rate + lag + one RTT"


def baseline(config: Path, env: dict[str, str], names: list[str], offset: int) -> dict[str, Any]:
    """The sequential script in its own process, on ``names``."""
    started = time.monotonic()
    proc = subprocess.Popen([sys.executable, __file__, "--baseline-run", str(config),
                             "--offset", str(offset), *names], env=env, cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    out = proc.stdout.read() if proc.stdout else b""
    _, _, usage = os.wait4(proc.pid, 0)
    data: dict[str, Any] = json.loads(out)
    return data | {"wall_s": time.monotonic() - started,
                   "cpu_s": usage.ru_utime + usage.ru_stime, "rss_mb": usage.ru_maxrss / 1024}


def baseline_run(config: Path, offset: int, names: list[str]) -> None:
    """Bind ``names`` one after another with plain SDK calls and 1 s polling; print JSON."""
    import dns.message
    import dns.query
    import dns.rdatatype

    from cname_flow.cli import log
    from cname_flow.config import load_settings
    from cname_flow.service import Clients

    log.configure(json_logs=True, level="error")
    settings = load_settings(config)
    clients = Clients.from_settings(settings)
    addresses = [a for v in settings.propagation.nameserver_addresses.values() for a in v]
    buckets = buckets_for(offset + len(names))
    started, throttled = time.monotonic(), 0
    for i, domain in enumerate(names):
        bucket = buckets[(offset + i) // 100]
        token = clients.oss.create_token(bucket, domain).token
        zone = clients.dns.find_zone(f"_dnsauth.{domain}")
        clients.dns.upsert(zone, f"_dnsauth.{domain}", "TXT", token, 600)
        while True:
            seen = 0
            for address in addresses:
                host, port = address.rsplit(":", 1)
                query = dns.message.make_query(f"_dnsauth.{domain}", dns.rdatatype.TXT)
                answer = dns.query.udp(query, host, port=int(port), timeout=2)
                values = {b"".join(r.strings).decode() for rr in answer.answer for r in rr}
                seen += token in values
            if seen == len(addresses):
                break
            time.sleep(1.0)
        clients.oss.put_cname(bucket, domain)
        assert any(e.domain == domain for e in clients.oss.list_cnames(bucket))
    elapsed = time.monotonic() - started
    print(json.dumps({"bindings": len(names), "elapsed_s": elapsed, "throttled": throttled}))


def report(n: int, batch: dict[str, Any], bound: tuple[float, str], seq: dict[str, Any],
           one: dict[str, Any]) -> None:
    """Print one N's figures."""
    api = batch["api"]
    per = seq["elapsed_s"] / seq["bindings"]
    print(f"\n== N = {n} ==")
    print(f"batch: makespan {batch['elapsed_s']:.1f} s (process wall {batch['wall_s']:.1f} s),"
          f" bound {batch['counts']['bound']}/{n}, exit {batch['exit']}")
    print(f"  lower bound {bound[0]:.1f} s ({bound[1]}), ratio {batch['elapsed_s'] / bound[0]:.2f};"
          f" one binding alone {one['elapsed_s']:.1f} s")
    print(f"  API calls {api['total_calls']}, throttled {api['total_throttled']} "
          f"({100 * api['total_throttled'] / max(1, api['total_calls']):.2f} %),"
          f" journal fsyncs {batch['journal_flushes']}")
    print(f"  orchestrator CPU {batch['cpu_s']:.1f} s ({1000 * batch['cpu_s'] / n:.1f} ms per"
          f" binding, interpreter start-up included), peak RSS {batch['rss_mb']:.0f} MB")
    print(f"  calls: {api['calls']}")
    print(f"sequential baseline: measured {seq['bindings']} bindings in {seq['elapsed_s']:.1f} s"
          f" ({per:.2f} s each); extrapolated to N = {n}: {per * n:.0f} s"
          f" (ratio {per * n / bound[0]:.1f}); CPU {seq['cpu_s']:.1f} s,"
          f" peak RSS {seq['rss_mb']:.0f} MB (for the sample)")


def main() -> None:
    """Parse arguments and run the bench."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, action="append")
    parser.add_argument("--sample", type=int, default=20)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--baseline-run", type=Path)
    parser.add_argument("--offset", type=int, default=0)
    parser.add_argument("names", nargs="*")
    args = parser.parse_args()
    if args.baseline_run:
        return baseline_run(args.baseline_run, args.offset, args.names)
    print(f"bench host: {os.cpu_count()} CPUs; Python {sys.version.split()[0]}; "
          f"resource limit RSS {resource.getrlimit(resource.RLIMIT_AS)[0]}")
    peaks: dict[int, float] = {}
    for n in args.n or [100, 1000]:
        with tempfile.TemporaryDirectory(prefix="bench-batch-") as tmp_name:
            tmp = Path(tmp_name)
            sandbox, info = start_sandbox(n, tmp)
            try:
                env = env_for(info)
                config = write_config(info, tmp / "c.yaml", fast=False)
                one = run_batch(config, manifest(tmp / "one.yaml", ["one.bench.example.com"],
                                                 n), env, 1)
                names = [f"d{i:04d}.bench.example.com" for i in range(n)]
                batch = run_batch(config, manifest(tmp / "m.yaml", names, 0), env,
                                  args.concurrency)
                sample = [f"s{i:04d}.bench.example.com" for i in range(args.sample)]
                seq = baseline(config, env, sample, n + 1)
            finally:
                sandbox.terminate()
                sandbox.wait()
            bound = lower_bound(n, dict(DEFAULT_RATE_LIMITS))
            report(n, batch, bound, seq, one)
            peaks[n] = batch["rss_mb"]
    if len(peaks) > 1:
        small, large = min(peaks), max(peaks)
        print(f"\npeak RSS at N = {large} over N = {small}: {peaks[large] / peaks[small]:.2f}")
    return None


if __name__ == "__main__":
    main()

"""What the sandbox sustains on this machine: signed OSS and Alidns requests/s, DNS queries/s.

The sandbox runs as its own process (``python -m cname_flow sandbox serve``), with the Alidns
rate limits off (so the server is measured, not the limiter), no faults, no lag, and
``example.com`` preloaded with 1,000 ``_dnsauth.d{k}`` TXT records. Load generators
(``bench/load_clients.py``) are separate processes, one per API, signing every request with the
SDK's own signers. Workloads, per API:

* OSS: CreateCnameToken (a new domain), GetCnameToken (a created one), ListCname, in turn;
* Alidns: per 10 requests, AddDomainRecord, DeleteDomainRecord (of an added record) and 8
  DescribeSubDomainRecords (60 adds/s at 600 requests/s: twice the rate Alidns lets a batch
  write);
* DNS: TXT ``_dnsauth.d{k}.example.com`` over UDP, k cycling over 1,000 names (half NXDOMAIN),
  alternating between the two authoritative servers.

Phases (``--seconds`` each, default 5): each API alone and then all three at once, open loop at
the target rate (twice what a 1,000-domain batch needs: 600 OSS req/s, 600 Alidns req/s, 6,000
DNS queries/s; latency counted from each request's due time); then each API alone in closed loop
(fixed concurrency, back to back) for the most it sustains. A rate is *sustained* when at least
98 % of it is achieved with no errors and a p99 under 100 ms (no queue building up).

    .venv/bin/python bench/sandbox_load.py [--seconds 5] [--scale 1.0] [--profile FILE]

``--profile FILE`` repeats the combined phase under ``py-spy record`` (collapsed stacks to FILE)
and prints where the sandbox spends its time. Loopback only; the run stops by itself.
"""

from __future__ import annotations

import argparse
import itertools
import json
import multiprocessing
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from load_clients import (  # noqa: E402
    DNS_NAMES,
    OSS_DOMAINS,
    Job,
    Outcome,
    oss_bucket,
    run_job,
)

from cname_flow.sandbox.config import (  # noqa: E402
    AlidnsLimits,
    BucketConfig,
    OssLimits,
    RecordConfig,
    SandboxConfig,
    ZoneConfig,
)

#: Twice what a 1,000-domain batch needs, per API, requests (queries) per second.
TARGETS = {"oss": 600.0, "alidns": 600.0, "dns": 6000.0}
#: In-flight requests: HTTP connections per generator, DNS queries in closed loop.
CONCURRENCY = {"oss": 32, "alidns": 32, "dns": 64}
#: Sustained means: achieved ≥ this share of the target, no errors, p99 below P99_LIMIT_S.
SUSTAINED_SHARE = 0.98
P99_LIMIT_S = 0.100
#: CNAME token validity in the bench world, seconds (see :func:`sandbox_config`).
TOKEN_VALIDITY_S = 4
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
#: py-spy sampling rate, samples per second (each sample pauses the sandbox briefly).
PROFILE_HZ = 100


def sandbox_config() -> SandboxConfig:
    """The bench world: what a 1,000-domain batch works on, with the rate limiter off.

    Ten buckets of 100 domains; CNAME tokens valid :data:`TOKEN_VALIDITY_S`, so the OSS
    generator, which revisits its 1,000 domains every few seconds, creates a new token each
    time while the buckets never hold more than a batch creates; ``example.com`` with 1,000
    ``_dnsauth.d{k}`` TXT records (even k < 2,000).
    """
    records = [RecordConfig(rr=f"_dnsauth.d{k}", type="TXT", value=f"token-{k}")
               for k in range(0, DNS_NAMES, 2)]
    buckets = sorted({oss_bucket(k) for k in range(OSS_DOMAINS)})
    return SandboxConfig(
        alidns=AlidnsLimits(enforce_rate_limits=False),
        oss=OssLimits(token_validity_s=TOKEN_VALIDITY_S),
        buckets=[BucketConfig(name=name) for name in buckets],
        zones=[ZoneConfig(name="example.com", records=records), ZoneConfig(name="example.com.cn")],
    )


def start_sandbox(tmp: Path) -> tuple[subprocess.Popen[bytes], dict[str, Any]]:
    """Start ``cname-flow sandbox serve`` in its own process; return it and its info file."""
    config, info_file = tmp / "sandbox.yaml", tmp / "info.json"
    config.write_text(yaml.safe_dump(sandbox_config().model_dump(mode="json")))
    proc = subprocess.Popen(
        [sys.executable, "-m", "cname_flow", "sandbox", "serve", "--config", str(config),
         "--info-file", str(info_file)], stdout=subprocess.DEVNULL, cwd=ROOT)
    deadline = time.monotonic() + 30
    while not info_file.exists() or not info_file.read_text().strip():
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            raise SystemExit("the sandbox did not start")
        time.sleep(0.1)
    return proc, json.loads(info_file.read_text())


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far, seconds (``/proc/PID/stat`` fields 14–15)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def busy_seconds() -> float:
    """CPU time spent on this machine so far, all CPUs, seconds (``/proc/stat`` minus idle)."""
    ticks = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:9]]
    return (sum(ticks) - ticks[3] - ticks[4]) / CLOCK_TICKS


_PHASE_NUMBERS = itertools.count()


def _ready(_: int) -> None:
    """A no-op task: returns once a pool worker has finished importing."""


@dataclass(frozen=True, slots=True)
class Phase:
    """One phase's outcomes (one per API) and CPU use in % of one core while it ran.

    ``others`` is what processes other than the sandbox and the generators used (other work on
    the machine competing for the two cores).
    """

    name: str
    outcomes: list[Outcome]
    sandbox: float
    others: float
    sandbox_cpu_s: float

    @property
    def cost_us(self) -> float:
        """Sandbox CPU per successful request (all APIs of the phase), microseconds."""
        served = sum(len(out.latencies) for out in self.outcomes)
        return 1e6 * self.sandbox_cpu_s / served if served else float("nan")


def run_phase(name: str, sandbox: int, info: dict[str, Any], rates: dict[str, float | None],
              seconds: float) -> Phase:
    """Run one generator process per API, all starting together; return what they measured."""
    with multiprocessing.get_context("spawn").Pool(len(rates)) as pool:
        pool.map(_ready, range(len(rates)), chunksize=1)
        start_at = time.time() + 0.5
        tag = str(next(_PHASE_NUMBERS))
        jobs = [Job(api, rate, CONCURRENCY[api], seconds, start_at, info, tag + api[0])
                for api, rate in rates.items()]
        pending = pool.map_async(run_job, jobs)
        time.sleep(max(0.0, start_at - time.time()))
        wall, cpu, busy = time.monotonic(), cpu_seconds(sandbox), busy_seconds()
        outcomes = pending.get()
        wall = time.monotonic() - wall
        cpu, busy = cpu_seconds(sandbox) - cpu, busy_seconds() - busy
    others = busy - cpu - sum(out.client_cpu_s for out in outcomes)
    return Phase(name, outcomes, 100 * cpu / wall, 100 * max(0.0, others) / wall, cpu)


def quantile(sorted_values: list[float], q: float) -> float:
    """The q-quantile (nearest rank) of an ascending list; NaN when empty."""
    if not sorted_values:
        return float("nan")
    return sorted_values[min(len(sorted_values) - 1, int(q * len(sorted_values)))]


def summarize(out: Outcome) -> dict[str, Any]:
    """Achieved rate (successes over the time to the last one), p50/p99 (ms), errors, CPU %."""
    lat = sorted(out.latencies)
    span = max(out.seconds, out.last_done)
    return {"achieved": len(lat) / span, "p50": 1000 * quantile(lat, 0.50),
            "p99": 1000 * quantile(lat, 0.99), "errors": sum(out.errors.values()),
            "kinds": out.errors, "client_cpu": 100 * out.client_cpu_s / span}


def sustained(out: Outcome) -> bool:
    """True when the open-loop target was met (see the module docstring)."""
    s = summarize(out)
    return (out.rate is not None and s["achieved"] >= SUSTAINED_SHARE * out.rate
            and s["errors"] == 0 and s["p99"] <= 1000 * P99_LIMIT_S)


HEADER = (f"{'phase':<13} {'api':<7} {'target/s':>8} {'achieved/s':>10} {'p50 ms':>7} "
          f"{'p99 ms':>8} {'errors':>6} {'client':>7} {'sandbox':>8} {'us/req':>7} {'others':>7}")
#: A phase where other processes used more than this share of a core is marked ``*``, %.
BUSY_MACHINE = 20.0


def print_phase(phase: Phase) -> None:
    """One line per API of a phase, then its most frequent errors."""
    for out in phase.outcomes:
        s = summarize(out)
        target = f"{out.rate:8.0f}" if out.rate else f"{'c=' + str(CONCURRENCY[out.api]):>8}"
        verdict = ("ok" if sustained(out) else "NOT MET") if out.rate else ""
        busy = "*" if phase.others > BUSY_MACHINE else " "
        print(f"{phase.name:<13} {out.api:<7} {target} {s['achieved']:10.0f} {s['p50']:7.2f} "
              f"{s['p99']:8.2f} {s['errors']:6d} {s['client_cpu']:6.0f}% {phase.sandbox:7.0f}% "
              f"{phase.cost_us:7.0f} {phase.others:6.0f}%{busy} {verdict}")
        for kind, count in Counter(s["kinds"]).most_common(3):
            print(f"{'':<13}   error {kind}: {count}")


def print_verdict(alone: list[Phase], combined: Phase, scale: float) -> None:
    """Whether the combined target was met, and the CPU it needs at the measured costs."""
    met = all(sustained(out) for out in combined.outcomes)
    needed = sum(p.cost_us * (p.outcomes[0].rate or 0.0) for p in alone) / 1e4
    served = sum(len(out.latencies) for out in combined.outcomes) / combined.outcomes[0].seconds
    print(f"\ncombined target ({scale:g} x twice a 1,000-domain batch): "
          f"{'MET' if met else 'NOT MET'}; load average now {os.getloadavg()[0]:.2f}")
    print(f"sandbox CPU the combined target needs, at each API's cost alone: {needed:.0f}% "
          f"of one core; measured together: {combined.cost_us:.0f} us per answer over "
          f"{served:.0f} answers/s")
    if any(p.others > BUSY_MACHINE for p in [*alone, combined]):
        print(f"* other processes used over {BUSY_MACHINE:g}% of a core during the phase: "
              "throughput and latency there are lower bounds; us/req is still meaningful")


def profile(pid: int, info: dict[str, Any], rates: dict[str, float | None], seconds: float,
            out_file: Path) -> None:
    """Run the combined phase again under ``py-spy record`` and print the hottest frames."""
    spy = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    recorder = subprocess.Popen(
        [spy, "record", "--pid", str(pid), "--duration", str(int(seconds) + 1),
         "--rate", str(PROFILE_HZ), "--format", "raw", "--output", str(out_file)],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    print_phase(run_phase("profiled", pid, info, rates, seconds))
    _, err = recorder.communicate(timeout=seconds + 30)
    if recorder.returncode != 0:
        print(f"py-spy failed: {err.decode(errors='replace').strip()}")
        return
    print_profile(out_file)


def print_profile(path: Path, top: int = 15) -> None:
    """Self and inclusive sample shares per function from py-spy's collapsed stacks."""
    own: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    total = 0
    for line in path.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        frames = [_frame(f) for f in stack.split(";")[1:]]
        if not frames:
            continue
        n = int(count)
        total += n
        own[frames[-1]] += n
        for frame in set(frames):
            inclusive[frame] += n
    print(f"\nsandbox profile ({total} samples at {PROFILE_HZ} Hz, collapsed stacks in {path})")
    for title, table in (("self", own), ("inclusive", inclusive)):
        print(f"  top {top} by {title} time:")
        for frame, n in table.most_common(top):
            print(f"    {100 * n / total:5.1f}%  {frame}")


def _frame(raw: str) -> str:
    """``"fn (path/to/mod.py:12)"`` → ``"fn (to/mod.py)"``: one entry per function."""
    name, _, where = raw.partition(" (")
    path = where.rstrip(")").rsplit(":", 1)[0]
    return f"{name} ({'/'.join(path.split('/')[-2:])})"


def main() -> None:
    """Parse the options, start the sandbox, run every phase and print the table."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=5.0, help="length of each phase")
    parser.add_argument("--scale", type=float, default=1.0, help="multiply the target rates")
    parser.add_argument("--profile", type=Path, help="py-spy the combined phase into this file")
    args = parser.parse_args()
    targets: dict[str, float | None] = {k: v * args.scale for k, v in TARGETS.items()}
    with tempfile.TemporaryDirectory(prefix="sandbox-load-") as tmp:
        proc, info = start_sandbox(Path(tmp))
        try:
            print(f"sandbox pid {proc.pid}; {os.cpu_count()} CPUs; load average "
                  f"{os.getloadavg()[0]:.2f}; {args.seconds:g} s per phase; CPU in % of one core")
            print(HEADER)
            alone = [run_phase(f"{api} alone", proc.pid, info, {api: rate}, args.seconds)
                     for api, rate in targets.items()]
            for phase in alone:
                print_phase(phase)
            combined = run_phase("all three", proc.pid, info, targets, args.seconds)
            print_phase(combined)
            for api in targets:
                print_phase(run_phase("max (closed)", proc.pid, info, {api: None}, args.seconds))
            print_verdict(alone, combined, args.scale)
            if args.profile is not None:
                profile(proc.pid, info, targets, args.seconds, args.profile)
        finally:
            proc.terminate()
            proc.wait(timeout=15)

if __name__ == "__main__":
    main()

"""The shared rate limiter, against a real PostgreSQL: no sliding second over the limit across
processes, throughput near the limit, unlimited actions pass, an unreachable database is a
retryable error."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from pathlib import Path

import pytest

from cname_flow.errors import StepError
from cname_flow.quotas import ApiStats
from cname_flow.scaleout.limits import SharedRateLimiter
from tests.postgres import free_port

ROOT = Path(__file__).resolve().parents[3]

HAMMER = """
import json, sys, time
from cname_flow.scaleout.limits import SharedRateLimiter
url, action, limit, seconds = sys.argv[1], sys.argv[2], float(sys.argv[3]), float(sys.argv[4])
limiter = SharedRateLimiter(url, {action: limit})
limiter.prepare()
start = float(sys.argv[5])
time.sleep(max(0.0, start - time.time()))
grants = []
while time.time() < start + seconds:
    limiter(action)
    grants.append(time.time())
    time.sleep(0.02)  # the call itself: 20 ms
    limiter.done(action)
print(json.dumps([g for g in grants if g < start + seconds]))
"""


def max_in_window(times: Sequence[float], window_s: float = 1.0) -> int:
    """The most timestamps in any sliding window (t - window_s, t] (a window ends at a call)."""
    ts = sorted(times)
    best, j = 0, 0
    for i, t in enumerate(ts):
        while ts[j] <= t - window_s:
            j += 1
        best = max(best, i - j + 1)
    return best


def test_max_in_window_counts_a_sliding_window() -> None:
    assert max_in_window([0.0, 0.5, 0.99, 1.0, 1.2]) == 4  # 0.5 .. 1.2
    assert max_in_window([0.0, 0.4, 1.0, 2.0]) == 2
    assert max_in_window([0.0, 1.0, 2.0]) == 1


def test_threads_of_one_process_keep_to_the_limit(pg_url: str) -> None:
    stats = ApiStats()
    limiter = SharedRateLimiter(pg_url, {"PutCname": 5}, stats)
    times: list[float] = []
    lock = threading.Lock()

    def call() -> None:
        for _ in range(4):
            limiter("PutCname")
            with lock:
                times.append(time.monotonic())
            limiter.done("PutCname")

    threads = [threading.Thread(target=call) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    limiter.close()
    assert len(times) == 16
    assert max_in_window(times) <= 5
    assert stats.calls["PutCname"] == 16
    assert stats.waited_s["PutCname"] > 1.0  # 16 calls at 5/s cannot all go at once


def test_four_processes_hammering_one_api_stay_within_the_limit(pg_url: str) -> None:
    limit, seconds = 40, 5.0
    SharedRateLimiter(pg_url, {"AddDomainRecord": limit}).prepare()
    start = time.time() + 2.0  # every process connected before the first call
    env = {"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"}
    procs = [subprocess.Popen(
        [sys.executable, "-c", HAMMER, pg_url, "AddDomainRecord", str(limit), str(seconds),
         str(start)], stdout=subprocess.PIPE, text=True, env=env) for _ in range(4)]
    grants: list[float] = []
    per_process = []
    for proc in procs:
        out, _ = proc.communicate(timeout=60)
        assert proc.returncode == 0
        mine = json.loads(out)
        per_process.append(len(mine))
        grants.extend(mine)
    worst = max_in_window(grants)
    throughput = len(grants) / seconds
    # steady state: after the first second (whose calls all go at once)
    steady = sum(1 for g in grants if g >= start + 1.0) / (seconds - 1.0)
    print(f"\nshared limiter, 4 processes, limit {limit}/s, calls of 20 ms: {len(grants)} calls "
          f"in {seconds} s = {throughput:.1f}/s ({throughput / limit:.0%}); steady "
          f"{steady:.1f}/s ({steady / limit:.0%}); max in any sliding 1 s window {worst}; "
          f"per process {per_process}")
    assert worst <= limit
    assert steady >= 0.9 * limit
    assert min(per_process) > 0  # every process got grants: one shared budget, not one hog


def test_actions_without_a_rate_pass_and_are_counted(pg_url: str) -> None:
    stats = ApiStats()
    limiter = SharedRateLimiter(pg_url, {"PutCname": 1}, stats)
    started = time.monotonic()
    for _ in range(20):
        limiter("GetBucketInfo")
    assert time.monotonic() - started < 1.0
    assert stats.calls["GetBucketInfo"] == 20
    limiter.close()


def test_a_rate_below_one_spaces_calls_by_its_period(pg_url: str) -> None:
    limiter = SharedRateLimiter(pg_url, {"AddDomain": 0.5}, margin_s=0.0)
    assert limiter.limits["AddDomain"] == (1, 2.0)
    limiter("AddDomain")
    limiter.done("AddDomain")
    started = time.monotonic()
    limiter("AddDomain")
    assert time.monotonic() - started >= 1.8
    limiter.close()


def test_an_unreachable_database_is_a_retryable_step_error() -> None:
    url = f"postgresql://nobody@127.0.0.1:{free_port()}/none"
    limiter = SharedRateLimiter(url, {"PutCname": 10}, outage_s=0.5)
    with pytest.raises(StepError) as caught:
        limiter("PutCname")
    assert caught.value.retryable
    assert "unreachable" in str(caught.value)
    assert "nobody@" not in str(caught.value)


def test_a_bad_rate_is_refused() -> None:
    with pytest.raises(ValueError, match="PutCname"):
        SharedRateLimiter("postgresql://x@127.0.0.1/none", {"PutCname": 0})

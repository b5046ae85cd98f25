"""SIGKILL at random moments (seeded), in `bind` and in `batch`, then a re-run: every domain
bound, exactly one TXT record and one token per domain (issue 11, crash safety of the store).

The moments are drawn from the time a run takes, so they land inside API calls, between a call
and its journal entry, mid-fsync and mid-propagation alike; the step-boundary kills are
``test_bind_kill.py``'s.
"""

from __future__ import annotations

import random
import signal
import time
from pathlib import Path

import pytest

from tests.e2e.bindkit import SandboxEnv, sandbox_env, world
from tests.e2e.test_store import BUCKET, as_json, assert_bound_once, phases, write_manifest

pytestmark = [pytest.mark.e2e, pytest.mark.slow, pytest.mark.usefixtures("no_proxy"),
              pytest.mark.timeout(600)]

#: Kills per test: enough to land in most steps, few enough for CI.
KILLS = 6


def _kill_at(sb: SandboxEnv, delay_s: float, *args: str) -> bool:
    """Start ``cname-flow ARGS``; SIGKILL it after ``delay_s``. False if it ended first."""
    proc = sb.popen(*args)
    ended = time.monotonic() + delay_s
    while time.monotonic() < ended:
        if proc.poll() is not None:
            return False
        time.sleep(0.005)
    proc.send_signal(signal.SIGKILL)
    proc.wait(30)
    return True


def test_bind_killed_at_random_moments_ends_bound_once(tmp_path: Path) -> None:
    rng = random.Random(1101)
    domains = [f"rk{i}.example.com" for i in range(3)]
    with sandbox_env(tmp_path, world(0.0, 1.0)) as sb:
        killed = 0
        for domain in domains:
            for _ in range(KILLS // len(domains)):
                # interpreter start-up takes most of the first ~0.6 s; the flow ~1.5 s more
                killed += _kill_at(sb, rng.uniform(0.4, 2.5), "bind", domain)
            done = sb.cli("bind", domain, "--json")
            assert as_json(done)["phase"] == "BOUND"
            assert_bound_once(sb, domain)
        assert killed >= 1   # how many land depends on the host's speed; at least one did


def test_batch_killed_at_random_moments_resumes_to_every_domain_bound_once(
    tmp_path: Path,
) -> None:
    rng = random.Random(1102)
    names = [f"rb{i}.example.com" for i in range(8)]
    with sandbox_env(tmp_path, world(0.0, 3.0)) as sb:   # a lag long enough for kills to land
        manifest = write_manifest(tmp_path / "m.yaml", names)
        job_file = sb.journal.parent / "jobs" / "rk.jsonl"
        killed = 0
        for _ in range(KILLS):
            # a kill before the job's file exists leaves nothing to resume: start it again
            resuming = job_file.exists()
            args = ("batch", "resume", "rk") if resuming else (
                "batch", "run", "-f", str(manifest), "--job", "rk")
            killed += _kill_at(sb, rng.uniform(0.5, 4.0), *args)
        resumed = as_json(sb.cli("batch", "resume", "rk", "--json", timeout=180))
        assert resumed["counts"]["bound"] == len(names)
        for domain in names:
            assert_bound_once(sb, domain)
        assert phases(sb) == dict.fromkeys(names, "BOUND")
        assert killed >= 1   # how many land depends on the host's speed; at least one did
        assert len(sb.sandbox.state.buckets[BUCKET].cnames) == len(names)

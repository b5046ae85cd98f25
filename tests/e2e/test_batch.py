"""Batch jobs end to end: `cname-flow batch` as a subprocess, the real SDKs, the sandbox.

* a 50-domain job SIGKILLed at five random moments and resumed each time ends with all 50
  bound, exactly one TXT record and one token per domain, and no other record;
* a 200-domain job with 5 % injected API faults, and 10 % "executed, answer lost" faults on
  the writes (CreateCnameToken, PutCname, AddDomainRecord, UpdateDomainRecordRemark), binds
  every domain with one TXT record each, every record claimed (remark, journaled id) so
  `unbind` removes it, and counts exactly the requests the sandbox served;
* SIGTERM stops a job with exit 143 and prints the exact resume command.
"""

from __future__ import annotations

import json
import random
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from cname_flow.dns.base import OWNER_REMARK
from cname_flow.sandbox.app import Sandbox
from cname_flow.sandbox.state import SandboxState
from tests.e2e.batch_world import (
    API_OPS,
    CLI,
    LOST_OPS,
    batch_cli,
    buckets_for,
    domains,
    env_for,
    world,
    write_config,
    write_manifest,
)
from tests.e2e.bindkit import count_calls

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(240)]


@pytest.fixture
def sandbox50() -> Iterator[Sandbox]:
    with Sandbox(world(50, lag=0.2, latency_ms=20, jitter_ms=10)) as sb:
        yield sb


def _zone_records(state: SandboxState, zone: str = "example.com") -> list[tuple[str, str, str]]:
    with state.lock:
        return [(r.rr, r.type, r.value) for r in state.zones[zone].records.values()]


def _assert_all_bound_cleanly(sb: Sandbox, n: int) -> None:
    names = domains(n)
    with sb.state.lock:
        bound = {d for b in buckets_for(n) for d in sb.state.buckets[b].cnames}
        tokens = {b: dict(sb.state.buckets[b].tokens) for b in buckets_for(n)}
    assert bound == set(names)
    assert sum(len(t) for t in tokens.values()) == n  # one token per domain, none extra
    assert all(set(t) <= set(names) for t in tokens.values())
    records = _zone_records(sb.state)
    txt = sorted(rr for rr, rtype, _ in records if rtype == "TXT")
    assert txt == sorted(f"_dnsauth.{d.removesuffix('.example.com')}" for d in names)
    assert [r for r in records if r[1] != "TXT"] == []  # nothing the job did not need
    for b, by_domain in tokens.items():
        values = {v for rr, t, v in records if t == "TXT"}
        assert {tok.token for tok in by_domain.values()} <= values, b


def test_sigkill_five_times_then_resume_binds_all_50_once(sandbox50: Sandbox,
                                                         tmp_path: Path) -> None:
    config = write_config(sandbox50.info, tmp_path / "c.yaml", concurrency=8)
    manifest = write_manifest(tmp_path / "m.yaml", 50)
    env = env_for(sandbox50.info)
    rng = random.Random(20261121)
    kills = 0
    proc = batch_cli(config, "run", "-f", str(manifest), "--job", "kill50", env=env)
    journal = tmp_path / "state" / "jobs" / "kill50.jsonl"
    while not journal.exists() and proc.poll() is None:
        time.sleep(0.05)  # a kill before the job exists would leave nothing to resume
    while kills < 5:
        time.sleep(rng.uniform(0.4, 1.5))
        if proc.poll() is not None:
            break  # finished before this kill: the remaining kills cannot happen
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        kills += 1
        proc = batch_cli(config, "resume", "kill50", "--json", env=env)
    out, err = proc.communicate(timeout=180)
    assert kills >= 3, "the job finished too fast to be killed at most moments"
    assert proc.returncode == 0, err[-2000:]
    assert json.loads(out)["counts"]["bound"] == 50
    _assert_all_bound_cleanly(sandbox50, 50)
    status = batch_cli(config, "status", "kill50", "--json", env=env)
    body, _ = status.communicate(timeout=60)
    assert json.loads(body)["counts"] == {"bound": 50, "failed": 0, "retryable": 0,
                                          "pending": 0}


def test_200_domains_with_api_faults_and_lost_answers_all_bound_and_claimed(
    tmp_path: Path,
) -> None:
    cfg = world(200, lag=0.2, latency_ms=5, jitter_ms=3, error_rate=0.05, lost_rate=0.1)
    with Sandbox(cfg) as sb:
        served = count_calls(sb, API_OPS)
        config = write_config(sb.info, tmp_path / "c.yaml", concurrency=32)
        manifest = write_manifest(tmp_path / "m.yaml", 200)
        env = env_for(sb.info)
        proc = batch_cli(config, "run", "-f", str(manifest), "--job", "faults200", "--json",
                         env=env)
        out, err = proc.communicate(timeout=200)
        injected = dict(sb.faults.injected)
        assert proc.returncode == 0, err[-3000:]
        result = json.loads(out)
        assert result["counts"]["bound"] == 200
        assert sum(injected.values()) > 20  # 5 % of well over 1,000 calls
        for op in LOST_OPS:                 # every write lost some answers after it ran
            assert injected.get(f"{op}:drop_after", 0) + injected.get(f"{op}:error_after", 0) > 0
        _assert_all_bound_cleanly(sb, 200)
        # one retry layer: every request the sandbox served is an attempt the job counted
        assert result["api"]["calls"] == {op: len(t) for op, t in served.items() if t}
        _assert_every_record_claimed(sb, result["bindings"])
        for domain in domains(200)[:3]:     # so unbind removes them
            gone = subprocess.run([*CLI, "--config", str(config), "unbind", "--yes", domain,
                                   "--bucket", buckets_for(200)[0]], env=env, capture_output=True,
                                  text=True, timeout=60, check=False)
            assert gone.returncode == 0, gone.stderr[-2000:]
        txt = {rr for rr, rtype, _ in _zone_records(sb.state) if rtype == "TXT"}
        assert len(txt) == 197
        assert not {f"_dnsauth.{d.removesuffix('.example.com')}" for d in domains(3)} & txt


def _assert_every_record_claimed(sb: Sandbox, bindings: list[dict[str, Any]]) -> None:
    """Each TXT record carries our remark and is the one its binding journaled."""
    with sb.state.lock:
        txt = {r.rr: (r.record_id, r.remark) for r in sb.state.zones["example.com"].records.values()
               if r.type == "TXT"}
    assert {remark for _, remark in txt.values()} == {OWNER_REMARK}
    journaled = {b["domain"]: b["outputs"].get("txt_record_id") for b in bindings}
    assert journaled == {d: txt[f"_dnsauth.{d.removesuffix('.example.com')}"][0]
                         for d in domains(200)}


def test_sigterm_exits_143_with_the_resume_command(tmp_path: Path) -> None:
    with Sandbox(world(20, lag=3.0)) as sb:
        config = write_config(sb.info, tmp_path / "c.yaml")
        manifest = write_manifest(tmp_path / "m.yaml", 20)
        proc = batch_cli(config, "run", "-f", str(manifest), "--job", "term20",
                         env=env_for(sb.info))
        journal = tmp_path / "state" / "jobs" / "term20.jsonl"
        while not journal.exists() and proc.poll() is None:
            time.sleep(0.05)
        time.sleep(1.0)  # every binding is waiting on the lagging nameserver by now
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=60)
        assert proc.returncode == 143
        assert f"cname-flow --config {config} batch resume term20" in err
        resumed = batch_cli(config, "resume", "term20", "--json", env=env_for(sb.info))
        out, err = resumed.communicate(timeout=60)
        assert resumed.returncode == 0, err[-2000:]
        assert json.loads(out)["counts"]["bound"] == 20

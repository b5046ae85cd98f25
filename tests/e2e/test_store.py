"""The store of record end to end: real `cname-flow` processes, the real SDKs, the sandbox.

Every entry point shares one store: `status`, `cert status` and `reconcile` see what `batch run`
made; many `bind` processes run at once (per-binding locks); the same domain bound twice at once
is bound once; a batch killed mid-run resumes from the store; a typo'd bucket breaks nothing
else and can be forgotten; journals of the previous format are folded in.
"""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

from cname_flow.journal import Journal
from tests.e2e.bindkit import SandboxEnv, count_calls, sandbox_env, world
from tests.e2e.test_reconcile_sandbox import cname_config, dns_client, listed, oss_client
from tests.unit.store.test_legacy import V1_BINDINGS, v1_job

pytestmark = [pytest.mark.e2e, pytest.mark.usefixtures("no_proxy"), pytest.mark.timeout(300)]

BUCKET = "examplebucket"


def write_manifest(path: Path, names: list[str]) -> Path:
    doc = {"defaults": {"bucket": BUCKET, "region": "cn-hangzhou"},
           "bindings": [{"domain": d} for d in names]}
    path.write_text(yaml.safe_dump(doc), encoding="utf-8")
    return path


def as_json(done: subprocess.CompletedProcess[str]) -> Any:
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout)


def phases(sb: SandboxEnv) -> dict[str, str]:
    """`cname-flow status --json` as domain → phase."""
    return {r["domain"]: r["phase"] for r in as_json(sb.cli("status", "--json"))["bindings"]}


def assert_bound_once(sb: SandboxEnv, domain: str) -> None:
    """Bound (Enabled), exactly one TXT record holding the one token, one token in the store."""
    assert sb.sandbox.state.buckets[BUCKET].cnames[domain].status == "Enabled"
    token = sb.token(BUCKET, domain)
    assert [r.value for r in sb.records(f"_dnsauth.{domain}")] == [token]
    minted = {e.outputs.get("token") for e in Journal.read_only(sb.journal).events(
        f"{BUCKET}/{domain}")} - {None}
    assert minted == {token}


def store_events(sb: SandboxEnv, key: str) -> list[tuple[str, str]]:
    if not sb.journal.exists():
        return []
    out = []
    for line in sb.journal.read_text().splitlines():
        try:
            event = json.loads(line)
        except json.JSONDecodeError:
            continue  # a line being written
        if event.get("key") == key:
            out.append((event["step"], event["status"]))
    return out


def wait_for_event(sb: SandboxEnv, key: str, event: tuple[str, str],
                   proc: subprocess.Popen[str]) -> None:
    deadline = time.monotonic() + 60
    while event not in store_events(sb, key):
        assert proc.poll() is None, proc.communicate()[1][-2000:]
        assert time.monotonic() < deadline, f"{event} of {key} never recorded"
        time.sleep(0.01)


def make_foreign(sb: SandboxEnv, domain: str) -> None:
    """Bind ``domain`` to the bucket with the SDKs directly: a binding cname-flow did not make."""
    client = oss_client(sb)
    token = client.create_cname_token(oss_request("CreateCnameTokenRequest", domain))
    from alibabacloud_alidns20150109 import models as dns_models

    dns_client(sb).add_domain_record(dns_models.AddDomainRecordRequest(
        domain_name="example.com", rr=f"_dnsauth.{domain.removesuffix('.example.com')}",
        type="TXT", value=token.cname_token.token, ttl=600))
    client.put_cname(oss_request("PutCnameRequest", domain))


def oss_request(name: str, domain: str) -> Any:
    import alibabacloud_oss_v2 as oss

    return getattr(oss, name)(bucket=BUCKET, bucket_cname_configuration=cname_config(domain))


def test_status_cert_and_reconcile_see_what_batch_made(tmp_path: Path) -> None:
    with sandbox_env(tmp_path) as sb:
        names = ["s1.example.com", "s2.example.com"]
        ran = as_json(sb.cli("batch", "run", "-f", str(write_manifest(tmp_path / "m.yaml", names)),
                             "--job", "j1", "--json", timeout=120))
        assert ran["counts"]["bound"] == 2
        assert phases(sb) == dict.fromkeys(names, "BOUND")  # status lists the batch's bindings
        certs = as_json(sb.cli("cert", "status", "--json"))["certificates"]
        assert set(names) <= {row["domain"] for row in certs}
        make_foreign(sb, "foreign.example.com")
        smaller = write_manifest(tmp_path / "small.yaml", ["s1.example.com"])
        planned = sb.cli("reconcile", "-f", str(smaller), "--policy", "sync", "--json")
        assert planned.returncode == 1, planned.stderr[-3000:]  # drift left: plan only
        plan = json.loads(planned.stdout)
        kinds = {(f["key"].split("/")[1], f["kind"]) for f in plan["plan"]["findings"]}
        assert ("s2.example.com", "not_desired") in kinds  # made by cname-flow (the batch)
        assert ("foreign.example.com", "unmanaged") in kinds
        assert not any(d == "s2.example.com" and k == "unmanaged" for d, k in kinds)
        synced = sb.cli("reconcile", "-f", str(smaller), "--apply", "--policy", "sync",
                        "--force", "--json", timeout=120)
        assert synced.returncode == 0, synced.stderr[-3000:]
        now = listed(sb)
        assert "s2.example.com" not in now  # the batch-made binding left the manifest: unbound
        assert "foreign.example.com" in now and "s1.example.com" in now  # never a foreign one
        assert sb.records("_dnsauth.s2.example.com") == []
        assert phases(sb)["s2.example.com"] == "UNBOUND"


def test_eight_binds_at_once_on_eight_domains_all_bind(tmp_path: Path) -> None:
    with sandbox_env(tmp_path, world(0.0, 0.5)) as sb:
        names = [f"p{i}.example.com" for i in range(8)]
        procs = [sb.popen("bind", d, "--json") for d in names]
        results = [(p.communicate(timeout=180), p.returncode) for p in procs]
        for (out, err), code in results:
            assert code == 0, err[-2000:]
            assert json.loads(out)["phase"] == "BOUND"
        for d in names:
            assert_bound_once(sb, d)
        assert phases(sb) == dict.fromkeys(names, "BOUND")


def test_the_same_domain_bound_twice_at_once_is_bound_once(tmp_path: Path) -> None:
    domain = "twice.example.com"
    with sandbox_env(tmp_path, world(0.0, 1.0)) as sb:
        calls = count_calls(sb.sandbox, ["CreateCnameToken", "PutCname"])
        procs = [sb.popen("bind", domain, "--json") for _ in range(2)]
        for proc in procs:
            out, err = proc.communicate(timeout=180)
            assert proc.returncode == 0, err[-2000:]
            assert json.loads(out)["phase"] == "BOUND"
        assert_bound_once(sb, domain)
        assert len(calls["CreateCnameToken"]) == 1 and len(calls["PutCname"]) == 1


def test_a_busy_domain_without_waiting_exits_75_naming_the_holder(tmp_path: Path) -> None:
    domain = "busy.example.com"
    with sandbox_env(tmp_path, world(0.0, 8.0)) as sb:  # the first holds it for 8 s or more
        config = yaml.safe_load(sb.config.read_text(encoding="utf-8"))
        config["journal"]["lock_wait_s"] = 0
        sb.config.write_text(yaml.safe_dump(config), encoding="utf-8")
        first = sb.popen("bind", domain)
        wait_for_event(sb, f"{BUCKET}/{domain}", ("wait_propagation", "running"), first)
        second = sb.cli("bind", domain)
        assert second.returncode == 75
        assert f"binding {BUCKET}/{domain} is in use by pid {first.pid}" in second.stderr
        assert "bind busy.example.com" in second.stderr and "re-run the same command" in \
            second.stderr
        refused = sb.cli("forget", domain)
        assert refused.returncode == 75  # forget refuses while the binding is driven
        other = sb.cli("bind", "free.example.com")  # another domain is not held up
        assert other.returncode == 0, other.stderr[-2000:]
        first.communicate(timeout=120)
        assert first.returncode == 0
        assert_bound_once(sb, domain)


def test_a_bind_of_a_domain_a_batch_drives_waits_and_never_does_it_twice(tmp_path: Path) -> None:
    names = ["w0.example.com", "w1.example.com"]
    with sandbox_env(tmp_path, world(0.0, 1.5)) as sb:
        calls = count_calls(sb.sandbox, ["CreateCnameToken", "PutCname"])
        batch = sb.popen("batch", "run", "-f", str(write_manifest(tmp_path / "m.yaml", names)),
                         "--job", "jw")
        wait_for_event(sb, f"{BUCKET}/w0.example.com", ("write_txt", "done"), batch)
        bound = sb.cli("bind", "w0.example.com", "--json", timeout=120)
        assert json.loads(bound.stdout)["phase"] == "BOUND", bound.stderr[-2000:]
        _, err = batch.communicate(timeout=120)
        assert batch.returncode == 0, err[-2000:]
        for d in names:
            assert_bound_once(sb, d)
        assert len(calls["CreateCnameToken"]) == 2 and len(calls["PutCname"]) == 2


def test_a_batch_killed_mid_run_resumes_from_the_store(tmp_path: Path) -> None:
    names = [f"k{i}.example.com" for i in range(6)]
    with sandbox_env(tmp_path, world(0.0, 1.5)) as sb:
        manifest = write_manifest(tmp_path / "m.yaml", names)
        proc = sb.popen("batch", "run", "-f", str(manifest), "--job", "kill6")
        wait_for_event(sb, f"{BUCKET}/k0.example.com", ("wait_propagation", "running"), proc)
        proc.send_signal(signal.SIGKILL)
        proc.wait(30)
        resumed = as_json(sb.cli("batch", "resume", "kill6", "--json", timeout=180))
        assert resumed["counts"]["bound"] == 6
        for d in names:
            assert_bound_once(sb, d)
        job_file = sb.journal.parent / "jobs" / "kill6.jsonl"
        lines = [json.loads(x) for x in job_file.read_text().splitlines()]
        assert not any("key" in x for x in lines)  # the job holds no binding state
        assert [x["job"] for x in lines if "job" in x] == ["started", "started", "stopped"]
        status = as_json(sb.cli("batch", "status", "kill6", "--json"))
        assert status["counts"]["bound"] == 6
        assert phases(sb) == dict.fromkeys(names, "BOUND")


def test_a_typod_bucket_breaks_no_other_command_and_leaves_no_entry(tmp_path: Path) -> None:
    with sandbox_env(tmp_path) as sb:
        bad = sb.cli("bind", "typo.example.com", "--bucket", "nosuchbucket")
        assert bad.returncode == 2 and "NoSuchBucket" in bad.stderr  # refused before any write
        assert sb.cli("bind", "ok.example.com").returncode == 0
        assert phases(sb) == {"ok.example.com": "BOUND"}  # the refused bind left no entry
        rows = as_json(sb.cli("cert", "status", "--bucket", "nosuchbucket", "--bucket", BUCKET,
                              "--json"))["certificates"]
        [broken] = [r for r in rows if r["bucket"] == "nosuchbucket"]
        assert broken["error"].startswith("NoSuchBucket")
        assert any(r["domain"] == "ok.example.com" for r in rows)
        rows = as_json(sb.cli("cert", "status", "--json"))["certificates"]
        assert {r["bucket"] for r in rows} == {BUCKET}
        unknown = sb.cli("forget", "typo.example.com", "--bucket", "nosuchbucket")
        assert unknown.returncode == 2 and "no entry" in unknown.stderr


def test_unbind_never_bound_writes_nothing_and_a_real_unbind_shows_unbound(
        tmp_path: Path) -> None:
    with sandbox_env(tmp_path) as sb:
        assert as_json(sb.cli("status", "--json"))["bindings"] == []  # fresh machine: exit 0
        never = sb.cli("unbind", "never.example.com")
        assert never.returncode == 0 and "nothing to unbind" in never.stdout
        assert not sb.journal.exists() or "never.example.com" not in sb.journal.read_text()
        assert sb.cli("bind", "u.example.com").returncode == 0
        unbound = sb.cli("unbind", "u.example.com", "--yes")
        assert unbound.returncode == 0 and "DeleteCname" in unbound.stdout
        assert phases(sb) == {"u.example.com": "UNBOUND"}
        assert sb.records("_dnsauth.u.example.com") == []
        pruned = as_json(sb.cli("forget", "--unbound", "--json"))
        assert pruned == {"schema": "cname-flow/forget/v1",
                          "forgotten": [f"{BUCKET}/u.example.com"]}
        assert phases(sb) == {}
        rebound = as_json(sb.cli("bind", "u.example.com", "--json"))
        assert rebound["phase"] == "BOUND"


def test_journals_of_the_previous_format_are_folded_in_and_shown(tmp_path: Path) -> None:
    with sandbox_env(tmp_path) as sb:
        sb.journal.parent.mkdir(parents=True)
        shutil.copy(V1_BINDINGS, sb.journal)  # bindings.jsonl as version 1 wrote it
        v1_job(sb.journal.parent / "jobs" / "old-job.jsonl")  # a job of version 1
        shown = phases(sb)
        assert shown["www.example.com"] == "BOUND"  # the one-shot binding
        assert shown["j1.example.com"] == "BOUND"  # and the job's
        assert json.loads(sb.journal.read_text().splitlines()[0])["version"] == 2
        job = as_json(sb.cli("batch", "status", "old-job", "--json"))
        assert job["counts"]["bound"] == 2  # its www is the newer one-shot record, bound
        listed_jobs = as_json(sb.cli("batch", "list", "--json"))
        assert [j["job_id"] for j in listed_jobs["jobs"]] == ["old-job"]

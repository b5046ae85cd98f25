"""End to end: `cname-flow reconcile` as real processes; drift made through the real SDKs."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import alibabacloud_oss_v2 as oss
import pytest
import yaml
from alibabacloud_alidns20150109 import models as dns_models
from alibabacloud_alidns20150109.client import Client as DnsClient
from alibabacloud_tea_openapi import models as open_api_models
from prometheus_client.parser import text_string_to_metric_families

from tests.certgen import make_cert, write_pem
from tests.e2e.bindkit import SandboxEnv, count_calls, sandbox_env, world

pytestmark = [pytest.mark.e2e, pytest.mark.usefixtures("no_proxy")]

BUCKET = "examplebucket"


def run(sb: SandboxEnv, *args: str) -> subprocess.CompletedProcess[str]:
    """``python -m cname_flow --config C reconcile ARGS`` as a real process."""
    return subprocess.run(
        [sys.executable, "-m", "cname_flow", "--config", str(sb.config),
         "reconcile", *args],
        env=sb.env, capture_output=True, text=True, timeout=120, check=False)


def popen(sb: SandboxEnv, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "cname_flow", "--config", str(sb.config),
         "reconcile", *args],
        env=sb.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def report(done: subprocess.CompletedProcess[str]) -> dict[str, Any]:
    assert done.stdout, done.stderr
    data: dict[str, Any] = json.loads(done.stdout)
    return data


def kinds(data: dict[str, Any]) -> set[tuple[str, str]]:
    return {(f["key"].split("/")[1], f["kind"]) for f in data["plan"]["findings"]}


def oss_client(sb: SandboxEnv) -> oss.Client:
    cfg = oss.config.load_default()
    cfg.region = "cn-hangzhou"
    cfg.endpoint = sb.sandbox.info.oss_endpoint
    cfg.credentials_provider = oss.credentials.StaticCredentialsProvider(
        sb.env["OSS_ACCESS_KEY_ID"], sb.env["OSS_ACCESS_KEY_SECRET"])
    return oss.Client(cfg)


def dns_client(sb: SandboxEnv) -> DnsClient:
    return DnsClient(open_api_models.Config(
        access_key_id=sb.env["OSS_ACCESS_KEY_ID"],
        access_key_secret=sb.env["OSS_ACCESS_KEY_SECRET"],
        endpoint=sb.sandbox.info.alidns_endpoint, protocol="HTTP"))


def cname_config(domain: str, cert: Any = None) -> oss.BucketCnameConfiguration:
    cname = oss.Cname(domain=domain, certificate_configuration=cert)
    return oss.BucketCnameConfiguration(cname=cname)


def listed(sb: SandboxEnv) -> dict[str, Any]:
    result = oss_client(sb).list_cname(oss.ListCnameRequest(bucket=BUCKET))
    return {c.domain: c for c in result.cnames or []}


def write_manifest(path: Path, bindings: list[dict[str, Any]]) -> Path:
    path.write_text(yaml.safe_dump({"defaults": {"bucket": BUCKET, "region": "cn-hangzhou"},
                                    "bindings": bindings}), encoding="utf-8")
    return path


@pytest.fixture
def bound(tmp_path: Path) -> Iterator[tuple[SandboxEnv, Path, Any]]:
    """Four bindings made by `reconcile --apply`: plain, with a certificate, keep-TXT, routed."""
    leaf = make_cert(["b.example.com"])
    cert_file, key_file = write_pem(tmp_path, leaf)
    manifest = write_manifest(tmp_path / "desired.yaml", [
        {"domain": "a.example.com"},
        {"domain": "b.example.com", "cert_file": cert_file.name, "key_file": key_file.name},
        {"domain": "c.example.com"},
        {"domain": "d.example.com", "route": True},
    ])
    with sandbox_env(tmp_path) as sb:
        first = run(sb, "-f", str(manifest), "--apply", "--force", "--json")
        assert first.returncode == 0, first.stderr
        assert kinds(report(first)) == {(d, "binding_missing") for d in
                                        ("a.example.com", "b.example.com", "c.example.com",
                                         "d.example.com")}
        yield sb, manifest, leaf


def make_drift(sb: SandboxEnv) -> None:
    """A binding deleted, a certificate swapped, a TXT record removed, a foreign binding added."""
    client = oss_client(sb)
    client.delete_cname(oss.DeleteCnameRequest(bucket=BUCKET,
                                               bucket_cname_configuration=cname_config("a.example.com")))
    other = make_cert(["b.example.com"])
    client.put_cname(oss.PutCnameRequest(bucket=BUCKET, bucket_cname_configuration=cname_config(
        "b.example.com", oss.CertificateConfiguration(certificate=other.cert_pem,
                                                      private_key=other.key_pem, force=True))))
    dns = dns_client(sb)
    [txt] = sb.records("_dnsauth.c.example.com")
    dns.delete_domain_record(dns_models.DeleteDomainRecordRequest(record_id=txt.record_id))
    token = client.create_cname_token(oss.CreateCnameTokenRequest(
        bucket=BUCKET, bucket_cname_configuration=cname_config("e.example.com"))).cname_token.token
    dns.add_domain_record(dns_models.AddDomainRecordRequest(
        domain_name="example.com", rr="_dnsauth.e", type="TXT", value=token, ttl=600))
    client.put_cname(oss.PutCnameRequest(bucket=BUCKET,
                                         bucket_cname_configuration=cname_config("e.example.com")))


def consent_to_replace_certificate(manifest: Path) -> None:
    """The operator's explicit ``force_cert`` for b: its certificate was swapped out of band."""
    doc = yaml.safe_load(manifest.read_text(encoding="utf-8"))
    for b in doc["bindings"]:
        if b["domain"] == "b.example.com":
            b["force_cert"] = True
    manifest.write_text(yaml.safe_dump(doc), encoding="utf-8")


DRIFT = {("a.example.com", "binding_missing"), ("b.example.com", "certificate_mismatch"),
         ("c.example.com", "txt_missing"), ("e.example.com", "unmanaged")}


def test_reconcile_reports_each_drift_kind_then_fixes_what_the_policy_allows(
    bound: tuple[SandboxEnv, Path, Any], tmp_path: Path
) -> None:
    sb, manifest, leaf = bound
    make_drift(sb)
    seen = run(sb, "-f", str(manifest), "--json")
    assert seen.returncode == 1, seen.stderr           # drift left: report only
    assert kinds(report(seen)) == DRIFT
    assert "a.example.com" not in listed(sb)           # nothing was touched
    [cert] = [f for f in report(seen)["plan"]["findings"] if f["kind"] == "certificate_mismatch"]
    assert cert["action"] == "none" and "force_cert" in cert["detail"]   # swapped out of band
    consent_to_replace_certificate(manifest)

    unsafe = run(sb, "-f", str(manifest), "--apply", "--policy", "sync")
    assert unsafe.returncode == 3 and "budget" in unsafe.stderr
    assert "a.example.com" not in listed(sb)

    metrics = tmp_path / "reconcile.prom"
    fixed = run(sb, "-f", str(manifest), "--apply", "--policy", "sync", "--max-changes", "2",
                "--json", "--metrics-file", str(metrics))
    assert fixed.returncode == 0, fixed.stderr
    out = report(fixed)
    assert {(r["key"], r["action"], r["status"]) for r in out["results"]} == {
        (f"{BUCKET}/a.example.com", "bind", "fixed"), (f"{BUCKET}/b.example.com", "bind", "fixed"),
        (f"{BUCKET}/c.example.com", "forget_txt", "fixed")}
    now = listed(sb)
    assert now["a.example.com"].status == "Enabled"
    assert now["b.example.com"].certificate.fingerprint == leaf.fingerprint
    assert "e.example.com" in now                        # sync never unbinds what it did not make

    again = run(sb, "-f", str(manifest), "--json", "--policy", "sync")
    assert again.returncode == 0, again.stderr
    assert kinds(report(again)) == {("e.example.com", "unmanaged")}
    _check_metrics(metrics.read_text(encoding="utf-8"), leaf)


def _check_metrics(text: str, leaf: Any) -> None:
    samples = {(s.name, tuple(sorted(s.labels.items()))): s.value
               for fam in text_string_to_metric_families(text) for s in fam.samples}
    for d in ("a", "b", "c", "d"):
        labels = (("bucket", BUCKET), ("domain", f"{d}.example.com"), ("status", "Enabled"))
        assert samples[("cnameflow_binding_status", labels)] == 1
    expiry = samples[("cnameflow_certificate_expiration_timestamp_seconds",
                      (("bucket", BUCKET), ("domain", "b.example.com")))]
    assert expiry == pytest.approx(leaf.cert.not_valid_after_utc.timestamp())
    assert samples[("cnameflow_reconcile_drift_findings", (("kind", "binding_missing"),))] == 1
    assert samples[("cnameflow_reconcile_drift_findings", (("kind", "certificate_mismatch"),))] == 1
    assert samples[("cnameflow_reconcile_drift_findings", (("kind", "stuck_job"),))] == 0
    assert samples[("cnameflow_reconcile_success", ())] == 1
    assert samples[("cnameflow_reconcile_last_success_timestamp_seconds", ())] > 1e9
    assert samples[("cnameflow_reconcile_duration_seconds", ())] > 0


def test_reviewed_plan_is_applied_exactly_or_refused_after_a_change(
    bound: tuple[SandboxEnv, Path, Any], tmp_path: Path
) -> None:
    sb, manifest, _ = bound
    make_drift(sb)
    consent_to_replace_certificate(manifest)
    plan = tmp_path / "plan.json"
    assert run(sb, "-f", str(manifest), "--plan-out", str(plan)).returncode == 1
    client = oss_client(sb)                              # the world moves on after the review
    client.delete_cname(oss.DeleteCnameRequest(bucket=BUCKET,
                                               bucket_cname_configuration=cname_config("d.example.com")))
    stale = run(sb, "-f", str(manifest), "--apply", "--plan", str(plan), "--force")
    assert stale.returncode == 3 and "state changed" in stale.stderr
    assert "d.example.com" in stale.stderr and "a.example.com" not in listed(sb)

    assert run(sb, "-f", str(manifest), "--plan-out", str(plan)).returncode == 1
    reviewed = json.loads(plan.read_text(encoding="utf-8"))
    applied = run(sb, "-f", str(manifest), "--apply", "--plan", str(plan), "--force", "--json")
    assert applied.returncode == 0, applied.stderr
    done = {(r["key"], r["action"]) for r in report(applied)["results"]}
    assert done == {(a["key"], a["action"]) for a in reviewed["actions"]}
    assert {"a.example.com", "d.example.com"} <= set(listed(sb))


def test_sync_unbinds_only_bindings_it_made_that_left_the_manifest(
    bound: tuple[SandboxEnv, Path, Any], tmp_path: Path
) -> None:
    sb, manifest, _ = bound
    make_drift(sb)                                       # e.example.com: foreign
    consent_to_replace_certificate(manifest)
    smaller = yaml.safe_load(manifest.read_text(encoding="utf-8"))
    smaller["bindings"] = [b for b in smaller["bindings"] if b["domain"] != "c.example.com"]
    manifest.write_text(yaml.safe_dump(smaller), encoding="utf-8")
    kept = run(sb, "-f", str(manifest), "--apply", "--force", "--json")   # upsert-only
    assert ("c.example.com", "undesired_kept") in kinds(report(kept))
    assert "c.example.com" in listed(sb)
    synced = run(sb, "-f", str(manifest), "--apply", "--policy", "sync", "--force", "--json")
    assert synced.returncode == 0, synced.stderr
    assert ("c.example.com", "not_desired") in kinds(report(synced))
    assert "c.example.com" not in listed(sb) and "e.example.com" in listed(sb)


def test_two_runs_started_together_one_works_the_other_exits_75(tmp_path: Path) -> None:
    manifest = write_manifest(tmp_path / "one.yaml", [{"domain": "slow.example.com"}])
    with sandbox_env(tmp_path, world(0.0, 2.0)) as sb:
        calls = count_calls(sb.sandbox, ["PutCname"])
        procs = [popen(sb, "-f", str(manifest), "--apply") for _ in range(2)]
        results = [(p.wait(timeout=120), p.stderr.read() if p.stderr else "") for p in procs]
        codes = sorted(code for code, _ in results)
        assert codes == [0, 75], results
        loser = next(err for code, err in results if code == 75)
        assert "another reconcile run holds" in loser
        assert len(calls["PutCname"]) == 1
        assert listed(sb)["slow.example.com"].status == "Enabled"

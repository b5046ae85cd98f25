"""Unit tests: drift detection, the reconcile plan, budget and staleness, metrics, the lock."""

from __future__ import annotations

import os
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import cast

import pytest
from prometheus_client.parser import text_string_to_metric_families

from cname_flow.cli.common import Outcome, outcome_of
from cname_flow.dns.base import OWNER_REMARK, RecordRef
from cname_flow.errors import InputError, Locked, StalePlan, UnsafePlan
from cname_flow.journal import BindingOutputs, BindingRecord
from cname_flow.model import Binding, BindingOptions, CertificateInfo, CnameEntry, Phase, Step
from cname_flow.reconcile.apply import ItemResult
from cname_flow.reconcile.drift import (
    Action,
    DesiredState,
    DriftKind,
    Finding,
    Observed,
    Policy,
    detect,
)
from cname_flow.reconcile.metrics import previous_success, write_metrics
from cname_flow.reconcile.plan import ReconcilePlan, default_max_changes
from cname_flow.reconcile.run import BindingStatus, ReconcileReport, run_lock

NOW = datetime(2030, 1, 1, tzinfo=UTC)
B = "examplebucket"


def cert(cert_id: str = "1-cn-hangzhou", fp: str = "AA:BB", days: float = 90) -> CertificateInfo:
    return CertificateInfo("CAS", cert_id, "Enabled", fp, NOW - timedelta(days=1),
                           NOW + timedelta(days=days))


def entry(domain: str, status: str = "Enabled", certificate: CertificateInfo | None = None
          ) -> CnameEntry:
    return CnameEntry(domain, status, NOW, certificate)


def record(domain: str, phase: str = "BOUND", age_s: float = 10, **outputs: object
           ) -> BindingRecord:
    ts = NOW - timedelta(seconds=age_s)
    return BindingRecord(f"{B}/{domain}", domain, B, Phase(phase),
                         cast(BindingOutputs, dict(outputs)), Step.FINISH, "done", None, 0, ts, ts)


def txt(record_id: str, remark: str = "") -> RecordRef:
    return RecordRef(record_id, "example.com", "_dnsauth.x", "TXT", "tok", 600, remark)


def obs(domain: str, e: CnameEntry | None = None, *, elsewhere: str | None = None,
        txts: tuple[RecordRef, ...] = (), route: tuple[RecordRef, ...] = (),
        rec: BindingRecord | None = None) -> Observed:
    return Observed(f"{B}/{domain}", e, elsewhere, txts, route, rec)


def desired(*bindings: Binding, certs: dict[str, str] | None = None,
            policy: Policy = Policy.UPSERT_ONLY) -> DesiredState:
    return DesiredState({b.key: b for b in bindings}, certs or {}, 30.0, policy)


def kinds(findings: list[Finding]) -> list[tuple[str, DriftKind, Action]]:
    return [(f.key.split("/")[1], f.kind, f.action) for f in findings]


def test_detect_when_state_matches_reports_nothing() -> None:
    b = Binding("a.example.com", B, "cn-hangzhou")
    assert detect(desired(b), [obs("a.example.com", entry("a.example.com"))], NOW) == []


@pytest.mark.parametrize(("observed", "kind", "action"), [
    (obs("a.example.com"), DriftKind.BINDING_MISSING, Action.BIND),
    (obs("a.example.com", entry("a.example.com", "Disabled")), DriftKind.NOT_ENABLED, Action.BIND),
    (obs("a.example.com", elsewhere="otherbucket"), DriftKind.BOUND_ELSEWHERE, Action.NONE),
    (obs("a.example.com", entry("a.example.com", certificate=cert(days=5))),
     DriftKind.CERTIFICATE_EXPIRING, Action.NONE),
    (obs("a.example.com", entry("a.example.com", certificate=cert(days=-1))),
     DriftKind.CERTIFICATE_EXPIRING, Action.NONE),
    (obs("a.example.com", entry("a.example.com"), rec=record("a.example.com", txt_record_id="9")),
     DriftKind.TXT_MISSING, Action.FORGET_TXT),
    (obs("a.example.com", entry("a.example.com"), rec=record("a.example.com", "TXT_WRITTEN",
                                                              age_s=7200)),
     DriftKind.STUCK_JOB, Action.BIND),
])
def test_detect_each_kind(observed: Observed, kind: DriftKind, action: Action) -> None:
    b = Binding("a.example.com", B, "cn-hangzhou")
    assert kinds(detect(desired(b), [observed], NOW)) == [("a.example.com", kind, action)]


def test_detect_expiring_is_not_reported_above_the_threshold() -> None:
    b = Binding("a.example.com", B, "cn-hangzhou")
    ok = obs("a.example.com", entry("a.example.com", certificate=cert(days=31)))
    assert detect(desired(b), [ok], NOW) == []


def test_detect_certificate_other_than_desired_cas_id() -> None:
    b = Binding("a.example.com", B, "cn-hangzhou")
    state = desired(b, certs={b.key: "2-cn-hangzhou"})
    found = detect(state, [obs("a.example.com", entry("a.example.com", certificate=cert()))], NOW)
    assert kinds(found) == [("a.example.com", DriftKind.CERTIFICATE_MISMATCH, Action.BIND)]
    missing = detect(state, [obs("a.example.com", entry("a.example.com"))], NOW)
    assert kinds(missing) == [("a.example.com", DriftKind.CERTIFICATE_MISMATCH, Action.BIND)]


def test_detect_route_missing_or_wrong_only_for_route_bindings() -> None:
    routed = Binding("w.example.com", B, "cn-hangzhou", options=BindingOptions(route=True))
    plain = Binding("p.example.com", B, "cn-hangzhou")
    wrong = RecordRef("5", "example.com", "w", "CNAME", "old.oss-cn-hangzhou.aliyuncs.com", 600)
    found = detect(desired(routed, plain), [
        obs("w.example.com", entry("w.example.com"), route=(wrong,)),
        obs("p.example.com", entry("p.example.com")),
    ], NOW)
    assert kinds(found) == [("w.example.com", DriftKind.ROUTE_WRONG, Action.BIND)]
    gone = detect(desired(routed), [obs("w.example.com", entry("w.example.com"))], NOW)
    assert kinds(gone) == [("w.example.com", DriftKind.ROUTE_MISSING, Action.BIND)]


def test_undesired_bindings_ours_foreign_and_leftover_txt() -> None:
    ours = record("old.example.com", put_request_id="R1")
    adopted = record("adopted.example.com", put_request_id="R2", fast_path=True)
    left = record("gone.example.com", "PENDING", txt_record_id="77")
    observed = [
        obs("old.example.com", entry("old.example.com"), rec=ours),
        obs("adopted.example.com", entry("adopted.example.com"), rec=adopted),
        obs("foreign.example.com", entry("foreign.example.com")),
        obs("gone.example.com", txts=(txt("77"), txt("88", OWNER_REMARK), txt("99")), rec=left),
    ]
    sync = kinds(detect(desired(policy=Policy.SYNC), observed, NOW))
    assert sync == [
        ("adopted.example.com", DriftKind.UNMANAGED, Action.NONE),
        ("foreign.example.com", DriftKind.UNMANAGED, Action.NONE),
        ("gone.example.com", DriftKind.TXT_LEFTOVER, Action.DELETE_TXT),
        ("old.example.com", DriftKind.NOT_DESIRED, Action.UNBIND),
    ]
    upsert = kinds(detect(desired(), observed, NOW))
    assert ("old.example.com", DriftKind.UNDESIRED_KEPT, Action.NONE) in upsert
    leftover = detect(desired(), observed, NOW)[2]
    assert "77, 88" in leftover.detail and "99" not in leftover.detail


def test_digest_changes_with_observed_state_only() -> None:
    a = obs("a.example.com", entry("a.example.com", certificate=cert()))
    same = obs("a.example.com", entry("a.example.com", certificate=cert()))
    other = obs("a.example.com", entry("a.example.com", certificate=cert(fp="CC:DD")))
    assert a.digest() == same.digest() != other.digest()


def plan(findings: list[Finding], policy: Policy = Policy.SYNC, desired_n: int = 10,
         digest: str = "m1") -> ReconcilePlan:
    return ReconcilePlan("desired.yaml", digest, policy, desired_n, tuple(findings), NOW)


def finding(domain: str, kind: DriftKind, action: Action, digest: str = "d") -> Finding:
    return Finding(f"{B}/{domain}", kind, "detail", action, digest)


def test_plan_actions_are_deduplicated_ordered_and_policy_gated() -> None:
    fs = [finding("a.example.com", DriftKind.BINDING_MISSING, Action.BIND),
          finding("a.example.com", DriftKind.STUCK_JOB, Action.BIND),
          finding("o.example.com", DriftKind.NOT_DESIRED, Action.UNBIND),
          finding("c.example.com", DriftKind.TXT_MISSING, Action.FORGET_TXT),
          finding("x.example.com", DriftKind.BOUND_ELSEWHERE, Action.NONE)]
    assert plan(fs).actions() == [(f"{B}/o.example.com", Action.UNBIND),
                                  (f"{B}/c.example.com", Action.FORGET_TXT),
                                  (f"{B}/a.example.com", Action.BIND)]
    assert plan(fs).changes == 2
    assert plan(fs, Policy.UPSERT_ONLY).changes == 1
    assert plan(fs, Policy.REPORT_ONLY).actions() == []


@pytest.mark.parametrize(("desired_n", "limit"), [(0, 1), (9, 1), (10, 1), (25, 2), (100, 10)])
def test_default_budget_is_ten_percent_at_least_one(desired_n: int, limit: int) -> None:
    assert default_max_changes(desired_n) == limit


def test_budget_refuses_unless_forced() -> None:
    fs = [finding(f"{i}.example.com", DriftKind.BINDING_MISSING, Action.BIND) for i in range(3)]
    with pytest.raises(UnsafePlan, match="3 remote change"):
        plan(fs, desired_n=10).check_budget(None, force=False)
    plan(fs, desired_n=10).check_budget(None, force=True)
    plan(fs, desired_n=10).check_budget(3, force=False)


def test_reviewed_plan_is_stale_when_a_digest_or_the_manifest_differs(tmp_path: Path) -> None:
    fs = [finding("a.example.com", DriftKind.BINDING_MISSING, Action.BIND, "d1")]
    reviewed = plan(fs)
    reviewed.write(tmp_path / "plan.json")
    loaded = ReconcilePlan.read(tmp_path / "plan.json")
    assert loaded == reviewed and (tmp_path / "plan.json").stat().st_mode & 0o777 == 0o600
    loaded.check_same(plan(fs))
    moved = [finding("a.example.com", DriftKind.BINDING_MISSING, Action.BIND, "d2")]
    with pytest.raises(StalePlan, match=f"{B}/a.example.com"):
        loaded.check_same(plan(moved))
    with pytest.raises(StalePlan, match="manifest or the policy"):
        loaded.check_same(plan(fs, digest="m2"))


def test_reading_something_else_as_a_plan_is_an_input_error(tmp_path: Path) -> None:
    (tmp_path / "x.json").write_text('{"version": 9}', encoding="utf-8")
    with pytest.raises(InputError, match="not a reconcile plan"):
        ReconcilePlan.read(tmp_path / "x.json")


def test_report_outcome() -> None:
    f = finding("a.example.com", DriftKind.BINDING_MISSING, Action.BIND)
    notice = finding("e.example.com", DriftKind.UNMANAGED, Action.NONE)
    assert ReconcileReport(plan([notice]), False).outcome() == "clean"
    assert ReconcileReport(plan([f]), False).outcome() == "drift"
    fixed = ItemResult(f.key, Action.BIND, "fixed")
    assert ReconcileReport(plan([f]), True, (fixed,)).outcome() == "clean"
    later = ItemResult(f.key, Action.BIND, "failed", "Throttling", "slow down", retryable=True)
    assert ReconcileReport(plan([f]), True, (later,)).outcome() == "retry"
    hard = ItemResult(f.key, Action.BIND, "failed", "DomainBoundElsewhere", "no")
    assert ReconcileReport(plan([f]), True, (hard,)).outcome() == "drift"


def samples(path: Path) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for fam in text_string_to_metric_families(path.read_text(encoding="utf-8"))
            for s in fam.samples}


def test_metrics_file_carries_the_figures_and_keeps_the_last_success(tmp_path: Path) -> None:
    f = finding("a.example.com", DriftKind.BINDING_MISSING, Action.BIND)
    end = NOW + timedelta(days=40)
    ok = ReconcileReport(plan([f]), True, (ItemResult(f.key, Action.BIND, "fixed"),),
                         (BindingStatus(f.key, "Enabled", end),), 2.5)
    path = tmp_path / "m.prom"
    write_metrics(path, ok, duration_s=2.5, now=1000.0)
    got = samples(path)
    assert got[("cnameflow_binding_status", (("bucket", B), ("domain", "a.example.com"),
                                              ("status", "Enabled")))] == 1
    assert got[("cnameflow_binding_status", (("bucket", B), ("domain", "a.example.com"),
                                              ("status", "missing")))] == 0
    assert got[("cnameflow_certificate_expiration_timestamp_seconds",
                (("bucket", B), ("domain", "a.example.com")))] == end.timestamp()
    assert got[("cnameflow_reconcile_drift_findings", (("kind", "binding_missing"),))] == 1
    assert got[("cnameflow_reconcile_duration_seconds", ())] == 2.5
    assert previous_success(path) == 1000.0
    bad = ItemResult(f.key, Action.BIND, "failed", "NeedVerifyDomainOwnership", "x")
    write_metrics(path, ReconcileReport(plan([f]), True, (bad,)), duration_s=1, now=2000.0)
    got = samples(path)
    failed = ("cnameflow_reconcile_failed_actions", (("code", "NeedVerifyDomainOwnership"),))
    assert got[failed] == 1
    assert got[("cnameflow_reconcile_success", ())] == 0
    assert got[("cnameflow_reconcile_last_success_timestamp_seconds", ())] == 1000.0
    write_metrics(path, None, duration_s=0.1, error_code="LockBusy", now=3000.0)
    assert samples(path)[("cnameflow_reconcile_failed_actions", (("code", "LockBusy"),))] == 1
    assert previous_success(path) == 1000.0


def test_run_lock_refusal_names_the_holder_and_exits_75(tmp_path: Path) -> None:
    with run_lock(tmp_path / "j") as path, pytest.raises(Locked) as caught, \
            run_lock(tmp_path / "j"):
        pass
    assert f"pid {os.getpid()} on host " in caught.value.holder
    assert f"another reconcile run holds {path} (pid {os.getpid()} on host " in str(caught.value)
    assert "cron will try again" in caught.value.hint
    assert outcome_of(caught.value) is Outcome.RETRYABLE
    assert not (tmp_path / "j" / "reconcile.holder").exists()  # forgotten on release


def test_run_lock_is_exclusive_and_released(tmp_path: Path) -> None:
    with run_lock(tmp_path / "j"), pytest.raises(Locked, match="another reconcile run holds"), \
            run_lock(tmp_path / "j"):
        pass
    with run_lock(tmp_path / "j"):
        pass


def test_certificate_swapped_out_of_band_needs_force_cert_to_be_fixed() -> None:
    b = Binding("a.example.com", B, "cn-hangzhou")
    verified = record("a.example.com", status="Enabled", cert_id="1-cn-hangzhou")
    swapped = obs("a.example.com", entry("a.example.com", certificate=cert("3-cn-hangzhou")),
                  rec=verified)
    [held] = detect(desired(b, certs={b.key: "2-cn-hangzhou"}), [swapped], NOW)
    assert (held.kind, held.action) == (DriftKind.CERTIFICATE_MISMATCH, Action.NONE)
    assert "force_cert" in held.detail
    forced = Binding("a.example.com", B, "cn-hangzhou", options=BindingOptions(force_cert=True))
    [fix] = detect(desired(forced, certs={b.key: "2-cn-hangzhou"}), [swapped], NOW)
    assert fix.action == Action.BIND


def test_report_only_counts_undesired_bindings_as_upsert_only_does() -> None:
    """Issue 16: report-only called an undesired binding drift, upsert-only a notice."""
    ours = record("old.example.com", put_request_id="R1")
    observed = [obs("old.example.com", entry("old.example.com"), rec=ours)]
    upsert = kinds(detect(desired(policy=Policy.UPSERT_ONLY), observed, NOW))
    report = kinds(detect(desired(policy=Policy.REPORT_ONLY), observed, NOW))
    assert report == upsert == [("old.example.com", DriftKind.UNDESIRED_KEPT, Action.NONE)]

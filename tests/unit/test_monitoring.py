"""The operator's kit: the exporter's names and carried-over values, the alert rules (promtool
check and promtool's own unit tests), and every alert's runbook anchor in docs/monitoring.md."""

from __future__ import annotations

import re
import shutil
import subprocess
from datetime import UTC, datetime, timedelta
from pathlib import Path

import yaml
from prometheus_client.parser import text_string_to_metric_families

from cname_flow.errors import DnsThrottled
from cname_flow.quotas import ApiStats
from cname_flow.reconcile.apply import ItemResult
from cname_flow.reconcile.drift import Action, DriftKind, Finding, Policy
from cname_flow.reconcile.metrics import NAMES, write_metrics
from cname_flow.reconcile.plan import ReconcilePlan
from cname_flow.reconcile.run import BindingStatus, ReconcileReport

ROOT = Path(__file__).resolve().parents[2]
MONITORING = ROOT / "workflows" / "monitoring"
#: Prometheus's metric name grammar and this project's convention on top of it.
CONVENTION = re.compile(r"^cnameflow_[a-z]+(_[a-z]+)*$")
B = "examplebucket"


def _plan(*findings: Finding) -> ReconcilePlan:
    return ReconcilePlan("desired.yaml", "m1", Policy.UPSERT_ONLY, 10, findings,
                         datetime(2026, 12, 1, tzinfo=UTC))


def samples(path: Path) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for fam in text_string_to_metric_families(path.read_text(encoding="utf-8"))
            for s in fam.samples}


def test_names_follow_the_convention() -> None:
    for name in NAMES:
        assert CONVENTION.match(name), name
        assert not (name.endswith("_total") and "timestamp" in name), name


def test_counters_and_failures_carry_over_runs_and_reset(tmp_path: Path) -> None:
    path = tmp_path / "m.prom"
    api = ApiStats()
    api.count("AddDomainRecord")
    api.count("AddDomainRecord")
    api.count_error("AddDomainRecord", DnsThrottled("slow down", service="alidns",
                                                    code="Throttling.User"))
    write_metrics(path, None, duration_s=1, error_code="Locked", now=1000.0, api=api)
    write_metrics(path, None, duration_s=1, error_code="Locked", now=2000.0, api=api)
    got = samples(path)
    assert got[("cnameflow_reconcile_consecutive_failures", ())] == 2
    assert got[("cnameflow_reconcile_runs_total", (("outcome", "error"),))] == 2
    assert got[("cnameflow_api_requests_total", (("action", "AddDomainRecord"),))] == 4
    assert got[("cnameflow_api_throttled_total", (("action", "AddDomainRecord"),))] == 2
    assert not any(name.endswith("_created") for name, _ in got)  # no per-run creation stamps
    clean = ReconcileReport(_plan(), True)
    write_metrics(path, clean, duration_s=1, now=3000.0)
    got = samples(path)
    assert got[("cnameflow_reconcile_consecutive_failures", ())] == 0
    assert got[("cnameflow_reconcile_last_success_timestamp_seconds", ())] == 3000.0
    assert got[("cnameflow_reconcile_runs_total", (("outcome", "clean"),))] == 1
    assert got[("cnameflow_reconcile_runs_total", (("outcome", "error"),))] == 2
    assert got[("cnameflow_api_requests_total", (("action", "AddDomainRecord"),))] == 4
    assert got[("cnameflow_build_info", (("version", __import__("cname_flow").__version__),))] == 1


def test_ready_status_is_false_while_drift_is_left_on_the_binding(tmp_path: Path) -> None:
    end = datetime(2027, 1, 1, tzinfo=UTC)
    stuck = Finding(f"{B}/a.example.com", DriftKind.CERTIFICATE_EXPIRING, "ends soon",
                    Action.BIND, "d")
    report = ReconcileReport(
        _plan(stuck), True,
        (ItemResult(stuck.key, Action.BIND, "failed", "CertificateConflict"),),
        (BindingStatus(stuck.key, "Enabled", end),
         BindingStatus(f"{B}/b.example.com", "Enabled", end + timedelta(days=1))))
    path = tmp_path / "m.prom"
    write_metrics(path, report, duration_s=1, now=1000.0)
    got = samples(path)

    def ready(domain: str, condition: str) -> float:
        return got[("cnameflow_binding_ready_status",
                    (("bucket", B), ("condition", condition), ("domain", domain)))]

    assert ready("a.example.com", "False") == 1 and ready("a.example.com", "True") == 0
    assert ready("b.example.com", "True") == 1 and ready("b.example.com", "False") == 0
    assert got[("cnameflow_certificate_expiration_timestamp_seconds",
                (("bucket", B), ("domain", "a.example.com")))] == end.timestamp()
    assert got[("cnameflow_reconcile_failed_actions", (("code", "CertificateConflict"),))] == 1


def _promtool(*args: str) -> subprocess.CompletedProcess[str]:
    tool = shutil.which("promtool")
    assert tool, "promtool (Debian package prometheus) is not installed: see .ci/run"
    return subprocess.run([tool, *args], cwd=MONITORING, capture_output=True, text=True,
                          timeout=60, check=False)


def test_promtool_accepts_the_alert_rules() -> None:
    done = _promtool("check", "rules", "alerts.yaml")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "SUCCESS: 8 rules found" in done.stdout


def test_promtool_unit_tests_of_the_alerts_pass() -> None:
    done = _promtool("test", "rules", "alerts-test.yaml")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "SUCCESS" in done.stdout


def test_alerts_name_only_exported_metrics_and_link_a_runbook_that_exists() -> None:
    rules = yaml.safe_load((MONITORING / "alerts.yaml").read_text(encoding="utf-8"))
    docs = (ROOT / "docs" / "monitoring.md").read_text(encoding="utf-8")
    anchors = {re.sub(r"[^a-z0-9 -]", "", h.lower()).replace(" ", "-")
               for h in re.findall(r"^#+ (.+)$", docs, flags=re.M)}
    alerts = [r for g in rules["groups"] for r in g["rules"]]
    assert {"CnameFlowCertificateExpiringSoon", "CnameFlowReconcileStale",
            "CnameFlowReconcileFailing", "CnameFlowDrift", "CnameFlowBindingNotReady",
            "CnameFlowApiThrottled"} <= {a["alert"] for a in alerts}
    for alert in alerts:
        for metric in re.findall(r"cnameflow_[a-z_]+", alert["expr"]):
            assert metric in NAMES, (alert["alert"], metric)
        anchor = alert["annotations"]["runbook_url"].split("#", 1)[1]
        assert anchor in anchors, (alert["alert"], anchor)

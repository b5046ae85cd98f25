"""Prometheus text-format metrics of a reconcile run, for node_exporter's textfile collector.

Rendered by ``prometheus_client`` and written atomically (a temp file ``.<name>.*.tmp`` in the
same directory, then rename, so the collector never reads half a file) with mode ``0644``
whatever the umask: readable by node_exporter, which runs as its own user, and writable by the
owner only (it holds no secret, but nobody else may forge it). The last successful run's
timestamp survives failed runs: it is read back from the previous file.

Metrics (all gauges)::

    cname_flow_binding_status{bucket,domain,status}        1 for the binding's current status
    cname_flow_certificate_expiry_timestamp_seconds{bucket,domain}
    cname_flow_reconcile_drift{kind}                        findings by kind (0 for none)
    cname_flow_reconcile_errors{code}                       failed actions (and a failed run)
    cname_flow_reconcile_remaining_drift                    drift left after the run
    cname_flow_reconcile_duration_seconds
    cname_flow_reconcile_last_run_timestamp_seconds
    cname_flow_reconcile_last_success_timestamp_seconds
    cname_flow_reconcile_success                            1 when no drift is left, else 0
"""

from __future__ import annotations

import time
from collections import Counter
from pathlib import Path

from prometheus_client import CollectorRegistry, Gauge, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from cname_flow.journal.files import replace_file
from cname_flow.reconcile.drift import DriftKind
from cname_flow.reconcile.run import ReconcileReport

PREFIX = "cname_flow"
LAST_SUCCESS = f"{PREFIX}_reconcile_last_success_timestamp_seconds"
STATUSES = ("Enabled", "Disabled", "missing")
#: Permission bits of the metrics file: world-readable for the collector, never world-writable.
METRICS_MODE = 0o644


def previous_success(path: Path) -> float | None:
    """The last-success timestamp (Unix seconds) in an earlier metrics file, or None."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError:
        return None
    try:
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                if sample.name == LAST_SUCCESS:
                    return float(sample.value)
    except ValueError:
        return None
    return None


def write_metrics(path: Path, report: ReconcileReport | None, *, duration_s: float,
                  error_code: str | None = None, now: float | None = None) -> None:
    """Write the run's metrics to ``path`` atomically.

    Args:
        path: the ``.prom`` file (its directory must exist).
        report: the run's report, or None when the run ended in an error before one was made.
        duration_s: wall time of the run, seconds.
        error_code: code of the error that ended the run early (``"Locked"``…), if any.
        now: Unix seconds of the run's end (default: now).

    Raises:
        OSError: the file could not be written (the previous one, if any, is kept whole).
    """
    now = time.time() if now is None else now
    registry = CollectorRegistry()
    success = report is not None and error_code is None and report.outcome() == "clean"
    last_ok = now if success else previous_success(path)
    _gauge(registry, "reconcile_duration_seconds", "Wall time of the last run.").set(duration_s)
    _gauge(registry, "reconcile_last_run_timestamp_seconds", "End of the last run.").set(now)
    _gauge(registry, "reconcile_success", "1 when the last run left no drift.").set(int(success))
    if last_ok is not None:
        _gauge(registry, "reconcile_last_success_timestamp_seconds",
               "End of the last run that left no drift.").set(last_ok)
    errors = _gauge(registry, "reconcile_errors", "Failed actions by error code.", ["code"])
    for code, count in _error_counts(report, error_code).items():
        errors.labels(code=code).set(count)
    if report is not None:
        _report_metrics(registry, report)
    replace_file(path, generate_latest(registry), durable=False, mode=METRICS_MODE)


def _gauge(registry: CollectorRegistry, name: str, doc: str,
           labels: list[str] | None = None) -> Gauge:
    return Gauge(f"{PREFIX}_{name}", doc, labels or [], registry=registry)


def _error_counts(report: ReconcileReport | None, error_code: str | None) -> Counter[str]:
    counts: Counter[str] = Counter()
    if report is not None:
        counts.update(r.code for r in report.results if r.status == "failed")
    if error_code is not None:
        counts[error_code] += 1
    return counts


def _report_metrics(registry: CollectorRegistry, report: ReconcileReport) -> None:
    drift = _gauge(registry, "reconcile_drift", "Findings of the last run by kind.", ["kind"])
    kinds = Counter(f.kind for f in report.plan.findings)
    for kind in DriftKind:
        drift.labels(kind=str(kind)).set(kinds.get(kind, 0))
    _gauge(registry, "reconcile_remaining_drift", "Drift left after the last run.").set(
        len(report.remaining()))
    status = _gauge(registry, "binding_status", "1 for the binding's ListCname status.",
                    ["bucket", "domain", "status"])
    expiry = _gauge(registry, "certificate_expiry_timestamp_seconds",
                    "ValidEndDate of the bound certificate.", ["bucket", "domain"])
    for s in report.statuses:
        bucket, _, domain = s.key.partition("/")
        for name in STATUSES:
            status.labels(bucket=bucket, domain=domain, status=name).set(int(s.status == name))
        if s.cert_not_after is not None:
            expiry.labels(bucket=bucket, domain=domain).set(s.cert_not_after.timestamp())

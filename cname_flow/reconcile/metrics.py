"""Prometheus text-format metrics of a reconcile run, for node_exporter's textfile collector.

Names follow Prometheus's conventions (https://prometheus.io/docs/practices/naming/):
``cnameflow_<subsystem>_<name>_<unit>``, base units, counters ending in ``_total``, times as
``_timestamp_seconds``. They mirror cert-manager's ``certmanager_certificate_expiration_
timestamp_seconds`` and ``certmanager_certificate_ready_status{condition}`` and external-dns's
``external_dns_controller_last_sync_timestamp_seconds`` (next-wave.md §5.1–5.3). Alert rules and a
Grafana dashboard over them: ``workflows/monitoring/``; runbooks: ``docs/monitoring.md``.

Rendered by ``prometheus_client`` (a collector of metric families, exposition by
``generate_latest``) and written atomically (a temp file in the same directory, then rename, so
the collector never reads half a file) with mode ``0644`` whatever the umask. A run sees only
itself, so what must outlive it is read back from the previous file: the last success's
timestamp, the consecutive failures, and every ``_total`` counter (which then only grow, as
Prometheus expects of a counter; a lost file is a counter reset, which ``rate()`` handles).

Metrics::

    cnameflow_build_info{version}                                   1
    cnameflow_reconcile_last_run_timestamp_seconds                  end of the last run
    cnameflow_reconcile_last_success_timestamp_seconds              end of the last clean run
    cnameflow_reconcile_duration_seconds                            wall time of the last run
    cnameflow_reconcile_success                                     1 when no drift was left
    cnameflow_reconcile_consecutive_failures                        runs since the last clean one
    cnameflow_reconcile_runs_total{outcome}                         clean | drift | retry | error
    cnameflow_reconcile_drift_findings{kind}                        findings of the last run
    cnameflow_reconcile_remaining_drift_findings                    drift left after it
    cnameflow_reconcile_failed_actions{code}                        failed fixes by error code
    cnameflow_binding_status{bucket,domain,status}                  1 for the ListCname status
    cnameflow_binding_ready_status{bucket,domain,condition}         1 for True or False
    cnameflow_certificate_expiration_timestamp_seconds{bucket,domain}
    cnameflow_api_requests_total{action}                            attempts sent (all runs)
    cnameflow_api_throttled_total{action}                           throttled answers (all runs)
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.metrics_core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.parser import text_string_to_metric_families

from cname_flow import __version__
from cname_flow.journal.files import replace_file
from cname_flow.quotas import ApiStats
from cname_flow.reconcile.drift import DriftKind
from cname_flow.reconcile.run import ReconcileReport

PREFIX = "cnameflow"
LAST_SUCCESS = f"{PREFIX}_reconcile_last_success_timestamp_seconds"
FAILURES = f"{PREFIX}_reconcile_consecutive_failures"
STATUSES = ("Enabled", "Disabled", "missing")
#: Permission bits of the metrics file: world-readable for the collector, never world-writable.
METRICS_MODE = 0o644
#: Every family the exporter can write (the dashboard test checks its queries against these).
NAMES = tuple(f"{PREFIX}_{name}" for name in (
    "build_info", "reconcile_last_run_timestamp_seconds",
    "reconcile_last_success_timestamp_seconds", "reconcile_duration_seconds",
    "reconcile_success", "reconcile_consecutive_failures",
    "reconcile_runs_total", "reconcile_drift_findings", "reconcile_remaining_drift_findings",
    "reconcile_failed_actions", "binding_status", "binding_ready_status",
    "certificate_expiration_timestamp_seconds", "api_requests_total", "api_throttled_total",
))

#: A sample's identity: name and sorted label pairs.
SampleKey = tuple[str, tuple[tuple[str, str], ...]]


@dataclass(frozen=True)
class Previous:
    """What an earlier metrics file carried over: every sample's value by name and labels."""

    samples: Mapping[SampleKey, float] = field(default_factory=dict)

    def value(self, name: str, **labels: str) -> float | None:
        """The sample ``name{labels}``, or None."""
        return self.samples.get((name, tuple(sorted(labels.items()))))

    def totals(self, name: str, label: str) -> Counter[str]:
        """``label`` value → counter value, for the samples of counter ``name`` (with _total)."""
        out: Counter[str] = Counter()
        for (sample, labels), value in self.samples.items():
            if sample == name and len(labels) == 1 and labels[0][0] == label:
                out[labels[0][1]] = int(value)
        return out


def read_previous(path: Path) -> Previous:
    """The samples of an earlier metrics file; empty when it is missing or unreadable."""
    try:
        text = path.read_text(encoding="utf-8")
        samples = {(s.name, tuple(sorted(s.labels.items()))): float(s.value)
                   for family in text_string_to_metric_families(text) for s in family.samples}
    except (OSError, ValueError):
        return Previous()
    return Previous(samples)


def previous_success(path: Path) -> float | None:
    """The last-success timestamp (Unix seconds) in an earlier metrics file, or None."""
    return read_previous(path).value(LAST_SUCCESS)


def write_metrics(path: Path, report: ReconcileReport | None, *, duration_s: float,
                  error_code: str | None = None, now: float | None = None,
                  api: ApiStats | None = None) -> None:
    """Write the run's metrics to ``path`` atomically.

    Args:
        path: the ``.prom`` file (its directory must exist).
        report: the run's report, or None when the run ended in an error before one was made.
        duration_s: wall time of the run, seconds.
        error_code: code of the error that ended the run early (``"Locked"``…), if any.
        now: Unix seconds of the run's end (default: now).
        api: the run's API attempts and throttled answers per action, added to the totals.

    Raises:
        OSError: the file could not be written (the previous one, if any, is kept whole).
    """
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_RunCollector(read_previous(path), report, duration_s, error_code,
                                    time.time() if now is None else now, api))
    replace_file(path, generate_latest(registry), durable=False, mode=METRICS_MODE)


def _gauge(name: str, doc: str, value: float | None = None,
           labels: Iterable[str] = ()) -> GaugeMetricFamily:
    labels = list(labels)
    if labels:
        return GaugeMetricFamily(f"{PREFIX}_{name}", doc, labels=labels)
    return GaugeMetricFamily(f"{PREFIX}_{name}", doc, value=value)


def _counter(name: str, doc: str, label: str, totals: Counter[str]) -> CounterMetricFamily:
    family = CounterMetricFamily(f"{PREFIX}_{name}", doc, labels=[label])
    for key, value in sorted(totals.items()):
        family.add_metric([key], value)
    return family


@dataclass(eq=False)  # the registry keeps collectors in a dict: hashed by identity
class _RunCollector:
    """One run's metric families (a ``prometheus_client`` custom collector)."""

    previous: Previous
    report: ReconcileReport | None
    duration_s: float
    error_code: str | None
    now: float
    api: ApiStats | None

    def collect(self) -> Iterator[Metric]:
        report, prev = self.report, self.previous
        outcome = "error" if report is None or self.error_code else report.outcome()
        success = outcome == "clean"
        build = _gauge("build_info", "cname-flow's version (always 1).", labels=["version"])
        build.add_metric([__version__], 1)
        yield build
        yield _gauge("reconcile_last_run_timestamp_seconds", "End of the last run.", self.now)
        last_ok = self.now if success else prev.value(LAST_SUCCESS)
        if last_ok is not None:
            yield _gauge("reconcile_last_success_timestamp_seconds",
                         "End of the last run that left no drift.", last_ok)
        yield _gauge("reconcile_duration_seconds", "Wall time of the last run.", self.duration_s)
        yield _gauge("reconcile_success", "1 when the last run left no drift.", int(success))
        failures = 0 if success else int(prev.value(FAILURES) or 0) + 1
        yield _gauge("reconcile_consecutive_failures", "Runs since the last one that left no "
                     "drift (0 after a clean run).", failures)
        runs = prev.totals(f"{PREFIX}_reconcile_runs_total", "outcome")
        runs[outcome] += 1
        yield _counter("reconcile_runs", "Runs by outcome: clean, drift, retry, error.",
                       "outcome", runs)
        failed = _gauge("reconcile_failed_actions", "Failed fixes of the last run by error code "
                        "(and the error that ended a run early).", labels=["code"])
        for code, count in sorted(_error_counts(report, self.error_code).items()):
            failed.add_metric([code], count)
        yield failed
        yield from self._api()
        if report is not None:
            yield from _report_families(report)

    def _api(self) -> Iterator[Metric]:
        calls = self.previous.totals(f"{PREFIX}_api_requests_total", "action")
        throttled = self.previous.totals(f"{PREFIX}_api_throttled_total", "action")
        if self.api is not None:
            calls.update(self.api.calls)
            throttled.update(self.api.throttled)
        yield _counter("api_requests", "API attempts sent (OSS and DNS), every run.", "action",
                       calls)
        yield _counter("api_throttled", "Throttled API answers, every run.", "action", throttled)


def _error_counts(report: ReconcileReport | None, error_code: str | None) -> Counter[str]:
    counts: Counter[str] = Counter()
    if report is not None:
        counts.update(r.code for r in report.results if r.status == "failed")
    if error_code is not None:
        counts[error_code] += 1
    return counts


def _report_families(report: ReconcileReport) -> Iterator[Metric]:
    drift = _gauge("reconcile_drift_findings", "Findings of the last run by kind.",
                   labels=["kind"])
    kinds = Counter(f.kind for f in report.plan.findings)
    for kind in DriftKind:
        drift.add_metric([str(kind)], kinds.get(kind, 0))
    yield drift
    left = report.remaining()
    yield _gauge("reconcile_remaining_drift_findings", "Drift left after the last run.",
                 len(left))
    drifting = {f.key for f in left}
    status = _gauge("binding_status", "1 for the binding's ListCname status.",
                    labels=["bucket", "domain", "status"])
    ready = _gauge("binding_ready_status", "1 for the binding's Ready condition: True when "
                   "ListCname says Enabled and no drift is left on it.",
                   labels=["bucket", "domain", "condition"])
    expiry = _gauge("certificate_expiration_timestamp_seconds",
                    "ValidEndDate of the bound certificate.", labels=["bucket", "domain"])
    for s in report.statuses:
        bucket, _, domain = s.key.partition("/")
        for name in STATUSES:
            status.add_metric([bucket, domain, name], int(s.status == name))
        is_ready = s.status == "Enabled" and s.key not in drifting
        for condition in ("True", "False"):
            ready.add_metric([bucket, domain, condition], int(is_ready == (condition == "True")))
        if s.cert_not_after is not None:
            expiry.add_metric([bucket, domain], s.cert_not_after.timestamp())
    yield status
    yield ready
    yield expiry

"""The Grafana dashboard against a real run: every panel's query names a metric that
`cname-flow reconcile --metrics-file` really writes (a reconcile of the sandbox, real process)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from cname_flow.reconcile.metrics import NAMES
from tests.certgen import make_cert, write_pem
from tests.e2e.bindkit import sandbox_env

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(180), pytest.mark.usefixtures("no_proxy")]

DASHBOARD = Path(__file__).resolve().parents[2] / "workflows" / "monitoring" / \
    "grafana-dashboard.json"


def written_names(text: str) -> set[str]:
    """Every series name the file exposes: samples, and families declared without samples."""
    names = {s.name for f in text_string_to_metric_families(text) for s in f.samples}
    names |= {m.group(1) for m in re.finditer(r"^# TYPE (\S+) ", text, flags=re.M)}
    return names


def test_every_dashboard_query_names_a_metric_a_real_reconcile_writes(tmp_path: Path) -> None:
    leaf = make_cert(["cert.example.com"])
    cert_file, key_file = write_pem(tmp_path, leaf)
    manifest = tmp_path / "desired.yaml"
    manifest.write_text(yaml.safe_dump({"defaults": {"bucket": "examplebucket"}, "bindings": [
        {"domain": "plain.example.com"},
        {"domain": "cert.example.com", "cert_file": cert_file.name, "key_file": key_file.name},
    ]}), encoding="utf-8")
    metrics = tmp_path / "cname_flow.prom"
    with sandbox_env(tmp_path) as sb:
        done = sb.cli("reconcile", "-f", str(manifest), "--apply", "--force",
                      "--metrics-file", str(metrics), timeout=120)
    assert done.returncode == 0, done.stderr
    text = metrics.read_text(encoding="utf-8")
    written = written_names(text)
    assert set(NAMES) <= written, set(NAMES) - written
    samples = {s.name for f in text_string_to_metric_families(text) for s in f.samples}
    # the run really measured: certificates, readiness and API attempts have samples
    assert {"cnameflow_certificate_expiration_timestamp_seconds",
            "cnameflow_binding_ready_status", "cnameflow_api_requests_total"} <= samples

    dashboard = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    queried: set[str] = set()
    for panel in dashboard["panels"]:
        assert panel["targets"], panel["title"]
        for target in panel["targets"]:
            names = set(re.findall(r"\bcnameflow_[a-z_]+", target["expr"]))
            assert names, (panel["title"], target["expr"])
            assert names <= written, (panel["title"], names - written)
            queried |= names
    # the dashboard shows the alerts' subjects
    assert {"cnameflow_certificate_expiration_timestamp_seconds",
            "cnameflow_reconcile_last_success_timestamp_seconds",
            "cnameflow_binding_ready_status", "cnameflow_api_throttled_total"} <= queried

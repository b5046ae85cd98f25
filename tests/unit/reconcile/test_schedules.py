"""The schedule examples in workflows/schedules load, validate and call reconcile correctly."""

from __future__ import annotations

import configparser
import shlex
from pathlib import Path

import yaml
from croniter import croniter

from cname_flow.cli.reconcile import reconcile
from cname_flow.manifest import load_manifest

ROOT = Path(__file__).resolve().parents[3] / "workflows"
SCHEDULES = ROOT / "schedules"
OPTIONS = {o for p in reconcile.params for o in (*p.opts, *p.secondary_opts)}


def assert_reconcile_call(argv: list[str]) -> None:
    """``argv`` runs ``reconcile`` with a manifest and only options the command knows."""
    args = argv[argv.index("reconcile") + 1:]
    unknown = [a for a in args if a.startswith("-") and a.split("=")[0] not in OPTIONS]
    assert unknown == [], unknown
    assert "-f" in args or "--file" in args


def test_crontab_line_is_valid_cron_and_runs_reconcile() -> None:
    lines = [ln for ln in (SCHEDULES / "crontab").read_text(encoding="utf-8").splitlines()
             if ln.strip() and not ln.startswith("#")]
    assert len(lines) == 1
    fields = lines[0].split(None, 5)
    assert croniter.is_valid(" ".join(fields[:5]))
    command = fields[5].split(">>")[0].split("&&")[-1]
    assert_reconcile_call(shlex.split(command))


def _unit(name: str) -> configparser.ConfigParser:
    parser = configparser.ConfigParser(strict=True, interpolation=None)
    parser.optionxform = str  # type: ignore[assignment,method-assign]
    parser.read_string((SCHEDULES / name).read_text(encoding="utf-8"))
    return parser


def test_systemd_service_is_oneshot_running_reconcile_and_accepting_75() -> None:
    unit = _unit("cname-flow-reconcile.service")
    assert set(unit.sections()) == {"Unit", "Service"}
    service = unit["Service"]
    assert service["Type"] == "oneshot"
    assert "75" in service["SuccessExitStatus"].split()
    assert_reconcile_call(shlex.split(service["ExecStart"]))


def test_systemd_timer_triggers_the_service() -> None:
    timer = _unit("cname-flow-reconcile.timer")
    assert set(timer.sections()) == {"Unit", "Timer", "Install"}
    assert timer["Timer"]["Unit"] == "cname-flow-reconcile.service"
    assert timer["Timer"]["OnCalendar"]
    assert timer["Install"]["WantedBy"] == "timers.target"


def test_cronjob_forbids_concurrency_and_runs_reconcile() -> None:
    doc = yaml.safe_load((SCHEDULES / "cronjob.yaml").read_text(encoding="utf-8"))
    assert (doc["apiVersion"], doc["kind"]) == ("batch/v1", "CronJob")
    spec = doc["spec"]
    assert spec["concurrencyPolicy"] == "Forbid"
    assert croniter.is_valid(spec["schedule"])
    pod = spec["jobTemplate"]["spec"]["template"]["spec"]
    assert pod["restartPolicy"] in ("Never", "OnFailure")
    [container] = pod["containers"]
    assert_reconcile_call([str(a) for a in container["args"]])


def test_actions_workflow_has_a_valid_cron_schedule_and_runs_reconcile() -> None:
    doc = yaml.safe_load((SCHEDULES / "github-actions-reconcile.yml").read_text(encoding="utf-8"))
    triggers = doc[True] if True in doc else doc["on"]  # YAML 1.1 reads a bare `on` as True
    [entry] = triggers["schedule"]
    assert croniter.is_valid(entry["cron"])
    steps = doc["jobs"]["reconcile"]["steps"]
    run = next(s["run"] for s in steps if "reconcile" in s.get("run", ""))
    assert_reconcile_call(shlex.split(run.split("${{")[0]))


def test_reconcile_example_manifest_loads() -> None:
    manifest = load_manifest(ROOT / "reconcile-example.yaml")
    assert len(manifest.bindings) == 4
    assert any(b.options.route for b in manifest.bindings)

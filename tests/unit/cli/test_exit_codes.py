"""The one exit-code table: the mapping itself, the README's table, and every code through real
commands run by click's ``CliRunner`` over the fakes (bind, plan, status, batch run/resume,
reconcile)."""

from __future__ import annotations

import os
import re
import signal
from pathlib import Path

import click
import pytest
from filelock import FileLock

from cname_flow.batch.jobs import JobResult
from cname_flow.cli.common import Outcome, outcome_of
from cname_flow.errors import (
    ConfigError,
    DomainBoundElsewhere,
    InputError,
    Locked,
    StalePlan,
    UnsafePlan,
    ZoneNotFound,
)
from cname_flow.journal import JournalEvent
from cname_flow.journal.records import apply_event
from cname_flow.model import CnameToken, Phase
from cname_flow.reconcile.apply import ItemResult
from cname_flow.reconcile.drift import Action, DriftKind
from cname_flow.reconcile.run import LOCK_NAME, ReconcileReport
from tests.fakes import FakeOss, oss_error
from tests.unit.cli.clikit import BUCKET, CliWorld
from tests.unit.reconcile.test_reconcile import finding, plan

README = Path(__file__).resolve().parents[3] / "README.md"
DOMAIN = "www.example.com"


# -- the mapping, unit by unit ----------------------------------------------------------------

def _job(phase: Phase | None = None, status: str = "done", signum: int | None = None) -> JobResult:
    records = () if phase is None else (
        apply_event(None, JournalEvent(f"{BUCKET}/{DOMAIN}", "x", status,  # type: ignore[arg-type]
                                       phase)),)
    return JobResult("job", Path("job.jsonl"), records, tuple(r.key for r in records), {}, 0.0,
                     interrupted=signum)


def _report(status: str | None, *, retryable: bool = False) -> ReconcileReport:
    """A report with one drift finding, fixed/failed/skipped by ``status`` (None: not applied)."""
    drift = finding("a.example.com", DriftKind.BINDING_MISSING, Action.BIND)
    results = () if status is None else (
        ItemResult(drift.key, Action.BIND, status, retryable=retryable),)
    return ReconcileReport(plan([drift]), status is not None, results)


MAPPING: list[tuple[object, Outcome]] = [
    # exceptions
    (ConfigError(["cname-flow.yaml:3: propagation: unknown key"]), Outcome.USAGE),
    (InputError("bad domain"), Outcome.USAGE),
    (click.UsageError("no such option"), Outcome.USAGE),
    (UnsafePlan("over budget"), Outcome.UNSAFE),
    (StalePlan("state changed"), Outcome.UNSAFE),
    (Locked("reconcile runs"), Outcome.RETRYABLE),
    (Locked("held", holder="pid 7"), Outcome.RETRYABLE),
    (oss_error("InternalError", 500), Outcome.RETRYABLE),
    (oss_error("AccessDenied", 403), Outcome.USAGE),           # a person must grant it
    (ZoneNotFound("no zone", service="alidns", code="ZoneNotFound"), Outcome.USAGE),
    (DomainBoundElsewhere("taken"), Outcome.FAILED),
    (RuntimeError("a bug"), Outcome.FAILED),
    (KeyboardInterrupt(), Outcome.SIGINT),
    # batch JobResult.exit_status
    (_job(Phase.BOUND), Outcome.OK),
    (_job(Phase.FAILED, "failed"), Outcome.FAILED),
    (_job(Phase.TOKEN_READY, "failed"), Outcome.RETRYABLE),
    (_job(Phase.TOKEN_READY, "done"), Outcome.RETRYABLE),   # pending: not finished
    (_job(Phase.TOKEN_READY, signum=signal.SIGINT), Outcome.SIGINT),
    (_job(Phase.TOKEN_READY, signum=signal.SIGTERM), Outcome.SIGTERM),
    # ReconcileReport.outcome()
    (_report("fixed"), Outcome.OK),
    (_report(None), Outcome.FAILED),                        # drift, not applied
    (_report("failed"), Outcome.FAILED),
    (_report("failed", retryable=True), Outcome.RETRYABLE),
    (_report("skipped"), Outcome.RETRYABLE),                # deadline passed
]


@pytest.mark.parametrize(("ended", "expected"), [
    pytest.param(ended, expected, id=f"{type(ended).__name__}-{expected.name}")
    for ended, expected in MAPPING])
def test_outcome_of_maps_each_vocabulary_into_the_one_table(ended: object,
                                                            expected: Outcome) -> None:
    assert outcome_of(ended) is expected  # type: ignore[arg-type]


@pytest.mark.parametrize("member", list(Outcome))
def test_every_outcome_is_reached_by_the_mapping(member: Outcome) -> None:
    assert member in {expected for _, expected in MAPPING}


def test_the_table_is_the_readmes() -> None:
    text = README.read_text(encoding="utf-8")
    section = text[text.index("### Exit codes"):]
    section = section[:section.index("\n## ")]
    documented = set()
    for cell in re.findall(r"^\| ([\d /]+) \|", section, re.MULTILINE):
        documented |= {int(code) for code in cell.split("/")}
    assert documented == {int(o) for o in Outcome}
    assert (int(Outcome.SIGINT), int(Outcome.SIGTERM), int(Outcome.RETRYABLE)) == (130, 143, 75)


def test_interrupted_is_128_plus_the_signal_and_refuses_others() -> None:
    assert Outcome.interrupted(signal.SIGINT) is Outcome.SIGINT
    assert Outcome.interrupted(signal.SIGTERM) is Outcome.SIGTERM
    with pytest.raises(ValueError):
        Outcome.interrupted(signal.SIGHUP)


# -- bind, plan, status -----------------------------------------------------------------------

def test_bind_exits_0_once_bound(world: CliWorld) -> None:
    done = world.invoke("bind", DOMAIN)
    assert done.exit_code == 0, done.output
    assert f"bound {DOMAIN} → {BUCKET}" in done.stdout
    assert "(Enabled)" in done.stdout and f"ListCname {BUCKET}" not in done.stdout


def test_bind_exits_1_when_the_domain_is_bound_elsewhere(world: CliWorld) -> None:
    world.oss.bind("otherbucket", DOMAIN)
    done = world.invoke("bind", DOMAIN)
    assert done.exit_code == 1, done.output
    assert "bound to another bucket" in done.stderr


def test_bind_exits_2_on_a_bad_domain_touching_nothing(world: CliWorld) -> None:
    done = world.invoke("bind", "bad..example.com")
    assert done.exit_code == 2, done.output
    assert "not a valid IDNA name" in done.stderr
    assert sum(world.oss.calls.values()) == 0 and sum(world.dns.calls.values()) == 0


def test_bind_exits_75_when_the_failure_is_retryable(world: CliWorld) -> None:
    world.oss.fail("CreateCnameToken", oss_error("InternalError", 500))
    done = world.invoke("bind", DOMAIN)
    assert done.exit_code == 75, done.output
    assert "InternalError" in done.stderr


class InterruptedOss(FakeOss):
    """CreateCnameToken is where the user presses Ctrl-C."""

    def create_token(self, bucket: str, domain: str) -> CnameToken:
        raise KeyboardInterrupt


def test_bind_exits_130_on_ctrl_c(tmp_path: Path) -> None:
    world = CliWorld(tmp_path, InterruptedOss())
    done = world.invoke("bind", DOMAIN)
    assert done.exit_code == 130, done.output
    assert "interrupted" in done.stderr


def test_plan_exits_0_and_2(world: CliWorld) -> None:
    assert world.invoke("bind", DOMAIN).exit_code == 0     # plan reads the bind journal
    shown = world.invoke("plan", "img.example.com", "--json")
    assert shown.exit_code == 0, shown.output
    assert '"binding"' in shown.stdout and world.oss.calls["CreateCnameToken"] == 1
    refused = world.invoke("plan", DOMAIN, "--cert-file", "leaf.pem")
    assert refused.exit_code == 2, refused.output
    assert "--key-file" in refused.stderr


def test_status_exits_0_and_2_on_a_bad_config(world: CliWorld) -> None:
    assert world.invoke("bind", DOMAIN).exit_code == 0
    shown = world.invoke("status", "--json")
    assert shown.exit_code == 0, shown.output
    assert '"phase": "BOUND"' in shown.stdout
    world.config.write_text("propagation:\n  deadlin_s: 3\n", encoding="utf-8")
    bad = world.invoke("status")
    assert bad.exit_code == 2, bad.output
    assert "cname-flow.yaml:2" in bad.stderr and "deadlin_s" in bad.stderr


# -- batch run / resume -----------------------------------------------------------------------

class SignallingOss(FakeOss):
    """Delivers ``signum`` to this process from the first ListCname (a worker thread), as
    ``kill -INT`` / ``kill -TERM`` would while the batch engine runs."""

    def __init__(self, signum: int) -> None:
        super().__init__()
        self.signum: int | None = signum

    def list_cnames(self, bucket: str) -> list:  # type: ignore[type-arg]
        if self.signum is not None:
            signum, self.signum = self.signum, None
            os.kill(os.getpid(), signum)
        return super().list_cnames(bucket)


@pytest.mark.parametrize("signum", [pytest.param(signal.SIGINT, id="SIGINT"),
                                    pytest.param(signal.SIGTERM, id="SIGTERM")])
def test_batch_run_exits_128_plus_the_signal_and_resume_finishes_with_0(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, signum: int,
) -> None:
    oss = SignallingOss(signum)
    oss.bind(BUCKET, DOMAIN)            # the fast path: no propagation wait to fake
    world = CliWorld(tmp_path, oss)
    world.batch(monkeypatch)
    stopped = world.invoke("batch", "run", "-f", str(world.manifest(DOMAIN)), "--job", "j1")
    assert stopped.exit_code == 128 + signum == Outcome.interrupted(signum), stopped.output
    assert f"interrupted by {signal.Signals(signum).name}" in stopped.stderr
    assert "batch resume j1" in stopped.stderr
    resumed = world.invoke("batch", "resume", "j1", "--json")
    assert resumed.exit_code == 0, resumed.output
    assert '"bound": 1' in resumed.stdout


def test_batch_run_exits_1_when_a_binding_failed_for_good(
    world: CliWorld, monkeypatch: pytest.MonkeyPatch,
) -> None:
    world.batch(monkeypatch)
    done = world.invoke("batch", "run", "-f", str(world.manifest("www.not-hosted.test")))
    assert done.exit_code == 1, done.output
    assert "ZoneNotFound" in done.stdout


def test_batch_run_exits_75_when_only_retryable_failures_are_left(
    world: CliWorld, monkeypatch: pytest.MonkeyPatch,
) -> None:
    world.batch(monkeypatch)
    world.oss.fail("CreateCnameToken", oss_error("InternalError", 500), times=100)
    done = world.invoke("batch", "run", "-f", str(world.manifest(DOMAIN)), "--job", "j2")
    assert done.exit_code == 75, done.output
    assert "resume later with" in done.stderr and "batch resume j2" in done.stderr


def test_batch_run_exits_2_on_a_bad_manifest(
    world: CliWorld, monkeypatch: pytest.MonkeyPatch,
) -> None:
    world.batch(monkeypatch)
    done = world.invoke("batch", "run", "-f", str(world.manifest("bad..example.com")))
    assert done.exit_code == 2, done.output
    assert "manifest.yaml:4" in done.stderr


# -- reconcile --------------------------------------------------------------------------------

def test_reconcile_exits_0_without_drift_and_1_with_drift_left(world: CliWorld) -> None:
    world.oss.bind(BUCKET, DOMAIN)
    clean = world.invoke("reconcile", "-f", str(world.manifest(DOMAIN)))
    assert clean.exit_code == 0, clean.output
    drift = world.invoke("reconcile", "-f", str(world.manifest(DOMAIN, "new.example.com")))
    assert drift.exit_code == 1, drift.output
    assert "binding_missing" in drift.stdout and world.oss.calls["CreateCnameToken"] == 0


def test_reconcile_exits_3_over_the_change_budget(world: CliWorld) -> None:
    manifest = world.manifest("a.example.com", "b.example.com")
    done = world.invoke("reconcile", "-f", str(manifest), "--apply", "--max-changes", "1")
    assert done.exit_code == 3, done.output
    assert "--force" in done.stderr and world.oss.calls["CreateCnameToken"] == 0


def test_reconcile_exits_75_when_fixes_may_succeed_later_or_the_lock_is_held(
    world: CliWorld, tmp_path: Path,
) -> None:
    world.oss.fail("CreateCnameToken", oss_error("InternalError", 500))
    manifest = str(world.manifest(DOMAIN))
    later = world.invoke("reconcile", "-f", manifest, "--apply")
    assert later.exit_code == 75, later.output
    assert "retry:" in later.stdout
    (tmp_path / "journal").mkdir(exist_ok=True)
    with FileLock(str(tmp_path / "journal" / LOCK_NAME)):
        busy = world.invoke("reconcile", "-f", manifest, "--metrics-file",
                            str(tmp_path / "m.prom"))
    assert busy.exit_code == 75, busy.output
    assert (tmp_path / "m.prom").exists()  # not a usage error: the failed run is measured


def test_reconcile_exits_2_on_usage_errors_and_writes_no_metrics(
    world: CliWorld, tmp_path: Path,
) -> None:
    plan_file = tmp_path / "plan.json"
    plan_file.write_text("{}", encoding="utf-8")
    done = world.invoke("reconcile", "-f", str(world.manifest(DOMAIN)), "--plan", str(plan_file),
                        "--metrics-file", str(tmp_path / "m.prom"))
    assert done.exit_code == 2, done.output
    assert "--plan is applied only with --apply" in done.stderr
    assert not (tmp_path / "m.prom").exists()

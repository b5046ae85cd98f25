"""``cname-flow reconcile``: parse, :func:`cname_flow.reconcile.run.reconcile`, render, exit code.

The exit code is :func:`cname_flow.cli.common.outcome_of` of the report (no drift left; drift
left, not applied, not allowed by the policy, not fixable, or a fix failed for good; only
retryable failures or deadline skips left) or of the error (usage/config; an unsafe plan over
budget without ``--force`` or a reviewed plan that no longer matches the state; another run holds
the lock or the journal is busy).

Mounted in :mod:`cname_flow.cli.main` with ``main.add_command(reconcile)``.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import click

from cname_flow import service
from cname_flow.cli import render
from cname_flow.cli.common import (
    CliState,
    Outcome,
    check_no_wait,
    guarded,
    no_wait_option,
    outcome_of,
    resume_line,
)
from cname_flow.errors import CnameFlowError, InputError
from cname_flow.manifest import load_manifest
from cname_flow.quotas import ApiStats
from cname_flow.reconcile.drift import Policy
from cname_flow.reconcile.metrics import write_metrics
from cname_flow.reconcile.plan import ReconcilePlan
from cname_flow.reconcile.run import ReconcileOptions, ReconcileReport
from cname_flow.reconcile.run import reconcile as run_reconcile
from cname_flow.scaleout import routing


@click.command()
@click.option("-f", "--file", "manifest_file", required=True,
              type=click.Path(path_type=Path, exists=True, dir_okay=False),
              help="Desired state: a batch manifest (YAML or CSV).")
@click.option("--apply", "do_apply", is_flag=True, help="Act on the plan (default: only report).")
@click.option("--policy", type=click.Choice([str(p) for p in Policy]), default=None,
              help="upsert-only (default), sync (also unbind our bindings absent from the "
                   "manifest) or report-only.")
@click.option("--max-changes", type=click.IntRange(min=0), default=None,
              help="Change budget (default: 10 % of the bindings, at least 1).")
@click.option("--force", is_flag=True, help="Apply a plan over the change budget.")
@click.option("--plan-out", type=click.Path(path_type=Path, dir_okay=False),
              callback=lambda ctx, param, value: _in_a_directory(param, value),
              help="Write the plan (JSON) here for review, in a directory that exists.")
@click.option("--plan", "plan_in", type=click.Path(path_type=Path, exists=True, dir_okay=False),
              help="Apply exactly this reviewed plan (with --apply); refused if the state changed.")
@click.option("--deadline", type=click.FloatRange(min=0), default=None,
              help="Seconds for the whole run: no fix starts after it, and fixes in flight "
                   "stop at it (the next run resumes them).")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON on stdout.")
@click.option("--metrics-file", type=click.Path(path_type=Path, dir_okay=False),
              callback=lambda ctx, param, value: _in_a_directory(param, value),
              help="Write Prometheus text-format metrics here (atomically), in a directory "
                   "that exists.")
@click.option("--expiry-days", type=click.FloatRange(min=0), default=30.0, show_default=True,
              help="A bound certificate ending within this many days is drift.")
@no_wait_option
@click.pass_obj
@guarded
def reconcile(obj: CliState, manifest_file: Path, do_apply: bool, policy: str | None,
              max_changes: int | None, force: bool, plan_out: Path | None,
              plan_in: Path | None, deadline: float | None, as_json: bool,
              metrics_file: Path | None, expiry_days: float, no_wait: bool) -> None:
    """Compare the manifest with OSS, DNS and the journal; report drift; fix it with --apply.

    With store.url set, --apply submits the bind fixes to the workers as one job (after the
    change budget and a reviewed plan are checked, as here) and follows it; --no-wait prints
    the job id and returns.
    """
    started = time.monotonic()
    api = ApiStats()  # the run's API attempts and throttled answers, for --metrics-file
    check_no_wait(obj.settings, no_wait)
    job_id = routing.new_job_id("reconcile") if routing.worker_mode(obj.settings) else None
    fixer = None if job_id is None else routing.bind_fixer(obj.settings, job_id,
                                                            wait=not no_wait)
    try:
        reviewed = _reviewed(plan_in, do_apply)
        chosen = Policy(policy) if policy else (reviewed.policy if reviewed else
                                                Policy.UPSERT_ONLY)
        opts = ReconcileOptions(policy=chosen, apply=do_apply, max_changes=max_changes,
                                force=force, deadline_s=deadline, expiry_days=expiry_days)
        manifest = load_manifest(manifest_file, bucket=obj.settings.defaults.bucket)
        clients = obj.clients(api=api)
        manifest = service.manifest_in_regions(clients, manifest)
        report = run_reconcile(clients, manifest, opts, reviewed=reviewed, fix_binds=fixer)
    except CnameFlowError as exc:
        if metrics_file is not None and outcome_of(exc) is not Outcome.USAGE:
            write_metrics(metrics_file, None, duration_s=time.monotonic() - started,
                          error_code=exc.code, api=api)
        raise
    if plan_out is not None:
        report.plan.write(plan_out)
    if metrics_file is not None:
        write_metrics(metrics_file, report, duration_s=report.duration_s, api=api)
    _render(report, as_json)
    if no_wait and any(r.status == "submitted" for r in report.results):
        click.echo(job_id)
        click.echo(f"fixes submitted to the workers; follow with:\n  cname-flow batch status "
                   f"{job_id} --follow", err=True)
        sys.exit(Outcome.OK)
    code = outcome_of(report)
    if code is Outcome.RETRYABLE:
        click.echo(resume_line(code), err=True)
    sys.exit(code)


def _in_a_directory(param: click.Parameter, path: Path | None) -> Path | None:
    """``path`` itself, when it names a file in a directory that exists (checked while the
    options are parsed, before the config, the manifest or the journal is read).

    Raises:
        click.BadParameter: (exit 2) naming the option and an empty file name (``""`` is
            ``.``, the working directory) or the directory that is missing or not a directory.
    """
    if path is not None and not path.name:
        raise click.BadParameter(f"{str(path)!r}: not a file name", param=param)
    if path is None or path.parent.is_dir():
        return path
    what = "is not a directory" if path.parent.exists() else "does not exist"
    raise click.BadParameter(f"{path}: directory {path.parent} {what}", param=param)


def _reviewed(plan_in: Path | None, do_apply: bool) -> ReconcilePlan | None:
    if plan_in is None:
        return None
    if not do_apply:
        raise InputError("--plan is applied only with --apply")
    return ReconcilePlan.read(plan_in)


def _render(report: ReconcileReport, as_json: bool) -> None:
    if as_json:
        render.emit_json(report.to_json(), "reconcile-report")
        return
    out = render.console()
    out.print(render.findings_table(report))
    if report.results:
        out.print(render.results_table(report))
    left = len(report.remaining())
    out.print(f"{report.outcome()}: {len(report.plan.drift)} drift finding(s), {left} left; "
              f"{report.plan.changes} change(s) planned under {report.plan.policy}; "
              f"{report.duration_s:.1f} s", highlight=False)

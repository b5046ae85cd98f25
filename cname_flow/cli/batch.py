"""``cname-flow batch``: run, resume, status and list batch jobs (thin: parse, call, render).

Mounted by :mod:`cname_flow.cli.main` with ``main.add_command(batch)``; the root group's context
object (:class:`cname_flow.cli.common.CliState`: ``settings``, ``config_path``) is used here.

The exit code is :func:`cname_flow.cli.common.outcome_of` of the :class:`JobResult`: all bound,
some failed for good, only retryable or unfinished bindings left (the resume command is
printed), or interrupted by SIGINT/SIGTERM (the resume command is printed too).

With ``store.url`` set, ``batch run`` submits the bindings to DBOS workers
(:mod:`cname_flow.scaleout.routing`) and follows them with the same progress bar and exit
codes; ``--no-wait`` prints the job id and returns; ``batch status --follow`` follows later.
Ctrl-C then only stops the following: the job goes on in the workers.
"""

from __future__ import annotations

import signal
import sys
from pathlib import Path
from typing import Any

import click

from cname_flow.batch import jobs
from cname_flow.cli import render
from cname_flow.cli.batch_report import (
    ProgressTracker,
    info_json,
    jobs_table,
    live_progress,
    result_json,
    status_table,
    summary_table,
)
from cname_flow.cli.common import (
    CliState,
    Outcome,
    check_no_wait,
    guarded,
    no_wait_option,
    outcome_of,
)
from cname_flow.cli.lazy import LazyGroup
from cname_flow.cli.output import RESUME_HINT
from cname_flow.scaleout import routing
from cname_flow.scaleout.submit import Submitted


@click.group("batch", cls=LazyGroup)
def batch() -> None:
    """Bind many domains at once from a manifest (resumable jobs)."""


@batch.command("run")
@click.option("-f", "--file", "manifest", required=True,
              type=click.Path(path_type=Path, exists=True, dir_okay=False),
              help="Manifest (YAML, or CSV with a header row).")
@click.option("--concurrency", type=click.IntRange(1, 10000),
              help="API calls in flight at once (default: batch.concurrency).")
@click.option("--job", "job_id", help="Job id (default: a new one; an existing id continues).")
@click.option("--bucket", help="Bucket for entries naming none (default: the manifest's "
              "defaults, then defaults.bucket of the config).")
@click.option("--region", help="Region for entries naming none.")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON on stdout.")
@no_wait_option
@click.pass_obj
@guarded
def run(obj: CliState, manifest: Path, concurrency: int | None, job_id: str | None,
        bucket: str | None, region: str | None, as_json: bool, no_wait: bool) -> None:
    """Validate the manifest, then bind every domain in it."""
    check_no_wait(obj.settings, no_wait)
    bucket = bucket or obj.settings.defaults.bucket  # as bind and reconcile do
    if routing.worker_mode(obj.settings):
        job = job_id or jobs.new_job_id()
        submitted, loaded = routing.submit_manifest(obj.settings, obj.clients(), manifest,
                                                    job_id=job, bucket=bucket, region=region)
        if no_wait:
            _submitted(submitted, as_json)
            return
        _follow(obj, job, as_json, lines=loaded.lines, baseline=submitted.baseline)
        return
    tracker = ProgressTracker()
    with live_progress(tracker, tty=sys.stderr.isatty() and not as_json):
        result = jobs.run_job(obj.settings, manifest, job_id=job_id, concurrency=concurrency,
                              bucket=bucket, region=region, on_change=tracker.change,
                              on_start=tracker.start)
    _finish(obj, result, as_json)


@batch.command("resume")
@click.argument("job_id")
@click.option("--concurrency", type=click.IntRange(1, 10000), help="Override the job's value.")
@click.option("--retry-failed", is_flag=True, help="Also retry bindings that failed for good.")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON on stdout.")
@click.pass_obj
@guarded
def resume(obj: CliState, job_id: str, concurrency: int | None, retry_failed: bool,
           as_json: bool) -> None:
    """Continue JOB_ID where it stopped (bound domains are skipped)."""
    tracker = ProgressTracker()
    with live_progress(tracker, tty=sys.stderr.isatty() and not as_json):
        result = jobs.resume_job(obj.settings, job_id, concurrency=concurrency,
                                 retry_failed=retry_failed, on_change=tracker.change,
                                 on_start=tracker.start)
    _finish(obj, result, as_json)


def _submitted(submitted: Submitted, as_json: bool) -> None:
    """``--no-wait``: the job id on stdout (JSON with ``--json``), how to follow on stderr."""
    if as_json:
        render.emit_json({"job_id": submitted.job_id, "workflows": len(submitted.workflow_ids),
                          "enqueued": submitted.enqueued, "skipped": list(submitted.skipped)},
                         "batch-submitted")
    else:
        click.echo(submitted.job_id)
    click.echo(f"submitted {len(submitted.workflow_ids)} binding(s) to the workers "
               f"({submitted.enqueued} newly enqueued); follow with:\n"
               f"  cname-flow batch status {submitted.job_id} --follow", err=True)


def _follow(obj: CliState, job_id: str, as_json: bool, **kw: Any) -> None:
    tracker = ProgressTracker()
    with live_progress(tracker, tty=sys.stderr.isatty() and not as_json):
        result = routing.follow_job(obj.settings, job_id, on_start=tracker.start,
                                    on_change=tracker.change, **kw)
    _finish(obj, result, as_json, workers=True)


def _finish(obj: CliState, result: jobs.JobResult, as_json: bool, *,
            workers: bool = False) -> None:
    if workers and result.interrupted is not None:
        raise routing.following_stopped(result.job_id)
    if as_json:
        render.emit_json(result_json(result), "batch-report")
    else:
        render.console().print(summary_table(result))
    code = outcome_of(result)
    resume = jobs.resume_command(result.job_id, obj.config_path)
    for why in result.locked.values():
        click.echo(f"left for later: {why}", err=True)
    if result.interrupted is not None:
        click.echo(f"interrupted by {signal.Signals(result.interrupted).name}; journal flushed."
                   f" Resume with:\n  {resume}\nor {RESUME_HINT}", err=True)
    elif code is Outcome.RETRYABLE:
        click.echo(f"some bindings can still succeed; resume later with:\n  {resume}\n"
                   f"or {RESUME_HINT}", err=True)
    sys.exit(code)


@batch.command("status")
@click.argument("job_id")
@click.option("--json", "as_json", is_flag=True, help="Print JSON on stdout.")
@click.option("--follow", "follow", is_flag=True,
              help="Follow the job until every binding is done (a job driven by workers, or "
                   "another process), with the progress bar and the exit code of `batch run`.")
@click.pass_obj
@guarded
def status(obj: CliState, job_id: str, as_json: bool, follow: bool) -> None:
    """Show every binding of JOB_ID: phase, outcome, attempts, last error."""
    if follow:
        _follow(obj, job_id, as_json)
        return
    info = jobs.job_status(obj.settings, job_id)
    if as_json:
        render.emit_json(info_json(info), "batch-status")
    else:
        render.console().print(status_table(info))


@batch.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print JSON on stdout.")
@click.pass_obj
@guarded
def list_(obj: CliState, as_json: bool) -> None:
    """List the batch jobs with their counts per outcome."""
    found = jobs.list_jobs(obj.settings)
    if as_json:
        render.emit_json({"jobs": [info_json(j, bindings=False) for j in found]},
                         "batch-list")
    else:
        render.console().print(jobs_table(found))


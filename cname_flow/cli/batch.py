"""``cname-flow batch``: run, resume, status and list batch jobs (thin: parse, call, render).

Mounted by :mod:`cname_flow.cli.main` with ``main.add_command(batch)``; the root group's context
object (:class:`cname_flow.cli.common.Ctx`, with ``settings`` and ``config_path``) is used here.

Exit codes: 0 all bound; 1 some failed for good; 75 only retryable failures (or unfinished
bindings) remain; 130/143 interrupted by SIGINT/SIGTERM (the resume command is printed);
2 usage, config or manifest errors.
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
from cname_flow.cli.common import guarded

_STATUS_EXIT = {"ok": 0, "failed": 1, "retryable": 75}


@click.group("batch")
def batch() -> None:
    """Bind many domains at once from a manifest (resumable jobs)."""


@batch.command("run")
@click.option("-f", "--file", "manifest", required=True,
              type=click.Path(path_type=Path, exists=True, dir_okay=False),
              help="Manifest (YAML, or CSV with a header row).")
@click.option("--concurrency", type=click.IntRange(1, 10000),
              help="API calls in flight at once (default: batch.concurrency).")
@click.option("--job", "job_id", help="Job id (default: a new one; an existing id continues).")
@click.option("--bucket", help="Bucket for entries naming none.")
@click.option("--region", help="Region for entries naming none.")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON on stdout.")
@click.pass_obj
@guarded
def run(obj: Any, manifest: Path, concurrency: int | None, job_id: str | None,
        bucket: str | None, region: str | None, as_json: bool) -> None:
    """Validate the manifest, then bind every domain in it."""
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
def resume(obj: Any, job_id: str, concurrency: int | None, retry_failed: bool,
           as_json: bool) -> None:
    """Continue JOB_ID where it stopped (bound domains are skipped)."""
    tracker = ProgressTracker()
    with live_progress(tracker, tty=sys.stderr.isatty() and not as_json):
        result = jobs.resume_job(obj.settings, job_id, concurrency=concurrency,
                                 retry_failed=retry_failed, on_change=tracker.change,
                                 on_start=tracker.start)
    _finish(obj, result, as_json)


def _finish(obj: Any, result: jobs.JobResult, as_json: bool) -> None:
    if as_json:
        render.emit_json(result_json(result))
    else:
        render.console.print(summary_table(result))
    if result.interrupted is not None:
        click.echo(f"interrupted by {signal.Signals(result.interrupted).name}; journal flushed."
                   f" Resume with:\n  {jobs.resume_command(result.job_id, obj.config_path)}",
                   err=True)
        sys.exit(128 + result.interrupted)
    code = _STATUS_EXIT[result.exit_status]
    if code == 75:
        click.echo("some bindings can still succeed; resume later with:\n  "
                   f"{jobs.resume_command(result.job_id, obj.config_path)}", err=True)
    sys.exit(code)


@batch.command("status")
@click.argument("job_id")
@click.option("--json", "as_json", is_flag=True, help="Print JSON on stdout.")
@click.pass_obj
@guarded
def status(obj: Any, job_id: str, as_json: bool) -> None:
    """Show every binding of JOB_ID: phase, outcome, attempts, last error."""
    info = jobs.job_status(obj.settings, job_id)
    if as_json:
        render.emit_json(info_json(info))
    else:
        render.console.print(status_table(info))


@batch.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print JSON on stdout.")
@click.pass_obj
@guarded
def list_(obj: Any, as_json: bool) -> None:
    """List the batch jobs with their counts per outcome."""
    found = jobs.list_jobs(obj.settings)
    if as_json:
        render.emit_json([info_json(j, bindings=False) for j in found])
    else:
        render.console.print(jobs_table(found))


"""``cname-flow worker``: run binding workflows from the PostgreSQL queue until a signal.

A worker needs the PostgreSQL store (``store.url`` or ``CNAME_FLOW_STORE_URL``): without it the
command refuses (exit 2). SIGTERM or SIGINT stop it gracefully (no new work, workflows in
flight get their grace), exit ``128 + signum`` (143, 130) as every command interrupted by a
signal. Deployment: docs/deployment.md.

Mounted in :mod:`cname_flow.cli.main` with ``main.add_command(worker)``.
"""

from __future__ import annotations

import signal
import threading
from pathlib import Path
from typing import Any

import click

from cname_flow.cli.common import CliState, guarded
from cname_flow.errors import Interrupted
from cname_flow.reconcile.drift import Policy


@click.command()
@click.option("--executor-id", default=None,
              help="Stable id of this worker (default: $CNAME_FLOW_EXECUTOR_ID, else the host "
                   "name); a restart with the same id resumes its own bindings at once.")
@click.option("--concurrency", type=click.IntRange(min=1, max=1024), default=None,
              help="Bindings this worker drives at once (default: batch.concurrency, at most 64).")
@click.option("--heartbeat-s", type=click.FloatRange(min=0.1), default=5.0, show_default=True,
              help="Seconds between heartbeats.")
@click.option("--lapse-s", type=click.FloatRange(min=0.5), default=30.0, show_default=True,
              help="A worker silent this many seconds is dead: another worker takes over its "
                   "bindings.")
@click.option("--reconcile-schedule", "cron", default=None, metavar="CRON",
              help="Also register the scheduled reconcile every CRON (5 or 6 fields, seconds "
                   "first, UTC); every worker may carry it, one run per slot fires.")
@click.option("--reconcile-manifest", type=click.Path(path_type=Path, exists=True,
                                                      dir_okay=False), default=None,
              help="The desired state of the scheduled reconcile (with --reconcile-schedule).")
@click.option("--reconcile-apply", is_flag=True,
              help="Scheduled passes act on their plan (default: only report).")
@click.option("--reconcile-policy", type=click.Choice([str(p) for p in Policy]), default=None,
              help="upsert-only (default), sync or report-only, as `reconcile --policy`.")
@click.option("--reconcile-max-changes", type=click.IntRange(min=0), default=None,
              help="Change budget of a scheduled pass, as `reconcile --max-changes`.")
@click.option("--reconcile-force", is_flag=True,
              help="Scheduled passes may apply a plan over the change budget.")
@click.option("--reconcile-require-review", is_flag=True,
              help="Scheduled passes only report (a reviewed plan is applied by hand).")
@click.pass_obj
@guarded
def worker(obj: CliState, executor_id: str | None, concurrency: int | None,
           heartbeat_s: float, lapse_s: float, cron: str | None, **reconcile: Any) -> None:
    """Run binding workflows queued in PostgreSQL until SIGTERM/SIGINT."""
    from cname_flow.scaleout import app
    from cname_flow.scaleout.spec import BIND_QUEUE
    from cname_flow.store.pg_conn import mask_url

    settings = obj.settings
    app.store_url(settings)  # refuses (exit 2) before anything starts
    if lapse_s <= heartbeat_s:
        raise click.UsageError(f"--lapse-s ({lapse_s}) must exceed --heartbeat-s ({heartbeat_s})")
    options = app.WorkerOptions(
        executor_id=app.executor_id(executor_id),
        concurrency=concurrency or min(64, settings.batch.concurrency),
        heartbeat_s=heartbeat_s, lapse_s=lapse_s, reconcile_schedule=cron,
        reconcile=_schedule_options(cron, reconcile))
    stop = threading.Event()
    received: list[int] = []

    def on_signal(signum: int, _frame: object) -> None:
        received.append(signum)
        stop.set()

    previous = {s: signal.signal(s, on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
    runtime = app.Worker(settings, options)
    try:
        runtime.start()
        click.echo(f"worker {options.executor_id}: queue {BIND_QUEUE}, concurrency "
                   f"{options.concurrency}, store {mask_url(runtime.url)}", err=True)
        while not stop.wait(1.0):
            pass
    finally:
        runtime.stop(graceful=True)
        for signum, handler in previous.items():
            signal.signal(signum, handler)
    raise Interrupted(received[0])


def _schedule_options(cron: str | None, given: dict[str, Any]) -> dict[str, Any]:
    """The keyword arguments of ``schedule.register`` from the ``--reconcile-*`` options.

    Raises:
        click.UsageError: ``--reconcile-*`` without ``--reconcile-schedule``, or a schedule
            without ``--reconcile-manifest``.
    """
    used = {k: v for k, v in given.items() if v not in (None, False)}
    if cron is None:
        if used:
            names = ", ".join("--" + k.replace("_", "-") for k in sorted(used))
            raise click.UsageError(f"{names}: only with --reconcile-schedule")
        return {}
    if given.get("reconcile_manifest") is None:
        raise click.UsageError("--reconcile-schedule needs --reconcile-manifest FILE")
    options: dict[str, Any] = {
        "manifest": given["reconcile_manifest"], "apply": given["reconcile_apply"],
        "force": given["reconcile_force"], "require_review": given["reconcile_require_review"],
        "max_changes": given["reconcile_max_changes"]}
    if given.get("reconcile_policy"):
        options["policy"] = Policy(given["reconcile_policy"])
    return options

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

import click

from cname_flow.cli.common import CliState, guarded
from cname_flow.errors import Interrupted


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
              help="Also register the scheduled reconcile every CRON (DBOS cron syntax); every "
                   "worker may carry it, one run per slot fires.")
@click.pass_obj
@guarded
def worker(obj: CliState, executor_id: str | None, concurrency: int | None,
           heartbeat_s: float, lapse_s: float, cron: str | None) -> None:
    """Run binding workflows queued in PostgreSQL until SIGTERM/SIGINT."""
    from cname_flow.scaleout import app
    from cname_flow.scaleout.spec import BIND_QUEUE

    settings = obj.settings
    app.store_url(settings)  # refuses (exit 2) before anything starts
    if lapse_s <= heartbeat_s:
        raise click.UsageError(f"--lapse-s ({lapse_s}) must exceed --heartbeat-s ({heartbeat_s})")
    options = app.WorkerOptions(
        executor_id=app.executor_id(executor_id),
        concurrency=concurrency or min(64, settings.batch.concurrency),
        heartbeat_s=heartbeat_s, lapse_s=lapse_s, reconcile_schedule=cron)
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
                   f"{options.concurrency}, store {app.redacted(runtime.url)}", err=True)
        while not stop.wait(1.0):
            pass
    finally:
        runtime.stop(graceful=True)
        for signum, handler in previous.items():
            signal.signal(signum, handler)
    raise Interrupted(received[0])

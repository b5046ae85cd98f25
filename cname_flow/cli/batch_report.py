"""Batch job output: live progress (rich on a terminal, structured log lines otherwise), the
summary table and the JSON documents of ``batch run/status/list``. No business logic here."""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import structlog
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.table import Table

from cname_flow.batch.jobs import OUTCOMES, JobInfo, JobResult, outcome
from cname_flow.cli.output import plain
from cname_flow.cli.render import record_json
from cname_flow.model import Phase

log = structlog.get_logger(__name__)

#: Phases in the order a binding passes them (the progress line shows counts in this order).
PHASE_ORDER = [p.value for p in Phase]
#: Seconds between two ``batch.progress`` log lines when not on a terminal.
LOG_INTERVAL_S = 5.0


class ProgressTracker:
    """Counts bindings per phase as the engine reports transitions; thread-safe.

    Call :meth:`start` with the job's initial state, then :meth:`change` per transition.
    """

    def __init__(self) -> None:
        self.phases: dict[str, str] = {}
        self.total = 0
        self._lock = threading.Lock()

    def start(self, result: JobResult) -> None:
        """Seed the counts from the journal as the run begins."""
        with self._lock:
            self.total = len(result.keys)
            for key, record in zip(result.keys, result.records, strict=True):
                self.phases[key] = record.phase if record is not None else Phase.PENDING.value

    def change(self, key: str, phase: str) -> None:
        """Record that ``key`` is now in ``phase``."""
        with self._lock:
            self.phases[key] = phase

    def counts(self) -> Counter[str]:
        """Bindings per phase."""
        with self._lock:
            return Counter(self.phases.values())

    def line(self) -> str:
        """``"PENDING 3 · TXT_WRITTEN 10 · BOUND 87"`` (phases with bindings only)."""
        counts = self.counts()
        return " · ".join(f"{p} {counts[p]}" for p in PHASE_ORDER if counts[p])


@contextmanager
def live_progress(tracker: ProgressTracker, *, tty: bool,
                  console: Console | None = None) -> Iterator[None]:
    """Show progress while the block runs: a bar with counts per phase and an ETA on a
    terminal, else a ``batch.progress`` log line every :data:`LOG_INTERVAL_S` seconds."""
    stop = threading.Event()
    if tty:
        progress = Progress(TextColumn("bound"), BarColumn(), TextColumn("{task.completed}/"
                            "{task.total}"), TimeElapsedColumn(), TextColumn("ETA"),
                            TimeRemainingColumn(), TextColumn("{task.description}"),
                            console=console or Console(stderr=True), transient=False)
        task = progress.add_task("", total=None)

        def tick() -> None:
            counts = tracker.counts()
            progress.update(task, total=tracker.total or None,
                            completed=counts[Phase.BOUND.value], description=tracker.line())
        interval = 0.25
    else:
        progress = None
        started = time.monotonic()

        def tick() -> None:
            counts = tracker.counts()
            log.info("batch.progress", elapsed_s=round(time.monotonic() - started, 1),
                     total=tracker.total, **{p.lower(): counts[p] for p in PHASE_ORDER})
        interval = LOG_INTERVAL_S

    def loop() -> None:
        while not stop.wait(interval):
            tick()

    thread = threading.Thread(target=loop, name="batch-progress", daemon=True)
    if progress is not None:
        progress.start()
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()
        tick()
        if progress is not None:
            progress.stop()


def summary_table(result: JobResult, *, limit: int = 50) -> Table | str:
    """Counts per outcome, then every binding not bound (up to ``limit``) with reason and line;
    when every binding is bound, only the one-line count (no empty table)."""
    counts = result.counts
    title = f"batch job {result.job_id}: " + ", ".join(
        f"{counts[o]} {o}" for o in OUTCOMES if counts[o]) + f" in {result.elapsed_s:.1f} s"
    if all(outcome(record) == "bound" for record in result.records):
        return title
    table = Table(title=title)
    for column in ("binding", "outcome", "phase", "manifest line", "reason"):
        table.add_column(column)
    shown = 0
    for key, record in zip(result.keys, result.records, strict=True):
        state = outcome(record)
        if state == "bound":
            continue
        if shown == limit:
            table.add_row("…", "", "", "", f"{sum(counts.values()) - counts['bound'] - limit} "
                          "more: `cname-flow batch status` lists all")
            break
        shown += 1
        error = record.last_error if record is not None else None
        reason = f"{error.code}: {error.message}" if error else "not finished"
        if record is not None and record.next_attempt_at and state == "retryable":
            reason += f" (next attempt after {record.next_attempt_at:%H:%M:%S} UTC)"
        table.add_row(*map(plain, (key, state, record.phase if record else "-",
                                   result.lines.get(key, ""), reason)))
    return table


def result_json(result: JobResult) -> dict[str, Any]:
    """``batch run --json``: job id, status, counts, API stats, every binding's record."""
    return {
        "job_id": result.job_id,
        "journal": str(result.journal),
        "status": result.exit_status,
        "elapsed_s": round(result.elapsed_s, 3),
        "counts": {o: result.counts[o] for o in OUTCOMES},
        "api": result.stats.to_json(),
        "journal_flushes": result.journal_flushes,
        "bindings": [record_json(r) | {"outcome": outcome(r)} if r else
                     {"key": k, "outcome": "pending"}
                     for k, r in zip(result.keys, result.records, strict=True)],
    }


def info_json(info: JobInfo, *, bindings: bool = True) -> dict[str, Any]:
    """``batch status --json`` / ``batch list --json``: meta, counts per outcome and phase."""
    data: dict[str, Any] = {
        "job_id": info.job_id, "journal": str(info.journal), "meta": dict(info.meta),
        "counts": {o: info.counts[o] for o in OUTCOMES}, "phases": dict(info.phases),
    }
    if bindings:
        data["bindings"] = [record_json(r) | {"outcome": outcome(r)} for r in info.records]
    return data


def status_table(info: JobInfo) -> Table:
    """Per-binding table of one job: phase, outcome, attempts, last error."""
    table = Table(title=f"batch job {info.job_id} ({info.meta.get('manifest', '?')})")
    for column in ("binding", "phase", "outcome", "attempts", "updated", "last error"):
        table.add_column(column)
    for r in info.records:
        error = f"{r.last_error.code}: {r.last_error.message}" if r.last_error else ""
        table.add_row(*map(plain, (r.key, r.phase, outcome(r), r.attempts,
                                   f"{r.updated_at:%Y-%m-%d %H:%M:%S}", error)))
    return table


def jobs_table(jobs: list[JobInfo]) -> Table:
    """``batch list``: one row per job."""
    table = Table(title="batch jobs")
    for column in ("job", "created", "manifest", *OUTCOMES):
        table.add_column(column)
    for job in jobs:
        counts = job.counts
        table.add_row(*map(plain, (job.job_id, job.meta.get("created", ""),
                                   job.meta.get("manifest", ""), *(counts[o] for o in OUTCOMES))))
    return table

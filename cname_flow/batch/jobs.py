"""Batch jobs: bind every domain of a manifest at once, resumably (issue 4; README, "Batch jobs").

A job is a named set of bindings in the store of record (:mod:`cname_flow.store`): its file
``<journal.dir>/jobs/<job-id>.jsonl`` holds only the job's metadata (the manifest path and the
options it was started with; :func:`resume_job` reloads both), its members and its events
(started, stopped); its bindings' transitions go to the shared store, group-committed (one
fsync per group), each binding's lock held while it is in flight. So ``status``, ``cert
status`` and ``reconcile`` see what a job made, and a ``bind`` of one of its domains waits for
the job instead of doing the work twice. The engine is in
:mod:`cname_flow.workflow.engine`, the API discipline (token buckets, coalesced ListCname) in
:mod:`cname_flow.batch.limits`. Nothing here prints or exits: the CLI renders a
:class:`JobResult` and picks the exit code from :attr:`JobResult.exit_status`.

Outcomes of a binding at the end of a run (:func:`outcome`): ``bound``; ``failed`` (for good:
phase FAILED, the reason and hint in its last error); ``retryable`` (its last step failed and
may succeed later: ``next_attempt_at`` is journaled and a resume waits for it); ``pending``
(not finished: the run was interrupted).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import os
import secrets
import time
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Literal

from cname_flow import service
from cname_flow.batch.checker import CachingChecker
from cname_flow.batch.limits import BatchOss
from cname_flow.config import Settings
from cname_flow.errors import ConfigError, InputError
from cname_flow.journal import BindingRecord, JournalEvent
from cname_flow.logs import get_logger
from cname_flow.manifest import Manifest, load_manifest
from cname_flow.model import Binding, Phase
from cname_flow.quotas import ApiStats, RateLimiter
from cname_flow.store import BindingStore, JobState
from cname_flow.store.jobs import JOBS_DIR, job_file
from cname_flow.workflow import runner
from cname_flow.workflow.context import StepContext
from cname_flow.workflow.engine import BackoffPolicy
from cname_flow.workflow.machine import TERMINAL
from cname_flow.workflow.runner import RunOptions, RunResult

log = get_logger(__name__)

Outcome = Literal["bound", "failed", "retryable", "pending"]
ExitStatus = Literal["ok", "failed", "retryable", "interrupted"]
OUTCOMES: tuple[Outcome, ...] = ("bound", "failed", "retryable", "pending")


@dataclass(frozen=True, slots=True)
class JobResult:
    """What a run of a job left behind.

    Attributes:
        job_id: the job's id.
        journal: the job's file (meta, members, events; the bindings are in the store).
        records: every binding of the manifest, in manifest order, from the store (``None`` if
            never started).
        keys: binding keys in manifest order.
        lines: binding key → ``"<file>:<line>"`` in the manifest.
        elapsed_s: wall time of this run, seconds.
        interrupted: the signal number that stopped the run, or ``None``.
        stats: API calls and throttled answers per action (see :class:`ApiStats`).
        journal_flushes: fsyncs the group committer made.
        locked: bindings left because another process held them (key → why).
    """

    job_id: str
    journal: Path
    records: tuple[BindingRecord | None, ...]
    keys: tuple[str, ...]
    lines: Mapping[str, str]
    elapsed_s: float
    interrupted: int | None = None
    stats: ApiStats = field(default_factory=ApiStats)
    journal_flushes: int = 0
    locked: Mapping[str, str] = field(default_factory=dict)

    @property
    def counts(self) -> Counter[Outcome]:
        """How many bindings ended in each outcome."""
        return Counter(outcome(r) for r in self.records)

    @property
    def exit_status(self) -> ExitStatus:
        """``interrupted``, else ``failed`` if any failed for good, ``retryable`` if any is not
        bound, else ``ok``."""
        counts = self.counts
        if self.interrupted is not None:
            return "interrupted"
        if counts["failed"]:
            return "failed"
        if counts["retryable"] or counts["pending"]:
            return "retryable"
        return "ok"


def outcome(record: BindingRecord | None) -> Outcome:
    """The outcome of one binding from its journal record (see the module docstring)."""
    if record is None:
        return "pending"
    if record.phase == Phase.BOUND:
        return "bound"
    if record.phase == Phase.FAILED:
        return "failed"
    if record.last_status == "failed":
        return "retryable"
    return "pending"


def jobs_dir(settings: Settings) -> Path:
    """``<journal.dir>/jobs``: where every job's file lives."""
    return Path(settings.journal.dir) / JOBS_DIR


def job_journal(settings: Settings, job_id: str) -> Path:
    """The file of ``job_id`` (:func:`cname_flow.store.jobs.job_file`).

    Raises:
        InputError: the id is not a plain name (letters, digits, ``-``, ``_``, ``.``).
    """
    return job_file(Path(settings.journal.dir), job_id)


def new_job_id(now: datetime | None = None) -> str:
    """A fresh job id: ``YYYYmmdd-HHMMSS-<4 hex>`` (UTC)."""
    moment = now or datetime.now(UTC)
    return f"{moment:%Y%m%d-%H%M%S}-{secrets.token_hex(2)}"


def resume_command(job_id: str, config: Path | None = None) -> str:
    """The exact command that resumes ``job_id``."""
    prefix = f"cname-flow --config {config} " if config else "cname-flow "
    return f"{prefix}batch resume {job_id}"


def batch_clients(settings: Settings, stats: ApiStats, env: Mapping[str, str] | None = None,
                  ) -> tuple[service.Clients, CachingChecker]:
    """The adapters of a batch run: rate-limited, counted, ListCname coalesced, targets cached.

    Returns:
        (the clients, their checker, which the caller closes when the job ends).

    Raises:
        ConfigError: no usable credentials, or an unknown ``dns.provider``.
    """
    limiter = RateLimiter(settings.batch.rate_limits, stats)
    # both adapters limit and count every attempt of their one retry layer through the hooks
    base = service.Clients.from_settings(settings, env, rate_limiter=limiter,
                                         on_error=stats.count_error)  # refuses unknown providers
    checker = CachingChecker(base.checker, threads=settings.batch.concurrency)
    return service.Clients(settings, BatchOss(base.oss), base.dns, checker, base.events), checker


def run_job(
    settings: Settings, manifest_path: Path, *, job_id: str | None = None,
    concurrency: int | None = None, bucket: str | None = None, region: str | None = None,
    env: Mapping[str, str] | None = None, on_change: Callable[[str, str], None] | None = None,
    on_start: Callable[[JobResult], None] | None = None,
) -> JobResult:
    """Validate the manifest, then run (or continue) the job ``job_id`` to its end.

    Args:
        settings: loaded settings (``batch.concurrency``, ``batch.rate_limits``, journal dir).
        manifest_path: YAML or CSV manifest.
        job_id: reuse this id (the job continues if its journal exists); default: a new id.
        concurrency: worker threads; default ``settings.batch.concurrency``.
        bucket, region: fallbacks for manifest entries that name none.
        env: environment for credential references (default ``os.environ``).
        on_change: called with (binding key, phase) on every journaled transition.
        on_start: called once with the job's initial state (for progress displays).

    Raises:
        ConfigError: the manifest (every problem with its line) or the credentials.
        Locked: another process drives this job.
    """
    manifest = load_manifest(manifest_path, bucket=bucket, region=region)
    job_id = job_id or new_job_id()
    meta = {"manifest": str(manifest_path.resolve()), "bucket": bucket, "region": region,
            "concurrency": concurrency}
    return _run(settings, manifest, job_id, meta, concurrency, env, on_change, on_start)


def resume_job(
    settings: Settings, job_id: str, *, concurrency: int | None = None,
    retry_failed: bool = False, env: Mapping[str, str] | None = None,
    on_change: Callable[[str, str], None] | None = None,
    on_start: Callable[[JobResult], None] | None = None,
) -> JobResult:
    """Continue ``job_id`` with the manifest and options it was started with (its file), from
    its bindings' state in the store.

    Bound bindings are skipped; bindings FAILED for good are skipped unless ``retry_failed``;
    a binding with a journaled backoff waits until its ``next_attempt_at``.

    Raises:
        InputError: no such job, or its journal names no manifest.
        ConfigError: the manifest no longer validates.
        Locked: another process drives this job.
    """
    meta = _job_state(settings, job_id).meta
    manifest_file = meta.get("manifest")
    if not isinstance(manifest_file, str):
        raise InputError(f"job {job_id}: its journal names no manifest")
    bucket, region = meta.get("bucket"), meta.get("region")
    manifest = load_manifest(Path(manifest_file),
                             bucket=bucket if isinstance(bucket, str) else None,
                             region=region if isinstance(region, str) else None)
    saved = meta.get("concurrency")
    workers = concurrency or (saved if isinstance(saved, int) else None)
    return _run(settings, manifest, job_id, {}, workers, env, on_change, on_start,
                retry_failed=retry_failed)


def _run(
    settings: Settings, manifest: Manifest, job_id: str, meta: dict[str, str | int | None],
    concurrency: int | None, env: Mapping[str, str] | None,
    on_change: Callable[[str, str], None] | None,
    on_start: Callable[[JobResult], None] | None, *, retry_failed: bool = False,
) -> JobResult:
    stats = ApiStats()
    clients, checker = batch_clients(settings, stats, env)
    contexts = _contexts(clients, manifest)
    path = job_journal(settings, job_id)
    started = time.monotonic()
    with service.open_store(settings) as store, store.open_job(job_id) as job, \
            contextlib.closing(checker):
        if meta:
            job.set_meta(created=datetime.now(UTC).isoformat(), job_id=job_id, **meta)
        job.add_members([b.key for b in manifest.bindings])
        job.note("started", pid=os.getpid(), bindings=len(manifest.bindings))
        needs = functools.partial(_needs_run, retry_failed=retry_failed)
        todo = [c for c in contexts if needs(store.get(c.binding.key))]
        if on_start is not None:
            on_start(_result(job_id, path, store, manifest, 0.0, None, stats, 0))
        options = RunOptions(concurrency=concurrency or settings.batch.concurrency,
                             backoff=BackoffPolicy(), lock_wait_s=settings.journal.lock_wait_s,
                             needs_run=needs)
        ended: dict[str, BindingRecord] = {}
        with asyncio.Runner(loop_factory=runner.loop_factory()) as loop:
            run = loop.run(_drive(store, todo, options, on_change, checker, ended))
        store.refresh()
        result = _result(job_id, path, store, manifest, time.monotonic() - started, run.signal,
                         stats, run.flushes, {k: str(v) for k, v in run.locked.items()}, ended)
        job.note("stopped", signal=run.signal, **dict(result.counts))
        return result


def _contexts(clients: service.Clients, manifest: Manifest) -> list[StepContext]:
    """A step context per binding (first ListCname reads shared per bucket, see
    :meth:`BatchOss.recent_list`); every certificate and every bucket's region pre-flighted
    (one GetBucketInfo per bucket, :func:`service.preflight_region`) before anything runs.

    Raises:
        ConfigError: every binding whose certificate fails pre-flight, whose bucket does not
            exist or whose region is not its bucket's, each with its manifest line.
        OssError: GetBucketInfo failed otherwise (e.g. unreachable: retryable).
    """
    contexts = []
    listing = clients.oss.recent_list if isinstance(clients.oss, BatchOss) else None
    ports = service.ports(clients, bucket_listing=listing)
    bindings, reasons = service.bindings_in_regions(clients, manifest,
                                                    threads=clients.settings.batch.concurrency)
    for binding in bindings:
        try:
            contexts.append(service.step_context(clients, binding, shared=ports))
        except InputError as exc:
            reasons[binding.key] = f"{manifest.lines.get(binding.key, manifest.source)}: {exc}"
    if reasons:  # in manifest order, whichever check refused each binding
        ordered = [reasons[b.key] for b in manifest.bindings if b.key in reasons]
        raise ConfigError(ordered, source=str(manifest.source))
    return contexts


def preflight(clients: service.Clients, manifest: Manifest) -> list[Binding]:
    """The manifest's bindings, regions learned, once every certificate and bucket passed the
    checks a local run makes before it starts (scale-out mode submits these to workers).

    Raises:
        ConfigError: as :func:`run_job`, every refused binding with its manifest line.
    """
    return [ctx.binding for ctx in _contexts(clients, manifest)]


def needs_run(record: BindingRecord | None, *, retry_failed: bool = False) -> bool:
    """Whether a batch runs a binding whose record is ``record``: pending or retryable ones,
    and ones FAILED for good with ``retry_failed``; bound ones never."""
    return _needs_run(record, retry_failed)


def _needs_run(record: BindingRecord | None, retry_failed: bool) -> bool:
    state = outcome(record)
    return state in ("pending", "retryable") or (state == "failed" and retry_failed)


async def _drive(store: BindingStore, contexts: Sequence[StepContext], options: RunOptions,
                 on_change: Callable[[str, str], None] | None, checker: CachingChecker,
                 ended: dict[str, BindingRecord]) -> RunResult:
    """Run the engine (:func:`runner.drive`) with the checker's shared sockets on its loop;
    ``ended`` gets the record of every binding this run brought to a terminal phase."""
    checker.attach_loop(asyncio.get_running_loop())  # workers' pre-states go through the loop

    def on_event(e: JournalEvent) -> None:  # durable by now: the store has it
        if e.phase in TERMINAL and (record := store.get(e.key)) is not None:
            ended[e.key] = record
        if on_change is not None:
            on_change(e.key, e.phase)

    try:
        return await runner.drive(store, contexts, options, locks=store, on_event=on_event)
    finally:
        await checker.aclose()


def _result(job_id: str, path: Path, store: BindingStore, manifest: Manifest, elapsed_s: float,
            signum: int | None, stats: ApiStats, flushes: int,
            locked: Mapping[str, str] | None = None,
            ended: Mapping[str, BindingRecord] | None = None) -> JobResult:
    keys = tuple(b.key for b in manifest.bindings)
    ended = ended or {}
    records = tuple(_reported(store.get(k), ended.get(k)) for k in keys)
    return JobResult(job_id, path, records, keys, manifest.lines, elapsed_s, signum, stats,
                     flushes, dict(locked or {}))


def _reported(now: BindingRecord | None, ended: BindingRecord | None) -> BindingRecord | None:
    """The record a run reports for a binding: the store's (``now``), unless this run ended
    the binding (``ended``) and another process has since started a pass over it (a ``bind``
    of the same domain, waiting for the run's lock): then what this run achieved, not the
    other pass's step in flight."""
    if ended is not None and (now is None or now.phase not in TERMINAL):
        return ended
    return now


def job_result(store: BindingStore, job_id: str, *, lines: Mapping[str, str] | None = None,
               elapsed_s: float = 0.0, interrupted: int | None = None) -> JobResult:
    """The :class:`JobResult` of job ``job_id`` as the store shows it now (its members in
    manifest order), whoever drove it: this process, or DBOS workers (scale-out mode).

    Args:
        store: the open store of record (the caller refreshes it first).
        job_id: the job.
        lines: binding key → ``"<file>:<line>"`` (empty when unknown).
        elapsed_s: seconds to report as the run's wall time.
        interrupted: the signal number that stopped the caller, or None.

    Raises:
        InputError: no such job.
    """
    state = _job_in(store, job_id)
    found = store.records(state.members)
    return JobResult(job_id, Path(state.location), tuple(found.get(k) for k in state.members),
                     state.members, dict(lines or {}), elapsed_s, interrupted)


@dataclass(frozen=True, slots=True)
class JobInfo:
    """One job as ``batch list`` / ``batch status`` show it (read without the job's lock):
    its file's meta, and its members' records from the store."""

    job_id: str
    journal: Path
    meta: Mapping[str, object]
    records: tuple[BindingRecord, ...]

    @property
    def counts(self) -> Counter[Outcome]:
        """Bindings per outcome."""
        return Counter(outcome(r) for r in self.records)

    @property
    def phases(self) -> Counter[str]:
        """Bindings per phase."""
        return Counter(r.phase for r in self.records)


def job_status(settings: Settings, job_id: str) -> JobInfo:
    """Read a job and its bindings' records (safe while it runs).

    Raises:
        InputError: no such job.
        JournalCorrupt: an unreadable job file or store.
    """
    with service.open_store(settings) as store:
        return _info(store, _job_in(store, job_id))


def list_jobs(settings: Settings) -> list[JobInfo]:
    """Every job in the store of record, oldest first (none on a fresh machine: without
    ``store.url``, nothing under ``<journal.dir>/jobs``)."""
    if not settings.store.url and not jobs_dir(settings).is_dir():
        return []
    with service.open_store(settings) as store:
        return [_info(store, _job_in(store, job_id)) for job_id in store.job_ids()]


def _job_state(settings: Settings, job_id: str) -> JobState:
    with service.open_store(settings) as store:
        return _job_in(store, job_id)


def _job_in(store: BindingStore, job_id: str) -> JobState:
    state = store.job(job_id)
    if state is None:
        raise InputError(f"no batch job {job_id!r} (no file at {store.location} or under its "
                         "jobs/)", hint="`cname-flow batch list` shows the jobs")
    return state


def _info(store: BindingStore, state: JobState) -> JobInfo:
    found = store.records(state.members)
    return JobInfo(state.job_id, Path(state.location), dict(state.meta),
                   tuple(found[key] for key in state.members if key in found))

"""Submitting bindings to DBOS workers, and following a job while they drive it (scale-out mode).

With ``store.url`` set, ``bind``, ``batch run`` and ``reconcile --apply`` do not drive the
bindings in this process: :func:`submit` records the job in the store of record (its meta, its
members in manifest order, a ``submitted`` note) and enqueues one DBOS workflow per binding on
:data:`~cname_flow.scaleout.spec.BIND_QUEUE` with :class:`dbos.DBOSClient`
(https://docs.dbos.dev/python/reference/client); any ``cname-flow worker`` dequeues them.
:func:`follow` then polls the store (the workers journal every transition there) and the
workflows' DBOS status until every member is terminal, feeding the same progress callbacks as
a local batch, and returns the same :class:`~cname_flow.batch.jobs.JobResult`, so the exit
codes are the local ones.

Workflow ids are :func:`~cname_flow.scaleout.spec.workflow_id` (``"<job_id>:<key>"``): enqueued
with DBOS's ``workflow_id_reuse_policy="reject"``, a second submission of the same job finds
each id taken and enqueues nothing new (counted in :attr:`Submitted.existing`). Workflow inputs
are :class:`~cname_flow.scaleout.spec.BindingSpec` values: DBOS persists them, so they never
carry a credential.
"""

from __future__ import annotations

import contextlib
import os
import signal
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

import cname_flow
from cname_flow.batch.jobs import JobResult, job_result, outcome
from cname_flow.config import Settings
from cname_flow.errors import ConfigError
from cname_flow.journal import BindingRecord
from cname_flow.logs import get_logger
from cname_flow.model import Binding, Phase
from cname_flow.scaleout import spec
from cname_flow.store import BindingStore

log = get_logger(__name__)

#: DBOS workflow statuses after which a workflow runs no more
#: (https://docs.dbos.dev/python/reference/client, ``WorkflowStatus.status``).
FINISHED = frozenset({"SUCCESS", "ERROR", "CANCELLED", "MAX_RECOVERY_ATTEMPTS_EXCEEDED"})

#: ``JobState.meta["mode"]`` of a job driven by workers.
MODE = "workers"


@dataclass(frozen=True, slots=True)
class Submitted:
    """What :func:`submit` did.

    Attributes:
        job_id: the job.
        workflow_ids: the workflow of every binding submitted, in manifest order.
        enqueued: how many of them this call enqueued (the others existed: a re-submission).
        skipped: binding keys not submitted because the store shows them done already.
        baseline: binding key → ``updated_at`` of its record at submission, for bindings
            submitted while their record was terminal (BOUND or FAILED from an earlier run):
            :func:`follow` waits for a newer record before counting them.
    """

    job_id: str
    workflow_ids: tuple[str, ...]
    enqueued: int
    skipped: tuple[str, ...] = ()
    baseline: Mapping[str, datetime] = field(default_factory=dict)

    @property
    def existing(self) -> int:
        """Workflows found already enqueued (by an earlier submission of the same job)."""
        return len(self.workflow_ids) - self.enqueued


@contextlib.contextmanager
def dbos_client(settings: Settings) -> Iterator[object]:
    """A :class:`dbos.DBOSClient` on ``store.url``'s database, the DBOS system tables created
    first (``DBOS.migrate``, idempotent) so a job can be submitted before any worker started;
    destroyed on exit.

    Raises:
        ConfigError: ``store.url`` is not set.
        sqlalchemy.exc.OperationalError: the database cannot be reached.
    """
    from dbos import DBOS, DBOSClient

    url = settings.store.url
    if not url:
        raise ConfigError(["store.url: not set; workers need a PostgreSQL store"])
    DBOS.migrate(url)
    client = DBOSClient(system_database_url=url)
    try:
        yield client
    finally:
        client.destroy()


def submit(settings: Settings, store: BindingStore, job_id: str, bindings: Sequence[Binding], *,
           meta: Mapping[str, str | int | None] | None = None,
           needs_run: Callable[[BindingRecord | None], bool] | None = None,
           client: object | None = None) -> Submitted:
    """Record job ``job_id`` in ``store`` and enqueue one binding workflow per binding.

    Args:
        settings: ``store.url`` is DBOS's system database.
        store: the open store of record.
        job_id: the job (a plain name, see :func:`cname_flow.batch.jobs.new_job_id`).
        bindings: the job's bindings in manifest order (regions learned, certificates
            pre-flighted by the caller).
        meta: more job metadata (``manifest``, ``bucket``, ``region``…); ``mode`` is
            ``"workers"``, ``created`` is set on the first submission only.
        needs_run: whether a binding still needs a run given its record (a batch's rule);
            None: every binding is submitted.
        client: a :class:`dbos.DBOSClient` to reuse; default: one for this call.

    Returns:
        What was enqueued (:class:`Submitted`).

    Raises:
        Locked: another process holds the job open.
        ValueError: a secret among the metadata (nothing enqueued).
        DBOSException: DBOS refused an enqueue (e.g. an id of another workflow function).
    """
    from dbos import EnqueueOptions
    from dbos._error import DBOSWorkflowIDInUseError

    store.refresh()
    with store.open_job(job_id) as job:
        fresh = not job.state().meta
        job.set_meta(job_id=job_id, mode=MODE, **dict(meta or {}),
                     **({"created": datetime.now(UTC).isoformat()} if fresh else {}))
        job.add_members([b.key for b in bindings])
        todo, skipped, baseline = [], [], {}
        for binding in bindings:
            record = store.get(binding.key)
            if needs_run is not None and not needs_run(record):
                skipped.append(binding.key)
                continue
            todo.append(binding)
            if outcome(record) in ("bound", "failed") and record is not None:
                baseline[binding.key] = record.updated_at
        enqueued = 0
        with contextlib.ExitStack() as stack:
            dbos = client if client is not None else stack.enter_context(dbos_client(settings))
            for binding in todo:
                options = EnqueueOptions(
                    queue_name=spec.BIND_QUEUE, workflow_name=spec.BIND_WORKFLOW,
                    workflow_id=spec.workflow_id(job_id, binding.key),
                    app_version=cname_flow.__version__, workflow_id_reuse_policy="reject")
                try:
                    dbos.enqueue(options, spec.encode(binding, job_id))  # type: ignore[attr-defined]
                    enqueued += 1
                except DBOSWorkflowIDInUseError:
                    pass  # submitted before: the same workflow goes on
        job.note("submitted", pid=os.getpid(), bindings=len(todo), enqueued=enqueued,
                 skipped=len(skipped))
    log.info("scaleout.submitted", job_id=job_id, bindings=len(todo), enqueued=enqueued,
             skipped=len(skipped))
    return Submitted(job_id, tuple(spec.workflow_id(job_id, b.key) for b in todo), enqueued,
                     tuple(skipped), baseline)


#: How often a follower asks DBOS for the job's workflow states, seconds (the store is polled
#: every ``poll_s``; DBOS's list covers the whole job, so it is asked seldom).
WORKFLOWS_EVERY_S = 5.0


def workflow_states(client: object, job_id: str) -> dict[str, str]:
    """Binding key → DBOS status (``ENQUEUED``, ``PENDING``, ``SUCCESS``…) of job ``job_id``'s
    workflows, from ``DBOSClient.list_workflows`` (inputs and outputs not loaded)."""
    prefix = spec.workflow_id(job_id, "")
    rows = client.list_workflows(  # type: ignore[attr-defined]
        workflow_id_prefix=prefix, load_input=False, load_output=False)
    return {row.workflow_id[len(prefix):]: str(row.status) for row in rows}


def follow(store: BindingStore, job_id: str, *,
           on_start: Callable[[JobResult], None] | None = None,
           on_change: Callable[[str, str], None] | None = None,
           poll_s: float = 0.5, deadline_s: float | None = None,
           lines: Mapping[str, str] | None = None,
           baseline: Mapping[str, datetime] | None = None,
           workflows: Callable[[], Mapping[str, str]] | None = None,
           clock: Callable[[], float] = time.monotonic,
           sleep: Callable[[float], None] = time.sleep) -> JobResult:
    """Poll job ``job_id`` until every member is terminal, the deadline passes or Ctrl-C.

    A member is terminal when its record is BOUND or FAILED (newer than its ``baseline``
    entry, if any), or when its workflow finished (:data:`FINISHED`, whatever the record
    says: a retryable record then makes the job ``retryable``, as a local batch would).

    Args:
        store: the open store of record (refreshed every poll).
        job_id: the job.
        on_start: called once with the job's state (the progress display's seed).
        on_change: called with (binding key, phase) whenever a member's phase changes.
        poll_s: seconds between polls.
        deadline_s: give up following after this many seconds (None: no limit).
        lines: binding key → manifest line, for the result.
        baseline: see :attr:`Submitted.baseline`.
        workflows: returns binding key → DBOS status (:func:`workflow_states`); None: the
            records alone decide.
        clock, sleep: monotonic seconds and a sleep (injected in tests).

    Returns:
        The job's :class:`JobResult`; ``interrupted`` is SIGINT when Ctrl-C stopped the
        following (the job goes on in the workers).

    Raises:
        InputError: no such job.
    """
    started = clock()
    store.refresh()
    first = job_result(store, job_id, lines=lines)
    if on_start is not None:
        on_start(first)
    seen = {k: (r.phase if r is not None else Phase.PENDING.value)
            for k, r in zip(first.keys, first.records, strict=True)}
    base = dict(baseline or {})
    asked = started - WORKFLOWS_EVERY_S
    try:
        while True:
            store.refresh()
            now = job_result(store, job_id, lines=lines)
            done = 0
            for key, record in zip(now.keys, now.records, strict=True):
                phase = record.phase if record is not None else Phase.PENDING.value
                if seen.get(key) != phase:
                    seen[key] = phase
                    if on_change is not None:
                        on_change(key, str(phase))
                done += _terminal(record, base.get(key), None)
            if done < len(now.keys) and workflows is not None and \
                    clock() - asked >= WORKFLOWS_EVERY_S:
                # a workflow may have ended without a terminal record (gave up retrying):
                # DBOS's view, asked seldom (it lists the whole job)
                asked, states = clock(), workflows()
                done = sum(_terminal(record, base.get(key), states.get(key))
                           for key, record in zip(now.keys, now.records, strict=True))
            if done == len(now.keys):
                break
            if deadline_s is not None and clock() - started >= deadline_s:
                break
            sleep(poll_s)
    except KeyboardInterrupt:
        store.refresh()
        return job_result(store, job_id, lines=lines, elapsed_s=clock() - started,
                          interrupted=signal.SIGINT)
    return job_result(store, job_id, lines=lines, elapsed_s=clock() - started)


def _terminal(record: BindingRecord | None, since: datetime | None, state: str | None) -> bool:
    if state in FINISHED:
        return True
    if record is None or outcome(record) not in ("bound", "failed"):
        return False
    return since is None or record.updated_at > since

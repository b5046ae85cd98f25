"""What ``bind``, ``batch run``, ``reconcile --apply`` and ``batch status --follow`` do when
``store.url`` is set: the same checks as in local mode before anything is submitted, then
:func:`~cname_flow.scaleout.submit.submit` and :func:`~cname_flow.scaleout.submit.follow`.

Nothing here prints or exits; the CLI renders the :class:`~cname_flow.batch.jobs.JobResult`
and picks the exit code exactly as for a local run.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from functools import partial
from pathlib import Path

from cname_flow import errors, service
from cname_flow.batch import jobs
from cname_flow.batch.jobs import JobResult, outcome
from cname_flow.config import Settings
from cname_flow.errors import CnameFlowError, InputError, StepError
from cname_flow.journal import BindingRecord
from cname_flow.manifest import Manifest, load_manifest
from cname_flow.model import Binding
from cname_flow.reconcile.apply import BindFixer, ItemResult
from cname_flow.reconcile.drift import Action
from cname_flow.scaleout.submit import Submitted, dbos_client, follow, submit, workflow_states
from cname_flow.store import BindingStore


def worker_mode(settings: Settings) -> bool:
    """Whether commands submit to DBOS workers: ``store.url`` (or ``CNAME_FLOW_STORE_URL``)
    is set."""
    return bool(settings.store.url)


def new_job_id(kind: str) -> str:
    """``"<kind>-<YYYYmmdd-HHMMSS>-<4 hex>"``: a fresh job id naming what made it."""
    return f"{kind}-{jobs.new_job_id()}"


def submit_manifest(settings: Settings, clients: service.Clients, manifest_path: Path, *,
                    job_id: str, bucket: str | None = None, region: str | None = None,
                    ) -> tuple[Submitted, Manifest]:
    """``batch run`` in worker mode: validate and pre-flight the manifest as a local run
    does (:func:`cname_flow.batch.jobs.preflight`), then submit its bindings as job
    ``job_id`` (bindings a batch would skip, :func:`~cname_flow.batch.jobs.needs_run`, are
    skipped).

    Raises:
        ConfigError: the manifest, a certificate, a bucket or region (every problem with its
            line); nothing is submitted then.
        Locked: another process holds the job open.
    """
    manifest = load_manifest(manifest_path, bucket=bucket, region=region)
    bindings = jobs.preflight(clients, manifest)
    meta = {"manifest": str(manifest_path.resolve()), "bucket": bucket, "region": region}
    with service.open_store(settings) as store:
        submitted = submit(settings, store, job_id, bindings, meta=meta,
                           needs_run=jobs.needs_run)
    return submitted, manifest


def submit_binding(settings: Settings, clients: service.Clients, binding: Binding) -> Submitted:
    """``bind DOMAIN`` in worker mode: pre-flight the certificate and the region as a local
    bind does (:func:`cname_flow.service.step_context`), then submit a job of one.

    Raises:
        CertificateError, RegionMismatch, BucketNotFound: as a local bind (nothing submitted).
    """
    checked = service.step_context(clients, binding).binding
    with service.open_store(settings) as store:
        return submit(settings, store, new_job_id("bind"), [checked],
                      meta={"command": "bind"})


def follow_job(settings: Settings, job_id: str, *,
               on_start: Callable[[JobResult], None] | None = None,
               on_change: Callable[[str, str], None] | None = None,
               lines: Mapping[str, str] | None = None,
               baseline: Mapping[str, datetime] | None = None,
               deadline_s: float | None = None, poll_s: float = 0.5) -> JobResult:
    """Follow job ``job_id`` (:func:`~cname_flow.scaleout.submit.follow`) on the store of
    record, with its workflows' DBOS status when ``store.url`` is set.

    Raises:
        InputError: no such job.
        Interrupted: Ctrl-C while connecting or closing (:func:`following_stopped`); during
            the polling the result says ``interrupted`` instead.
    """
    try:
        with service.open_store(settings) as store, contextlib.ExitStack() as stack:
            states = None
            if worker_mode(settings):
                client = stack.enter_context(dbos_client(settings))
                states = partial(workflow_states, client, job_id)
            return follow(store, job_id, on_start=on_start, on_change=on_change, lines=lines,
                          baseline=baseline, deadline_s=deadline_s, poll_s=poll_s,
                          workflows=states)
    except KeyboardInterrupt:  # outside the polling loop (connecting, closing)
        raise following_stopped(job_id) from None


def failure_of(record: BindingRecord | None, key: str) -> CnameFlowError | None:
    """The error a local ``bind`` would have raised for a binding that ended as ``record``
    (None when it is bound): its last error's code, message and retryability, the binding
    and the step named; a code naming one of cname-flow's input errors stays an
    :class:`~cname_flow.errors.InputError` (exit 2). A binding with no outcome yet is a
    retryable error."""
    state = outcome(record)
    if state == "bound":
        return None
    error = record.last_error if record is not None else None
    if error is None:
        exc: CnameFlowError = StepError(f"{key}: not finished yet ({state})", retryable=True)
    else:
        known = getattr(errors, error.code, None)
        input_error = isinstance(known, type) and issubclass(known, InputError)
        exc = (InputError(error.message) if input_error
               else StepError(error.message, retryable=error.retryable))
        exc.code, exc.request_id = error.code, error.request_id
    exc.binding_key = key
    exc.step = str(record.last_step) if record is not None and record.last_step else None
    return exc


def bind_fixer(settings: Settings, job_id: str, *, wait: bool = True,
               poll_s: float = 0.5) -> BindFixer:
    """``reconcile --apply`` in worker mode: the BIND fixes (decided after the change budget
    and the reviewed plan were checked, as in local mode) submitted as job ``job_id``, then
    followed until done or the run's deadline (``wait``), or only submitted.

    The results are ``fixed`` (bound), ``failed`` (the binding's last error), ``stopped``
    (retryable: not done by the deadline, or the following was interrupted) or, without
    ``wait``, ``submitted`` (retryable: the workers go on).
    """
    def fix(bindings: Sequence[Binding], store: BindingStore,
            remaining_s: float | None) -> list[ItemResult]:
        if not bindings:
            return []
        submitted = submit(settings, store, job_id, bindings, meta={"command": "reconcile"})
        if not wait:
            return [ItemResult(b.key, Action.BIND, "submitted", retryable=True,
                               message=f"submitted to the workers as job {job_id}")
                    for b in bindings]
        with dbos_client(settings) as client:
            result = follow(store, job_id, baseline=submitted.baseline, deadline_s=remaining_s,
                            poll_s=poll_s, workflows=lambda: workflow_states(client, job_id))
        if result.interrupted is not None:
            raise following_stopped(job_id)
        by_key = dict(zip(result.keys, result.records, strict=True))
        return [_fix_result(b.key, by_key.get(b.key)) for b in bindings]
    return fix


def _fix_result(key: str, record: BindingRecord | None) -> ItemResult:
    state = outcome(record)
    if state == "bound":
        return ItemResult(key, Action.BIND, "fixed", message="BOUND")
    error = failure_of(record, key)
    if state == "failed" and error is not None:
        return ItemResult(key, Action.BIND, "failed", error.code, error.message, error.retryable)
    where = record.phase if record is not None else "not started"
    return ItemResult(key, Action.BIND, "stopped", retryable=True,
                      message=f"not done at {where}; the workers go on with it")


def following_stopped(job_id: str) -> errors.Interrupted:
    """The error of Ctrl-C while following a job: the job goes on in the workers (exit 130)."""
    import signal

    exc = errors.Interrupted(signal.SIGINT)
    exc.message = f"stopped following job {job_id}; it goes on in the workers"
    exc.hint = f"follow it again with `cname-flow batch status {job_id} --follow`"
    return exc

"""Reconcile on a DBOS schedule: one reconcile pass per cron slot across every worker host.

:func:`register` creates (or updates) the DBOS schedule ``cname-flow-reconcile``
(``DBOS.create_schedule``, https://docs.dbos.dev/python/tutorials/scheduled-workflows) whose
workflow is :func:`scheduled_reconcile`. Every launched worker runs DBOS's scheduler, so every
host may fire a slot, but DBOS starts the slot's workflow under the id
``sched-cname-flow-reconcile-<slot time>``: one run per slot, whichever host fires first.

A pass is the local reconcile (:func:`cname_flow.reconcile.run.reconcile`): the same plan, the
same change budget (a plan over it is refused and only reported, unless the schedule was
registered with ``force``), and the same rule for reviewed plans: a scheduled run has no
reviewed plan to apply, so a schedule registered with ``require_review`` only reports. Its
BIND fixes are submitted to the workers as job ``reconcile-<YYYYmmdd-HHMMSS>`` of the slot
(:func:`cname_flow.scaleout.routing.bind_fixer`, not waited for): a pass run again after a
crash submits the same workflow ids, so nothing is enqueued twice.

The schedule's context (persisted by DBOS) is a :class:`ScheduleContext`: the manifest's path
and the options, never a credential. Importing this module registers the workflow with DBOS
(the worker imports it before ``DBOS.launch()``) and does nothing else.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any, TypedDict

from dbos import DBOS

from cname_flow import service
from cname_flow.config import Settings
from cname_flow.errors import InputError, Locked, UnsafePlan
from cname_flow.logs import get_logger
from cname_flow.manifest import load_manifest
from cname_flow.reconcile.drift import Policy
from cname_flow.reconcile.run import ReconcileOptions, reconcile
from cname_flow.scaleout import routing

log = get_logger(__name__)

#: The DBOS schedule's name (its workflows' ids are ``sched-<name>-<slot>``).
SCHEDULE_NAME = "cname-flow-reconcile"

#: The registered name of the scheduled workflow.
RECONCILE_WORKFLOW = "cname_flow.reconcile"

_state: dict[str, Settings] = {}


class ScheduleContext(TypedDict):
    """The schedule's context, handed to every run (JSON-safe, persisted by DBOS).

    Keys: ``manifest`` (absolute path; every worker must be able to read it), ``apply``,
    ``require_review`` (only report), ``policy`` (``upsert-only``, ``sync``,
    ``report-only``), ``max_changes`` (None: 10 % of the bindings, at least 1), ``force``
    (apply over budget), ``expiry_days``, ``deadline_s`` (seconds, or None).
    """

    manifest: str
    apply: bool
    require_review: bool
    policy: str
    max_changes: int | None
    force: bool
    expiry_days: float
    deadline_s: float | None


def use_settings(settings: Settings) -> None:
    """The settings scheduled passes in this process run with (the worker's). A worker that
    never calls it (nor :func:`register`) loads them as ``cname-flow`` does without
    ``--config`` (``CNAME_FLOW_CONFIG``, the environment)."""
    _state["settings"] = settings


def _settings() -> Settings:
    if "settings" not in _state:
        import os

        from cname_flow.config import load_settings

        config = os.environ.get("CNAME_FLOW_CONFIG")
        _state["settings"] = load_settings(Path(config) if config else None)
    return _state["settings"]


def slot_job_id(scheduled_at: datetime) -> str:
    """The job id of a slot's fixes: ``reconcile-<YYYYmmdd-HHMMSS>`` (the slot's UTC time)."""
    return f"reconcile-{scheduled_at:%Y%m%d-%H%M%S}"


def run_pass(settings: Settings, context: ScheduleContext, scheduled_at: datetime, *,
             clients: service.Clients | None = None) -> dict[str, object]:
    """One scheduled reconcile pass (what :func:`scheduled_reconcile` runs as a DBOS step).

    Args:
        settings: the worker's settings.
        context: the schedule's context.
        scheduled_at: the slot's time (names the fixes' job).
        clients: the adapters (default: built from ``settings``).

    Returns:
        A summary, also logged as ``reconcile.scheduled``: ``outcome`` (``clean``, ``retry``,
        ``drift``, or ``refused`` over budget, or ``locked`` while another pass runs on this
        host), ``drift``, ``changes``, ``applied``, ``submitted`` (bindings enqueued), ``job_id``.

    Raises:
        ConfigError: the manifest is unreadable or invalid, or no credentials.
        CnameFlowError: an observation failed (the workflow fails; the next slot tries again).
    """
    apply = context["apply"] and not context["require_review"]
    opts = ReconcileOptions(policy=Policy(context["policy"]), apply=apply,
                            max_changes=context["max_changes"], force=context["force"],
                            deadline_s=context["deadline_s"], expiry_days=context["expiry_days"])
    clients = clients or service.Clients.from_settings(settings)
    manifest = load_manifest(Path(context["manifest"]), bucket=settings.defaults.bucket)
    manifest = service.manifest_in_regions(clients, manifest)
    job_id = slot_job_id(scheduled_at)
    fixer = routing.bind_fixer(settings, job_id, wait=False) if apply else None
    summary: dict[str, object] = {"slot": scheduled_at.isoformat(), "applied": apply,
                                  "job_id": None}
    try:
        report = reconcile(clients, manifest, opts, fix_binds=fixer)
    except UnsafePlan as exc:
        summary.update(outcome="refused", code=exc.code, message=exc.message)
        log.warning("reconcile.scheduled", **summary)
        return summary
    except Locked as exc:
        summary.update(outcome="locked", message=exc.message)
        log.warning("reconcile.scheduled", **summary)
        return summary
    submitted = sum(1 for r in report.results if r.status == "submitted")
    summary.update(outcome=report.outcome(), drift=len(report.plan.drift),
                   changes=report.plan.changes, submitted=submitted,
                   job_id=job_id if submitted else None)
    log.info("reconcile.scheduled", **summary)
    return summary


@DBOS.step(name="cname_flow.reconcile_pass")
def _pass_step(scheduled_at: datetime, context: ScheduleContext) -> dict[str, object]:
    return run_pass(_settings(), context, scheduled_at)


@DBOS.workflow(name=RECONCILE_WORKFLOW)
def scheduled_reconcile(scheduled_at: datetime, context: Any) -> None:
    """The scheduled workflow: one reconcile pass (:func:`run_pass`) as one DBOS step, for
    the slot ``scheduled_at`` with the schedule's ``context`` (:class:`ScheduleContext`)."""
    _pass_step(scheduled_at, context)


def schedule_context(manifest: Path, *, apply: bool = False, require_review: bool = False,
                     policy: Policy = Policy.UPSERT_ONLY, max_changes: int | None = None,
                     force: bool = False, expiry_days: float = 30.0,
                     deadline_s: float | None = None) -> ScheduleContext:
    """The :class:`ScheduleContext` of these options (the manifest's path made absolute)."""
    return ScheduleContext(manifest=str(manifest.resolve()), apply=apply,
                           require_review=require_review, policy=str(policy),
                           max_changes=max_changes, force=force, expiry_days=expiry_days,
                           deadline_s=deadline_s)


def register(settings: Settings, *, manifest: Path, cron: str, apply: bool = False,
             require_review: bool = False, policy: Policy = Policy.UPSERT_ONLY,
             max_changes: int | None = None, force: bool = False, expiry_days: float = 30.0,
             deadline_s: float | None = None) -> None:
    """Create the reconcile schedule, or bring it to these options; idempotent, and safe
    when several workers register at once (the last registration's options win).

    Call after ``DBOS.launch()``. ``DBOS.create_schedule`` refuses a name that exists, so an
    existing schedule with the same cron and context is left as it is (its slots keep
    firing), one that differs is replaced (``DBOS.apply_schedules``, an upsert).

    Args:
        settings: the worker's settings (scheduled passes in this process use them).
        manifest: the desired state; read now, so a bad manifest fails the worker's start.
        cron: 5 or 6 fields (seconds first), UTC, e.g. ``"0 */15 * * * *"``.
        apply, require_review, policy, max_changes, force, expiry_days, deadline_s: as
            :class:`ScheduleContext`.

    Raises:
        InputError: an invalid cron expression.
        ConfigError: the manifest does not load.
        DBOSException: DBOS is not launched.
    """
    from croniter import croniter
    from dbos._error import DBOSException

    if not croniter.is_valid(cron, second_at_beginning=True):
        raise InputError(f"--reconcile-schedule {cron!r}: not a cron expression",
                         hint="5 or 6 fields (seconds first), e.g. '0 */15 * * * *'")
    load_manifest(manifest, bucket=settings.defaults.bucket)
    use_settings(settings)
    context = schedule_context(manifest, apply=apply, require_review=require_review,
                               policy=policy, max_changes=max_changes, force=force,
                               expiry_days=expiry_days, deadline_s=deadline_s)
    existing = DBOS.get_schedule(SCHEDULE_NAME)
    if existing is None:
        try:
            DBOS.create_schedule(schedule_name=SCHEDULE_NAME, workflow_fn=scheduled_reconcile,
                                 schedule=cron, context=context)
            log.info("reconcile.schedule_created", cron=cron, manifest=context["manifest"])
            return
        except DBOSException:  # another worker created it between the read and the insert
            existing = DBOS.get_schedule(SCHEDULE_NAME)
            if existing is None:
                raise
    same = (existing["schedule"], existing["context"], existing["workflow_name"]) == (
        cron, dict(context), RECONCILE_WORKFLOW)
    if same:
        return
    DBOS.apply_schedules([{"schedule_name": SCHEDULE_NAME, "workflow_fn": scheduled_reconcile,
                           "schedule": cron, "context": context}])
    log.warning("reconcile.schedule_replaced", cron=cron, manifest=context["manifest"],
                was=existing["schedule"])

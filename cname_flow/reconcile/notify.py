"""The events a reconcile run publishes (:mod:`cname_flow.events`), built from its plan.

* ``certificate.expiring``: one per binding whose bound certificate ends within the run's
  warning window (``--expiry-days``, the ``certificate_expiring`` finding), subject
  ``"<bucket>/<domain>"``;
* ``drift.found``: one per run whose plan holds drift (notices excluded), subject
  ``"reconcile"``, listing the findings.

They are published on every run that sees them (a cron run each time): receivers that want one
notice per problem de-duplicate on the subject and the finding's digest.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime

from cname_flow.events import Event, EventSink
from cname_flow.logs import get_logger
from cname_flow.reconcile.drift import DriftKind
from cname_flow.reconcile.plan import ReconcilePlan

log = get_logger(__name__)


def drift_event(plan: ReconcilePlan) -> Event | None:
    """``drift.found`` for a plan holding drift (its findings, notices left out), else None;
    timed at the plan's observation."""
    if not plan.drift:
        return None
    findings = [f.to_json() for f in plan.drift]
    return Event("drift.found", "reconcile", {
        "manifest": plan.manifest, "policy": str(plan.policy), "count": len(findings),
        "findings": findings}, plan.created_at)


def expiring_events(plan: ReconcilePlan,
                    not_after: Mapping[str, datetime | None]) -> list[Event]:
    """``certificate.expiring`` for each ``certificate_expiring`` finding, key order.

    Args:
        plan: the plan the run made.
        not_after: binding key → its bound certificate's ValidEndDate (None: unknown).
    """
    now, events = plan.created_at, []
    for f in plan.findings:
        if f.kind is not DriftKind.CERTIFICATE_EXPIRING:
            continue
        bucket, _, domain = f.key.partition("/")
        end = not_after.get(f.key)
        data: dict[str, object] = {"domain": domain, "bucket": bucket, "detail": f.detail}
        if end is not None:
            data["not_after"] = end.isoformat()
            data["days_left"] = round((end - now).total_seconds() / 86400, 1)
        events.append(Event("certificate.expiring", f.key, data, now))
    return events


def publish(sink: EventSink, events: Iterable[Event | None]) -> None:
    """Publish ``events`` (None skipped) in order; a sink that raises is logged, never
    propagated."""
    for event in events:
        if event is None:
            continue
        try:
            sink.publish(event)
        except Exception:
            log.exception("event.publish_failed", type=event.type, subject=event.subject)

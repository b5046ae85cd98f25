"""The errors of manual mode, below :class:`~cname_flow.errors.StepError` in the one exception
tree drawn in :mod:`cname_flow.errors` (kept here so that module stays within the house's size
limit)."""

from __future__ import annotations

from collections.abc import Sequence

from cname_flow.errors import StepError, ZoneNotFound


class AwaitingCustomerDns(StepError):
    """Manual mode: the customer's TXT record is not (yet) served by every authoritative
    nameserver; the binding stays in the store and ``reconcile`` or ``cname-flow check``
    continue it (exit 75).

    Attributes:
        findings: what the last check found, as ``(code, message)`` pairs (may be empty when
            no check was due in this run).
        next_check_at: ISO-8601 time of the next scheduled check, or ``""``.
    """

    retryable = True

    def __init__(self, message: str, *, hint: str = "",
                 findings: Sequence[tuple[str, str]] = (), next_check_at: str = "") -> None:
        super().__init__(message, hint=hint)
        self.findings = tuple(findings)
        self.next_check_at = next_check_at


class CustomerDnsAbandoned(StepError):
    """Manual mode: the record was not seen within ``manual.give_up_after_s``; not retryable
    (``bind`` again to start a new wait)."""

    retryable = False


class CheckTooSoon(StepError):
    """``cname-flow check`` ran again within ``manual.check_now_interval_s`` of its last run for
    the domain; nothing was asked (retryable: try again after ``retry_at``).

    Attributes:
        retry_at: ISO-8601 time from which a check is allowed again.
    """

    retryable = True

    def __init__(self, message: str, *, hint: str = "", retry_at: str = "") -> None:
        super().__init__(message, hint=hint)
        self.retry_at = retry_at


class ManualZone(ZoneNotFound):
    """The name lies in a zone whose records a person adds (``dns.zones: {zone: manual}``, or
    ``dns.provider: manual``): no provider writes there, so there is no zone to find.

    Raised by :class:`cname_flow.dns.router.ZoneRouter` instead of asking any provider (the
    manual mode's steps never ask one: they give the record to add). A ``ZoneNotFound`` too, so
    code that already skips DNS reads for an unknown zone (reconcile) skips manual zones alike.

    Attributes:
        zone: the ``dns.zones`` entry the name falls in, ``""`` when ``dns.provider`` is
            ``manual`` and no entry matched.
        name: the name that was looked up.
    """

    def __init__(self, name: str, zone: str = "") -> None:
        where = f"zone {zone}, which dns.zones marks" if zone else "dns.provider"
        super().__init__(
            f"{name}: {where} manual: a person adds its records; cname-flow writes none there",
            service="manual", code="ManualZone",
            hint="add the record the instructions give, or map the zone to a provider in "
                 "dns.zones")
        self.zone = zone
        self.name = name

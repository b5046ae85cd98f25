"""A manual binding's status as a value: the record to add, the token, the last check's findings
and the next check time (``cname-flow status``, ``bind --json``), shaped like Fly.io's
certificate object (what to set, what was observed, what is wrong)."""

from __future__ import annotations

from cname_flow.journal import BindingRecord
from cname_flow.manual import detect, instructions
from cname_flow.manual.outputs import time_of


def manual_view(record: BindingRecord) -> dict[str, object] | None:
    """The manual part of ``record`` as JSON, or None when it is not a manual binding.

    Returns:
        ``{"instructions": {...} | None, "token": {expires_at, renewals, renewed_at,
        previous_value}, "last_check": {at, ok, count, findings: [{code, severity, message,
        remediation}]} | None, "next_check_at", "check_now_at", "waiting_since"}``.
    """
    if record.get("dns_mode") != "manual":
        return None
    instr = instructions.from_record(record)
    checked = time_of(record, "dns_checked_at")
    renewals = record.get("token_renewals")
    return {
        "instructions": instr.as_json() if instr is not None else None,
        "token": {
            "expires_at": _iso(record.token_expires_at),
            "renewals": renewals if isinstance(renewals, int) else 0,
            "renewed_at": _iso(time_of(record, "token_renewed_at")),
            "previous_value": record.get("token_previous"),
        },
        "last_check": None if checked is None else {
            "at": checked.isoformat(), "ok": record.get("dns_check_ok"),
            "count": record.get("dns_check_count"),
            "findings": detect.decode(record.get("dns_findings")),
        },
        "next_check_at": _iso(time_of(record, "dns_next_check_at")) if record.phase == "TXT_WRITTEN"
        else None,
        "check_now_at": _iso(time_of(record, "check_now_at")),
        "waiting_since": _iso(time_of(record, "manual_since")),
    }


def _iso(value: object) -> str | None:
    from datetime import datetime

    return value.isoformat() if isinstance(value, datetime) else None

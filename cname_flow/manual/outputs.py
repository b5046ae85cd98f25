"""The journal outputs of manual mode, and typed reads of them.

They are ordinary outputs of a binding's events (merged by the store like any other, ``None``
deleting a key), outside :class:`~cname_flow.journal.BindingOutputs` so the journal's schema
module stays the core flow's; read them with :meth:`BindingRecord.get` or :func:`time_of`.
"""

from __future__ import annotations

from datetime import datetime
from typing import TypedDict, cast

from cname_flow.journal import BindingOutputs, BindingRecord
from cname_flow.journal.records import parse_ts


class ManualOutputs(TypedDict, total=False):
    """Outputs written in manual mode (times ISO-8601 strings, durations seconds):

    * the instructions (write_txt): ``dns_mode`` (``"manual"``), ``manual_zone``,
      ``manual_host`` (relative to the zone), ``manual_fqdn``, ``manual_since``;
    * each check (``dns_check`` events): ``dns_checked_at``, ``dns_check_count``,
      ``dns_check_delay_s``, ``dns_next_check_at``, ``dns_check_ok``, ``dns_findings`` (a JSON
      list of ``{code, severity, message, remediation}``), ``check_now_at``;
    * a re-mint (``token_renew`` events): ``token_previous``, ``token_renewals``,
      ``token_renewed_at`` (and the core ``token``, ``token_expires_at``).
    """

    dns_mode: str | None
    manual_zone: str | None
    manual_host: str | None
    manual_fqdn: str | None
    manual_since: str | None
    dns_checked_at: str | None
    dns_check_count: int | None
    dns_check_delay_s: float | None
    dns_next_check_at: str | None
    dns_check_ok: bool | None
    dns_findings: str | None
    check_now_at: str | None
    token_previous: str | None
    token_renewals: int | None
    token_renewed_at: str | None


def to_journal(outputs: ManualOutputs, core: BindingOutputs | None = None) -> BindingOutputs:
    """``outputs`` (and ``core`` outputs beside them) as one event's outputs."""
    merged: dict[str, object] = {**(core or {}), **outputs}
    return cast(BindingOutputs, merged)


def time_of(record: BindingRecord, key: str) -> datetime | None:
    """The time output ``key`` of ``record`` (aware UTC), None when absent or unreadable."""
    value = record.get(key)
    if not isinstance(value, str):
        return None
    try:
        return parse_ts(value)
    except ValueError:
        return None

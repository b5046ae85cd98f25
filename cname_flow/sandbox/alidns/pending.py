"""Alidns ``LastOperationNotFinished``: a change to a host record while the previous one runs.

The real service refuses rapid successive changes to one record with ``LastOperationNotFinished``
(the Alidns error-code table, https://help.aliyun.com/document_detail/2355841.html); the
provider's own Terraform resource retries it on AddDomainRecord, UpdateDomainRecord and
DeleteDomainRecord, waiting 3 s then up to 10 s (aliyun/terraform-provider-alicloud
``alicloud/resource_alicloud_alidns_record.go``, PRs #3813 and #5400; #3813 is titled "Fixes
the LastOperationNotFinished when creating several records one time", i.e. adds too).

The sandbox models it per host record (zone + RR), not per RecordId, so that two adds at one
name collide as they do for ACME clients (traefik/traefik#11584). How long the real "operation"
lasts, and whether UpdateDomainRecordRemark counts as a change, is not documented: both are the
sandbox's guesses (docs/sandbox-alidns.md), switched by ``AlidnsLimits.last_operation_*``.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from cname_flow.sandbox.alidns.rules import (
    AlidnsError,
    Params,
    domain_name,
    normalize_rr,
    owned_record,
    owned_zone,
)
from cname_flow.sandbox.state import SandboxState

#: A host record: (zone name, RR).
HostKey = tuple[str, str]

#: The actions that change records (and so start an "operation" on their host record).
CHANGES = frozenset({
    "AddDomainRecord", "UpdateDomainRecord", "UpdateDomainRecordRemark", "DeleteDomainRecord",
    "DeleteSubDomainRecords",
})
#: Status and message of the answer. The code is documented; the status follows the Alidns
#: convention for client errors (400); the message is a guess (no real body found).
STATUS = 400
MESSAGE = "The last operation on this record is not finished. Try again later."


def touched(state: SandboxState, account: str, action: str, p: Params) -> list[HostKey]:
    """The host records ``action`` would change, resolved before it runs.

    Update touches the record's old and new RR. A request whose zone, RR or RecordId does not
    resolve touches nothing here: the operation itself then answers its own error.

    Returns:
        ``[(zone name, rr), …]``, empty for read actions.
    """
    if action not in CHANGES:
        return []
    try:
        with state.lock:
            if action in ("AddDomainRecord", "DeleteSubDomainRecords"):
                zone = owned_zone(state.zones, account, domain_name(p.required("DomainName")))
                return [(zone.name, normalize_rr(p.required("RR"), zone))]
            zone, rec = owned_record(state, account, p.required("RecordId"))
            keys = [(zone.name, rec.rr)]
            new_rr = p.get("RR") if action == "UpdateDomainRecord" else None
            if new_rr:
                keys.append((zone.name, normalize_rr(new_rr, zone)))
            return keys
    except AlidnsError:
        return []


class RecentChanges:
    """When each host record last changed, on a monotonic clock.

    Args:
        window_s: how long a change keeps its host record busy, seconds.
        clock: monotonic seconds (injected in tests).
    """

    def __init__(self, window_s: float, clock: Callable[[], float] = time.monotonic) -> None:
        self._window = window_s
        self._clock = clock
        self._last: dict[HostKey, float] = {}

    def check(self, keys: list[HostKey]) -> None:
        """Refuse a change to a host record changed less than ``window_s`` ago.

        Raises:
            AlidnsError: ``LastOperationNotFinished``, HTTP 400.
        """
        now = self._clock()
        if any(now - self._last.get(key, -self._window - 1.0) < self._window for key in keys):
            raise AlidnsError("LastOperationNotFinished", MESSAGE, STATUS)

    def note(self, keys: list[HostKey]) -> None:
        """Start the window of each host record a change has just touched."""
        now = self._clock()
        for key in keys:
            self._last[key] = now
        if len(self._last) > 10_000:  # forget the expired ones now and then
            self._last = {k: t for k, t in self._last.items() if now - t < self._window}

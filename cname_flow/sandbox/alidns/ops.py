"""The Alidns record mutations the sandbox serves, and the table of every operation.

Each handler takes the shared state, the caller's account id and the request's
:class:`~cname_flow.sandbox.alidns.rules.Params`, and returns the JSON body without
``RequestId`` (the app adds it). Handlers raise
:class:`~cname_flow.sandbox.alidns.rules.AlidnsError` for error answers. Mutations go through
``SandboxState.add_record / update_record / delete_record`` under ``state.lock`` so the
per-nameserver histories stay consistent.
"""

from __future__ import annotations

from collections.abc import Callable

from cname_flow.sandbox.alidns import query
from cname_flow.sandbox.alidns.rules import (
    AlidnsError,
    Params,
    check_conflicts,
    check_line,
    check_priority,
    check_ttl,
    check_type,
    check_value,
    domain_name,
    normalize_rr,
    owned_record,
    owned_zone,
)
from cname_flow.sandbox.state import DnsRecord, SandboxState, owner_name

JsonBody = dict[str, object]
Handler = Callable[[SandboxState, str, Params], JsonBody]

MAX_REMARK_LENGTH = 50


def _unlocked(rec: DnsRecord) -> DnsRecord:
    if rec.locked:
        raise AlidnsError("DomainRecordLocked", "The DNS record is locked and cannot be changed.")
    return rec


def add_domain_record(state: SandboxState, account: str, p: Params) -> JsonBody:
    """AddDomainRecord: DomainName*, RR*, Type*, Value*, TTL, Line, Priority → ``{RecordId}``."""
    name, raw_rr = p.required("DomainName"), p.required("RR")
    raw_type, raw_value = p.required("Type"), p.required("Value")
    with state.lock:
        zone = owned_zone(state.zones, account, domain_name(name))
        rr, rtype = normalize_rr(raw_rr, zone), check_type(raw_type)
        value, line = check_value(raw_value, rtype), check_line(p.get("Line"))
        ttl, priority = check_ttl(p.get("TTL"), zone), check_priority(p.get("Priority"), rtype)
        check_conflicts(zone, rr, rtype, line, value)
        rec = state.add_record(zone, rr, rtype, value, ttl, line)
        rec.priority = priority
        return {"RecordId": rec.record_id}


def update_domain_record(state: SandboxState, account: str, p: Params) -> JsonBody:
    """UpdateDomainRecord: RecordId*, RR*, Type*, Value*, TTL, Line, Priority → ``{RecordId}``.

    An update that changes nothing answers DomainRecordDuplicate, as the real service does.
    """
    record_id, raw_rr = p.required("RecordId"), p.required("RR")
    raw_type, raw_value = p.required("Type"), p.required("Value")
    with state.lock:
        zone, rec = owned_record(state, account, record_id)
        rr, rtype = normalize_rr(raw_rr, zone), check_type(raw_type)
        value, line = check_value(raw_value, rtype), check_line(p.get("Line"))
        ttl, priority = check_ttl(p.get("TTL"), zone), check_priority(p.get("Priority"), rtype)
        _unlocked(rec)
        new = (rr, rtype, value, ttl, line, priority)
        if new == (rec.rr, rec.type, rec.value, rec.ttl, rec.line, rec.priority):
            raise AlidnsError("DomainRecordDuplicate", "The DNS record already exists.")
        check_conflicts(zone, rr, rtype, line, value, skip=rec.record_id)
        state.update_record(zone, rec, rr, rtype, value, ttl, line)
        rec.priority = priority
        return {"RecordId": rec.record_id}


def update_domain_record_remark(state: SandboxState, account: str, p: Params) -> JsonBody:
    """UpdateDomainRecordRemark: RecordId*, Remark (empty clears it) → ``{}``."""
    record_id = p.required("RecordId")
    remark = p.get("Remark", "") or ""
    if len(remark) > MAX_REMARK_LENGTH:
        raise AlidnsError("InvalidParameter", "Specified parameter Remark is not valid.")
    with state.lock:
        _, rec = owned_record(state, account, record_id)
        rec.remark = remark
        state.touch()
    return {}


def delete_domain_record(state: SandboxState, account: str, p: Params) -> JsonBody:
    """DeleteDomainRecord: RecordId* → ``{RecordId}``."""
    record_id = p.required("RecordId")
    with state.lock:
        zone, rec = owned_record(state, account, record_id)
        state.delete_record(zone, _unlocked(rec))
        return {"RecordId": rec.record_id}


def delete_sub_domain_records(state: SandboxState, account: str, p: Params) -> JsonBody:
    """DeleteSubDomainRecords: DomainName*, RR*, Type → ``{RR, TotalCount}`` (count as string)."""
    name, raw_rr = p.required("DomainName"), p.required("RR")
    raw_type = p.get("Type")
    with state.lock:
        zone = owned_zone(state.zones, account, domain_name(name))
        rr = normalize_rr(raw_rr, zone)
        rtype = check_type(raw_type) if raw_type else None
        doomed = [
            r for r in state.records_at(zone, owner_name(rr, zone.name))
            if rtype in (None, r.type)
        ]
        for rec in doomed:
            _unlocked(rec)
        for rec in doomed:
            state.delete_record(zone, rec)
        return {"RR": rr, "TotalCount": str(len(doomed))}


OPERATIONS: dict[str, Handler] = {
    "AddDomainRecord": add_domain_record,
    "UpdateDomainRecord": update_domain_record,
    "UpdateDomainRecordRemark": update_domain_record_remark,
    "DeleteDomainRecord": delete_domain_record,
    "DeleteSubDomainRecords": delete_sub_domain_records,
    "DescribeDomains": query.describe_domains,
    "DescribeDomainInfo": query.describe_domain_info,
    "GetMainDomainName": query.get_main_domain_name,
    "DescribeDomainRecords": query.describe_domain_records,
    "DescribeSubDomainRecords": query.describe_sub_domain_records,
    "DescribeDomainRecordInfo": query.describe_domain_record_info,
}

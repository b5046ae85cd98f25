"""The Alidns read operations the sandbox serves: domains, domain info, records, main domain.

Handlers have the shape of :data:`cname_flow.sandbox.alidns.ops.Handler` and return JSON bodies
shaped like the SDK's response models (alibabacloud_alidns20150109 4.6.1): RecordId and DomainId
are strings, TTL, Priority and counts integers, timestamps Unix milliseconds.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import TypeVar

from cname_flow.sandbox.alidns.rules import (
    AlidnsError,
    Params,
    check_line,
    check_type,
    domain_name,
    host_name,
    owned_record,
    owned_zone,
)
from cname_flow.sandbox.state import DnsRecord, HostedZone, SandboxState

JsonBody = dict[str, object]
T = TypeVar("T")

VERSION_NAMES = {
    "mianfei": "Alibaba Cloud DNS Free Edition",
    "version_personal": "Personal Edition",
    "version_enterprise_basic": "Enterprise Standard Edition",
    "version_enterprise_advanced": "Enterprise Ultimate Edition",
    "version_cached": "Exclusive Edition",
}
TTL_CHOICES = (1, 5, 10, 30, 60, 120, 300, 600, 1800, 3600, 43200, 86400)
#: Second-level public suffixes for GetMainDomainName on names the account does not host.
TWO_LABEL_SUFFIXES = frozenset(
    f"{sld}.{tld}" for sld in ("com", "net", "org", "gov", "edu", "ac", "co") for tld in
    ("cn", "hk", "uk", "jp", "tw", "au", "nz")
)
MAX_MAIN_DOMAIN_INPUT = 128


def _page(items: Sequence[T], p: Params, max_size: int) -> tuple[JsonBody, Sequence[T]]:
    number = p.integer("PageNumber", 1, 1, 1_000_000)
    size = p.integer("PageSize", 20, 1, max_size)
    envelope: JsonBody = {"TotalCount": len(items), "PageNumber": number, "PageSize": size}
    return envelope, items[(number - 1) * size : number * size]


def _account_zones(state: SandboxState, account: str) -> list[HostedZone]:
    return [z for z in state.iter_zones() if z.owner == account]


def _dns_servers(zone: HostedZone) -> JsonBody:
    return {"DnsServer": list(zone.nameservers)}


def _domain_common(zone: HostedZone) -> JsonBody:
    created = datetime.fromtimestamp(zone.created_at, UTC)
    return {
        "DomainId": zone.domain_id,
        "DomainName": zone.name,
        "PunyCode": zone.name,
        "AliDomain": False,
        "CreateTime": created.strftime("%Y-%m-%dT%H:%MZ"),
        "VersionCode": zone.edition,
        "VersionName": VERSION_NAMES.get(zone.edition, zone.edition),
        "DnsServers": _dns_servers(zone),
    }


def _domain_json(zone: HostedZone) -> JsonBody:
    return _domain_common(zone) | {
        "CreateTimestamp": int(zone.created_at * 1000),
        "RecordCount": len(zone.records),
        "InstanceExpired": False,
        "Starmark": False,
    }


def _record_json(zone: HostedZone, rec: DnsRecord) -> JsonBody:
    body: JsonBody = {
        "RecordId": rec.record_id,
        "DomainName": zone.name,
        "RR": rec.rr,
        "Type": rec.type,
        "Value": rec.value,
        "TTL": rec.ttl,
        "Line": rec.line,
        "Status": rec.status,
        "Locked": rec.locked,
        "Weight": 1,
        "Remark": rec.remark,
    }
    if rec.priority is not None:
        body["Priority"] = rec.priority
    return body


def _timestamped(zone: HostedZone, rec: DnsRecord) -> JsonBody:
    return _record_json(zone, rec) | {
        "CreateTimestamp": rec.created_ms,
        "UpdateTimestamp": rec.updated_ms,
    }


def _newest_first(records: Sequence[DnsRecord], ascending: bool = False) -> list[DnsRecord]:
    return sorted(records, key=lambda r: (r.created_ms, int(r.record_id)), reverse=not ascending)


def describe_domains(state: SandboxState, account: str, p: Params) -> JsonBody:
    """DescribeDomains: the account's zones; KeyWord LIKE (substring) or EXACT; ≤100 a page."""
    mode = p.choice("SearchMode", ("LIKE", "EXACT"), "LIKE")
    keyword = (p.get("KeyWord") or "").lower().rstrip(".")
    with state.lock:
        zones = [
            z for z in _account_zones(state, account)
            if not keyword or (z.name == keyword if mode == "EXACT" else keyword in z.name)
        ]
        envelope, page = _page(zones, p, 100)
        return envelope | {"Domains": {"Domain": [_domain_json(z) for z in page]}}


def describe_domain_info(state: SandboxState, account: str, p: Params) -> JsonBody:
    """DescribeDomainInfo: DomainName*, NeedDetailAttributes → zone facts (DnsServers, …).

    As the API page says
    (https://www.alibabacloud.com/help/en/dns/api-alidns-2015-01-09-describedomaininfo),
    ``MinTtl``, ``LineType``, ``RegionLines``, ``SlaveDns``, ``AvailableTtls`` and
    ``RecordLines`` come back only with ``NeedDetailAttributes=true``.
    """
    name = domain_name(p.required("DomainName"))
    detail = (p.get("NeedDetailAttributes") or "").lower() == "true"
    with state.lock:
        zone = owned_zone(state.zones, account, name)
        body = _domain_common(zone) | {"InBlackHole": False, "InClean": False, "SubDomain": False}
    if detail:
        body |= {"MinTtl": zone.min_ttl, "SlaveDns": False, "RegionLines": False,
                 "LineType": "default"}
        ttls = [str(t) for t in TTL_CHOICES if t >= zone.min_ttl]
        body["AvailableTtls"] = {"AvailableTtl": ttls}
        body["RecordLines"] = {"RecordLine": [
            {"LineCode": "default", "LineName": "默认", "LineDisplayName": "默认"}
        ]}
    return body


def _split_main(state: SandboxState, account: str, name: str) -> tuple[str, str]:
    """(main domain, RR): the longest account zone suffix, else a public-suffix guess."""
    for zone in sorted(_account_zones(state, account), key=lambda z: -len(z.name)):
        if name == zone.name or name.endswith("." + zone.name):
            return zone.name, name[: -len(zone.name) - 1] if name != zone.name else "@"
    labels = name.split(".")
    keep = 3 if ".".join(labels[-2:]) in TWO_LABEL_SUFFIXES and len(labels) > 2 else 2
    main = ".".join(labels[-keep:])
    return main, ".".join(labels[:-keep]) or "@"


def get_main_domain_name(state: SandboxState, account: str, p: Params) -> JsonBody:
    """GetMainDomainName: InputString* (≤128 chars) → ``{DomainName, RR, DomainLevel}``."""
    raw = p.required("InputString")
    if len(raw) > MAX_MAIN_DOMAIN_INPUT:
        raise AlidnsError(
            "QuotaExceeded.StringLength", "The length of the input string exceeds the limit."
        )
    name = host_name(raw)
    with state.lock:
        main, rr = _split_main(state, account, name)
    level = 1 if rr == "@" else rr.count(".") + 2
    return {"DomainName": main, "RR": rr, "DomainLevel": level}


def _like(needle: str | None, hay: str) -> bool:
    return needle is None or needle.lower() in hay.lower()


def _exact(needle: str | None, hay: str) -> bool:
    return needle is None or needle.lower() == hay.lower()


def _record_filter(p: Params) -> Callable[[DnsRecord], bool]:
    """The predicate for DescribeDomainRecords' SearchMode semantics.

    As the ``SearchMode`` parameter is described in
    https://www.alibabacloud.com/help/doc-detail/29776.htm (DescribeDomainRecords).
    """
    keyword = p.get("KeyWord")
    mode = p.choice("SearchMode", ("LIKE", "EXACT", "ADVANCED", "COMBINATION"))
    if mode is None:
        mode = "LIKE" if keyword else "ADVANCED"
    if mode in ("LIKE", "EXACT"):
        match = _like if mode == "LIKE" else _exact
        return lambda r: keyword is None or match(keyword, r.rr) or match(keyword, r.value)
    fuzzy = _like if mode == "ADVANCED" else _exact
    rr_kw, value_kw, type_kw = p.get("RRKeyWord"), p.get("ValueKeyWord"), p.get("TypeKeyWord")
    rtype = check_type(p.get("Type") or "") if p.get("Type") else None
    line = check_line(p.get("Line")) if p.get("Line") else None
    status = p.choice("Status", ("ENABLE", "DISABLE"))
    return lambda r: (
        fuzzy(rr_kw, r.rr) and fuzzy(value_kw, r.value) and _exact(type_kw, r.type)
        and _exact(rtype, r.type) and _exact(line, r.line) and _exact(status, r.status)
    )


def describe_domain_records(state: SandboxState, account: str, p: Params) -> JsonBody:
    """DescribeDomainRecords: DomainName*, filters per SearchMode, newest first; ≤500/page."""
    name = domain_name(p.required("DomainName"))
    keep = _record_filter(p)
    ascending = p.choice("Direction", ("ASC", "DESC"), "DESC") == "ASC"
    with state.lock:
        zone = owned_zone(state.zones, account, name)
        records = _newest_first([r for r in zone.records.values() if keep(r)], ascending)
        envelope, page = _page(records, p, 500)
        return envelope | {"DomainRecords": {"Record": [_timestamped(zone, r) for r in page]}}


def _sub_domain_zone(state: SandboxState, account: str, sub: str, p: Params) -> HostedZone:
    given = p.get("DomainName")
    if given is not None:
        return owned_zone(state.zones, account, domain_name(given))
    main, _ = _split_main(state, account, sub)
    return owned_zone(state.zones, account, main)


def describe_sub_domain_records(state: SandboxState, account: str, p: Params) -> JsonBody:
    """DescribeSubDomainRecords: SubDomain*, DomainName, Type, Line; ≤100/page."""
    sub = host_name(p.required("SubDomain"))
    rtype = check_type(p.get("Type") or "") if p.get("Type") else None
    line = check_line(p.get("Line")) if p.get("Line") else None
    with state.lock:
        zone = _sub_domain_zone(state, account, sub, p)
        records = _newest_first([
            r for r in state.records_at(zone, sub)
            if _exact(rtype, r.type) and _exact(line, r.line)
        ])
        envelope, page = _page(records, p, 100)
        return envelope | {"DomainRecords": {"Record": [_record_json(zone, r) for r in page]}}


def describe_domain_record_info(state: SandboxState, account: str, p: Params) -> JsonBody:
    """DescribeDomainRecordInfo: RecordId* → the record with its zone's DomainId and PunyCode."""
    record_id = p.required("RecordId")
    with state.lock:
        zone, rec = owned_record(state, account, record_id)
        body = _record_json(zone, rec)
    del body["Weight"]
    return body | {"DomainId": zone.domain_id, "PunyCode": zone.name}

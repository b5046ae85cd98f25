"""PowerDNS Authoritative Server over its HTTP API behind the :class:`DnsProvider` port.

API: https://doc.powerdns.com/authoritative/http-api/ (``/api/v1/servers/{server_id}``), over
httpx, the key in the ``X-API-Key`` header. Calls used: ``GET /zones`` (zone list),
``GET /zones/{id}?rrset_name=&rrset_type=`` (one RRset; the apex NS set for the nameservers)
and ``PATCH /zones/{id}`` with ``changetype`` ``REPLACE`` or ``DELETE`` (every write).

**RRsets.** The API's unit is the RRset (name + type): a PATCH replaces all its records, or
all its comments, or both, atomically. Adding, changing or deleting one record therefore reads
the RRset and writes it back with that one record changed and every other record (the
customer's, disabled ones included) as read. PowerDNS 4.7 has no conditional PATCH: a change
someone else makes to the same RRset in the milliseconds between the read and the write is
lost. The RRset's TTL is the last one written (DNS wants one TTL per RRset, RFC 2181 §5.2).

**Ownership.** Comments belong to the RRset, not to a record, so each record cname-flow writes
gets its own comment in the same PATCH as the record (one atomic change)::

    {"content": "managed-by:cname-flow id=r1a2b3c4d5e6 value=<first 32 hex of SHA-256 of the
     value>", "account": "cname-flow"}

A record is owned when a comment of account ``cname-flow`` names the digest of its value.
Record ids read ``<zone>|<rr>|<TYPE>|<key>`` (:class:`~cname_flow.dns.rfc2136_records.RecordKey`,
shared with the RFC 2136 provider): ``key`` is the comment's ``id`` for an owned record (fixed
at creation, kept across an in-place update), else ``v`` + the value's digest. Comments of any
other account are carried over untouched.

**Values.** TXT contents travel quoted in zone-file syntax (``"\\"tok\\""``; longer than 255
bytes: several strings) and CNAME targets absolute (``target.``); both are built and parsed with
dnspython, never by hand. **Secrets**: the API key lives only in the client's headers; no
message, log line or record id holds it, and errors are scrubbed of it besides.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import quote

import dns.exception
import dns.rdata
import dns.rdataclass
import dns.rdatatype
import httpx

from cname_flow.dns.base import OWNER_REMARK, BaseDnsProvider, RecordRef, Zone, canonical_name
from cname_flow.dns.powerdns_errors import (
    POWERDNS_ERRORS,
    BadAnswer,
    StatusError,
    map_powerdns_error,
)
from cname_flow.dns.rfc2136_records import (
    Observed,
    RecordKey,
    absolute,
    digest,
    rdata_of,
    text_of,
    value_of,
)
from cname_flow.errors import DnsProviderError, InputError
from cname_flow.retry import RetriedCalls, RetryPolicy

#: The record types this provider writes.
SUPPORTED_TYPES = frozenset({"TXT", "CNAME"})
#: The ``account`` of the comments cname-flow writes.
ACCOUNT = "cname-flow"

#: One record or comment of an RRset as the API carries it (JSON object).
Item = dict[str, Any]


class PowerDns(BaseDnsProvider):
    """The PowerDNS HTTP API adapter.

    Args:
        api_url: the web server's base URL, ``http(s)://host:port``.
        api_key: the API key (never logged).
        server_id: the server id in the API's paths.
        min_ttl: the TTL floor reported as :attr:`Zone.min_ttl`, seconds.
        connect_timeout_s / read_timeout_s: httpx timeouts, seconds.
        rate_limiter / on_error / retry / sleep: as for the Alidns adapter (one retry layer).
        transport: an httpx transport (tests pass ``httpx.MockTransport``); ``None`` for TCP.
    """

    id = "powerdns"

    def __init__(
        self,
        *,
        api_url: str,
        api_key: str,
        server_id: str = "localhost",
        min_ttl: int = 60,
        connect_timeout_s: float = 5.0,
        read_timeout_s: float = 10.0,
        rate_limiter: Callable[[str], None] | None = None,
        on_error: Callable[[str, DnsProviderError], None] | None = None,
        retry: RetryPolicy | None = None,
        sleep: Callable[[float], None] = time.sleep,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        super().__init__()
        self.api_url = api_url.rstrip("/")
        self._min_ttl = min_ttl
        self._ids: dict[str, str] = {}  # zone name → the API's zone id
        self._http = httpx.Client(
            base_url=f"{self.api_url}/api/v1/servers/{quote(server_id, safe='')}",
            headers={"X-API-Key": api_key, "Accept": "application/json"},
            timeout=httpx.Timeout(read_timeout_s, connect=connect_timeout_s),
            transport=transport,
        )
        self._secrets = (api_key,) if api_key else ()
        self._call = RetriedCalls(
            retry or RetryPolicy(), sdk_errors=POWERDNS_ERRORS, map_error=self._map_error,
            sleep=sleep, rate_limiter=rate_limiter, on_error=on_error,
            log_fields={"provider": self.id},
        )

    def __repr__(self) -> str:
        return f"PowerDns(api_url={self.api_url!r})"

    def close(self) -> None:
        """Close the HTTP connections."""
        self._http.close()

    # ----------------------------------------------------------------- zones
    def _zone_names(self) -> list[str]:
        # called with self._lock held (BaseDnsProvider._match_zone): the ids need no other lock
        zones = self._json("ListZones", "GET", "/zones")
        if not isinstance(zones, list):
            raise self._map_error(BadAnswer("zone list is not a list"), "ListZones")
        names = []
        for item in zones:
            name = canonical_name(str(item["name"]))
            names.append(name)
            self._ids[name] = str(item.get("id") or item["name"])
        return names

    def _zone(self, zone_name: str) -> Zone:
        rrset = self._rrset(zone_name, zone_name, "NS", action="DescribeZone")
        servers = sorted({text_of(rd) for rd in _rdatas("NS", rrset)})
        return Zone(zone_name, self._zone_id(zone_name), tuple(servers), self._min_ttl)

    # ----------------------------------------------------------------- hooks
    def _records(self, zone: Zone, rr: str, rtype: str) -> list[RecordRef]:
        _supported(rtype)
        seen = _observe(rtype, self._rrset(zone.name, _fqdn(zone.name, rr), rtype))
        return [
            RecordRef(RecordKey(zone.name, rr, rtype, seen.key_of(rtype, value)).text(),
                      zone.name, rr, rtype, value, ttl,
                      OWNER_REMARK if (rtype, digest(value)) in seen.markers else "")
            for value, ttl in seen.values.items()
        ]

    def _create(self, zone: Zone, rr: str, rtype: str, value: str, ttl: int) -> str | None:
        _supported(rtype)
        fqdn = _fqdn(zone.name, rr)
        rrset = self._rrset(zone.name, fqdn, rtype)
        if value in _observe(rtype, rrset).values:
            return None  # the same record appeared since the caller looked
        rid = RecordKey(zone.name, rr, rtype, "r" + secrets.token_hex(6))
        records = [*_without(rtype, rrset, value), _record(rtype, value)]
        comments = [*_comments(rrset), _marker(rid.key, value)]
        self._put_rrset(zone.name, fqdn, rtype, ttl, records=records, comments=comments,
                      action="AddRecord")
        return rid.text()

    def _update(self, ref: RecordRef, value: str, ttl: int) -> bool:
        rid = _key(ref.record_id)
        rrset = self._rrset(rid.zone, rid.fqdn, rid.type)
        old = value_of(_observe(rid.type, rrset), rid)
        if old is None:
            return False
        records = [*_without(rid.type, rrset, old, value), _record(rid.type, value)]
        comments = [*_unmarked(rid.type, rrset, old), _marker(rid.key, value)]
        self._put_rrset(rid.zone, rid.fqdn, rid.type, ttl, records=records, comments=comments,
                      action="UpdateRecord")
        return True

    def _set_remark(self, record_id: str, remark: str) -> None:
        rid = _key(record_id)
        rrset = self._rrset(rid.zone, rid.fqdn, rid.type)
        seen = _observe(rid.type, rrset)
        value = value_of(seen, rid)
        if value is None:
            raise DnsProviderError(
                f"{self.id}: record {record_id} is not at {self.api_url}",
                service=self.id, code="RecordNotFound", retryable=False,
                hint="list the records again: it was deleted or changed meanwhile")
        marked = (rid.type, digest(value)) in seen.markers
        if remark == OWNER_REMARK and not marked:
            comments = [*_comments(rrset), _marker(rid.key, value)]
        elif remark == "" and marked:
            comments = _unmarked(rid.type, rrset, value)
        elif remark not in ("", OWNER_REMARK):
            raise InputError(f"powerdns records take no remark but {OWNER_REMARK!r}")
        else:
            return
        self._put_rrset(rid.zone, rid.fqdn, rid.type, None, comments=comments, action="SetMarker")

    def _delete(self, record_id: str) -> bool:
        rid = _key(record_id)
        rrset = self._rrset(rid.zone, rid.fqdn, rid.type)
        value = value_of(_observe(rid.type, rrset), rid)
        if value is None:  # gone; drop a marker it may have left (deleted by hand)
            stale = [c for c in _comments(rrset) if _parse_marker(c, key=rid.key) is not None]
            if stale and rrset is not None and rrset.get("records"):
                kept = [c for c in _comments(rrset) if c not in stale]
                self._put_rrset(rid.zone, rid.fqdn, rid.type, None, comments=kept,
                              action="DeleteMarker")
            return False
        records = _without(rid.type, rrset, value)
        if not records:
            self._patch(rid.zone, {"name": absolute(rid.fqdn).to_text(), "type": rid.type,
                                   "changetype": "DELETE"}, action="DeleteRecord")
            return True
        assert rrset is not None
        self._put_rrset(rid.zone, rid.fqdn, rid.type, int(rrset["ttl"]), records=records,
                      comments=_unmarked(rid.type, rrset, value), action="DeleteRecord")
        return True

    def _mark_owned(self, record_id: str) -> None:
        """Nothing to do: :meth:`_create` wrote the marker in the record's own PATCH."""

    # -------------------------------------------------------------- plumbing
    def _zone_id(self, zone_name: str) -> str:
        with self._lock:
            known = self._ids.get(zone_name)
        return known or absolute(zone_name).to_text()

    def _rrset(self, zone_name: str, fqdn: str, rtype: str, *,
               action: str = "ListRecords") -> Item | None:
        """The RRset ``fqdn``/``rtype`` of the zone as the API returns it, ``None`` if absent."""
        owner = absolute(fqdn).to_text()
        zone = self._json(action, "GET", self._zone_path(zone_name),
                          params={"rrset_name": owner, "rrset_type": rtype})
        if not isinstance(zone, dict) or not isinstance(zone.get("rrsets"), list):
            raise self._map_error(BadAnswer("zone without rrsets"), action)
        for rrset in zone["rrsets"]:
            if str(rrset.get("name", "")).lower() == owner and rrset.get("type") == rtype:
                return dict(rrset)
        return None

    def _put_rrset(self, zone_name: str, fqdn: str, rtype: str, ttl: int | None, *,
                 action: str, records: list[Item] | None = None,
                 comments: list[Item] | None = None) -> None:
        """PATCH one RRset with changetype REPLACE: ``records`` and/or ``comments`` (a field
        left out is left as it is at the server)."""
        change: Item = {"name": absolute(fqdn).to_text(), "type": rtype, "changetype": "REPLACE"}
        if ttl is not None:
            change["ttl"] = ttl
        if records is not None:
            change["records"] = records
        if comments is not None:
            change["comments"] = comments
        self._patch(zone_name, change, action=action)

    def _patch(self, zone_name: str, change: Item, *, action: str) -> None:
        self._json(action, "PATCH", self._zone_path(zone_name), body={"rrsets": [change]})

    def _zone_path(self, zone_name: str) -> str:
        return f"/zones/{quote(self._zone_id(zone_name), safe='=.')}"

    def _json(self, action: str, method: str, path: str, *,
              params: dict[str, str] | None = None, body: Item | None = None) -> Any:
        def once() -> Any:
            answer = self._http.request(method, path, params=params, json=body)
            if not answer.is_success:
                raise StatusError.of(answer)
            if answer.status_code == 204 or not answer.content:
                return None
            try:
                return answer.json()
            except ValueError:
                raise BadAnswer(f"HTTP {answer.status_code} body is not JSON") from None

        return self._call(action, once)

    def _map_error(self, exc: BaseException, action: str) -> DnsProviderError:
        return map_powerdns_error(exc, action, self.api_url, self._secrets)


# --------------------------------------------------------------------- pure helpers
def _supported(rtype: str) -> None:
    if rtype not in SUPPORTED_TYPES:
        raise InputError(f"the powerdns provider writes TXT and CNAME records, not {rtype}")


def _key(record_id: str) -> RecordKey:
    try:
        return RecordKey.parse(record_id)
    except InputError:
        raise InputError(f"{record_id!r} is not a powerdns record id "
                         "(<zone>|<rr>|<TYPE>|<key>)") from None


def _fqdn(zone: str, rr: str) -> str:
    return zone if rr == "@" else f"{rr}.{zone}"


def _content(rtype: str, value: str) -> str:
    """The API's ``content`` for ``value``: zone-file syntax (TXT quoted, CNAME absolute)."""
    return str(rdata_of(rtype, value).to_text())


def _record(rtype: str, value: str) -> Item:
    return {"content": _content(rtype, value), "disabled": False}


def _value(rtype: str, content: str) -> str | None:
    """The value a record's ``content`` holds, ``None`` when it does not parse."""
    try:
        rd = dns.rdata.from_text(dns.rdataclass.IN, dns.rdatatype.from_text(rtype), content)
    except (dns.exception.DNSException, ValueError):
        return None
    return text_of(rd)


def _rdatas(rtype: str, rrset: Item | None) -> list[dns.rdata.Rdata]:
    kind = dns.rdatatype.from_text(rtype)
    found = []
    for record in (rrset or {}).get("records", []):
        try:
            found.append(dns.rdata.from_text(dns.rdataclass.IN, kind, str(record["content"])))
        except (dns.exception.DNSException, ValueError):
            continue
    return found


def _comments(rrset: Item | None) -> list[Item]:
    return [dict(c) for c in (rrset or {}).get("comments", [])]


def _marker(key: str, value: str) -> Item:
    return {"content": f"{OWNER_REMARK} id={key} value={digest(value)}", "account": ACCOUNT}


def _parse_marker(comment: Item, *, key: str | None = None) -> tuple[str, str] | None:
    """(value digest, key) of one of our comments, ``None`` for any other comment (or, with
    ``key``, for one of ours naming another key)."""
    if comment.get("account") != ACCOUNT:
        return None
    parts = str(comment.get("content", "")).split()
    fields = dict(part.partition("=")[::2] for part in parts[1:])
    if parts[:1] != [OWNER_REMARK] or not fields.get("id") or not fields.get("value"):
        return None
    if key is not None and fields["id"] != key:
        return None
    return fields["value"], fields["id"]


def _observe(rtype: str, rrset: Item | None) -> Observed:
    """The enabled values of an RRset (→ its TTL) and our markers in its comments."""
    seen = Observed()
    if rrset is None:
        return seen
    for record in rrset.get("records", []):
        value = _value(rtype, str(record.get("content", "")))
        if value is not None and not record.get("disabled"):
            seen.values[value] = int(rrset.get("ttl", 0))
    for comment in _comments(rrset):
        parsed = _parse_marker(comment)
        if parsed is not None:
            seen.markers.setdefault((rtype, parsed[0]), []).append(parsed[1])
    return seen


def _without(rtype: str, rrset: Item | None, *values: str) -> list[Item]:
    """The RRset's records (as read, disabled ones too) except those holding ``values``."""
    return [{"content": r["content"], "disabled": bool(r.get("disabled"))}
            for r in (rrset or {}).get("records", [])
            if _value(rtype, str(r.get("content", ""))) not in values]


def _unmarked(rtype: str, rrset: Item | None, value: str) -> list[Item]:
    """The RRset's comments except our markers of ``value``."""
    gone = digest(value)
    return [c for c in _comments(rrset) if (_parse_marker(c) or ("", ""))[0] != gone]

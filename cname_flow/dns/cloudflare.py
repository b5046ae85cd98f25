"""Cloudflare DNS (API v4) behind the :class:`DnsProvider` port, over the official SDK.

SDK: ``cloudflare`` 4.x (https://github.com/cloudflare/cloudflare-python), imported here only:
the registry imports this module when the factory is called, so ``import cname_flow.dns`` loads
no SDK. Calls used (https://developers.cloudflare.com/api/resources/dns/subresources/records/,
https://developers.cloudflare.com/api/resources/zones/):

* ``GET /zones?name=`` (``client.zones.list``): zones are looked up by name, the longest
  label-boundary suffix of the asked name first; a name found not to be a zone is remembered
  until a lookup matches nothing at all (then every name is asked again), as the base class
  does with its zone list.
* ``GET /zones/{zone_id}/dns_records?name.exact=&type=`` (``client.dns.records.list``),
  ``POST`` (``create``), ``PATCH /{id}`` (``edit``), ``GET /{id}`` (``get``), ``DELETE /{id}``.

**Ownership.** Each record cname-flow creates carries ``comment``
:data:`~cname_flow.dns.base.OWNER_REMARK`, written in the create call itself (one call, no
window where the record exists unmarked); :meth:`claim` writes it on a record the flow proved
its own. The comment is the :attr:`RecordRef.remark`. The adapter changes and deletes only the
records the flow hands it, and the flow hands it only records carrying the marker or whose ids
its journal holds; it never deletes by listing.

**Record ids** read ``<zone_id>/<record_id>`` (Cloudflare's two 32-hex ids): every record call
needs both. **Values.** TXT content is sent quoted, split into 255-byte character-strings
(RFC 1035 §3.3.14; the API's ``content`` for TXT asks for quoted strings); content read back,
quoted or not (older records), is unquoted. CNAMEs are created unproxied (``proxied: false``):
a proxied name would answer with Cloudflare's addresses, not the OSS target. **TTL**: 60 s is
the floor outside Enterprise zones (1 would mean "automatic"). **Retries**: the SDK's are off
(``max_retries=0``); :class:`~cname_flow.retry.RetriedCalls` is the one retry layer.
**Secrets**: the token lives only in the client's ``Authorization`` header; errors are scrubbed
of it, and the SDK's other credentials (``CLOUDFLARE_API_KEY``/``CLOUDFLARE_EMAIL`` from the
environment) are dropped so that only the configured token is ever sent.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import cloudflare
import dns.exception
import dns.rdata
import dns.rdataclass
import dns.rdatatype
import httpx

from cname_flow.dns.base import OWNER_REMARK, BaseDnsProvider, RecordRef, Zone, canonical_name
from cname_flow.dns.cloudflare_errors import CLOUDFLARE_ERRORS, map_cloudflare_error, retry_after_s
from cname_flow.dns.rfc2136_records import rdata_of, text_of
from cname_flow.errors import DnsProviderError, InputError, ZoneNotFound
from cname_flow.retry import RetriedCalls, RetryPolicy

#: The API's base URL the SDK uses by default (given explicitly, so that the environment's
#: ``CLOUDFLARE_BASE_URL`` cannot send the token elsewhere).
DEFAULT_BASE_URL = "https://api.cloudflare.com/client/v4"
#: The record types this provider writes.
SUPPORTED_TYPES = frozenset({"TXT", "CNAME"})
_ZONE_PAGE = 50  # GET /zones accepts per_page up to 50
_RECORD_PAGE = 100


class Cloudflare(BaseDnsProvider):
    """The Cloudflare API v4 adapter over ``cloudflare.Cloudflare``.

    Args:
        api_token: an API token with Zone:Read and DNS:Edit (never logged).
        base_url: the API's base URL, ``.../client/v4``; tests point it at a replay server.
        min_ttl: the TTL floor reported as :attr:`Zone.min_ttl`, seconds (Cloudflare: 60).
        connect_timeout_s / read_timeout_s: httpx timeouts, seconds.
        rate_limiter / on_error / retry / sleep: as for the Alidns adapter (one retry layer).
    """

    id = "cloudflare"

    def __init__(
        self,
        *,
        api_token: str,
        base_url: str = DEFAULT_BASE_URL,
        min_ttl: int = 60,
        connect_timeout_s: float = 5.0,
        read_timeout_s: float = 20.0,
        rate_limiter: Callable[[str], None] | None = None,
        on_error: Callable[[str, DnsProviderError], None] | None = None,
        retry: RetryPolicy | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        super().__init__()
        self.base_url = base_url.rstrip("/")
        self._min_ttl = min_ttl
        self._found: dict[str, Zone] = {}  # zone name → zone, as looked up
        self._absent: set[str] = set()  # names looked up and found not to be zones
        client = cloudflare.Cloudflare(
            api_token=api_token, base_url=self.base_url, max_retries=0,
            timeout=httpx.Timeout(read_timeout_s, connect=connect_timeout_s))
        client.api_key = client.api_email = client.user_service_key = None  # the token only
        self._client = client
        self._api: Any = client.dns.records  # overloaded per record type; called with str types
        self._secrets = (api_token,) if api_token else ()
        self._call = RetriedCalls(
            retry or RetryPolicy(), sdk_errors=CLOUDFLARE_ERRORS, map_error=self._map_error,
            sleep=sleep, retry_after=retry_after_s, rate_limiter=rate_limiter,
            on_error=on_error, log_fields={"provider": self.id},
        )

    def __repr__(self) -> str:
        return f"Cloudflare(base_url={self.base_url!r})"

    def close(self) -> None:
        """Close the SDK's HTTP connections."""
        self._client.close()

    # ----------------------------------------------------------------- zones
    def _match_zone(self, fqdn: str, *, refresh: bool) -> str | None:
        """The longest suffix of ``fqdn`` that is a zone of the account, asked name by name."""
        if refresh:
            with self._lock:
                self._absent.clear()
        labels = fqdn.split(".")
        for start in range(len(labels)):
            candidate = ".".join(labels[start:])
            with self._lock:
                if candidate in self._found:
                    return candidate
                if candidate in self._absent:
                    continue
            zone = self._lookup(candidate)
            with self._lock:
                if zone is None:
                    self._absent.add(candidate)
                    continue
                self._found[candidate] = zone
            return candidate
        return None

    def _lookup(self, name: str) -> Zone | None:
        """The zone named exactly ``name`` (an active one first), ``None`` if there is none."""
        page = self._call("ListZones", lambda: self._client.zones.list(
            name=name, per_page=_ZONE_PAGE))
        zones = [z for z in page.result if canonical_name(z.name) == name]
        zones.sort(key=lambda z: z.status != "active")
        return self._zone_of(zones[0]) if zones else None

    def _zone_of(self, zone: Any) -> Zone:
        servers = tuple(sorted(canonical_name(n) for n in zone.name_servers or []))
        return Zone(canonical_name(zone.name), str(zone.id), servers, self._min_ttl)

    def _zone_names(self) -> list[str]:
        # the hook's contract (every zone of the account); find_zone asks by name instead
        def every() -> list[Any]:
            page = self._client.zones.list(per_page=_ZONE_PAGE)
            zones = list(page.result)
            while len(page.result) == _ZONE_PAGE:
                page = page.get_next_page()
                zones.extend(page.result)
            return zones

        zones = [self._zone_of(z) for z in self._call("ListZones", every)]
        self._found.update({z.name: z for z in zones})  # called with self._lock held
        return [z.name for z in zones]

    def _zone(self, zone_name: str) -> Zone:
        with self._lock:
            known = self._found.get(zone_name)
        zone = known or self._lookup(zone_name)
        if zone is None:
            raise ZoneNotFound(f"{self.id}: zone {zone_name} is gone from this account",
                               service=self.id, code="ZoneNotFound")
        return zone

    # ----------------------------------------------------------------- hooks
    def _records(self, zone: Zone, rr: str, rtype: str) -> list[RecordRef]:
        _supported(rtype)
        fqdn = _fqdn(zone.name, rr)

        def every() -> list[Any]:
            page = self._api.list(zone_id=zone.zone_id, name={"exact": fqdn}, type=rtype,
                                  per_page=_RECORD_PAGE)
            records = list(page.result)
            while len(page.result) == _RECORD_PAGE:
                page = page.get_next_page()
                records.extend(page.result)
            return records

        return [self._ref(zone, record) for record in self._call("ListRecords", every)]

    def _create(self, zone: Zone, rr: str, rtype: str, value: str, ttl: int) -> str | None:
        _supported(rtype)
        fields: dict[str, Any] = {"zone_id": zone.zone_id, "name": _fqdn(zone.name, rr),
                                  "type": rtype, "content": _content(rtype, value), "ttl": ttl,
                                  "comment": OWNER_REMARK}
        if rtype == "CNAME":
            fields["proxied"] = False
        try:
            record = self._call("CreateRecord", lambda: self._api.create(**fields))
        except DnsProviderError as exc:
            if exc.code == "RecordExists":
                return None  # the same record appeared since the caller looked
            raise
        return _record_id(zone.zone_id, str(_result(record, "CreateRecord").id))

    def _update(self, ref: RecordRef, value: str, ttl: int) -> bool:
        zone_id, record_id = _split(ref.record_id)
        fields: dict[str, Any] = {"zone_id": zone_id, "name": ref.fqdn, "type": ref.type,
                                  "content": _content(ref.type, value), "ttl": ttl}
        if ref.type == "CNAME":
            fields["proxied"] = False
        try:
            self._call("UpdateRecord", lambda: self._api.edit(record_id, **fields))
        except DnsProviderError as exc:
            if exc.code == "RecordNotFound":
                return False
            raise
        return True

    def _set_remark(self, record_id: str, remark: str) -> None:
        zone_id, rid = _split(record_id)
        record = _result(self._call("GetRecord", lambda: self._api.get(rid, zone_id=zone_id)),
                         "GetRecord")
        if (record.comment or "") == remark:
            return
        self._call("SetComment", lambda: self._api.edit(
            rid, zone_id=zone_id, name=record.name, type=record.type, comment=remark))

    def _delete(self, record_id: str) -> bool:
        zone_id, rid = _split(record_id)
        try:
            self._call("DeleteRecord", lambda: self._api.delete(rid, zone_id=zone_id))
        except DnsProviderError as exc:
            if exc.code == "RecordNotFound":
                return False
            raise
        return True

    def _mark_owned(self, record_id: str) -> None:
        """Nothing to do: :meth:`_create` wrote the comment in the create call itself."""

    # -------------------------------------------------------------- plumbing
    def _ref(self, zone: Zone, record: Any) -> RecordRef:
        rtype = str(record.type).upper()
        rr = self.rr_for(zone, str(record.name))
        return RecordRef(_record_id(zone.zone_id, str(record.id)), zone.name, rr, rtype,
                         _value(rtype, str(record.content or "")), int(record.ttl or 1),
                         str(record.comment or ""))

    def _map_error(self, exc: BaseException, action: str) -> DnsProviderError:
        return map_cloudflare_error(exc, action, self._secrets)


# --------------------------------------------------------------------- pure helpers
def _supported(rtype: str) -> None:
    if rtype not in SUPPORTED_TYPES:
        raise InputError(f"the cloudflare provider writes TXT and CNAME records, not {rtype}")


def _fqdn(zone: str, rr: str) -> str:
    return zone if rr == "@" else f"{rr}.{zone}"


def _record_id(zone_id: str, record_id: str) -> str:
    return f"{zone_id}/{record_id}"


def _split(record_id: str) -> tuple[str, str]:
    zone_id, _, rid = record_id.partition("/")
    if not zone_id or not rid or "/" in rid:
        raise InputError(f"{record_id!r} is not a cloudflare record id (<zone_id>/<record_id>)")
    return zone_id, rid


def _result(record: Any, action: str) -> Any:
    """The ``result`` of a one-record answer; a ``null`` one is not the API's answer."""
    if record is None:
        raise DnsProviderError(f"Cloudflare {action}: the answer holds no record",
                               service="cloudflare", code="BadAnswer", retryable=False)
    return record


def _content(rtype: str, value: str) -> str:
    """The API's ``content``: TXT as quoted character-strings, CNAME as a bare host name."""
    if rtype == "CNAME":
        return value.rstrip(".").lower()
    return str(rdata_of("TXT", value).to_text())


def _value(rtype: str, content: str) -> str:
    """The value a record's ``content`` holds (TXT unquoted and joined, CNAME lowercased)."""
    text = content.strip()
    if rtype == "CNAME":
        return text.rstrip(".").lower()
    if rtype != "TXT" or not text.startswith('"'):
        return text
    try:
        rd = dns.rdata.from_text(dns.rdataclass.IN, dns.rdatatype.TXT, text)
    except (dns.exception.DNSException, ValueError):
        return text[1:-1] if len(text) >= 2 and text.endswith('"') else text
    return text_of(rd)

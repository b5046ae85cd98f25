"""Alibaba Cloud DNS (Alidns, API version 2015-01-09) behind the :class:`DnsProvider` port.

Actions used: DescribeDomains (zone list), DescribeDomainInfo with ``NeedDetailAttributes``
(nameservers, MinTtl), DescribeSubDomainRecords (exact host lookup), AddDomainRecord,
UpdateDomainRecord, UpdateDomainRecordRemark, DeleteDomainRecord
(https://www.alibabacloud.com/help/en/dns/api-alidns-2015-01-09-dir).

The SDK's own retries are off (``Config.retry_options`` not retryable); this adapter retries
throttling, 5xx, ``LastOperationNotFinished`` and network failures under
:class:`~cname_flow.retry.RetryPolicy` (honouring ``x-acs-retry-after``) through
:class:`~cname_flow.retry.RetriedCalls`, the one retry layer, which calls the optional
``rate_limiter(action)`` before every attempt and the optional ``on_error(action, error)``
after every failed one: the hooks a caller composes (a batch job limits and counts calls
through them) instead of subclassing the adapter.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any
from urllib.parse import urlsplit

from alibabacloud_alidns20150109 import models as dns_models
from alibabacloud_alidns20150109.client import Client
from alibabacloud_tea_openapi import models as openapi_models
from darabonba.policy.retry import RetryOptions

from cname_flow.config.credentials import Credentials, secret_values
from cname_flow.dns.alidns_errors import ALIDNS_SDK_ERRORS, map_alidns_error, retry_after_s
from cname_flow.dns.base import BaseDnsProvider, RecordRef, Zone
from cname_flow.errors import DnsProviderError
from cname_flow.retry import RetriedCalls, RetryPolicy

_PAGE_SIZE = 100  # DescribeDomains and DescribeSubDomainRecords accept at most 100
_DEFAULT_MIN_TTL = 600  # free edition floor, should DescribeDomainInfo still omit MinTtl
_GONE = "DomainRecordNotBelongToUser"
_DUPLICATE = "DomainRecordDuplicate"


class Alidns(BaseDnsProvider):
    """The Alidns adapter over ``alibabacloud_alidns20150109.Client``.

    Args:
        credentials: AccessKey pair, optionally with an STS token.
        endpoint: ``None`` for the region's public endpoint (``alidns.aliyuncs.com``), else
            ``"host:port"`` or ``"http://host:port"`` (the scheme, if given, wins over
            ``protocol``; the SDK itself wants the endpoint without scheme).
        region: region id, used to pick the default endpoint.
        protocol: ``"https"`` or ``"http"``.
        rate_limiter: called with the action name before every API attempt (may block).
        on_error: called with the action name and the mapped error after every failed
            attempt, retried or not (e.g. ``ApiStats.count_error``); it must not raise.
        retry: retry policy for retryable failures.
        sleep: the sleep used between retries, seconds (injected in tests).
        connect_timeout_s: TCP connect timeout, seconds.
        read_timeout_s: read timeout, seconds.
    """

    id = "alidns"

    def __init__(
        self,
        *,
        credentials: Credentials,
        endpoint: str | None = None,
        region: str = "cn-hangzhou",
        protocol: str = "https",
        rate_limiter: Callable[[str], None] | None = None,
        on_error: Callable[[str, DnsProviderError], None] | None = None,
        retry: RetryPolicy | None = None,
        sleep: Callable[[float], None] = time.sleep,
        connect_timeout_s: float = 5,
        read_timeout_s: float = 10,
    ) -> None:
        super().__init__()
        host, scheme = split_endpoint(endpoint, protocol)
        config = openapi_models.Config(
            access_key_id=credentials.access_key_id,
            access_key_secret=credentials.access_key_secret,
            security_token=credentials.security_token,
            endpoint=host,
            region_id=region,
            protocol=scheme.upper(),
            connect_timeout=int(connect_timeout_s * 1000),
            read_timeout=int(read_timeout_s * 1000),
            retry_options=RetryOptions(retryable=False),  # one retry layer: ours
        )
        self._client = Client(config)
        self._secrets = secret_values(credentials)
        self._call = RetriedCalls(
            retry or RetryPolicy(), sdk_errors=ALIDNS_SDK_ERRORS, map_error=self._map_error,
            sleep=sleep, retry_after=retry_after_s, rate_limiter=rate_limiter,
            on_error=on_error, log_fields={"provider": self.id},
        )

    # --------------------------------------------------------------- the hooks
    def _zone_names(self) -> list[str]:
        return [d.puny_code or d.domain_name for d in self._pages_of_domains()]

    def _zone(self, zone_name: str) -> Zone:
        # MinTtl (the edition's TTL floor: 1 s Exclusive … 600 s Free) is returned only with
        # NeedDetailAttributes=true (DescribeDomainInfo, https://www.alibabacloud.com/help/en/
        # dns/api-alidns-2015-01-09-describedomaininfo); without it every zone looked free.
        request = dns_models.DescribeDomainInfoRequest(
            domain_name=zone_name, need_detail_attributes=True
        )
        body = self._call(
            "DescribeDomainInfo", lambda: self._client.describe_domain_info(request)
        ).body
        servers = body.dns_servers.dns_server if body.dns_servers else None
        return Zone(
            name=zone_name,
            zone_id=str(body.domain_id or zone_name),
            nameservers=tuple(s.rstrip(".").lower() for s in servers or []),
            min_ttl=int(body.min_ttl or _DEFAULT_MIN_TTL),
        )

    def _records(self, zone: Zone, rr: str, rtype: str) -> list[RecordRef]:
        sub_domain = zone.name if rr == "@" else f"{rr}.{zone.name}"
        return [
            RecordRef(
                record_id=str(r.record_id),
                zone=zone.name,
                rr=str(r.rr or "@").lower(),
                type=str(r.type or "").upper(),
                value=str(r.value or ""),
                ttl=int(r.ttl or 0),
                remark=str(r.remark or ""),
            )
            for r in self._pages_of_records(zone.name, sub_domain, rtype)
        ]

    def _create(self, zone: Zone, rr: str, rtype: str, value: str, ttl: int) -> str | None:
        request = dns_models.AddDomainRecordRequest(
            domain_name=zone.name, rr=rr, type=rtype, value=value, ttl=ttl
        )
        try:
            body = self._call("AddDomainRecord", lambda: self._client.add_domain_record(request))
        except DnsProviderError as exc:
            if exc.code == _DUPLICATE:
                return None
            raise
        return str(body.body.record_id)

    def _update(self, ref: RecordRef, value: str, ttl: int) -> bool:
        request = dns_models.UpdateDomainRecordRequest(
            record_id=ref.record_id, rr=ref.rr, type=ref.type, value=value, ttl=ttl
        )
        try:
            self._call("UpdateDomainRecord", lambda: self._client.update_domain_record(request))
        except DnsProviderError as exc:
            if exc.code == _GONE:
                return False
            if exc.code != _DUPLICATE:  # Alidns: an update to identical values is "duplicate"
                raise
        return True

    def _set_remark(self, record_id: str, remark: str) -> None:
        request = dns_models.UpdateDomainRecordRemarkRequest(record_id=record_id, remark=remark)
        self._call(
            "UpdateDomainRecordRemark", lambda: self._client.update_domain_record_remark(request)
        )

    def _delete(self, record_id: str) -> bool:
        request = dns_models.DeleteDomainRecordRequest(record_id=record_id)
        try:
            self._call("DeleteDomainRecord", lambda: self._client.delete_domain_record(request))
        except DnsProviderError as exc:
            if exc.code == _GONE:
                return False
            raise
        return True

    # ---------------------------------------------------------------- plumbing
    def _pages_of_domains(self) -> Iterator[Any]:
        def page(number: int) -> tuple[list[Any], int]:
            request = dns_models.DescribeDomainsRequest(page_number=number, page_size=_PAGE_SIZE)
            body = self._call("DescribeDomains", lambda: self._client.describe_domains(request))
            domains = body.body.domains.domain if body.body.domains else None
            return domains or [], int(body.body.total_count or 0)

        yield from _paged(page)

    def _pages_of_records(self, zone: str, sub_domain: str, rtype: str) -> Iterator[Any]:
        def page(number: int) -> tuple[list[Any], int]:
            request = dns_models.DescribeSubDomainRecordsRequest(
                sub_domain=sub_domain,
                domain_name=zone,
                type=rtype,
                page_number=number,
                page_size=_PAGE_SIZE,
            )
            body = self._call(
                "DescribeSubDomainRecords",
                lambda: self._client.describe_sub_domain_records(request),
            )
            records = body.body.domain_records.record if body.body.domain_records else None
            return records or [], int(body.body.total_count or 0)

        yield from _paged(page)

    def _map_error(self, exc: BaseException, action: str) -> DnsProviderError:
        return map_alidns_error(exc, action, self._secrets)


def _paged(page: Callable[[int], tuple[list[Any], int]]) -> Iterator[Any]:
    """Yield the items of every page: 1, 2, ... until ``total`` are seen or a page is empty."""
    number, seen = 1, 0
    while True:
        items, total = page(number)
        yield from items
        seen += len(items)
        if not items or seen >= total:
            return
        number += 1


def split_endpoint(endpoint: str | None, protocol: str) -> tuple[str | None, str]:
    """(``host[:port]`` without scheme, protocol) for the SDK's Config.

    ``"http://127.0.0.1:8080"`` → (``"127.0.0.1:8080"``, ``"http"``); a scheme-less endpoint
    keeps ``protocol``.
    """
    if not endpoint or "://" not in endpoint:
        return endpoint or None, protocol.lower()
    parts = urlsplit(endpoint)
    return parts.netloc, parts.scheme.lower()

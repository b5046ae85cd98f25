"""Documented API quotas, in one place for the client's pacing and the sandbox's enforcement.

Alidns: requests per second per account per API
(https://alibabacloud.com/help/en/dns/api-alidns-2015-01-09-quota).
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

ALIDNS_RATE_LIMITS: Mapping[str, float] = MappingProxyType({
    "AddDomainRecord": 60,
    "UpdateDomainRecord": 60,
    "DeleteDomainRecord": 60,
    "DescribeDomainRecords": 100,
    "DescribeSubDomainRecords": 300,
    "DescribeDomainRecordInfo": 200,
    "DeleteSubDomainRecords": 20,
    "AddDomain": 10,
    "DeleteDomain": 10,
})

"""Alidns throttling leaves the adapter's mapping as DnsThrottled, one kind of Throttled."""

from __future__ import annotations

import pytest
from alibabacloud_tea_openapi import exceptions as openapi_exc

from cname_flow.dns import alidns_errors
from cname_flow.dns.alidns_errors import map_alidns_error
from cname_flow.errors import DnsThrottled, Throttled
from tests.unit.test_errors import client_exception


@pytest.mark.parametrize("code", ["Throttling.User", "Throttling", "Throttling.Api", "Whatever"])
def test_alidns_throttling_exception_should_be_dns_throttled_whatever_its_code(code: str) -> None:
    sdk = client_exception(code, 400, openapi_exc.ThrottlingException, retry_after=200)
    mapped = map_alidns_error(sdk, "DescribeDomains")
    assert type(mapped) is DnsThrottled
    assert (mapped.code, mapped.retryable) == (code, True)


@pytest.mark.parametrize("code", sorted(alidns_errors.THROTTLE_CODES))
def test_every_alidns_throttle_code_should_map_to_a_retryable_throttled(code: str) -> None:
    mapped = map_alidns_error(client_exception(code), "AddDomainRecord")
    assert isinstance(mapped, DnsThrottled) and isinstance(mapped, Throttled)
    assert mapped.retryable is True

"""One retry layer per API call: what the sandbox serves is exactly what the client counted.

The real SDK clients (alibabacloud-oss-v2, Alidns) behind our adapters, against a sandbox that
answers a third of the calls with injected 5xx and throttling: the SDKs' own retries are off, so
the sandbox's per-operation request count equals the attempts the adapters' hooks saw (the
hooks a batch job counts its ``ApiStats`` through).
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from cname_flow.config.credentials import Credentials
from cname_flow.dns.alidns import Alidns
from cname_flow.oss.adapter import AlibabaOss
from cname_flow.quotas import ApiStats, RateLimiter
from cname_flow.retry import RetryPolicy
from cname_flow.sandbox.app import Sandbox
from cname_flow.sandbox.config import AlidnsLimits, FaultsConfig, OpFaults, SandboxConfig
from tests.e2e.bindkit import count_calls

pytestmark = [pytest.mark.e2e, pytest.mark.usefixtures("no_proxy")]

OPS = ("CreateCnameToken", "ListCname", "DescribeDomains", "DescribeDomainInfo",
       "DescribeSubDomainRecords", "AddDomainRecord", "UpdateDomainRecordRemark")
FAULTS = OpFaults(error_rate=0.25, throttle_rate=0.1)
FAST = RetryPolicy(attempts=12, initial_s=0.005, max_s=0.02, jitter_s=0.0)
N = 30


@pytest.fixture(scope="module")
def faulty_sandbox(no_proxy: None) -> Iterator[Sandbox]:
    faults = FaultsConfig(seed=13, ops=dict.fromkeys(OPS, FAULTS))
    limits = AlidnsLimits(enforce_rate_limits=False)  # every throttle here is an injected one
    with Sandbox(SandboxConfig(faults=faults, alidns=limits)) as box:
        yield box


def test_every_attempt_is_one_request_and_is_counted(faulty_sandbox: Sandbox) -> None:
    info = faulty_sandbox.info
    served = count_calls(faulty_sandbox, OPS)
    stats = ApiStats()
    limiter = RateLimiter({}, stats)  # counts each attempt, as a batch job's does
    creds = Credentials(info.access_key_id, info.access_key_secret)
    oss = AlibabaOss(region=info.region, credentials=creds, endpoint=info.oss_endpoint,
                     rate_limiter=limiter, on_error=stats.count_error, retry=FAST)
    dns = Alidns(credentials=creds, endpoint=info.alidns_endpoint, protocol="http",
                 rate_limiter=limiter, on_error=stats.count_error, retry=FAST)
    zone = dns.find_zone("example.com")
    for i in range(N):
        domain = f"r{i}.retry.example.com"
        token = oss.create_token("examplebucket", domain)
        ref, changed = dns.upsert(zone, f"_dnsauth.{domain}", "TXT", token.token, 600)
        assert changed and ref.owned
        assert oss.list_cnames("examplebucket") == []
    client_counts = {op: stats.calls[op] for op in OPS}
    server_counts = {op: len(served[op]) for op in OPS}
    assert client_counts == server_counts
    assert server_counts["CreateCnameToken"] > N          # faults were retried ...
    assert sum(faulty_sandbox.faults.injected.values()) == (
        sum(server_counts.values()) - N * 5 - 2)          # ... once per injected fault
    assert sum(stats.throttled.values()) == sum(
        n for key, n in faulty_sandbox.faults.injected.items() if key.endswith(":throttle"))

"""PutCname's bounded NeedVerifyDomainOwnership retry, called with only what it uses."""

from __future__ import annotations

import pytest

from cname_flow.errors import OwnershipNotVerified
from cname_flow.model import Binding, CertificateRequest, txt_name
from cname_flow.workflow import putcname
from tests.fakes import FakeDnsProvider, FakeOss, oss_error

BINDING = Binding(domain="www.example.com", bucket="examplebucket", region="cn-hangzhou")


def test_put_with_retry_takes_only_what_it_uses() -> None:
    dns = FakeDnsProvider()
    oss = FakeOss(txt_lookup=dns.txt_values)
    slept: list[float] = []
    policy = putcname.OwnershipPolicy(jitter_s=0.0)
    with pytest.raises(OwnershipNotVerified):      # no TXT proof, and no time to wait
        putcname.put_with_retry(oss, BINDING, None, 0.0, policy, slept.append)
    token = oss.create_token(BINDING.bucket, BINDING.domain).token
    dns.upsert(dns.find_zone(txt_name(BINDING.domain)), txt_name(BINDING.domain), "TXT",
               token, 600)
    oss.fail("PutCname", oss_error("NeedVerifyDomainOwnership", 403), times=2)
    request = CertificateRequest(cert_id="4930000-cn-hangzhou")
    assert putcname.put_with_retry(oss, BINDING, request, 60.0, policy, slept.append)
    assert slept == [5.0, 10.0] and oss.calls["PutCname"] == 4

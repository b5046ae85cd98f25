"""The OSS and Alidns adapters end to end: real SDK clients, the sandbox, real loopback sockets.

Each test works on its own domain: the sandbox's verifier resolver caches negative answers for
the zone's negative TTL, exactly like the real one, so a name probed too early stays unprovable.
"""

from __future__ import annotations

import socket
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest

from cname_flow.config.credentials import Credentials
from cname_flow.dns.alidns import Alidns
from cname_flow.dns.base import Zone
from cname_flow.errors import (
    DnsAuthError,
    DnsProviderError,
    DomainOfOtherAccount,
    OssAuthError,
    OssError,
    OwnershipPending,
    ZoneNotFound,
)
from cname_flow.model import CertificateRequest, txt_name
from cname_flow.oss.adapter import AlibabaOss
from cname_flow.retry import RetryPolicy
from cname_flow.sandbox.app import Sandbox
from cname_flow.sandbox.config import AlidnsLimits, SandboxConfig
from tests.certgen import make_cert

pytestmark = pytest.mark.e2e

BUCKET = "examplebucket"


def creds(box: Sandbox, secret: str | None = None) -> Credentials:
    return Credentials(box.info.access_key_id, secret or box.info.access_key_secret)


@pytest.fixture
def oss_api(sandbox: Sandbox) -> AlibabaOss:
    info = sandbox.info
    return AlibabaOss(region=info.region, credentials=creds(sandbox), endpoint=info.oss_endpoint)


@pytest.fixture
def alidns(sandbox: Sandbox) -> Alidns:
    return Alidns(credentials=creds(sandbox), endpoint=sandbox.info.alidns_endpoint,
                  protocol="http")


def fresh_domain() -> str:
    return f"d{uuid.uuid4().hex[:10]}.example.com"


def publish(dns: Alidns, domain: str, token: str) -> Zone:
    zone = dns.find_zone(domain)
    dns.upsert(zone, txt_name(domain), "TXT", token, 600)
    return zone


def test_binding_flow_through_both_adapters(oss_api: AlibabaOss, alidns: Alidns) -> None:
    domain = fresh_domain()
    assert oss_api.get_token(BUCKET, domain) is None
    token = oss_api.create_token(BUCKET, domain)
    assert (token.bucket, token.domain) == (BUCKET, domain)
    assert 71 * 3600 < (token.expires_at - datetime.now(UTC)).total_seconds() <= 72 * 3600
    assert oss_api.create_token(BUCKET, domain) == token  # same token within 72 h
    assert oss_api.get_token(BUCKET, domain) == token
    publish(alidns, domain, token.token)
    request_id = oss_api.put_cname(BUCKET, domain)
    assert len(request_id) == 24
    entry = next(e for e in oss_api.list_cnames(BUCKET) if e.domain == domain)
    assert entry.status == "Enabled"
    assert entry.last_modified is not None and entry.last_modified.tzinfo is not None
    assert entry.certificate is None
    with pytest.raises(OssError) as info:
        oss_api.create_token(BUCKET, domain)
    assert (info.value.code, info.value.status) == ("NoNeedCreateCnameToken", 403)
    oss_api.delete_cname(BUCKET, domain)
    oss_api.delete_cname(BUCKET, domain)  # idempotent
    assert domain not in [e.domain for e in oss_api.list_cnames(BUCKET)]


def test_put_cname_without_txt_proof_should_need_ownership(oss_api: AlibabaOss) -> None:
    domain = fresh_domain()
    oss_api.create_token(BUCKET, domain)
    with pytest.raises(OssError) as info:
        oss_api.put_cname(BUCKET, domain)
    err = info.value
    assert (err.code, err.status, err.retryable) == ("NeedVerifyDomainOwnership", 403, True)
    assert isinstance(err, OwnershipPending)
    assert "_dnsauth" in err.hint
    assert len(err.request_id) == 24


def test_put_cname_for_another_accounts_domain_should_say_so(oss_api: AlibabaOss) -> None:
    with pytest.raises(DomainOfOtherAccount) as info:
        oss_api.put_cname(BUCKET, "taken.example.com")
    assert (info.value.code, info.value.status) == ("CnameDenied", 403)
    assert "another Alibaba Cloud account" in info.value.hint and not info.value.retryable


def test_unknown_bucket_should_map_to_no_such_bucket(oss_api: AlibabaOss) -> None:
    with pytest.raises(OssError) as info:
        oss_api.list_cnames("no-such-bucket-here")
    err = info.value
    assert (err.code, err.status, err.retryable) == ("NoSuchBucket", 404, False)


def test_list_cnames_when_none_should_be_empty_list(sandbox: Sandbox) -> None:
    info = sandbox.info
    other = AlibabaOss(
        region=info.region,
        credentials=Credentials("LTAI5tSandboxOtherAccount", "sandbox-other-account-secret"),
        endpoint=info.oss_endpoint,
    )
    assert [e.domain for e in other.list_cnames("otherbucket")] == ["taken.example.com"]
    other.delete_cname("otherbucket", "never-bound.example.com")  # idempotent 200 → done


def test_wrong_oss_secret_should_be_auth_error_without_the_secret(sandbox: Sandbox) -> None:
    bad = "wrong-secret-SENTINEL-91ab"
    api = AlibabaOss(region=sandbox.info.region, credentials=creds(sandbox, bad),
                     endpoint=sandbox.info.oss_endpoint)
    with pytest.raises(OssAuthError) as info:
        api.list_cnames(BUCKET)
    assert (info.value.code, info.value.retryable) == ("SignatureDoesNotMatch", False)
    assert bad not in str(info.value)


def test_unknown_access_key_should_be_auth_error(sandbox: Sandbox) -> None:
    api = AlibabaOss(region=sandbox.info.region, credentials=Credentials("LTAInobody", "x"),
                     endpoint=sandbox.info.oss_endpoint)
    with pytest.raises(OssAuthError) as info:
        api.get_token(BUCKET, "a.example.com")
    assert info.value.code == "InvalidAccessKeyId"


def test_signature_v1_should_work_too(sandbox: Sandbox) -> None:
    api = AlibabaOss(region=sandbox.info.region, credentials=creds(sandbox),
                     endpoint=sandbox.info.oss_endpoint, signature_version="v1")
    token = api.create_token(BUCKET, fresh_domain())
    assert token.token


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_unreachable_oss_should_be_retryable_and_say_unreachable(sandbox: Sandbox) -> None:
    api = AlibabaOss(region="cn-hangzhou", credentials=creds(sandbox),
                     endpoint=f"http://127.0.0.1:{closed_port()}", connect_timeout_s=1,
                     retry=RetryPolicy(attempts=2, initial_s=0.01, max_s=0.01, jitter_s=0.0))
    with pytest.raises(OssError) as info:
        api.list_cnames(BUCKET)
    assert (info.value.code, info.value.retryable, info.value.status) == (
        "EndpointUnreachable", True, 0)
    assert info.value.unreachable


def test_put_cname_with_certificate_should_show_it_in_list_cnames(
    oss_api: AlibabaOss, alidns: Alidns
) -> None:
    domain = fresh_domain()
    publish(alidns, domain, oss_api.create_token(BUCKET, domain).token)
    issued = make_cert([domain])
    upload = CertificateRequest(certificate=issued.cert_pem, private_key=issued.key_pem)
    oss_api.put_cname(BUCKET, domain, upload)
    entry = next(e for e in oss_api.list_cnames(BUCKET) if e.domain == domain)
    cert = entry.certificate
    assert cert is not None
    assert (cert.type, cert.fingerprint) == ("CAS", issued.fingerprint)  # uploads become CAS
    assert oss_api.certificate_ids[(BUCKET, domain)] == cert.cert_id  # from the answer header
    assert cert.valid_end is not None and cert.valid_end.tzinfo is not None
    assert abs((cert.valid_end - issued.cert.not_valid_after_utc).total_seconds()) < 1
    stale = CertificateRequest(certificate=issued.cert_pem, private_key=issued.key_pem,
                               previous_cert_id="999-cn-hangzhou")
    with pytest.raises(OssError) as info:
        oss_api.put_cname(BUCKET, domain, stale)
    assert info.value.code == "InvalidArgument"
    assert "PreviousCertId" in info.value.hint


# ----------------------------------------------------------------------------- Alidns


def test_wrong_alidns_secret_should_be_auth_error_without_the_secret(sandbox: Sandbox) -> None:
    bad = "wrong-secret-SENTINEL-77cd"
    dns = Alidns(credentials=creds(sandbox, bad), endpoint=sandbox.info.alidns_endpoint,
                 protocol="http")
    with pytest.raises(DnsAuthError) as info:
        dns.find_zone("img.example.com")
    assert info.value.code == "SignatureDoesNotMatch"
    assert bad not in str(info.value)


def test_endpoint_with_scheme_should_work(sandbox: Sandbox) -> None:
    dns = Alidns(credentials=creds(sandbox), endpoint=f"http://{sandbox.info.alidns_endpoint}")
    assert dns.find_zone("example.com").name == "example.com"


def test_zone_of_another_account_should_not_be_found(sandbox: Sandbox) -> None:
    dns = Alidns(credentials=Credentials("LTAI5tSandboxOtherAccount",
                                         "sandbox-other-account-secret"),
                 endpoint=sandbox.info.alidns_endpoint, protocol="http")
    with pytest.raises(ZoneNotFound):
        dns.find_zone("img.example.com")


def test_rate_limiter_should_be_called_before_every_api_call(sandbox: Sandbox) -> None:
    actions: list[str] = []
    dns = Alidns(credentials=creds(sandbox), endpoint=sandbox.info.alidns_endpoint,
                 protocol="http", rate_limiter=actions.append)
    zone = dns.find_zone("example.com")
    dns.upsert(zone, f"_dnsauth.{fresh_domain()}", "TXT", "v", 600)
    assert actions == [
        "DescribeDomains", "DescribeDomainInfo", "DescribeSubDomainRecords",
        "AddDomainRecord", "UpdateDomainRecordRemark",
    ]


@pytest.fixture(scope="module")
def throttled_sandbox(no_proxy: None) -> Iterator[Sandbox]:
    limits = AlidnsLimits(rate_limits={"AddDomainRecord": 1.0}, retry_after_ms=250)
    with Sandbox(SandboxConfig(alidns=limits)) as box:
        yield box


def test_throttled_add_should_be_retried_after_the_servers_hint(
    throttled_sandbox: Sandbox,
) -> None:
    waits: list[float] = []

    def sleep(seconds: float) -> None:
        waits.append(seconds)
        time.sleep(seconds)

    dns = Alidns(credentials=creds(throttled_sandbox),
                 endpoint=throttled_sandbox.info.alidns_endpoint, protocol="http",
                 retry=RetryPolicy(attempts=6, initial_s=0.05, max_s=0.5, jitter_s=0.0),
                 sleep=sleep)
    zone = dns.find_zone("example.com")
    for _ in range(2):  # a 1/s bucket: the second add within the second is throttled
        _, changed = dns.upsert(zone, f"_dnsauth.{fresh_domain()}", "TXT", "v", 600)
        assert changed is True
    assert waits, "the second AddDomainRecord should have been throttled and retried"
    assert all(w >= 0.25 for w in waits)  # x-acs-retry-after: 250 ms honoured


def test_throttling_without_retries_should_surface_as_retryable(
    throttled_sandbox: Sandbox,
) -> None:
    dns = Alidns(credentials=creds(throttled_sandbox),
                 endpoint=throttled_sandbox.info.alidns_endpoint, protocol="http",
                 retry=RetryPolicy(attempts=1))
    zone = dns.find_zone("example.com")
    with pytest.raises(DnsProviderError) as info:
        for _ in range(3):
            dns.upsert(zone, f"_dnsauth.{fresh_domain()}", "TXT", "v", 600)
    assert (info.value.code, info.value.retryable) == ("Throttling.User", True)

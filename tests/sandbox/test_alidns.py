"""The real alibabacloud_alidns20150109 client against the sandbox's Alidns API over loopback.

Every error is asserted through the SDK's own exception classes (code, HTTP status, request id).
"""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace
from typing import Any
from urllib.parse import urlencode

import pytest
import requests
import uvicorn
from alibabacloud_alidns20150109 import models as dns
from alibabacloud_alidns20150109.client import Client
from alibabacloud_tea_openapi import models as open_api_models
from alibabacloud_tea_openapi.exceptions import (
    ClientException,
    ServerException,
    ThrottlingException,
)
from alibabacloud_tea_openapi.utils import Utils
from darabonba.exceptions import RetryError, UnretryableException
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cname_flow.sandbox.alidns.api import create_alidns_app
from cname_flow.sandbox.alidns.ops import OPERATIONS
from cname_flow.sandbox.config import (
    AccountConfig,
    AlidnsLimits,
    FaultsConfig,
    OpFaults,
    SandboxConfig,
    StsConfig,
    ZoneConfig,
)
from cname_flow.sandbox.faults import FaultPlan
from cname_flow.sandbox.state import SandboxState

pytestmark = [pytest.mark.e2e, pytest.mark.usefixtures("no_proxy")]

AK, SK = "LTAI5tSandboxExampleKey", "sandbox-secret-do-not-use-in-production"
OTHER_AK, OTHER_SK = "LTAI5tSandboxOtherAccount", "sandbox-other-account-secret"
STS_AK, STS_SK, STS_TOKEN = "STS.SandboxTemp", "sts-secret", "sts-token-value"
OWNER, OTHER = "1234567890123456", "6543210987654321"


def world(**overrides: Any) -> SandboxConfig:
    """The default sandbox plus an STS credential and a zone owned by the second account."""
    base = SandboxConfig()
    accounts = [
        AccountConfig(id=OWNER, access_key_id=AK, access_key_secret=SK,
                      sts=[StsConfig(access_key_id=STS_AK, access_key_secret=STS_SK,
                                     security_token=STS_TOKEN)]),
        AccountConfig(id=OTHER, access_key_id=OTHER_AK, access_key_secret=OTHER_SK),
    ]
    zones = [*base.zones, ZoneConfig(name="other.net", owner=OTHER)]
    fields: dict[str, Any] = {"accounts": accounts, "zones": zones} | overrides
    return base.model_copy(update=fields)


@dataclass
class Sandbox:
    state: SandboxState
    port: int

    def client(self, ak: str = AK, sk: str = SK, token: str | None = None,
               algorithm: str | None = None) -> Client:
        return Client(open_api_models.Config(
            access_key_id=ak, access_key_secret=sk, security_token=token,
            endpoint=f"127.0.0.1:{self.port}", protocol="HTTP", signature_algorithm=algorithm,
        ))


@pytest.fixture
def start() -> Iterator[Callable[[SandboxConfig], Sandbox]]:
    """Start the Alidns app under uvicorn on an ephemeral loopback port (one per config)."""
    servers: list[tuple[uvicorn.Server, threading.Thread]] = []

    def _start(config: SandboxConfig) -> Sandbox:
        state = SandboxState(config)
        app = create_alidns_app(state, FaultPlan(config.faults))
        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
        server = uvicorn.Server(uvicorn.Config(app, log_level="critical", lifespan="off"))
        thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
        thread.start()
        deadline = time.monotonic() + 10
        while not server.started and time.monotonic() < deadline:
            time.sleep(0.005)
        servers.append((server, thread))
        return Sandbox(state, sock.getsockname()[1])

    yield _start
    for server, thread in servers:
        server.should_exit = True
        thread.join(5)


@pytest.fixture
def alidns_sandbox(start: Callable[[SandboxConfig], Sandbox]) -> Sandbox:
    """The Alidns API alone, fresh per test, on :func:`world` (an STS key, a foreign zone)."""
    return start(world())


def add_txt(client: Client, rr: str = "_dnsauth.img", value: str = "token-1",
            zone: str = "example.com", ttl: int = 600) -> str:
    body = client.add_domain_record(dns.AddDomainRecordRequest(
        domain_name=zone, rr=rr, type="TXT", value=value, ttl=ttl)).body
    assert isinstance(body.record_id, str)
    return str(body.record_id)


# -- happy paths ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("ak", "sk", "token", "algorithm"),
    [(AK, SK, None, None), (AK, SK, None, "v2"), (STS_AK, STS_SK, STS_TOKEN, None),
     (STS_AK, STS_SK, STS_TOKEN, "v2")],
    ids=["acs3", "rpc-v1", "acs3-sts", "rpc-v1-sts"],
)
def test_txt_lifecycle(alidns_sandbox: Sandbox, ak: str, sk: str, token: str | None,
                       algorithm: str | None) -> None:
    c = alidns_sandbox.client(ak, sk, token, algorithm)
    main = c.get_main_domain_name(dns.GetMainDomainNameRequest(
        input_string="_dnsauth.img.example.com")).body
    assert (main.domain_name, main.rr, main.domain_level) == ("example.com", "_dnsauth.img", 3)
    found = c.describe_domains(dns.DescribeDomainsRequest(
        key_word="example.com", search_mode="EXACT")).body
    assert found.total_count == 1
    assert found.domains.domain[0].domain_name == "example.com"

    record_id = add_txt(c, rr="_dnsauth.IMG", value='"tok en*~/+=&é"')
    sub = c.describe_sub_domain_records(dns.DescribeSubDomainRecordsRequest(
        sub_domain="_dnsauth.img.example.com", domain_name="example.com", type="TXT")).body
    assert sub.total_count == 1
    rec = sub.domain_records.record[0]
    assert (rec.record_id, rec.rr, rec.value, rec.ttl) == (record_id, "_dnsauth.img",
                                                          "tok en*~/+=&é", 600)

    updated = c.update_domain_record(dns.UpdateDomainRecordRequest(
        record_id=record_id, rr="_dnsauth.img", type="TXT", value="token-2", ttl=1200))
    assert updated.body.record_id == record_id
    c.update_domain_record_remark(dns.UpdateDomainRecordRemarkRequest(
        record_id=record_id, remark="cname-flow"))
    info = c.describe_domain_record_info(dns.DescribeDomainRecordInfoRequest(
        record_id=record_id)).body
    assert (info.value, info.ttl, info.remark, info.domain_name) == (
        "token-2", 1200, "cname-flow", "example.com")

    deleted = c.delete_domain_record(dns.DeleteDomainRecordRequest(record_id=record_id))
    assert deleted.body.record_id == record_id
    left = c.describe_domain_records(dns.DescribeDomainRecordsRequest(
        domain_name="example.com")).body
    assert left.total_count == 0 and left.domain_records.record == []
    assert alidns_sandbox.state.zones["example.com"].records == {}


def test_mutations_reach_the_shared_state_history(alidns_sandbox: Sandbox) -> None:
    c = alidns_sandbox.client()
    record_id = add_txt(c)
    zone = alidns_sandbox.state.zones["example.com"]
    at = alidns_sandbox.state.clock() + 1
    assert [v.value for v in alidns_sandbox.state.rrsets_at(
        zone, "_dnsauth.img.example.com", at)] == ["token-1"]
    c.update_domain_record(dns.UpdateDomainRecordRequest(
        record_id=record_id, rr="_dnsauth.img", type="TXT", value="token-2"))
    versions = zone.versions["_dnsauth.img.example.com"]
    assert [v.value for v in versions] == ["token-1", "token-2"]


def test_describe_domain_info(alidns_sandbox: Sandbox) -> None:
    body = alidns_sandbox.client().describe_domain_info(dns.DescribeDomainInfoRequest(
        domain_name="example.com", need_detail_attributes=True)).body
    zone = alidns_sandbox.state.zones["example.com"]
    assert body.dns_servers.dns_server == list(zone.nameservers)
    assert (body.min_ttl, body.version_code, body.domain_id) == (600, "mianfei", zone.domain_id)
    assert "600" in body.available_ttls.available_ttl
    assert "60" not in body.available_ttls.available_ttl


def test_describe_domains_paging_and_isolation(alidns_sandbox: Sandbox) -> None:
    c = alidns_sandbox.client()
    page = c.describe_domains(dns.DescribeDomainsRequest(page_size=1, page_number=2)).body
    assert (page.total_count, page.page_number, page.page_size) == (2, 2, 1)
    assert [d.domain_name for d in page.domains.domain] == ["example.com.cn"]
    like = c.describe_domains(dns.DescribeDomainsRequest(key_word="com.c")).body
    assert [d.domain_name for d in like.domains.domain] == ["example.com.cn"]
    other = alidns_sandbox.client(OTHER_AK, OTHER_SK).describe_domains(
        dns.DescribeDomainsRequest()).body
    assert [d.domain_name for d in other.domains.domain] == ["other.net"]


def test_record_search_modes(alidns_sandbox: Sandbox) -> None:
    c = alidns_sandbox.client()
    add_txt(c, rr="hkg", value="alpha")
    add_txt(c, rr="hkg2", value="beta")
    c.add_domain_record(dns.AddDomainRecordRequest(
        domain_name="example.com", rr="www", type="A", value="192.0.2.1"))

    def rrs(**kw: Any) -> list[str]:
        body = c.describe_domain_records(dns.DescribeDomainRecordsRequest(
            domain_name="example.com", **kw)).body
        return sorted(r.rr for r in body.domain_records.record)

    assert rrs(rrkey_word="hkg") == ["hkg", "hkg2"]
    assert rrs(rrkey_word="hkg", search_mode="COMBINATION") == ["hkg"]
    assert rrs(key_word="bet") == ["hkg2"]
    assert rrs(key_word="hkg", search_mode="EXACT") == ["hkg"]
    assert rrs(key_word="hkg", type="A", search_mode="LIKE") == ["hkg", "hkg2"]  # Type ignored
    assert rrs(type="A") == ["www"]
    assert rrs(value_key_word="ALP", search_mode="ADVANCED") == ["hkg"]
    page = c.describe_domain_records(dns.DescribeDomainRecordsRequest(
        domain_name="example.com", page_size=2, page_number=2)).body
    assert page.total_count == 3 and len(page.domain_records.record) == 1


def test_delete_sub_domain_records_and_mx(alidns_sandbox: Sandbox) -> None:
    c = alidns_sandbox.client()
    add_txt(c, rr="x", value="a")
    add_txt(c, rr="x", value="b")
    c.add_domain_record(dns.AddDomainRecordRequest(
        domain_name="example.com", rr="x", type="MX", value="mx.example.net", priority=10))
    info = c.describe_sub_domain_records(dns.DescribeSubDomainRecordsRequest(
        sub_domain="x.example.com", type="MX")).body.domain_records.record[0]
    assert info.priority == 10
    body = c.delete_sub_domain_records(dns.DeleteSubDomainRecordsRequest(
        domain_name="example.com", rr="X", type="TXT")).body
    assert (body.rr, body.total_count) == ("x", "2")
    left = c.describe_sub_domain_records(dns.DescribeSubDomainRecordsRequest(
        sub_domain="x.example.com")).body
    assert [r.type for r in left.domain_records.record] == ["MX"]


def test_apex_allows_cname_with_txt(alidns_sandbox: Sandbox) -> None:
    c = alidns_sandbox.client()
    c.add_domain_record(dns.AddDomainRecordRequest(
        domain_name="example.com", rr="@", type="CNAME", value="b.oss-cn-hangzhou.aliyuncs.com"))
    add_txt(c, rr="@", value="v=spf1 -all")


# -- error answers ------------------------------------------------------------------------------


def expect(exc_type: type[Exception], code: str, status: int, call: Callable[[], object]) -> Any:
    with pytest.raises(exc_type) as info:
        call()
    err: Any = info.value
    assert (err.code, err.status_code) == (code, status)
    assert isinstance(err.request_id, str) and len(err.request_id) == 24
    assert err.data["RequestId"] == err.request_id and err.data["HostId"] == "alidns.aliyuncs.com"
    return err


def add(c: Client, **kw: Any) -> Callable[[], object]:
    fields = {"domain_name": "example.com", "rr": "_dnsauth.img", "type": "TXT",
              "value": "v", "ttl": 600} | kw
    return lambda: c.add_domain_record(dns.AddDomainRecordRequest(**fields))


def update(c: Client, record_id: str, **kw: Any) -> Callable[[], object]:
    fields = {"record_id": record_id, "rr": "_dnsauth.img", "type": "TXT", "value": "v"} | kw
    return lambda: c.update_domain_record(dns.UpdateDomainRecordRequest(**fields))


def test_duplicate_add_and_noop_update(alidns_sandbox: Sandbox) -> None:
    c = alidns_sandbox.client()
    record_id = add_txt(c, value="v")
    err = expect(ClientException, "DomainRecordDuplicate", 400, add(c))
    assert "already exists" in err.message
    expect(ClientException, "DomainRecordDuplicate", 400, update(c, record_id))
    expect(ClientException, "DomainRecordDuplicate", 400, update(c, record_id, value='"v"'))


def test_unknown_or_foreign_record_ids(alidns_sandbox: Sandbox) -> None:
    c, other = alidns_sandbox.client(), alidns_sandbox.client(OTHER_AK, OTHER_SK)
    record_id = add_txt(c)
    code = "DomainRecordNotBelongToUser"
    expect(ClientException, code, 400, update(c, "999999999"))
    expect(ClientException, code, 400, lambda: c.delete_domain_record(
        dns.DeleteDomainRecordRequest(record_id="999999999")))
    expect(ClientException, code, 400, lambda: other.delete_domain_record(
        dns.DeleteDomainRecordRequest(record_id=record_id)))
    expect(ClientException, code, 400, lambda: other.describe_domain_record_info(
        dns.DescribeDomainRecordInfoRequest(record_id=record_id)))
    expect(ClientException, code, 400, lambda: other.update_domain_record_remark(
        dns.UpdateDomainRecordRemarkRequest(record_id=record_id, remark="x")))


def test_zone_errors(alidns_sandbox: Sandbox) -> None:
    c = alidns_sandbox.client()
    expect(ClientException, "InvalidDomainName.NoExist", 400, add(c, domain_name="unknown.org"))
    expect(ClientException, "IncorrectDomainUser", 400, add(c, domain_name="img.example.com"))
    expect(ClientException, "IncorrectDomainUser", 400, add(c, domain_name="other.net"))
    expect(ClientException, "InvalidDomainName.Format", 400, add(c, domain_name="bad..name"))
    expect(ClientException, "IncorrectDomainUser", 400, lambda: c.describe_domain_records(
        dns.DescribeDomainRecordsRequest(domain_name="other.net")))


def test_ttl_errors(alidns_sandbox: Sandbox) -> None:
    c = alidns_sandbox.client()
    err = expect(ClientException, "QuotaExceeded.TTL", 400, add(c, ttl=60))
    assert "A valid TTL must be in the range of 600 to 86400." in err.message
    expect(ClientException, "QuotaExceeded.TTL", 400, add(c, ttl=86401))
    err = expect(ClientException, "InvalidParameter", 400, add(c, ttl=0))
    assert "Specified parameter TTL is not valid." in err.message


def test_value_rr_and_type_errors(alidns_sandbox: Sandbox) -> None:
    c = alidns_sandbox.client()
    expect(ClientException, "InvalidParameter", 400, add(c, type="A", value="not-an-ip"))
    expect(ClientException, "InvalidParameter", 400, add(c, type="AAAA", value="192.0.2.1"))
    expect(ClientException, "InvalidParameter", 400, add(c, type="CNAME", value="bad host!"))
    expect(ClientException, "InvalidParameter", 400, add(c, type="BOGUS"))
    expect(ClientException, "InvalidParameter", 400, add(c, type="MX", value="mx.a.b", priority=99))
    for rr in ("bad..rr", "-lead", "sp ace", "x" * 64):
        expect(ClientException, "InvalidRR.Format", 400, add(c, rr=rr))


@pytest.mark.parametrize("missing", ["domain_name", "rr", "type", "value"])
def test_missing_parameters(alidns_sandbox: Sandbox, missing: str) -> None:
    c = alidns_sandbox.client()
    wire = {"domain_name": "DomainName", "rr": "RR", "type": "Type", "value": "Value"}[missing]
    err = expect(ClientException, f"Missing{wire}", 400, add(c, **{missing: None}))
    assert f"{wire} is mandatory for this action." in err.message


def test_conflicts_and_record_quota(alidns_sandbox: Sandbox) -> None:
    c = alidns_sandbox.client()
    c.add_domain_record(dns.AddDomainRecordRequest(
        domain_name="example.com", rr="img", type="CNAME", value="b.oss-cn-hangzhou.aliyuncs.com"))
    expect(ClientException, "DomainRecordConflict", 400, add(c, rr="img"))
    expect(ClientException, "DomainRecordConflict", 400, add(c, rr="img", type="CNAME",
                                                              value="c.example.net"))
    state = alidns_sandbox.state
    zone = state.zones["example.com"]
    for i in range(90):
        state.add_record(zone, "many", "TXT", f"v{i}", 600)
    expect(ClientException, "QuotaExceeded.Record", 400, add(c, rr="many", value="v90"))


def test_main_domain_name_errors(alidns_sandbox: Sandbox) -> None:
    c = alidns_sandbox.client()
    expect(ClientException, "InvalidDomainName.Format", 400, lambda: c.get_main_domain_name(
        dns.GetMainDomainNameRequest(input_string="not a domain!")))
    expect(ClientException, "QuotaExceeded.StringLength", 400, lambda: c.get_main_domain_name(
        dns.GetMainDomainNameRequest(input_string="a." * 64 + "example.com")))


def test_locked_record(alidns_sandbox: Sandbox) -> None:
    c = alidns_sandbox.client()
    record_id = add_txt(c)
    found = alidns_sandbox.state.find_record(record_id)
    assert found is not None
    found[1].locked = True
    expect(ClientException, "DomainRecordLocked", 400, update(c, record_id, value="other"))


# -- authentication -----------------------------------------------------------------------------


def describe(c: Client) -> Callable[[], object]:
    return lambda: c.describe_domains(dns.DescribeDomainsRequest())


@pytest.mark.parametrize("algorithm", [None, "v2"], ids=["acs3", "rpc-v1"])
def test_credential_errors(alidns_sandbox: Sandbox, algorithm: str | None) -> None:
    expect(ClientException, "InvalidAccessKeyId.NotFound", 404,
           describe(alidns_sandbox.client("LTAI5tNobody", SK, algorithm=algorithm)))
    err = expect(ClientException, "SignatureDoesNotMatch", 400,
                 describe(alidns_sandbox.client(AK, "wrong", algorithm=algorithm)))
    assert SK not in err.message and "wrong" not in err.message
    expect(ClientException, "MissingSecurityToken", 400,
           describe(alidns_sandbox.client(STS_AK, STS_SK, algorithm=algorithm)))
    expect(ClientException, "InvalidSecurityToken.MismatchWithAccessKey", 400,
           describe(alidns_sandbox.client(STS_AK, STS_SK, "forged", algorithm=algorithm)))


def test_clock_skew_and_nonce_replay(
    alidns_sandbox: Sandbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    c = alidns_sandbox.client()
    skewed = (datetime.now(UTC) - timedelta(minutes=16)).strftime("%Y-%m-%dT%H:%M:%SZ")
    with monkeypatch.context() as m:
        m.setattr(Utils, "get_timestamp", staticmethod(lambda: skewed))
        err = expect(ClientException, "InvalidTimeStamp.Expired", 400, describe(c))
        assert err.message.startswith("code: 400, Specified time stamp or date value is expired.")
    monkeypatch.setattr(Utils, "get_nonce", staticmethod(lambda: "f" * 32))
    describe(c)()
    expect(ClientException, "SignatureNonceUsed", 400, describe(c))


# -- throttling and faults ---------------------------------------------------------------------


def test_rate_limit_answers_throttling_user(start: Callable[[SandboxConfig], Sandbox]) -> None:
    sb = start(world(alidns=AlidnsLimits(rate_limits={"DescribeDomains": 0.5})))
    c = sb.client()
    describe(c)()
    err = expect(ClientException, "Throttling.User", 400, describe(c))
    assert "Request was denied due to user flow control." in err.message
    describe(sb.client(OTHER_AK, OTHER_SK))()  # buckets are per account


def test_rate_limit_with_retry_after(start: Callable[[SandboxConfig], Sandbox]) -> None:
    limits = AlidnsLimits(rate_limits={"DescribeDomains": 0.5}, throttle_status=429,
                          retry_after_ms=1500)
    c = start(world(alidns=limits)).client()
    describe(c)()
    err = expect(ThrottlingException, "Throttling.User", 429, describe(c))
    assert err.retry_after == 1500


def test_rate_limits_can_be_switched_off(start: Callable[[SandboxConfig], Sandbox]) -> None:
    limits = AlidnsLimits(rate_limits={"DescribeDomains": 0.5}, enforce_rate_limits=False)
    c = start(world(alidns=limits)).client()
    for _ in range(3):
        describe(c)()


def faulty(kind: str) -> SandboxConfig:
    return world(faults=FaultsConfig(seed=1, ops={"DescribeDomains": OpFaults(**{kind: 1.0})}))


def test_fault_error(start: Callable[[SandboxConfig], Sandbox]) -> None:
    c = start(faulty("error_rate")).client()
    expect(ServerException, "ServiceUnavailable", 503, describe(c))
    add_txt(c)  # other operations are unaffected


def test_fault_throttle(start: Callable[[SandboxConfig], Sandbox]) -> None:
    c = start(faulty("throttle_rate")).client()
    expect(ClientException, "Throttling.User", 400, describe(c))


def test_fault_drop_resets_the_connection(start: Callable[[SandboxConfig], Sandbox]) -> None:
    sb = start(faulty("drop_rate"))
    with pytest.raises(UnretryableException) as info:
        describe(sb.client())()
    inner = info.value.inner_exception
    assert isinstance(inner, RetryError) and "Remote end closed connection" in str(inner.message)
    add_txt(sb.client())  # the server survives


# -- fuzzing: always a well-formed JSON answer, never a 500 ----------------------------------


def signed_headers(port: int, action: str, query: dict[str, str]) -> dict[str, str]:
    headers = {
        "host": f"127.0.0.1:{port}", "x-acs-version": "2015-01-09", "x-acs-action": action,
        "x-acs-date": Utils.get_timestamp(), "x-acs-signature-nonce": Utils.get_nonce(),
        "accept": "application/json",
        "x-acs-content-sha256": "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
    }
    request = SimpleNamespace(pathname="/", method="POST", query=query, headers=headers)
    auth = Utils.get_authorization(request, "ACS3-HMAC-SHA256",
                                   headers["x-acs-content-sha256"], AK, SK)
    return headers | {"Authorization": auth}


PARAM_NAMES = ["DomainName", "RR", "Type", "Value", "TTL", "Line", "Priority", "RecordId",
               "PageNumber", "PageSize", "KeyWord", "RRKeyWord", "SearchMode", "SubDomain",
               "InputString", "Remark", "Status", "Direction", "NeedDetailAttributes"]
FUZZ_VALUES = st.one_of(
    st.text(max_size=40),
    st.sampled_from(["example.com", "@", "_dnsauth.img", "TXT", "A", "MX", "CNAME", "0", "-1",
                     "600", "99999999999999999999", "1.2.3.4", "LIKE", "EXACT", "ADVANCED",
                     "COMBINATION", "100001", "x.example.com", "example.com.cn", "true", ""]),
)


@pytest.fixture(scope="module")
def fuzz_target() -> Iterator[tuple[int, requests.Session]]:
    config = world(alidns=AlidnsLimits(enforce_rate_limits=False))
    state = SandboxState(config)
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    server = uvicorn.Server(uvicorn.Config(
        create_alidns_app(state, FaultPlan(config.faults)), log_level="critical", lifespan="off"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.005)
    session = requests.Session()
    session.trust_env = False
    yield sock.getsockname()[1], session
    server.should_exit = True
    thread.join(5)


def assert_well_formed(resp: requests.Response) -> None:
    assert resp.status_code != 500, resp.text
    body = json.loads(resp.content)
    assert isinstance(body, dict) and isinstance(body.get("RequestId"), str)
    if resp.status_code >= 400:
        assert {"Code", "Message", "HostId", "Recommend"} <= body.keys()


@settings(max_examples=150, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(action=st.sampled_from(sorted(OPERATIONS)),
       params=st.dictionaries(st.sampled_from(PARAM_NAMES), FUZZ_VALUES, max_size=7))
def test_fuzz_signed_operations(fuzz_target: tuple[int, requests.Session], action: str,
                                params: dict[str, str]) -> None:
    port, session = fuzz_target
    headers = signed_headers(port, action, params)
    resp = session.post(f"http://127.0.0.1:{port}/?{urlencode(params)}", headers=headers)
    assert_well_formed(resp)
    if resp.status_code >= 400:
        assert json.loads(resp.content)["Code"] != "SignatureDoesNotMatch"


@settings(max_examples=150, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(query=st.text(max_size=60),
       headers=st.dictionaries(
           st.sampled_from(["authorization", "x-acs-action", "x-acs-date", "x-acs-version",
                            "x-acs-security-token", "content-type", "x-acs-signature-nonce"]),
           # requests itself refuses header values with leading whitespace
           st.text(st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=60)
           .map(str.lstrip),
           max_size=5),
       body=st.binary(max_size=40))
def test_fuzz_raw_requests(fuzz_target: tuple[int, requests.Session], query: str,
                           headers: dict[str, str], body: bytes) -> None:
    port, session = fuzz_target
    resp = session.post(f"http://127.0.0.1:{port}/?{query}", headers=headers, data=body)
    assert_well_formed(resp)

"""AlibabaOss over Urllib3HttpClient: the real SDK, the sandbox, real loopback sockets.

Every CNAME operation, service errors as the SDK's ServiceError, transport failures retried by
the SDK's retryer, keep-alive, the wire headers, and the proxy fallback to the SDK's client.
"""

from __future__ import annotations

import socket
import uuid
from typing import Any

import pytest
import urllib3
from alibabacloud_oss_v2 import exceptions as oss_exc

import cname_flow.sandbox.oss.api as sandbox_oss_api
from cname_flow.config.credentials import Credentials
from cname_flow.dns.alidns import Alidns
from cname_flow.errors import OssError
from cname_flow.model import txt_name
from cname_flow.oss.adapter import AlibabaOss
from cname_flow.oss.transport import Urllib3HttpClient, http_client_for
from cname_flow.retry import RetryPolicy
from cname_flow.sandbox.app import Sandbox

pytestmark = [pytest.mark.e2e, pytest.mark.usefixtures("no_proxy")]

BUCKET = "examplebucket"


@pytest.fixture
def sends(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The URL of every request Urllib3HttpClient sends (one per SDK attempt)."""
    urls: list[str] = []
    original = Urllib3HttpClient.send

    def send(self: Urllib3HttpClient, request: Any, **kwargs: Any) -> Any:
        urls.append(request.url)
        return original(self, request, **kwargs)

    monkeypatch.setattr(Urllib3HttpClient, "send", send)
    return urls


@pytest.fixture
def connects(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """One entry per TCP connection urllib3 opens."""
    opened: list[int] = []
    original = urllib3.connection.HTTPConnection.connect

    def connect(self: urllib3.connection.HTTPConnection) -> None:
        opened.append(self.port or 0)
        original(self)

    monkeypatch.setattr(urllib3.connection.HTTPConnection, "connect", connect)
    return opened


def creds(box: Sandbox) -> Credentials:
    return Credentials(box.info.access_key_id, box.info.access_key_secret)


def oss_api(box: Sandbox, endpoint: str | None = None, **kwargs: Any) -> AlibabaOss:
    return AlibabaOss(region=box.info.region, credentials=creds(box),
                      endpoint=endpoint or box.info.oss_endpoint, **kwargs)


def fresh_domain() -> str:
    return f"t{uuid.uuid4().hex[:10]}.example.com"


def listening_port() -> tuple[socket.socket, int]:
    """A socket the kernel completes connections for, but that never reads or answers."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(8)
    return sock, int(sock.getsockname()[1])


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def sdk_cause(err: OssError) -> BaseException:
    """The SDK error under the OperationError that AlibabaOss mapped."""
    operation = err.__cause__
    assert isinstance(operation, oss_exc.OperationError)
    cause = operation.unwrap()
    assert isinstance(cause, BaseException)
    return cause


def test_every_cname_operation_should_work_through_urllib3(
    sandbox: Sandbox, sends: list[str]
) -> None:
    api = oss_api(sandbox)
    dns = Alidns(credentials=creds(sandbox), endpoint=sandbox.info.alidns_endpoint,
                 protocol="http")
    domain = fresh_domain()
    assert api.get_token(BUCKET, domain) is None  # CnameTokenNotFound
    token = api.create_token(BUCKET, domain)
    assert api.get_token(BUCKET, domain) == token
    dns.upsert(dns.find_zone(domain), txt_name(domain), "TXT", token.token, 600)
    assert len(api.put_cname(BUCKET, domain)) == 24
    assert domain in [e.domain for e in api.list_cnames(BUCKET)]
    api.delete_cname(BUCKET, domain)
    api.delete_cname(BUCKET, domain)  # NoSuchCname counts as done
    assert domain not in [e.domain for e in api.list_cnames(BUCKET)]
    assert len(sends) == 8
    assert all(url.startswith(sandbox.info.oss_endpoint) for url in sends)


def test_service_error_should_arrive_as_the_sdks_service_error(
    sandbox: Sandbox, sends: list[str]
) -> None:
    with pytest.raises(OssError) as info:
        oss_api(sandbox).list_cnames("no-such-bucket-here")
    err = info.value
    assert (err.code, err.status, err.retryable) == ("NoSuchBucket", 404, False)
    assert len(err.request_id) == 24
    cause = sdk_cause(err)
    assert isinstance(cause, oss_exc.ServiceError)
    assert (cause.code, cause.status_code, cause.request_id) == (
        "NoSuchBucket", 404, err.request_id)
    assert len(sends) == 1  # a 404 is not retried


#: Three attempts, 10 ms apart: our retry layer (the SDK's retryer is off).
THREE_TRIES = RetryPolicy(attempts=3, initial_s=0.01, max_s=0.01, jitter_s=0.0)


def test_refused_connection_should_be_retried_briefly_by_our_layer_then_unreachable(
    sandbox: Sandbox, sends: list[str]
) -> None:
    waits: list[float] = []
    api = oss_api(sandbox, f"http://127.0.0.1:{closed_port()}", connect_timeout_s=1,
                  retry=THREE_TRIES, sleep=waits.append)
    with pytest.raises(OssError) as info:
        api.list_cnames(BUCKET)
    assert (info.value.code, info.value.retryable, info.value.status) == (
        "EndpointUnreachable", True, 0)
    cause = sdk_cause(info.value)
    assert isinstance(cause, oss_exc.RequestError)
    assert isinstance(cause.unwrap(), urllib3.exceptions.NewConnectionError)
    assert len(sends) == 3  # three attempts, each one request: the SDK does not retry under us
    assert waits == [THREE_TRIES.unreachable_wait_s] * 2  # not the policy's backoff


def test_silent_server_should_time_out_as_a_response_error(
    sandbox: Sandbox, sends: list[str]
) -> None:
    sock, port = listening_port()
    with sock:
        api = oss_api(sandbox, f"http://127.0.0.1:{port}", read_timeout_s=0.2,
                      retry=THREE_TRIES)
        with pytest.raises(OssError) as info:
            api.get_token(BUCKET, fresh_domain())
    assert (info.value.code, info.value.retryable) == ("NetworkError", True)
    cause = sdk_cause(info.value)
    assert isinstance(cause, oss_exc.ResponseError)
    assert isinstance(cause.unwrap(), urllib3.exceptions.ReadTimeoutError)
    assert len(sends) == 3


def test_sequential_calls_should_reuse_one_connection(
    sandbox: Sandbox, connects: list[int]
) -> None:
    api = oss_api(sandbox)
    for _ in range(10):
        api.list_cnames(BUCKET)
        assert api.get_token(BUCKET, fresh_domain()) is None
    port = int(sandbox.info.oss_endpoint.rsplit(":", 1)[1])
    assert connects == [port]


def test_wire_should_carry_identity_encoding(
    sandbox: Sandbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen: list[dict[str, str]] = []
    original = sandbox_oss_api.parse_scope

    def parse_scope(scope: Any) -> sandbox_oss_api.OssRequest:
        incoming = original(scope)
        seen.append(incoming.headers)
        return incoming

    monkeypatch.setattr(sandbox_oss_api, "parse_scope", parse_scope)
    oss_api(sandbox).list_cnames(BUCKET)
    assert [h.get("accept-encoding") for h in seen] == ["identity"]
    assert "authorization" in seen[0]


def test_http_proxy_should_hand_the_endpoint_to_the_sdks_client(
    sandbox: Sandbox, monkeypatch: pytest.MonkeyPatch, sends: list[str]
) -> None:
    """The proxy (a closed port) is really used: the call fails, never reaching urllib3."""
    monkeypatch.setenv("HTTP_PROXY", f"http://127.0.0.1:{closed_port()}")
    endpoint = sandbox.info.oss_endpoint
    assert http_client_for(endpoint, region="cn-hangzhou", connect_timeout_s=1,
                           read_timeout_s=1) is None
    with pytest.raises(OssError) as info:
        oss_api(sandbox, connect_timeout_s=1, retry=THREE_TRIES).list_cnames(BUCKET)
    assert info.value.code == "EndpointUnreachable"  # the proxy refused the connection
    assert "proxy" in str(sdk_cause(info.value)).lower()
    assert sends == []


def test_no_proxy_for_the_endpoint_should_keep_urllib3(
    sandbox: Sandbox, monkeypatch: pytest.MonkeyPatch, sends: list[str]
) -> None:
    monkeypatch.setenv("HTTP_PROXY", f"http://127.0.0.1:{closed_port()}")
    monkeypatch.setenv("NO_PROXY", "localhost,127.0.0.1")
    endpoint = sandbox.info.oss_endpoint
    client = http_client_for(endpoint, region="cn-hangzhou", connect_timeout_s=1,
                             read_timeout_s=1)
    assert isinstance(client, Urllib3HttpClient)
    oss_api(sandbox).list_cnames(BUCKET)  # the proxy would refuse it
    assert len(sends) == 1

"""Urllib3HttpClient against small local servers (stdlib http.server, real loopback sockets),
and the proxy decision of http_client_for, checked against requests' own."""

from __future__ import annotations

import socket
import ssl
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import requests
import urllib3
from alibabacloud_oss_v2 import exceptions as oss_exc
from alibabacloud_oss_v2.types import HttpRequest

from cname_flow.oss.transport import Urllib3HttpClient, http_client_for, proxy_applies
from tests.certgen import make_ca, make_cert, write_pem

BODY = bytes(range(256)) * 400  # 100 KiB: several iter_bytes chunks


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive
    server: LocalServer

    def do_GET(self) -> None:
        self.server.seen.append({k.lower(): v for k, v in self.headers.items()})
        self.send_response(200)
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Content-Length", str(len(BODY)))
        self.send_header("X-Oss-Request-Id", "5C3D9175B6FC201293AD4890")
        self.end_headers()
        self.wfile.write(BODY)

    def log_message(self, *args: Any) -> None:
        pass


class LocalServer(ThreadingHTTPServer):
    """HTTP/1.1 server on 127.0.0.1 counting the TCP connections it accepts."""

    daemon_threads = True

    def __init__(self, tls: ssl.SSLContext | None = None) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.tls = tls
        self.connections = 0
        self.seen: list[dict[str, str]] = []

    def get_request(self) -> tuple[socket.socket, Any]:
        sock, addr = super().get_request()
        self.connections += 1
        if self.tls is not None:
            sock = self.tls.wrap_socket(sock, server_side=True)
        return sock, addr

    def url(self, host: str = "127.0.0.1") -> str:
        scheme = "https" if self.tls else "http"
        return f"{scheme}://{host}:{self.server_address[1]}/object"


@pytest.fixture
def server() -> Iterator[LocalServer]:
    yield from _serve(LocalServer())


def _serve(srv: LocalServer) -> Iterator[LocalServer]:
    thread = threading.Thread(target=srv.serve_forever, daemon=True)
    thread.start()
    try:
        yield srv
    finally:
        srv.shutdown()
        srv.server_close()


@pytest.fixture
def client() -> Iterator[Urllib3HttpClient]:
    with Urllib3HttpClient(connect_timeout=2, readwrite_timeout=5) as http:
        yield http


def get(url: str) -> HttpRequest:
    return HttpRequest("GET", url, headers={"User-Agent": "cname-flow-test"})


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# -- responses ----------------------------------------------------------------------------------


def test_response_should_be_read_and_released_before_send_returns(
    client: Urllib3HttpClient, server: LocalServer
) -> None:
    resp = client.send(get(server.url()))
    assert (resp.status_code, resp.reason, resp.content) == (200, "OK", BODY)
    assert resp.read() == BODY
    assert resp.headers["x-oss-request-id"] == resp.headers["X-OSS-REQUEST-ID"]
    assert resp.is_closed and resp.is_stream_consumed
    assert resp.request.url == server.url()
    assert b"".join(resp.iter_bytes(block_size=1000)) == BODY


def test_identity_encoding_and_the_sdk_headers_should_be_sent(
    client: Urllib3HttpClient, server: LocalServer
) -> None:
    client.send(get(server.url()))
    headers = server.seen[0]
    assert headers["accept-encoding"] == "identity"
    assert headers["user-agent"] == "cname-flow-test"


def test_sequential_calls_should_share_one_connection(
    client: Urllib3HttpClient, server: LocalServer
) -> None:
    for _ in range(5):
        assert client.send(get(server.url())).status_code == 200
    assert server.connections == 1


def test_streamed_body_should_come_in_blocks_then_free_the_connection(
    client: Urllib3HttpClient, server: LocalServer
) -> None:
    resp = client.send(get(server.url()), stream=True)
    assert not resp.is_stream_consumed and not resp.is_closed
    with pytest.raises(oss_exc.ResponseNotReadError):
        _ = resp.content
    chunks = list(resp.iter_bytes(block_size=16 * 1024))
    assert b"".join(chunks) == BODY and max(map(len, chunks)) <= 16 * 1024 and len(chunks) > 1
    assert resp.is_stream_consumed and resp.is_closed
    with pytest.raises(oss_exc.StreamConsumedError):
        resp.iter_bytes()
    assert client.send(get(server.url()), stream=True).read() == BODY
    assert server.connections == 1


def test_streamed_response_closed_unread_should_drop_its_connection(
    client: Urllib3HttpClient, server: LocalServer
) -> None:
    with client.send(get(server.url()), stream=True) as resp:
        assert resp.status_code == 200
    assert resp.is_closed and not resp.is_stream_consumed
    with pytest.raises(oss_exc.StreamClosedError):
        resp.read()
    client.send(get(server.url()))
    assert server.connections == 2


@pytest.mark.parametrize(("max_connections", "connects"), [(64, 30), (20, 40)])
def test_pool_should_keep_as_many_idle_connections_as_max_connections(
    server: LocalServer, max_connections: int, connects: int
) -> None:
    """Two rounds of 30 concurrent calls: the second reuses what the pool kept of the first."""
    threads = 30
    http = Urllib3HttpClient(max_connections=max_connections)
    barrier = threading.Barrier(threads)
    errors: list[BaseException] = []

    def call() -> None:
        try:
            resp = http.send(get(server.url()), stream=True)  # holds its connection
            barrier.wait(timeout=30)
            resp.read()
        except BaseException as exc:
            errors.append(exc)

    for _ in range(2):
        workers = [threading.Thread(target=call) for _ in range(threads)]
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join()
    http.close()
    assert errors == []
    assert server.connections == connects


# -- errors -------------------------------------------------------------------------------------


def test_refused_connection_should_be_a_request_error(client: Urllib3HttpClient) -> None:
    with pytest.raises(oss_exc.RequestError) as info:
        client.send(get(f"http://127.0.0.1:{closed_port()}/"))
    assert isinstance(info.value.unwrap(), urllib3.exceptions.NewConnectionError)


def test_silent_server_should_be_a_response_error_after_the_per_call_timeout(
    client: Urllib3HttpClient,
) -> None:
    with socket.socket() as listener:  # the kernel accepts; nobody ever answers
        listener.bind(("127.0.0.1", 0))
        listener.listen(4)
        url = f"http://127.0.0.1:{listener.getsockname()[1]}/"
        with pytest.raises(oss_exc.ResponseError) as info:
            client.send(get(url), readwrite_timeout=0.2)  # the client's own is 5 s
    assert isinstance(info.value.unwrap(), urllib3.exceptions.ReadTimeoutError)


def test_connection_closed_without_an_answer_should_be_a_request_error(
    client: Urllib3HttpClient,
) -> None:
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(4)
        url = f"http://127.0.0.1:{listener.getsockname()[1]}/"

        def hang_up() -> None:
            conn, _ = listener.accept()
            conn.recv(65536)
            conn.close()

        thread = threading.Thread(target=hang_up, daemon=True)
        thread.start()
        with pytest.raises(oss_exc.RequestError) as info:
            client.send(get(url))
        thread.join()
    assert isinstance(info.value.unwrap(), urllib3.exceptions.ProtocolError)


def test_redirect_should_be_returned_not_followed(client: Urllib3HttpClient) -> None:
    class Redirect(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_GET(self) -> None:
            self.send_response(302)
            self.send_header("Location", "/elsewhere")
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    srv = ThreadingHTTPServer(("127.0.0.1", 0), Redirect)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    try:
        resp = client.send(get(f"http://127.0.0.1:{srv.server_address[1]}/"))
    finally:
        srv.shutdown()
        srv.server_close()
    assert (resp.status_code, resp.headers["Location"]) == (302, "/elsewhere")


# -- TLS ----------------------------------------------------------------------------------------


@pytest.fixture
def tls_server(tmp_path: Path) -> Iterator[tuple[LocalServer, Path]]:
    ca = make_ca()
    leaf = make_cert(["localhost"], issuer=ca)
    cert_file, key_file = write_pem(tmp_path, leaf)
    ca_file = tmp_path / "ca.pem"
    ca_file.write_text(ca.cert_pem)
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(cert_file, key_file)
    for srv in _serve(LocalServer(tls=ctx)):
        yield srv, ca_file


def test_tls_should_be_verified_against_certifi_by_default(
    tls_server: tuple[LocalServer, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    srv, _ = tls_server
    for var in ("REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE"):
        monkeypatch.delenv(var, raising=False)
    with pytest.raises(oss_exc.RequestError) as info:
        Urllib3HttpClient().send(get(srv.url("localhost")))
    assert isinstance(info.value.unwrap(), urllib3.exceptions.SSLError)


def test_tls_should_trust_the_bundle_requests_would_use(
    tls_server: tuple[LocalServer, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    srv, ca_file = tls_server
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(ca_file))
    assert Urllib3HttpClient().send(get(srv.url("localhost"))).content == BODY


def test_insecure_skip_verify_should_accept_any_certificate(
    tls_server: tuple[LocalServer, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    srv, _ = tls_server
    monkeypatch.delenv("REQUESTS_CA_BUNDLE", raising=False)
    with pytest.warns(urllib3.exceptions.InsecureRequestWarning):
        resp = Urllib3HttpClient(insecure_skip_verify=True).send(get(srv.url("localhost")))
    assert resp.content == BODY


# -- proxies ------------------------------------------------------------------------------------

_PROXY_VARS = ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "NO_PROXY")


@pytest.fixture
def proxy_env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    for var in _PROXY_VARS:
        monkeypatch.delenv(var, raising=False)
        monkeypatch.delenv(var.lower(), raising=False)
    return monkeypatch


def factory(endpoint: str | None) -> Urllib3HttpClient | None:
    return http_client_for(endpoint, region="cn-hangzhou", connect_timeout_s=1, read_timeout_s=2)


def test_no_proxy_in_the_environment_should_give_the_urllib3_client(
    proxy_env: pytest.MonkeyPatch,
) -> None:
    assert isinstance(factory("http://127.0.0.1:9000"), Urllib3HttpClient)
    assert isinstance(factory(None), Urllib3HttpClient)


def test_http_proxy_should_leave_the_sandbox_to_the_sdk_unless_no_proxy_lists_it(
    proxy_env: pytest.MonkeyPatch,
) -> None:
    proxy_env.setenv("HTTP_PROXY", "http://proxy.invalid:3128")
    assert factory("http://127.0.0.1:9000") is None
    proxy_env.setenv("NO_PROXY", "localhost,127.0.0.1")
    assert isinstance(factory("http://127.0.0.1:9000"), Urllib3HttpClient)


@pytest.mark.parametrize(
    ("env", "proxied"),
    [
        ({"HTTP_PROXY": "http://p:3128"}, False),  # production is https
        ({"HTTPS_PROXY": "http://p:3128"}, True),
        ({"https_proxy": "http://p:3128"}, True),
        ({"ALL_PROXY": "http://p:3128"}, True),
        ({"HTTPS_PROXY": "http://p:3128", "NO_PROXY": ".aliyuncs.com"}, False),
        ({"HTTPS_PROXY": "http://p:3128", "NO_PROXY": "oss-cn-hangzhou.aliyuncs.com"}, False),
        ({"HTTPS_PROXY": "http://p:3128", "NO_PROXY": "oss-cn-beijing.aliyuncs.com"}, True),
        ({"HTTPS_PROXY": "http://p:3128", "NO_PROXY": "*"}, False),
    ],
)
def test_production_endpoint_should_be_judged_on_its_regional_host(
    proxy_env: pytest.MonkeyPatch, env: dict[str, str], proxied: bool
) -> None:
    for name, value in env.items():
        proxy_env.setenv(name, value)
    assert (factory(None) is None) is proxied
    assert (factory("oss-cn-hangzhou.aliyuncs.com") is None) is proxied  # no scheme: https


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:9000/bucket/?cname",
        "https://examplebucket.oss-cn-hangzhou.aliyuncs.com/?cname",
        "https://oss-cn-hangzhou.aliyuncs.com/",
    ],
)
@pytest.mark.parametrize(
    "env",
    [
        {},
        {"HTTP_PROXY": "http://p:3128"},
        {"HTTPS_PROXY": "http://p:3128"},
        {"http_proxy": "http://p:3128", "no_proxy": "127.0.0.1"},
        {"HTTP_PROXY": "http://p:3128", "NO_PROXY": "127.0.0.1:9000"},
        {"HTTPS_PROXY": "http://p:3128", "NO_PROXY": "aliyuncs.com"},
        {"ALL_PROXY": "http://p:3128", "NO_PROXY": "localhost"},
    ],
)
def test_proxy_decision_should_match_requests(
    proxy_env: pytest.MonkeyPatch, env: dict[str, str], url: str
) -> None:
    for name, value in env.items():
        proxy_env.setenv(name, value)
    by_requests = requests.utils.select_proxy(url, requests.utils.get_environ_proxies(url))
    assert proxy_applies(url) is (by_requests is not None)


@pytest.mark.parametrize("no_proxy", ["127.0.0.0/8", "localhost,127.0.0.1/32"])
def test_cidr_no_proxy_should_keep_the_sdk_client(
    proxy_env: pytest.MonkeyPatch, no_proxy: str
) -> None:
    """CIDR blocks: requests goes direct, the factory keeps the SDK's client (slower, right)."""
    url = "http://127.0.0.1:9000/bucket/?cname"
    proxy_env.setenv("HTTP_PROXY", "http://p:3128")
    proxy_env.setenv("NO_PROXY", no_proxy)
    by_requests = requests.utils.select_proxy(url, requests.utils.get_environ_proxies(url))
    assert by_requests is None
    assert proxy_applies(url)
    assert factory(url) is None

"""Both sandbox APIs refuse an oversized request body early: unread, before authentication.

Raw HTTP/1.1 over a real loopback socket, no credentials: a POST that declares 256 MiB is
answered before a byte of its body is sent, and a chunked one (no length declared) is answered
once it passes the cap, while the client is still sending, so the server never holds more than
the cap (64 KiB) of it.
"""

from __future__ import annotations

import select
import socket
import time
from collections.abc import Iterator
from urllib.parse import urlsplit

import pytest

from cname_flow.sandbox.alidns.api import MAX_BODY_BYTES as ALIDNS_MAX
from cname_flow.sandbox.app import Sandbox
from cname_flow.sandbox.oss.xml import MAX_BODY_BYTES as OSS_MAX

pytestmark = [pytest.mark.e2e, pytest.mark.usefixtures("no_proxy")]

HUGE = 256 * 1024 * 1024
CHUNK = 16 * 1024
#: (target path, the answer's status line start, a word of its error code), per API
EXPECTED = {
    "alidns": ("/?Action=DescribeDomains&Version=2015-01-09", b"HTTP/1.1 413",
               b"RequestEntityTooLarge"),
    "oss": ("/examplebucket/?cname&comp=add", b"HTTP/1.1 400", b"MalformedXML"),
}


@pytest.fixture(scope="module")
def box(no_proxy: None) -> Iterator[Sandbox]:
    with Sandbox() as sandbox:
        yield sandbox


def _address(box: Sandbox, api: str) -> tuple[str, int]:
    endpoint = box.info.oss_endpoint if api == "oss" else f"http://{box.info.alidns_endpoint}"
    parts = urlsplit(endpoint)
    assert parts.hostname and parts.port
    return parts.hostname, parts.port


def _head(target: str, host: str, framing: str) -> bytes:
    return (f"POST {target} HTTP/1.1\r\nHost: {host}\r\n"
            "Content-Type: application/x-www-form-urlencoded\r\n"
            f"{framing}\r\n\r\n").encode("ascii")


def _answer(sock: socket.socket) -> bytes:
    """Everything the server sends until it closes the connection (it says it will)."""
    data = b""
    sock.settimeout(5)
    try:
        while True:
            more = sock.recv(65536)
            if not more:
                break
            data += more
    except (ConnectionResetError, TimeoutError):
        pass
    return data


@pytest.mark.parametrize("api", ["alidns", "oss"])
def test_declared_oversized_body_is_refused_before_any_of_it_is_sent(
    box: Sandbox, api: str
) -> None:
    target, status, code = EXPECTED[api]
    host, port = _address(box, api)
    with socket.create_connection((host, port), timeout=5) as sock:
        sock.sendall(_head(target, f"{host}:{port}", f"Content-Length: {HUGE}"))
        started = time.monotonic()
        answer = _answer(sock)
    assert answer.startswith(status), answer[:200]
    assert code in answer
    assert b"connection: close" in answer.lower()
    assert time.monotonic() - started < 2


@pytest.mark.parametrize("api", ["alidns", "oss"])
def test_streamed_oversized_body_is_refused_once_past_the_cap(box: Sandbox, api: str) -> None:
    target, status, code = EXPECTED[api]
    cap = ALIDNS_MAX if api == "alidns" else OSS_MAX
    host, port = _address(box, api)
    chunk = f"{CHUNK:x}\r\n".encode() + b"x" * CHUNK + b"\r\n"
    sent = 0
    with socket.create_connection((host, port), timeout=5) as sock:
        sock.sendall(_head(target, f"{host}:{port}", "Transfer-Encoding: chunked"))
        while sent < 32 * 1024 * 1024:  # the whole would take the old Alidns endpoint 32 MiB
            readable, _, _ = select.select([sock], [], [], 0.02)
            if readable:
                break
            sock.sendall(chunk)
            sent += CHUNK
        answer = _answer(sock)
    assert answer.startswith(status) and code in answer, answer[:300]
    assert cap < sent <= cap + 16 * CHUNK   # answered while the client was still sending

"""An unreachable endpoint fails fast; throttling and 5xx keep the full backoff (issue 16)."""

from __future__ import annotations

import socket
from collections.abc import Iterator

import pytest
import urllib3.exceptions

from cname_flow.config import Credentials
from cname_flow.errors import OssError, RemoteError
from cname_flow.oss.adapter import AlibabaOss
from cname_flow.retry import RetriedCalls, RetryPolicy, is_unreachable

POLICY = RetryPolicy(attempts=6, initial_s=1.0, max_s=20.0, jitter_s=0.0)


@pytest.fixture
def no_proxy(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy", "ALL_PROXY",
                 "all_proxy"):
        monkeypatch.delenv(name, raising=False)
    yield


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _calls(error: RemoteError, waits: list[float]) -> tuple[int, BaseException]:
    count = 0

    def fail() -> None:
        nonlocal count
        count += 1
        raise error

    calls: RetriedCalls[RemoteError] = RetriedCalls(
        POLICY, sdk_errors=(RemoteError,), map_error=lambda exc, _: exc,  # type: ignore[arg-type,return-value]
        sleep=waits.append)
    with pytest.raises(RemoteError) as info:
        calls("GetBucketInfo", fail)
    return count, info.value


def test_unreachable_errors_get_three_quick_tries() -> None:
    error = OssError("unreachable", service="oss", code="EndpointUnreachable", retryable=True)
    error.unreachable = True
    waits: list[float] = []
    count, _ = _calls(error, waits)
    assert (count, waits) == (3, [0.3, 0.3])


def test_throttling_and_5xx_keep_the_full_backoff() -> None:
    error = OssError("busy", service="oss", code="InternalError", status=503, retryable=True)
    waits: list[float] = []
    count, _ = _calls(error, waits)
    assert count == 6
    assert waits == [1.0, 2.0, 4.0, 8.0, 16.0]


@pytest.mark.parametrize("exc", [
    ConnectionRefusedError(111, "refused"),
    socket.gaierror(-2, "Name or service not known"),
    OSError(101, "Network is unreachable"),
])
def test_is_unreachable_sees_the_cause_through_wrappers(exc: BaseException) -> None:
    wrapper = RuntimeError("request error")
    wrapper.__cause__ = exc
    assert is_unreachable(wrapper)


def test_a_timeout_is_not_unreachable() -> None:
    wrapper = RuntimeError("request error")
    wrapper.__cause__ = urllib3.exceptions.ConnectTimeoutError("timed out")
    assert not is_unreachable(wrapper)


def test_oss_on_a_closed_port_fails_fast_naming_the_endpoint(no_proxy: None) -> None:
    """The real OSS SDK against a refused port: 3 attempts, 2 short waits, the host named."""
    port = closed_port()
    waits: list[float] = []
    oss = AlibabaOss(region="cn-hangzhou",
                     credentials=Credentials("LTAIexample", "SENTINEL-secret-value"),
                     endpoint=f"http://127.0.0.1:{port}", sleep=waits.append)
    with pytest.raises(OssError) as info:
        oss.list_cnames("examplebucket")
    assert info.value.code == "EndpointUnreachable"
    assert f"port={port}" in info.value.message
    assert waits == [0.3, 0.3]
    assert "SENTINEL" not in info.value.message

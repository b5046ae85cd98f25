"""The retry policy: exact waits (sleep injected), only retryable errors, server hints honoured."""

from __future__ import annotations

import socket
from collections.abc import Callable
from types import SimpleNamespace
from typing import Any

import alibabacloud_oss_v2 as oss
import pytest
from alibabacloud_oss_v2 import exceptions as oss_exc
from structlog.testing import capture_logs

from cname_flow.config.credentials import Credentials
from cname_flow.dns.alidns import Alidns, split_endpoint
from cname_flow.errors import (
    CnameTaken,
    DnsProviderError,
    DnsThrottled,
    OwnershipPending,
    RemoteError,
)
from cname_flow.oss.adapter import AlibabaOss
from cname_flow.retry import RetryPolicy
from tests.unit.test_errors import client_exception


def failing(errors: list[BaseException], result: str = "ok") -> tuple[list[int], Callable[[], str]]:
    calls: list[int] = []

    def fn() -> str:
        calls.append(1)
        if len(calls) <= len(errors):
            raise errors[len(calls) - 1]
        return result

    return calls, fn


def remote(code: str, *, retryable: bool) -> RemoteError:
    return RemoteError(code, service="alidns", code=code, retryable=retryable)


NO_JITTER = RetryPolicy(attempts=4, initial_s=1.0, max_s=3.0, jitter_s=0.0)


def test_retryable_errors_should_back_off_exponentially_up_to_the_cap() -> None:
    waits: list[float] = []
    error = remote("Throttling.User", retryable=True)
    calls, fn = failing([error] * 10)
    with pytest.raises(RemoteError) as info:
        NO_JITTER.retrying(sleep=waits.append)(fn)
    assert info.value is error
    assert (len(calls), waits) == (4, [1.0, 2.0, 3.0])


def test_success_after_retries_should_return_the_result() -> None:
    waits: list[float] = []
    calls, fn = failing([remote("InternalError", retryable=True)] * 2)
    assert NO_JITTER.retrying(sleep=waits.append)(fn) == "ok"
    assert (len(calls), waits) == (3, [1.0, 2.0])


@pytest.mark.parametrize("error", [remote("QuotaExceeded.TTL", retryable=False), ValueError("x")])
def test_non_retryable_errors_should_not_be_retried(error: BaseException) -> None:
    waits: list[float] = []
    calls, fn = failing([error])
    with pytest.raises(type(error)):
        NO_JITTER.retrying(sleep=waits.append)(fn)
    assert (len(calls), waits) == (1, [])


def test_server_hint_should_raise_the_wait_but_not_past_its_cap() -> None:
    waits: list[float] = []
    policy = RetryPolicy(attempts=3, initial_s=1.0, max_s=3.0, jitter_s=0.0, max_retry_after_s=4)
    hints = iter([2.5, 30.0])
    _, fn = failing([remote("Throttling.User", retryable=True)] * 2)
    policy.retrying(sleep=waits.append, retry_after=lambda _exc: next(hints))(fn)
    assert waits == [2.5, 4.0]


def test_jitter_should_stay_within_its_bound() -> None:
    waits: list[float] = []
    policy = RetryPolicy(attempts=6, initial_s=1.0, max_s=20.0, jitter_s=1.0)
    _, fn = failing([remote("Throttling", retryable=True)] * 5)
    policy.retrying(sleep=waits.append)(fn)
    for attempt, wait in enumerate(waits):
        assert 2.0**attempt <= wait <= 2.0**attempt + 1.0


def test_each_retry_should_be_logged_with_its_code_and_fields() -> None:
    _, fn = failing([remote("Throttling.User", retryable=True)])
    with capture_logs() as logs:
        NO_JITTER.retrying(sleep=lambda _s: None, log_fields={"action": "AddDomainRecord"})(fn)
    assert logs == [
        {"event": "api.retry", "log_level": "info", "attempt": 1, "wait_s": 1.0,
         "code": "Throttling.User", "action": "AddDomainRecord"}
    ]


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_alidns_unreachable_should_retry_briefly_each_attempt_through_the_rate_limiter(
    no_proxy: None,
) -> None:
    """A refused connection is retried twice, quickly (issue 16: offline took 34 s)."""
    waits: list[float] = []
    actions: list[str] = []
    dns = Alidns(
        credentials=Credentials("LTAIexample", "SENTINEL-secret"),
        endpoint=f"127.0.0.1:{closed_port()}",
        protocol="http",
        rate_limiter=actions.append,
        retry=NO_JITTER,
        sleep=waits.append,
    )
    with pytest.raises(DnsProviderError) as info:
        dns.find_zone("img.example.com")
    assert (info.value.code, info.value.retryable) == ("EndpointUnreachable", True)
    assert info.value.unreachable
    assert "SENTINEL-secret" not in str(info.value)
    assert actions == ["DescribeDomains"] * 3
    assert waits == [0.3, 0.3]


@pytest.mark.parametrize(
    ("endpoint", "protocol", "expected"),
    [
        (None, "https", (None, "https")),
        ("127.0.0.1:8080", "HTTP", ("127.0.0.1:8080", "http")),
        ("http://127.0.0.1:8080", "https", ("127.0.0.1:8080", "http")),
        ("https://alidns.aliyuncs.com", "http", ("alidns.aliyuncs.com", "https")),
    ],
)
def test_split_endpoint_should_strip_the_scheme_the_sdk_cannot_take(
    endpoint: str | None, protocol: str, expected: tuple[str | None, str]
) -> None:
    assert split_endpoint(endpoint, protocol) == expected


def test_alidns_on_error_should_see_every_failed_attempt_mapped(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    seen: list[tuple[str, DnsProviderError]] = []
    dns = Alidns(credentials=Credentials("LTAIexample", "SENTINEL-secret"),
                 endpoint="127.0.0.1:9", protocol="http",
                 on_error=lambda action, exc: seen.append((action, exc)),
                 retry=NO_JITTER, sleep=lambda _s: None)

    def throttled(_request: object) -> object:
        raise client_exception("Throttling.User")

    monkeypatch.setattr(dns._client, "describe_domains", throttled)
    with pytest.raises(DnsThrottled) as info:
        dns.find_zone("img.example.com")
    assert [action for action, _ in seen] == ["DescribeDomains"] * 4
    assert all(isinstance(exc, DnsThrottled) for _, exc in seen)
    assert seen[-1][1] is info.value


# --- the OSS adapter runs through the same layer, with the SDK's retryer off ------------------


def _oss_answer(status: int, code: str) -> BaseException:
    err = oss_exc.ServiceError(status_code=status, code=code, message="m", request_id="RID",
                               ec="", timestamp=None, request_target="POST /")
    wrapped: BaseException = oss_exc.OperationError(name="op", error=err)
    return wrapped


def _oss(**hooks: Any) -> AlibabaOss:
    return AlibabaOss(region="cn-hangzhou", credentials=Credentials("AKID", "SENTINEL-secret"),
                      endpoint="http://127.0.0.1:9", retry=NO_JITTER, **hooks)


def test_oss_sdk_retryer_should_be_off() -> None:
    options = _oss()._client._client._options
    assert isinstance(options.retryer, oss.retry.NopRetryer)
    assert _oss()._client._client.retry_max_attempts(options) == 1


def test_oss_retryable_answers_should_be_retried_with_every_attempt_seen(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    waits: list[float] = []
    limited: list[str] = []
    seen: list[tuple[str, str]] = []
    api = _oss(sleep=waits.append, rate_limiter=limited.append,
               on_error=lambda action, exc: seen.append((action, exc.code)))
    answers = [_oss_answer(503, "ServiceUnavailable"), _oss_answer(503, "SlowDown")]
    calls, fn = failing(answers, result="listed")
    monkeypatch.setattr(api._client, "list_cname", lambda _req: SimpleNamespace(
        cnames=[] if fn() == "listed" else None))
    assert api.list_cnames("examplebucket") == []
    assert len(calls) == 3 and waits == [1.0, 2.0]
    assert limited == ["ListCname"] * 3
    assert seen == [("ListCname", "ServiceUnavailable"), ("ListCname", "SlowDown")]


@pytest.mark.parametrize(("status", "code", "cls"), [
    (403, "NeedVerifyDomainOwnership", OwnershipPending),   # the PutCname step's wait, not ours
    (409, "CnameAlreadyExists", CnameTaken),
])
def test_oss_answers_that_are_not_transient_should_be_tried_once(
    monkeypatch: pytest.MonkeyPatch, status: int, code: str, cls: type[Exception]
) -> None:
    waits: list[float] = []
    api = _oss(sleep=waits.append)
    calls, fn = failing([_oss_answer(status, code)] * 5)
    monkeypatch.setattr(api._client, "put_cname", lambda _req: fn())
    with pytest.raises(cls):
        api.put_cname("examplebucket", "a.example.com")
    assert (len(calls), waits) == (1, [])


def test_alidns_sdk_retries_should_be_off() -> None:
    dns = Alidns(credentials=Credentials("LTAIexample", "secret"), endpoint="127.0.0.1:9",
                 protocol="http")
    assert dns._client._retry_options.retryable is False

"""Webhook deliveries through httpx's MockTransport: retry schedule, final answers, the filter,
the outbox, and the secret never written or logged (a sentinel)."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
from structlog.testing import capture_logs

from cname_flow.events import Event
from cname_flow.events.outbox import Outbox
from cname_flow.events.signing import verify_signature
from cname_flow.events.webhook import Endpoint, RetryPolicy, WebhookSink, deliver

SENTINEL = "SENTINEL-webhook-secret-7f3a"
URL = "https://hooks.example.com/cname-flow?token=SENTINEL-query-token"
T0 = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)

Handler = Callable[[httpx.Request], httpx.Response]


def ev(kind: str = "binding.verified", subject: str = "b/a.example.com") -> Event:
    return Event(kind, subject, {"domain": "a.example.com"}, T0)  # type: ignore[arg-type]


def endpoint(retry: RetryPolicy | None = None, types: frozenset[str] | None = None) -> Endpoint:
    return Endpoint(URL, SENTINEL, types, 5.0, retry or RetryPolicy(60.0, 1.0, 8.0))


class FakeTime:
    """A monotonic clock that only moves when slept on."""

    def __init__(self) -> None:
        self.now = 100.0
        self.sleeps: list[float] = []

    def sleep(self, s: float) -> None:
        self.sleeps.append(s)
        self.now += s

    def clock(self) -> float:
        return self.now


def client_of(handler: Handler) -> httpx.Client:
    return httpx.Client(transport=httpx.MockTransport(handler))


def test_the_retry_schedule_doubles_from_initial_to_max_within_the_window() -> None:
    policy = RetryPolicy(window_s=60.0, initial_s=1.0, max_s=8.0)
    assert [policy.wait_s(n) for n in range(1, 7)] == [1, 2, 4, 8, 8, 8]
    assert policy.schedule() == [0, 1, 3, 7, 15, 23, 31, 39, 47, 55]
    assert RetryPolicy(window_s=0.0).schedule() == [0.0]


def test_a_failing_endpoint_is_retried_on_that_schedule_then_given_up() -> None:
    t, seen = FakeTime(), []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(t.now)
        return httpx.Response(503)

    result = deliver(client_of(handler), endpoint(), ev(), sleep=t.sleep, clock=t.clock)
    assert not result.delivered and result.error == "HTTP 503"
    assert result.attempts == len(seen) == 10
    assert [s - 100.0 for s in seen] == RetryPolicy(60.0, 1.0, 8.0).schedule()
    assert t.sleeps == [1, 2, 4, 8, 8, 8, 8, 8, 8]


@pytest.mark.parametrize("status", [408, 425, 429, 500, 502])
def test_retryable_answers_are_retried_with_the_same_event_id_and_a_valid_signature(
    status: int,
) -> None:
    t, requests = FakeTime(), []

    def handler(request: httpx.Request) -> httpx.Response:
        requests.append(request)
        return httpx.Response(status if len(requests) < 3 else 204)

    event = ev()
    result = deliver(client_of(handler), endpoint(), event, sleep=t.sleep, clock=t.clock)
    assert result.delivered and result.attempts == 3
    assert {r.headers["CnameFlow-Event-Id"] for r in requests} == {event.id}
    for r in requests:
        assert r.method == "POST" and r.headers["Content-Type"] == "application/json"
        assert r.headers["CnameFlow-Event-Type"] == "binding.verified"
        verify_signature(SENTINEL, r.headers["CnameFlow-Signature"], r.content, 300)
        assert json.loads(r.content) == event.as_json()


def test_a_transport_error_is_retried() -> None:
    t, calls = FakeTime(), []

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(1)
        if len(calls) == 1:
            raise httpx.ConnectError("connection refused", request=request)
        return httpx.Response(200)

    assert deliver(client_of(handler), endpoint(), ev(), sleep=t.sleep, clock=t.clock).delivered
    assert t.sleeps == [1.0]


@pytest.mark.parametrize("status", [400, 401, 404, 410])
def test_a_refusal_is_final_after_one_attempt(status: int) -> None:
    t = FakeTime()
    result = deliver(client_of(lambda r: httpx.Response(status)), endpoint(), ev(),
                     sleep=t.sleep, clock=t.clock)
    assert (result.delivered, result.attempts, result.error) == (False, 1, f"HTTP {status}")
    assert t.sleeps == []


def test_no_attempt_starts_after_the_flush_deadline() -> None:
    t = FakeTime()
    result = deliver(client_of(lambda r: httpx.Response(500)), endpoint(), ev(),
                     sleep=t.sleep, clock=t.clock, give_up_at=lambda: 104.0)
    assert result.attempts == 3 and t.sleeps == [1, 2]   # at 100, 101, 103; 107 > 104


def test_the_sink_sends_only_the_types_its_endpoint_wants_in_order(tmp_path: Path) -> None:
    got: list[str] = []
    done = threading.Event()

    def handler(request: httpx.Request) -> httpx.Response:
        got.append(json.loads(request.content)["type"])
        if len(got) == 2:
            done.set()
        return httpx.Response(200)

    sink = WebhookSink(endpoint(types=frozenset({"binding.failed", "drift.found"})),
                       Outbox(tmp_path / "outbox.jsonl"), client=client_of(handler))
    for kind in ("binding.verified", "binding.failed", "certificate.expiring", "drift.found"):
        sink.publish(ev(kind))
    assert done.wait(10)
    sink.close()
    assert got == ["binding.failed", "drift.found"]
    assert not (tmp_path / "outbox.jsonl").exists()


def test_an_undelivered_event_goes_to_the_outbox_and_the_log_without_the_secret(
    tmp_path: Path,
) -> None:
    outbox = Outbox(tmp_path / "outbox.jsonl")
    refused = endpoint(retry=RetryPolicy(0.0))
    with capture_logs() as logs:
        sink = WebhookSink(refused, outbox, client=client_of(lambda r: httpx.Response(500)))
        event = ev("binding.failed")
        sink.publish(event)
        sink.close()
    [entry] = outbox.entries()
    assert entry.event == event and entry.error == "HTTP 500" and entry.attempts == 1
    assert entry.url == "https://hooks.example.com/cname-flow"   # no query: it may hold a token
    text = (tmp_path / "outbox.jsonl").read_text(encoding="utf-8")
    [line] = [e for e in logs if e["event"] == "event.undelivered"]
    assert line["url"] == entry.url and line["event_id"] == event.id
    for written in (text, repr(logs), repr(refused)):
        assert SENTINEL not in written and "SENTINEL-query-token" not in written


def test_close_puts_what_could_not_go_out_in_time_in_the_outbox(tmp_path: Path) -> None:
    outbox = Outbox(tmp_path / "outbox.jsonl")
    hold = threading.Event()

    def handler(request: httpx.Request) -> httpx.Response:
        hold.wait(5)
        return httpx.Response(503)

    sink = WebhookSink(endpoint(retry=RetryPolicy(3600.0, 30.0, 60.0)), outbox,
                       client=client_of(handler), flush_timeout_s=0.2)
    first, second = ev(), ev("binding.failed")
    sink.publish(first)
    sink.publish(second)
    hold.set()
    sink.close()   # the first waits 30 s for its retry: cut short at the flush deadline
    assert [e.event.id for e in outbox.entries()] == [first.id, second.id]


def test_an_event_published_after_close_is_kept_not_lost(tmp_path: Path) -> None:
    outbox = Outbox(tmp_path / "outbox.jsonl")
    sink = WebhookSink(endpoint(), outbox, client=client_of(lambda r: httpx.Response(204)))
    sink.close()
    late = ev("binding.failed")
    sink.publish(late)
    [entry] = outbox.entries()
    assert entry.event == late and entry.attempts == 0


def test_a_transport_error_text_never_carries_the_query_or_the_secret() -> None:
    t = FakeTime()

    def handler(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError(f"cannot reach {URL} with {SENTINEL}", request=request)

    result = deliver(client_of(handler), endpoint(RetryPolicy(0.0)), ev(), sleep=t.sleep,
                     clock=t.clock)
    assert result.error.startswith("ConnectError: cannot reach https://hooks.example.com/")
    assert SENTINEL not in result.error and "SENTINEL-query-token" not in result.error

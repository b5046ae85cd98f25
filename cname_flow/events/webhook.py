"""Signed webhooks: POST each event to an endpoint, retried with exponential backoff, from a
background thread so a slow or dead receiver never holds a binding.

One request per event and attempt (httpx): the body is the event's JSON
(:meth:`~cname_flow.events.Event.as_json`), with the headers ``Content-Type:
application/json``, ``CnameFlow-Event-Id`` (the same on every attempt: receivers de-duplicate on
it), ``CnameFlow-Event-Type`` and ``CnameFlow-Signature: t=<unix>,v1=<hex>``
(:mod:`cname_flow.events.signing`, signed afresh per attempt). Delivery is at-least-once:

* a 2xx answer is success; a transport error, a timeout, 408, 425, 429 or any 5xx is retried
  after ``initial_s``, then twice as long each time up to ``max_s``, while the next attempt
  still falls within ``window_s`` of the first (tenacity ``wait_exponential``); any other
  answer (400, 401, 404...) is final: the receiver refused the event;
* an event not delivered is logged (``event.undelivered``, naming the endpoint without its
  query, never the secret) and appended to the outbox (:mod:`cname_flow.events.outbox`);
* events go out one at a time per endpoint, in the order published (so in order per subject);
  one being retried holds back those after it;
* :meth:`WebhookSink.close` (at exit) gives what is queued ``flush_timeout_s`` to go out, then
  puts what is left in the outbox.
"""

from __future__ import annotations

import json
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from urllib.parse import urlsplit, urlunsplit

import httpx
import tenacity

from cname_flow.config.credentials import scrub
from cname_flow.events import Event
from cname_flow.events.outbox import Outbox
from cname_flow.events.signing import EVENT_ID_HEADER, EVENT_TYPE_HEADER, SIGNATURE_HEADER, sign
from cname_flow.logs import get_logger

log = get_logger(__name__)

#: Status codes worth another attempt (besides every 5xx).
RETRY_STATUSES = frozenset({408, 425, 429})


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """When a failing delivery is tried again (seconds).

    Attributes:
        window_s: attempts start within this long of the first one.
        initial_s: the wait after the first failure; each further wait doubles.
        max_s: the longest wait.
    """

    window_s: float = 86400.0
    initial_s: float = 1.0
    max_s: float = 600.0

    def wait_s(self, failures: int) -> float:
        """The wait after ``failures`` (≥ 1) consecutive failed attempts."""
        return float(min(self.max_s, self.initial_s * 2 ** max(0, failures - 1)))

    def schedule(self) -> list[float]:
        """The offsets from the first attempt at which every attempt starts, if each took no
        time and all failed (``[0, initial, 3·initial, ...]``, the last within ``window_s``)."""
        offsets, at, n = [0.0], 0.0, 1
        while at + self.wait_s(n) <= self.window_s:
            at += self.wait_s(n)
            offsets.append(at)
            n += 1
        return offsets


@dataclass(frozen=True, slots=True)
class Endpoint:
    """One webhook endpoint, its secret resolved.

    Attributes:
        url: where events are POSTed.
        secret: the HMAC-SHA256 key (never logged, never written: not in ``repr``).
        types: the event types it wants; None: all.
        timeout_s: one request's timeout, seconds.
        retry: the retry policy.
    """

    url: str = field(repr=False)  # its query may hold a token: shown only as ``shown``
    secret: str = field(repr=False)
    types: frozenset[str] | None = None
    timeout_s: float = 10.0
    retry: RetryPolicy = field(default_factory=RetryPolicy)

    @property
    def shown(self) -> str:
        """The URL as logs and the outbox show it: without its query and fragment."""
        p = urlsplit(self.url)
        return urlunsplit((p.scheme, p.netloc, p.path or "/", "", ""))

    def wants(self, event: Event) -> bool:
        """Whether ``event``'s type passes this endpoint's filter."""
        return self.types is None or event.type in self.types


@dataclass(frozen=True, slots=True)
class Delivery:
    """How the delivery of one event to one endpoint ended.

    Attributes:
        delivered: a 2xx answer came.
        attempts: requests sent.
        error: the last failure (``"HTTP 503"``, ``"ConnectError: ..."``), ``""`` when delivered.
    """

    delivered: bool
    attempts: int
    error: str = ""


class _Retry(Exception):
    """An attempt that failed in a way worth another."""


class _Final(Exception):
    """An answer that another attempt would not change."""


def body_of(event: Event) -> bytes:
    """The request body: the event's JSON, compact, UTF-8."""
    return json.dumps(event.as_json(), separators=(",", ":"), ensure_ascii=False).encode()


def _attempt(client: httpx.Client, endpoint: Endpoint, event: Event, body: bytes) -> None:
    headers = {
        "Content-Type": "application/json",
        EVENT_ID_HEADER: event.id,
        EVENT_TYPE_HEADER: event.type,
        SIGNATURE_HEADER: sign(endpoint.secret, body),
    }
    try:
        answer = client.post(endpoint.url, content=body, headers=headers,
                             timeout=endpoint.timeout_s)
    except httpx.TransportError as exc:  # connect, read, write, timeouts, protocol
        query = urlsplit(endpoint.url).query
        text = scrub(str(exc).replace(endpoint.url, endpoint.shown), (endpoint.secret, query))
        raise _Retry(f"{type(exc).__name__}: {text}") from None
    if answer.is_success:
        return
    code = answer.status_code
    if code >= 500 or code in RETRY_STATUSES:
        raise _Retry(f"HTTP {code}")
    raise _Final(f"HTTP {code}")


def deliver(client: httpx.Client, endpoint: Endpoint, event: Event, *,
            sleep: Callable[[float], None] = time.sleep,
            clock: Callable[[], float] = time.monotonic,
            give_up_at: Callable[[], float | None] = lambda: None) -> Delivery:
    """Send ``event`` to ``endpoint`` until a 2xx, a final answer, or the retry window ends.

    Args:
        client: the HTTP client.
        endpoint: where, with which secret and retry policy.
        event: what.
        sleep: blocking sleep between attempts, seconds (injected for tests).
        clock: monotonic seconds (injected for tests).
        give_up_at: a ``clock`` time after which no further attempt starts (the flush
            deadline at exit), or None.

    Returns:
        How it ended (never raises for a delivery problem).
    """
    body, started = body_of(event), clock()
    policy = endpoint.retry

    def stop(state: tenacity.RetryCallState) -> bool:
        next_at = clock() + state.upcoming_sleep
        limit = give_up_at()
        return next_at - started > policy.window_s or (limit is not None and next_at > limit)

    retrying = tenacity.Retrying(
        retry=tenacity.retry_if_exception_type(_Retry),
        wait=tenacity.wait_exponential(multiplier=policy.initial_s, max=policy.max_s),
        stop=stop, sleep=sleep, reraise=True)
    attempts = 0
    try:
        for attempt in retrying:
            with attempt:
                attempts += 1
                _attempt(client, endpoint, event, body)
    except (_Retry, _Final) as exc:
        return Delivery(False, attempts, str(exc))
    return Delivery(True, attempts)


_STOP = object()


class WebhookSink:
    """Delivers events to one endpoint from a background thread (:func:`deliver`).

    :meth:`publish` only queues (it never blocks on the network); :meth:`close` flushes.

    Args:
        endpoint: the endpoint.
        outbox: where undelivered events are kept.
        client: the HTTP client (default: a new ``httpx.Client``, closed by :meth:`close`).
        flush_timeout_s: how long :meth:`close` lets queued events go out, seconds.
    """

    def __init__(self, endpoint: Endpoint, outbox: Outbox, *, client: httpx.Client | None = None,
                 flush_timeout_s: float = 10.0) -> None:
        self.endpoint = endpoint
        self.outbox = outbox
        self.flush_timeout_s = flush_timeout_s
        self._client = client or httpx.Client(follow_redirects=False)
        self._queue: queue.Queue[object] = queue.Queue()
        self._wake = threading.Event()
        self._deadline: float | None = None
        self._closed = False
        self._thread = threading.Thread(target=self._run, name="cname-flow-webhook", daemon=True)
        self._thread.start()

    def publish(self, event: Event) -> None:
        """Queue ``event`` when the endpoint wants its type (once closed: to the outbox)."""
        if not self.endpoint.wants(event):
            return
        if self._closed:
            self._undelivered(event, Delivery(False, 0, "published after the sink was closed"))
        else:
            self._queue.put(event)

    def close(self) -> None:
        """Let queued events go out for up to ``flush_timeout_s``; keep the rest in the outbox.

        Idempotent.
        """
        if self._closed:
            return
        self._closed = True
        self._deadline = time.monotonic() + self.flush_timeout_s
        self._queue.put(_STOP)
        self._wake.set()  # a backoff wait in progress ends now; later ones are cut short
        self._thread.join(self.flush_timeout_s + self.endpoint.timeout_s + 1.0)
        self._spool_rest("not delivered before exit")
        self._client.close()

    def _run(self) -> None:
        while True:
            item = self._queue.get()
            if item is _STOP:
                return
            assert isinstance(item, Event)
            self._send(item)

    def _send(self, event: Event) -> None:
        deadline = self._deadline
        if deadline is not None and time.monotonic() >= deadline:  # flushing, out of time
            self._undelivered(event, Delivery(False, 0, "not delivered before exit"))
            return
        try:
            result = deliver(self._client, self.endpoint, event, sleep=self._sleep,
                             give_up_at=lambda: self._deadline)
        except Exception as exc:  # a bug must not kill the thread and lose the queue
            log.exception("event.delivery_crashed", event_id=event.id, url=self.endpoint.shown)
            result = Delivery(False, 0, f"{type(exc).__name__}")
        if result.delivered:
            log.debug("event.delivered", event_id=event.id, type=event.type,
                      url=self.endpoint.shown, attempts=result.attempts)
        else:
            self._undelivered(event, result)

    def _sleep(self, seconds: float) -> None:
        deadline = self._deadline
        if deadline is not None:
            time.sleep(max(0.0, min(seconds, deadline - time.monotonic())))
        else:
            self._wake.wait(seconds)

    def _undelivered(self, event: Event, result: Delivery) -> None:
        log.warning("event.undelivered", event_id=event.id, type=event.type,
                    subject=event.subject, url=self.endpoint.shown, attempts=result.attempts,
                    error=result.error, outbox=str(self.outbox.path))
        self.outbox.add(event, self.endpoint.shown, attempts=result.attempts,
                        error=result.error, at=datetime.now(UTC))

    def _spool_rest(self, why: str) -> None:
        while True:
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                return
            if isinstance(item, Event):
                self._undelivered(item, Delivery(False, 0, why))

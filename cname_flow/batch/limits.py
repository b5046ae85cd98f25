"""Client-side API discipline for batch jobs: token buckets per action, call counts, one ListCname.

* :class:`RateLimiter` keeps every API action under its documented rate (README, "Batch jobs";
  the quotas in :mod:`cname_flow.quotas`) with one token bucket per action, so the service
  rarely has to throttle. Its burst is half a second of tokens: a service bucket whose burst is
  one second of tokens (the documented per-second quota) can never be overrun by a client bucket
  with the same rate and a smaller burst, even when network jitter bunches requests together.
* :class:`ApiStats` counts calls and throttled answers per action (the bench prints them); a
  throttled answer is any :class:`~cname_flow.errors.Throttled` error, whichever adapter mapped
  it. Both adapters (Alidns, OSS) take a :class:`RateLimiter` as their ``rate_limiter`` hook and
  :meth:`ApiStats.count_error` as their ``on_error`` hook, which their one retry layer calls per
  attempt, so every attempt (retries included) is limited and counted.
* :class:`BatchOss` wraps an :class:`~cname_flow.oss.base.OssCnameApi`: ListCname is coalesced
  per bucket so one call answers every binding of the bucket that asked meanwhile; an inner port
  without hooks of its own (a fake) can be given a limiter to call per call.

Everything here is called from worker threads and is thread-safe.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TypeVar

from cname_flow.errors import CnameFlowError, Throttled
from cname_flow.model import CertificateRequest, CnameEntry, CnameToken
from cname_flow.oss.base import OssCnameApi

_T = TypeVar("_T")

#: Seconds of tokens a client bucket may hold (its burst); see the module docstring.
BURST_S = 0.5


class TokenBucket:
    """A blocking token bucket: ``rate`` tokens per second, at most ``burst`` stored.

    Args:
        rate: tokens per second (> 0).
        burst: bucket size in tokens (≥ 1); starts full.
        clock: monotonic seconds.
        sleep: blocking sleep, seconds.
    """

    def __init__(
        self, rate: float, burst: float, *, clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if rate <= 0 or burst < 1:
            raise ValueError(f"token bucket needs rate > 0 and burst >= 1, got {rate}, {burst}")
        self.rate, self.burst = rate, burst
        self._clock, self._sleep = clock, sleep
        self._tokens, self._at = burst, clock()
        self._lock = threading.Lock()

    def reserve(self) -> float:
        """Take one token (possibly borrowed from the future); return seconds to wait first."""
        with self._lock:
            now = self._clock()
            self._tokens = min(self.burst, self._tokens + (now - self._at) * self.rate)
            self._at = now
            self._tokens -= 1.0
            return 0.0 if self._tokens >= 0 else -self._tokens / self.rate

    def acquire(self) -> float:
        """Block until a token is ours; return the seconds waited."""
        delay = self.reserve()
        if delay > 0:
            self._sleep(delay)
        return delay


@dataclass(slots=True)
class ApiStats:
    """Per-action counts of one job: attempts sent, throttled answers, seconds spent waiting."""

    calls: Counter[str] = field(default_factory=Counter)
    throttled: Counter[str] = field(default_factory=Counter)
    waited_s: dict[str, float] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def count(self, action: str, *, waited_s: float = 0.0) -> None:
        """Record one attempt of ``action`` that waited ``waited_s`` for its token."""
        with self._lock:
            self.calls[action] += 1
            if waited_s:
                self.waited_s[action] = self.waited_s.get(action, 0.0) + waited_s

    def count_throttled(self, action: str) -> None:
        """Record one throttled answer to ``action``."""
        with self._lock:
            self.throttled[action] += 1

    def count_error(self, action: str, exc: BaseException) -> None:
        """Record a failed attempt of ``action``: counted when it is :class:`Throttled`."""
        if isinstance(exc, Throttled):
            self.count_throttled(action)

    def to_json(self) -> dict[str, object]:
        """``{"calls": {...}, "throttled": {...}, "total_calls": n, "total_throttled": n}``."""
        with self._lock:
            return {
                "calls": dict(sorted(self.calls.items())),
                "throttled": dict(sorted(self.throttled.items())),
                "total_calls": sum(self.calls.values()),
                "total_throttled": sum(self.throttled.values()),
            }


class RateLimiter:
    """One :class:`TokenBucket` per API action; actions without a rate pass freely.

    Callable as the Alidns adapter's ``rate_limiter(action)`` hook: blocks the calling worker
    thread until the action may be sent and counts the attempt in ``stats``.

    Args:
        rates: action → requests per second (``Settings.batch.rate_limits``).
        stats: where attempts are counted.
        burst_s: seconds of tokens each bucket may hold.
    """

    def __init__(
        self, rates: Mapping[str, float], stats: ApiStats | None = None, *,
        burst_s: float = BURST_S, sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.rates = dict(rates)
        self.stats = stats or ApiStats()
        self._buckets = {action: TokenBucket(rate, max(1.0, rate * burst_s), sleep=sleep)
                         for action, rate in self.rates.items()}

    def __call__(self, action: str) -> None:
        bucket = self._buckets.get(action)
        waited = bucket.acquire() if bucket is not None else 0.0
        self.stats.count(action, waited_s=waited)


@dataclass(slots=True)
class _Listing:
    """Coalescing state of one bucket's ListCname."""

    cond: threading.Condition = field(default_factory=threading.Condition)
    running: bool = False
    generation: int = 0  # completed calls
    result: list[CnameEntry] | None = None
    error: BaseException | None = None
    started_at: float = 0.0  # monotonic start of the call that gave ``result``


class BatchOss:
    """The OSS port for a batch job: rate-limited calls and coalesced ListCname per bucket.

    ListCname coalescing keeps reads linearizable: a caller is answered by a ListCname that
    *started after it asked*, never by one already in flight (that one may predate the
    caller's own PutCname). Callers arriving while a call runs wait for the next one, which
    then serves all of them: at most one call in flight and one queued per bucket, however
    many bindings verify at once.

    Args:
        inner: the real port (:class:`~cname_flow.oss.adapter.AlibabaOss`, built with the
            job's limiter and error hook, so it limits and counts each attempt itself).
        limiter: called with the action name before each call; ``None`` when ``inner`` limits
            its own attempts.
        stats: where throttled answers of ``inner`` are counted; ``None`` when ``inner``
            counts its own attempts.
    """

    def __init__(self, inner: OssCnameApi, limiter: Callable[[str], None] | None = None,
                 stats: ApiStats | None = None) -> None:
        self.inner = inner
        self._limiter = limiter
        self._stats = stats
        self._lists: dict[str, _Listing] = {}
        self._lock = threading.Lock()

    def bucket_region(self, bucket: str) -> str:
        """GetBucketInfo's region, passed through unlimited: the inner port asks once per
        bucket and caches the answer (:class:`~cname_flow.oss.regions.RegionalOss`)."""
        return self.inner.bucket_region(bucket)

    def create_token(self, bucket: str, domain: str) -> CnameToken:
        """CreateCnameToken, rate-limited."""
        return self._call("CreateCnameToken", lambda: self.inner.create_token(bucket, domain))

    def get_token(self, bucket: str, domain: str) -> CnameToken | None:
        """GetCnameToken, rate-limited."""
        return self._call("GetCnameToken", lambda: self.inner.get_token(bucket, domain))

    def put_cname(
        self, bucket: str, domain: str, certificate: CertificateRequest | None = None
    ) -> str:
        """PutCname, rate-limited."""
        return self._call("PutCname", lambda: self.inner.put_cname(bucket, domain, certificate))

    def delete_cname(self, bucket: str, domain: str) -> None:
        """DeleteCname, rate-limited."""
        self._call("DeleteCname", lambda: self.inner.delete_cname(bucket, domain))

    def list_cnames(self, bucket: str) -> list[CnameEntry]:
        """ListCname from a call that started after this request (coalesced per bucket).

        Raises:
            OssError: the call that would have answered failed (every waiter sees it).
        """
        with self._lock:
            listing = self._lists.setdefault(bucket, _Listing())
        with listing.cond:
            # the call in flight (if any) may predate us: we need the one after it
            wanted = listing.generation + (2 if listing.running else 1)
            while listing.generation < wanted:
                if not listing.running:
                    listing.running = True
                    listing.cond.release()
                    started_at = time.monotonic()
                    try:
                        result, error = self._list_once(bucket)
                    finally:
                        listing.cond.acquire()
                    listing.result, listing.error = result, error
                    listing.started_at = started_at
                    listing.running = False
                    listing.generation += 1
                    listing.cond.notify_all()
                else:
                    listing.cond.wait()
            if listing.error is not None:
                raise listing.error
            return list(listing.result or [])

    def recent_list(self, bucket: str, max_age_s: float = 30.0) -> list[CnameEntry]:
        """The bucket's last ListCname if it started at most ``max_age_s`` seconds ago, else a
        new one (:meth:`list_cnames`).

        For reads that only save work when they see a binding (the fast path of a domain already
        bound): a stale answer costs nothing there, since CreateCnameToken answers
        NoNeedCreateCnameToken / CnameAlreadyExists for a domain bound meanwhile. Verification
        and certificate plans use :meth:`list_cnames`.

        Raises:
            OssError: the call that would have answered failed.
        """
        with self._lock:
            listing = self._lists.get(bucket)
        if listing is not None:
            with listing.cond:
                if (listing.result is not None and listing.error is None
                        and time.monotonic() - listing.started_at <= max_age_s):
                    return list(listing.result)
        return self.list_cnames(bucket)

    def _list_once(self, bucket: str) -> tuple[list[CnameEntry] | None, BaseException | None]:
        try:
            return self._call("ListCname", lambda: self.inner.list_cnames(bucket)), None
        except CnameFlowError as exc:
            return None, exc

    def _call(self, action: str, fn: Callable[[], _T]) -> _T:
        if self._limiter is not None:
            self._limiter(action)
        try:
            return fn()
        except CnameFlowError as exc:
            if self._stats is not None:
                self._stats.count_error(action, exc)
            raise

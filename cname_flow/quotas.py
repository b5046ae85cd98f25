"""Documented API quotas, in one place for the client's pacing and the sandbox's enforcement,
and the client's pacing itself.

Alidns: requests per second per account per API
(https://alibabacloud.com/help/en/dns/api-alidns-2015-01-09-quota).

* :class:`RateLimiter` keeps every API action under its documented rate (README, "Batch jobs")
  with one token bucket per action, so the service rarely has to throttle. Its burst is half a
  second of tokens: a service bucket whose burst is one second of tokens (the documented
  per-second quota) can never be overrun by a client bucket with the same rate and a smaller
  burst, even when network jitter bunches requests together.
* :class:`ApiStats` counts calls and throttled answers per action (the bench prints them); a
  throttled answer is any :class:`~cname_flow.errors.Throttled` error, whichever adapter mapped
  it. Both adapters (Alidns, OSS) take a :class:`RateLimiter` as their ``rate_limiter`` hook and
  :meth:`ApiStats.count_error` as their ``on_error`` hook, which their one retry layer calls per
  attempt, so every attempt (retries included) is limited and counted.

Everything here is thread-safe.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

from cname_flow.errors import Throttled

ALIDNS_RATE_LIMITS: Mapping[str, float] = MappingProxyType({
    "AddDomainRecord": 60,
    "UpdateDomainRecord": 60,
    "DeleteDomainRecord": 60,
    "DescribeDomainRecords": 100,
    "DescribeSubDomainRecords": 300,
    "DescribeDomainRecordInfo": 200,
    "DeleteSubDomainRecords": 20,
    "AddDomain": 10,
    "DeleteDomain": 10,
})


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

"""The retry policy for remote API calls, as data (tenacity underneath), and the one retry layer
every adapter runs its calls through.

Only errors that say so are retried: :class:`~cname_flow.errors.RemoteError` with
``retryable=True`` (throttling, 5xx, network). The wait is exponential with jitter, raised to the
server's own hint (``x-acs-retry-after``) when it sent one. ``sleep`` is injected, so tests assert
the exact sequence of waits without waiting.

:class:`RetriedCalls` is that layer for one API: the adapters (Alidns, OSS) turn their SDKs' own
retries off and call through it, so every attempt passes the caller's rate limiter and error hook
(a batch job counts each one) and no request is retried twice over.
"""

from __future__ import annotations

import errno
import socket
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Generic, TypeVar, cast

from tenacity import (
    RetryCallState,
    Retrying,
    retry_if_exception,
    stop_after_attempt,
    stop_any,
    wait_exponential_jitter,
)
from tenacity.stop import stop_base

from cname_flow.errors import CnameFlowError, RemoteError
from cname_flow.logs import get_logger

_log = get_logger(__name__)
_T = TypeVar("_T")
_E = TypeVar("_E", bound=RemoteError)

#: Extracts a server-sent minimum wait (seconds) from a mapped error, or ``None``.
RetryAfter = Callable[[BaseException], float | None]


def no_retry_after(_exc: BaseException) -> float | None:
    """The default :data:`RetryAfter`: the server never hints."""
    return None


#: ``errno`` values meaning no connection can be made (besides ECONNREFUSED, a
#: ``ConnectionRefusedError``): network or host unreachable.
UNREACHABLE_ERRNOS = frozenset({errno.ENETUNREACH, errno.EHOSTUNREACH})


def _chain(exc: BaseException) -> Iterator[BaseException]:
    """``exc`` and what it wraps: ``__cause__``/``__context__``, an SDK's ``unwrap()`` (the
    OSS SDK's ``OperationError``), ``inner_exception`` (Tea) and ``reason`` (urllib3)."""
    seen: set[int] = set()
    todo = [exc]
    while todo:
        cur = todo.pop()
        if id(cur) in seen or len(seen) > 32:
            continue
        seen.add(id(cur))
        yield cur
        unwrap = getattr(cur, "unwrap", None)
        inner = [cur.__cause__, cur.__context__, getattr(cur, "inner_exception", None),
                 getattr(cur, "reason", None), unwrap() if callable(unwrap) else None]
        todo.extend(e for e in inner if isinstance(e, BaseException))


def is_unreachable(exc: BaseException) -> bool:
    """True when ``exc`` (an SDK or transport exception, or anything wrapping one) says that no
    connection could be made: connection refused, the name does not resolve
    (``socket.gaierror``), network or host unreachable. Timeouts are not: a slow network may
    answer the next time."""
    for cur in _chain(exc):
        if isinstance(cur, ConnectionRefusedError | socket.gaierror):
            return True
        if isinstance(cur, OSError) and cur.errno in UNREACHABLE_ERRNOS:
            return True
        if type(cur).__name__ == "NameResolutionError":  # urllib3's, not an OSError subclass
            return True
    return False


def is_retryable(exc: BaseException) -> bool:
    """True for a :class:`RemoteError` that says trying again can succeed."""
    return isinstance(exc, RemoteError) and exc.retryable


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """How often and how patiently to retry one API call.

    Attributes:
        attempts: total tries, the first included (``stop_after_attempt``).
        initial_s: first backoff in seconds; doubles per retry.
        max_s: cap of the exponential backoff, seconds.
        jitter_s: uniform random seconds added to each backoff.
        max_retry_after_s: the largest server hint (``x-acs-retry-after``) honoured, seconds.
        unreachable_attempts: total tries while the error is ``unreachable`` (connection
            refused, DNS failure): a wrong endpoint or an offline machine fails in about a
            second instead of the full backoff (throttling and 5xx keep ``attempts``).
        unreachable_wait_s: the wait between those tries, seconds.
    """

    attempts: int = 6
    initial_s: float = 1.0
    max_s: float = 20.0
    jitter_s: float = 1.0
    max_retry_after_s: float = 60.0
    unreachable_attempts: int = 3
    unreachable_wait_s: float = 0.3

    def retrying(
        self,
        *,
        sleep: Callable[[float], None] = time.sleep,
        retry_after: RetryAfter = no_retry_after,
        log_fields: Mapping[str, str] | None = None,
        retry_if: Callable[[BaseException], bool] = is_retryable,
    ) -> Retrying:
        """Build a ``tenacity.Retrying`` for one call; the last error is re-raised as is.

        Args:
            sleep: called with each wait in seconds.
            retry_after: reads the server's minimum wait from a mapped error.
            log_fields: extra key/values for the ``api.retry`` log event (e.g. the action).
            retry_if: which errors to retry (default :func:`is_retryable`).
        """
        return Retrying(
            sleep=sleep,
            stop=stop_any(stop_after_attempt(self.attempts), _StopUnreachable(self)),
            wait=self._wait(retry_after),
            retry=retry_if_exception(retry_if),
            before_sleep=_log_retry(dict(log_fields or {})),
            reraise=True,
        )

    def _wait(self, retry_after: RetryAfter) -> Callable[[RetryCallState], float]:
        backoff = wait_exponential_jitter(
            multiplier=self.initial_s, max=self.max_s, jitter=self.jitter_s
        )

        def wait(state: RetryCallState) -> float:
            delay = backoff(state)
            exc = state.outcome.exception() if state.outcome else None
            if getattr(exc, "unreachable", False) is True:
                return self.unreachable_wait_s
            hinted = retry_after(exc) if exc is not None else None
            if hinted is None:
                return delay
            return max(delay, min(hinted, self.max_retry_after_s))

        return wait


class _StopUnreachable(stop_base):
    """Stop once an ``unreachable`` error has had ``policy.unreachable_attempts`` tries."""

    def __init__(self, policy: RetryPolicy) -> None:
        self.policy = policy

    def __call__(self, retry_state: RetryCallState) -> bool:
        outcome = retry_state.outcome
        exc = outcome.exception() if outcome is not None else None
        return (getattr(exc, "unreachable", False) is True
                and retry_state.attempt_number >= self.policy.unreachable_attempts)


class RetriedCalls(Generic[_E]):
    """One API's calls under a :class:`RetryPolicy`: the one retry layer of an adapter.

    Per attempt: ``rate_limiter(action)`` (may block; a batch job counts the attempt there), the
    SDK call (then ``rate_limiter.done(action)`` if the limiter has that method), and on a
    failure the SDK raised (one of ``sdk_errors``) ``map_error(exc, action)``, then
    ``on_error(action, error)``. Errors ``retry_if`` accepts are retried with the policy's
    backoff, raised to ``retry_after(error)``; the last error is raised, chained to the SDK's.

    Args:
        policy: attempts and backoff.
        sdk_errors: the exception classes the SDK raises (the adapter's boundary).
        map_error: turns one of them into the adapter's :mod:`cname_flow.errors` class.
        sleep: the sleep between attempts, seconds (injected in tests).
        retry_after: the server's minimum wait in a mapped error, seconds, or ``None``.
        retry_if: which mapped errors to retry (default :func:`is_retryable`).
        rate_limiter: called with the action before every attempt.
        on_error: called with the action and the mapped error after every failed attempt,
            retried or not; it must not raise.
        log_fields: key/values for the ``api.retry`` log event (e.g. the provider).
    """

    def __init__(
        self,
        policy: RetryPolicy,
        *,
        sdk_errors: tuple[type[BaseException], ...],
        map_error: Callable[[BaseException, str], _E],
        sleep: Callable[[float], None] = time.sleep,
        retry_after: RetryAfter = no_retry_after,
        retry_if: Callable[[BaseException], bool] = is_retryable,
        rate_limiter: Callable[[str], None] | None = None,
        on_error: Callable[[str, _E], None] | None = None,
        log_fields: Mapping[str, str] | None = None,
    ) -> None:
        self.policy = policy
        self._sdk_errors = sdk_errors
        self._map_error = map_error
        self._sleep, self._retry_after, self._retry_if = sleep, retry_after, retry_if
        self._rate_limiter, self._on_error = rate_limiter, on_error
        self._log_fields = dict(log_fields or {})

    def __call__(
        self, action: str, fn: Callable[[], _T], *,
        map_error: Callable[[BaseException, str], _E] | None = None,
    ) -> _T:
        """Run ``fn`` (one SDK call of ``action``) until it succeeds or may not be retried.

        ``map_error`` replaces the constructor's for this call (e.g. to name a bucket).

        Raises:
            RemoteError: the mapped error of the last attempt (the ``_E`` of ``map_error``).
        """
        retrying = self.policy.retrying(
            sleep=self._sleep, retry_after=self._retry_after, retry_if=self._retry_if,
            log_fields={**self._log_fields, "action": action},
        )
        return cast(_T, retrying(self._attempt, action, fn, map_error or self._map_error))

    def _attempt(self, action: str, fn: Callable[[], _T],
                 map_error: Callable[[BaseException, str], _E]) -> _T:
        try:
            return self._limited(action, fn)
        except self._sdk_errors as exc:
            error = map_error(exc, action)
            if self._on_error is not None:
                self._on_error(action, error)
            raise error from exc

    def _limited(self, action: str, fn: Callable[[], _T]) -> _T:
        """``fn`` after ``rate_limiter(action)``; a limiter with a ``done(action)`` method is
        told when the attempt ended, answer or error (a limiter shared by processes counts a
        call until a second after its answer: :mod:`cname_flow.scaleout.limits`)."""
        limiter = self._rate_limiter
        if limiter is None:
            return fn()
        limiter(action)
        try:
            return fn()
        finally:
            ended = getattr(limiter, "done", None)
            if ended is not None:
                ended(action)


def _log_retry(fields: dict[str, str]) -> Callable[[RetryCallState], None]:
    def before_sleep(state: RetryCallState) -> None:
        exc = state.outcome.exception() if state.outcome else None
        _log.info(
            "api.retry",
            attempt=state.attempt_number,
            wait_s=round(state.upcoming_sleep, 3),
            code=exc.code if isinstance(exc, CnameFlowError) else type(exc).__name__,
            **fields,
        )

    return before_sleep

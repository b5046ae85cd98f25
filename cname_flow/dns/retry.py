"""The retry policy for remote API calls, as data (tenacity underneath).

Only errors that say so are retried: :class:`~cname_flow.errors.RemoteError` with
``retryable=True`` (throttling, 5xx, network). The wait is exponential with jitter, raised to the
server's own hint (``x-acs-retry-after``) when it sent one. ``sleep`` is injected, so tests assert
the exact sequence of waits without waiting.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from tenacity import (
    RetryCallState,
    Retrying,
    retry_if_exception,
    stop_after_attempt,
    wait_exponential_jitter,
)

from cname_flow.errors import CnameFlowError, RemoteError
from cname_flow.logs import get_logger

_log = get_logger(__name__)

#: Extracts a server-sent minimum wait (seconds) from a mapped error, or ``None``.
RetryAfter = Callable[[BaseException], float | None]


def no_retry_after(_exc: BaseException) -> float | None:
    """The default :data:`RetryAfter`: the server never hints."""
    return None


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
    """

    attempts: int = 6
    initial_s: float = 1.0
    max_s: float = 20.0
    jitter_s: float = 1.0
    max_retry_after_s: float = 60.0

    def retrying(
        self,
        *,
        sleep: Callable[[float], None] = time.sleep,
        retry_after: RetryAfter = no_retry_after,
        log_fields: Mapping[str, str] | None = None,
    ) -> Retrying:
        """Build a ``tenacity.Retrying`` for one call; the last error is re-raised as is.

        Args:
            sleep: called with each wait in seconds.
            retry_after: reads the server's minimum wait from a mapped error.
            log_fields: extra key/values for the ``api.retry`` log event (e.g. the action).
        """
        return Retrying(
            sleep=sleep,
            stop=stop_after_attempt(self.attempts),
            wait=self._wait(retry_after),
            retry=retry_if_exception(is_retryable),
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
            hinted = retry_after(exc) if exc is not None else None
            if hinted is None:
                return delay
            return max(delay, min(hinted, self.max_retry_after_s))

        return wait


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

"""The polling schedule as tenacity strategies (dns-propagation.md §5 Phase C "Schedule").

* wait: ``wait_exponential_jitter(multiplier=initial, max, exp_base, jitter)``; while a
  confirmation streak is open the wait is exactly ``confirmation_gap_s``: once every address
  serves the value, only its stability is in question, and waiting out a long backoff step (up to
  ``backoff_max_s``) would add latency without telling anything more.
* stop: ``stop_before_delay(deadline_s)`` measured on the checker's injected clock (tenacity's
  own ``stop_before_delay`` reads ``time.monotonic`` and so cannot be driven by a fake clock).
* confirmation: ``confirmations`` successful rounds in a row, each starting at least
  ``confirmation_gap_s`` after the previous one; a failed round resets the streak.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import NamedTuple

from tenacity import RetryCallState, wait_exponential_jitter
from tenacity.stop import stop_base
from tenacity.wait import wait_base

from cname_flow.propagation.model import PropagationPolicy, Round


class Attempt(NamedTuple):
    """The outcome of one polling attempt: the round and whether it completed confirmation."""

    round: Round
    confirmed: bool


@dataclass(slots=True)
class Confirmation:
    """Counts successful rounds in a row, at least ``gap_s`` apart (start to start)."""

    needed: int
    gap_s: float
    streak: list[float] = field(default_factory=list)

    def record(self, round_: Round, started_at: float) -> bool:
        """Add a round that started at ``started_at``; True once confirmation is complete."""
        if not round_.ok:
            self.streak.clear()
        elif not self.streak or started_at - self.streak[-1] >= self.gap_s:
            self.streak.append(started_at)
        return len(self.streak) >= self.needed

    @property
    def open(self) -> bool:
        """True while at least one successful round waits for its confirmation."""
        return bool(self.streak)


class PollWait(wait_base):
    """Exponential backoff with jitter; exactly the confirmation gap during a streak."""

    def __init__(self, policy: PropagationPolicy, confirmation: Confirmation) -> None:
        self._backoff = wait_exponential_jitter(
            multiplier=policy.backoff_initial_s,
            max=policy.backoff_max_s,
            exp_base=policy.backoff_exp_base,
            jitter=policy.backoff_jitter_s,
        )
        self._gap_s = policy.confirmation_gap_s
        self._confirmation = confirmation

    def __call__(self, retry_state: RetryCallState) -> float:
        delay = float(self._backoff(retry_state))
        return self._gap_s if self._confirmation.open else delay


class StopBeforeDeadline(stop_base):
    """Stop when the next attempt would start ``deadline_s`` or more after ``started_at``."""

    def __init__(self, deadline_s: float, started_at: float, clock: Callable[[], float]) -> None:
        self._deadline_s = deadline_s
        self._started_at = started_at
        self._clock = clock

    def __call__(self, retry_state: RetryCallState) -> bool:
        elapsed = self._clock() - self._started_at
        return elapsed + retry_state.upcoming_sleep >= self._deadline_s

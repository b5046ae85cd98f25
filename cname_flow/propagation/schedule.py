"""The polling schedule: tenacity strategies, and the rounds they run.

Tenacity's strategies: https://tenacity.readthedocs.io/en/latest/api.html

* wait: ``wait_exponential_jitter(multiplier=initial, max, exp_base, jitter)``; while a
  confirmation streak is open the wait is exactly ``confirmation_gap_s``: once every address
  serves the value, only its stability is in question, and waiting out a long backoff step (up to
  ``backoff_max_s``) would add latency without telling anything more.
* stop: ``stop_before_delay(deadline_s)`` measured on the checker's injected clock (tenacity's
  own ``stop_before_delay`` reads ``time.monotonic`` and so cannot be driven by a fake clock).
* confirmation: ``confirmations`` successful rounds in a row, each starting at least
  ``confirmation_gap_s`` after the previous one; a failed round resets the streak.
* first round: ``first_poll_s`` after the write, or what a :class:`DelayLearner` (a batch job's
  :class:`~cname_flow.batch.delays.PropagationDelays`) learned from earlier waits on the same
  nameserver set (:class:`LearningWait`).

The default values and why they differ from the first design's 1 s / ×1.5 / 2 s: README
"Propagation defaults".
"""

from __future__ import annotations

import itertools
from collections.abc import Awaitable, Callable, Hashable, Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple, Protocol

from tenacity import AsyncRetrying, RetryCallState, retry_if_result, wait_exponential_jitter
from tenacity.stop import stop_base
from tenacity.wait import wait_base

from cname_flow.logs import get_logger
from cname_flow.propagation.model import NameserverAddress, PropagationPolicy, Round

log = get_logger(__name__)


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


async def confirm(
    observe: Callable[[], Awaitable[Round]],
    name: str,
    policy: PropagationPolicy,
    clock: Callable[[], float],
    sleep: Callable[[float], Awaitable[None]],
    started: float,
    on_round: Callable[[Round], None] | None = None,
) -> Attempt:
    """Run rounds of ``observe`` under the schedule until confirmation or the deadline.

    Args:
        observe: one round over every address.
        name: the name waited for (logged with every round).
        policy: the schedule.
        clock: monotonic clock, seconds; ``started`` is a reading of it.
        sleep: waits between rounds, seconds.
        started: when the first round starts; the deadline counts from here.
        on_round: called with every round.

    Returns:
        The last attempt: ``confirmed`` when confirmation completed, else the deadline stopped
        the rounds.
    """
    confirmation = Confirmation(policy.confirmations, policy.confirmation_gap_s)
    numbers = itertools.count(1)

    async def attempt() -> Attempt:
        at = clock()
        round_ = await observe()
        confirmed = confirmation.record(round_, at)
        log.debug("propagation.round", name=name, round=next(numbers), ok=round_.ok,
                  confirmed=confirmed, states=round_.counts())
        if on_round is not None:
            on_round(round_)
        return Attempt(round_, confirmed)

    retrying = AsyncRetrying(sleep=sleep, **strategies(policy, confirmation, started, clock))
    last: Attempt = await retrying(attempt)
    return last


def strategies(
    policy: PropagationPolicy, confirmation: Confirmation, started: float,
    clock: Callable[[], float],
) -> dict[str, Any]:
    """Keyword arguments of ``AsyncRetrying`` for a poll that started at ``started`` (clock s).

    The poll repeats until an attempt completes confirmation; when it stops first, the retrying
    object returns the last :class:`Attempt` instead of raising ``RetryError``.
    """
    return {
        "stop": StopBeforeDeadline(policy.deadline_s, started, clock),
        "wait": PollWait(policy, confirmation),
        "retry": retry_if_result(lambda attempt: not attempt.confirmed),
        "retry_error_callback": _last_attempt,
    }


def _last_attempt(retry_state: RetryCallState) -> Attempt:
    assert retry_state.outcome is not None  # tenacity sets it before asking to stop
    result: Attempt = retry_state.outcome.result()
    return result


class DelayLearner(Protocol):
    """Learns, across waits, how long a nameserver set takes to serve a new record.

    Implemented by :class:`cname_flow.batch.delays.PropagationDelays`; ``key`` names the
    nameserver set, delays are seconds after the write.
    """

    def first_poll_s(self, key: Hashable, default: float) -> float:
        """Seconds after the write of the first round for ``key``."""

    def observe(self, key: Hashable, delay_s: float) -> None:
        """A record written ``delay_s`` seconds earlier was served everywhere."""

    def observe_missing(self, key: Hashable, delay_s: float) -> None:
        """A record written ``delay_s`` seconds earlier was still missing somewhere."""


@dataclass(slots=True)
class LearningWait:
    """One wait's exchange with a :class:`DelayLearner`.

    Its first round is sent when the learner suggests; every round before the first all-OK one
    teaches the learner that the record was still missing so long after the write; once the
    wait is confirmed, the delay of its first all-OK round is taught (a wait that times out
    teaches only the misses).

    Attributes:
        learner: the shared learner.
        key: the nameserver set: its endpoints, sorted.
        written_at: clock reading when the record was written, seconds.
        clock: the checker's monotonic clock, seconds.
        visible_after_s: delay of the first all-OK round, once there was one.
    """

    learner: DelayLearner
    key: tuple[str, ...]
    written_at: float
    clock: Callable[[], float]
    visible_after_s: float | None = None

    @classmethod
    def of(cls, learner: DelayLearner, targets: Sequence[NameserverAddress], written_at: float,
           clock: Callable[[], float]) -> LearningWait:
        """The exchange of a wait on ``targets`` for a record written at ``written_at``."""
        return cls(learner, tuple(sorted(t.endpoint for t in targets)), written_at, clock)

    def first_poll_s(self, default: float) -> float:
        """Seconds after the write of this wait's first round (``default``: the policy's)."""
        return self.learner.first_poll_s(self.key, default)

    def then(
        self, on_round: Callable[[Round], None] | None
    ) -> Callable[[Round], None]:
        """A round callback that notes the round here, then calls ``on_round`` (if any)."""

        def note(round_: Round) -> None:
            self.saw(round_)
            if on_round is not None:
                on_round(round_)

        return note

    def saw(self, round_: Round) -> None:
        """Note one round, when it ended."""
        if self.visible_after_s is not None:
            return
        since_write = self.clock() - self.written_at
        if round_.ok:
            self.visible_after_s = since_write
        else:
            self.learner.observe_missing(self.key, since_write)

    def converged(self) -> None:
        """Teach the delay of the first all-OK round; call once the wait is confirmed."""
        if self.visible_after_s is not None:
            self.learner.observe(self.key, self.visible_after_s)

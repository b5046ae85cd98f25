"""When a batch job's propagation polls start: learned from the job's earlier bindings.

A one-domain bind cannot know how long its zone's nameservers take to serve a new record, so
it polls early and backs off (first poll 0.25 s, ×1.25). A batch job writes hundreds of
records into the same zones and can learn it: with one of two nameservers lagging 2 s, the
fixed schedule spends about six rounds (twelve queries) per binding, four of them before the
record can possibly be everywhere, and those queries were the largest single item of the
orchestrator's CPU.

:class:`PropagationDelays` keeps, per nameserver set, the last few delays from a TXT write to
the first round in which every authoritative address served it, and starts the next wait's
polls at ``lead`` × the shortest of them. The estimate follows the zone both ways: when the
zone gets faster, a first round at ``lead`` × the estimate already sees the record, so each new
observation is shorter than the last and the estimate falls by ``1 - lead`` per binding; when
it gets slower, the shortest of the last ``window`` delays rises once ``window`` bindings have
seen it. A first round that comes too early costs one round. The success rule (every address,
confirmed twice) is unchanged; only the idle rounds before the record can be everywhere go.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Hashable


class PropagationDelays:
    """Recent write-to-visible delays per nameserver set, and the first poll they suggest.

    Used on the job's event loop only (not thread-safe).

    Args:
        window: observations kept per nameserver set (the shortest of them is the estimate).
        lead: fraction of the estimate at which the first round is sent (0 < lead < 1).
        cap_s: the first poll is never later than this, seconds.
    """

    def __init__(self, *, window: int = 8, lead: float = 0.95, cap_s: float = 30.0) -> None:
        if window < 1 or not 0 < lead < 1 or cap_s <= 0:
            raise ValueError(f"bad PropagationDelays({window=}, {lead=}, {cap_s=})")
        self.window, self.lead, self.cap_s = window, lead, cap_s
        self._seen: dict[Hashable, deque[float]] = {}
        self._not_yet: dict[Hashable, float] = {}

    def first_poll_s(self, key: Hashable, default: float) -> float:
        """Seconds after the write of the first round for ``key``: ``default`` until learned.

        Before any binding of ``key`` has been seen everywhere, the longest time a record was
        seen missing somewhere stands in for the estimate (the first waits of a job all start
        before the first record propagates). Never earlier than ``default`` (the policy's
        first poll), never later than ``cap_s``.
        """
        seen = self._seen.get(key)
        estimate = min(seen) if seen else self._not_yet.get(key, 0.0)
        return min(self.cap_s, max(default, self.lead * estimate))

    def observe(self, key: Hashable, delay_s: float) -> None:
        """Record that a record written ``delay_s`` seconds earlier was served everywhere."""
        if delay_s >= 0:
            self._seen.setdefault(key, deque(maxlen=self.window)).append(delay_s)

    def observe_missing(self, key: Hashable, delay_s: float) -> None:
        """Record that a record written ``delay_s`` seconds earlier was still missing somewhere."""
        if delay_s > self._not_yet.get(key, 0.0):
            self._not_yet[key] = delay_s

"""Per-name timelines of a zone's DNS data, so any point-in-time view answers in O(log n).

Every version of every record opens at one instant and may close at a later one
(:class:`~cname_flow.sandbox.state.RecordVersion`). A :class:`Timeline` keeps, for one *subtree*
(a name and everything below it in its zone), the sorted instants at which a version opened or
closed there and how many versions were live after each. From it:

* ``live_at(at)`` tells whether the subtree holds any record a server at ``at`` serves, i.e.
  whether the name exists (owner or empty non-terminal, RFC 8020);
* ``seen(at)`` counts the changes a server at ``at`` has seen there. Two views of the same
  subtree with the same count hold the same data, provided the later view is not earlier in time
  (instants are only ever added): that is what lets a cached answer stay valid exactly until
  the next change of its names becomes visible to its server, whatever the server's lag.

:class:`ZoneIndex` holds one timeline per name that ever owned a record or is an ancestor of one,
the zone-wide wildcard timeline (owners whose first label is ``*``) and the zone's change list
(what the SOA serial counts). The state store maintains it under its lock.
"""

from __future__ import annotations

import bisect
import math

#: Key of the timeline counting every change of the zone (what its SOA serial counts).
ZONE_CHANGES = ""
#: Key of the timeline of wildcard owners (``*.…``) in the zone.
WILDCARDS = "*"


class Timeline:
    """The changes at or below one name: instants (sorted, seconds) and live versions after each.

    Attributes:
        times: instants of changes, ascending, Unix seconds.
        live: ``live[i]`` is the number of live versions after ``times[i]``.
        base: live versions before any change (records present since the beginning).
    """

    __slots__ = ("base", "live", "times")

    def __init__(self) -> None:
        self.times: list[float] = []
        self.live: list[int] = []
        self.base = 0

    def record(self, at: float, delta: int) -> None:
        """Note a change at ``at``: ``delta`` versions opened (+) or closed (-), 0 for a touch.

        ``at = -inf`` (records that were always there) changes the base count and is not a
        change anyone sees. Instants normally arrive in order; an earlier one (a clock that
        stepped back) is inserted in place.
        """
        if at == -math.inf:
            self.base += delta
            self.live = [n + delta for n in self.live]
            return
        i = bisect.bisect_right(self.times, at)
        self.times.insert(i, at)
        self.live.insert(i, (self.live[i - 1] if i else self.base) + delta)
        for j in range(i + 1, len(self.live)):  # only when ``at`` arrived out of order
            self.live[j] += delta

    def seen(self, at: float) -> int:
        """How many changes a server whose clock reads ``at`` has seen."""
        return bisect.bisect_right(self.times, at)

    def live_at(self, at: float) -> int:
        """Versions a server whose clock reads ``at`` serves in this subtree."""
        i = bisect.bisect_right(self.times, at)
        return self.live[i - 1] if i else self.base


class ZoneIndex:
    """The timelines of one zone, keyed by owner name (lowercase, no trailing dot).

    Args:
        apex: the zone's name.

    Attributes:
        timelines: name → timeline of its subtree; plus :data:`ZONE_CHANGES` and
            :data:`WILDCARDS`.
    """

    __slots__ = ("apex", "timelines")

    def __init__(self, apex: str) -> None:
        self.apex = apex
        self.timelines: dict[str, Timeline] = {ZONE_CHANGES: Timeline(), WILDCARDS: Timeline()}

    def record(self, owner: str, at: float, delta: int) -> None:
        """A version at ``owner`` opened (``delta=1``) or closed (``-1``) at ``at``.

        Updates the timeline of ``owner`` and of each ancestor up to the apex, and the wildcard
        timeline when ``owner`` is a wildcard.
        """
        name = owner
        while True:
            timeline = self.timelines.get(name)
            if timeline is None:
                timeline = self.timelines[name] = Timeline()
            timeline.record(at, delta)
            if name == self.apex or "." not in name:
                break
            name = name.split(".", 1)[1]
        if owner.startswith("*."):
            self.timelines[WILDCARDS].record(at, delta)

    def touch(self, at: float) -> None:
        """A change of the zone at ``at`` (its SOA serial counts it)."""
        if at > -math.inf:
            self.timelines[ZONE_CHANGES].record(at, 0)

    def seen(self, key: str, at: float) -> int:
        """Changes of ``key`` (a name's subtree, or a special key) seen at ``at``."""
        timeline = self.timelines.get(key)
        return 0 if timeline is None else bisect.bisect_right(timeline.times, at)

    def exists_at(self, name: str, at: float) -> bool:
        """True when ``name`` is the apex or its subtree holds a record served at ``at``."""
        if name == self.apex:
            return True
        timeline = self.timelines.get(name)
        return timeline is not None and timeline.live_at(at) > 0

    def wildcards_at(self, at: float) -> bool:
        """True when some wildcard owner holds a record served at ``at``."""
        return self.timelines[WILDCARDS].live_at(at) > 0

"""When a manual binding is checked next: fast at first, then backing off to a cap.

The schedule follows Cloudflare's custom-hostname re-checks (about every minute at first, then
growing), tuned for OSS's 72 h CNAME token: the cap is 30 minutes rather than hours, and every
check is asked of the authoritative nameservers only, so no resolver caches a negative answer
(RFC 2308 §5) that would delay OSS's own check. Pure: no clock, no I/O.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from cname_flow.config.manual_section import ManualSettings


@dataclass(frozen=True, slots=True)
class Cadence:
    """The check schedule (seconds); see :class:`~cname_flow.config.manual_section.ManualSettings`.

    Attributes:
        first_check_s: from the instructions to the first check.
        fast_period_s: gap during the fast window.
        fast_for_s: length of the fast window, from the instructions.
        factor: growth of each gap after it.
        cap_s: the longest gap.
        give_up_after_s: from the instructions to giving up.
        renew_before_s: re-mint the token when less than this remains.
        check_now_interval_s: least gap between two "check now" runs of one domain.
    """

    first_check_s: float = 60.0
    fast_period_s: float = 60.0
    fast_for_s: float = 1200.0
    factor: float = 1.15
    cap_s: float = 1800.0
    give_up_after_s: float = 7 * 86400.0
    renew_before_s: float = 12 * 3600.0
    check_now_interval_s: float = 30.0

    @classmethod
    def from_settings(cls, s: ManualSettings) -> Cadence:
        """The cadence of the ``manual`` settings section."""
        return cls(s.first_check_s, s.fast_period_s, s.fast_for_s, s.factor, s.check_cap_s,
                   s.give_up_after_s, s.renew_before_s, s.check_now_interval_s)

    def next_delay_s(self, since_start_s: float, previous_s: float | None) -> float:
        """The gap before the next check.

        Args:
            since_start_s: seconds from the instructions to now.
            previous_s: the gap before the check just made, None before the first check.

        Returns:
            ``first_check_s`` before any check; ``fast_period_s`` inside the fast window; then
            the previous gap times ``factor``, capped at ``cap_s``.
        """
        if previous_s is None:
            return min(self.first_check_s, self.cap_s)
        if since_start_s < self.fast_for_s:
            return self.fast_period_s
        return min(self.cap_s, max(previous_s, self.fast_period_s) * self.factor)

    def next_check_at(self, now: datetime, delay_s: float, *, started: datetime,
                      token_expires_at: datetime | None) -> datetime:
        """When to check next: ``now + delay_s``, but no later than the moment the token enters
        its renewal window or expires (so the re-mint is not late), nor than giving up."""
        due = now + timedelta(seconds=delay_s)
        marks = [started + timedelta(seconds=self.give_up_after_s)]
        if token_expires_at is not None:
            renew_at = token_expires_at - timedelta(seconds=self.renew_before_s)
            marks += [m for m in (renew_at, token_expires_at) if m > now]
        return min([due, *marks])

    def gives_up(self, now: datetime, started: datetime) -> bool:
        """True when ``give_up_after_s`` has passed since ``started``."""
        return (now - started).total_seconds() >= self.give_up_after_s

    def wants_renewal(self, now: datetime, expires_at: datetime | None) -> bool:
        """True when the token expires within ``renew_before_s`` (or has, or is unknown)."""
        if expires_at is None:
            return True
        return (expires_at - now).total_seconds() <= self.renew_before_s

    def schedule(self, checks: int) -> list[float]:
        """The first ``checks`` gaps of a wait no check of which finds the record (for docs and
        tests): cumulative seconds from the instructions to each check."""
        at, previous, out = 0.0, None, []
        for _ in range(checks):
            delay = self.next_delay_s(at, previous)
            at, previous = at + delay, delay
            out.append(at)
        return out

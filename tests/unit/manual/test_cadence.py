"""The check cadence: fast first, backing off to the cap, never past the token's renewal."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta

import pytest

from cname_flow.config.manual_section import ManualSettings
from cname_flow.manual.cadence import Cadence

T0 = datetime(2026, 12, 1, tzinfo=UTC)


def test_defaults_start_every_minute_then_back_off_to_30_minutes() -> None:
    cadence = Cadence.from_settings(ManualSettings())
    at = cadence.schedule(120)
    gaps = [round(b - a, 6) for a, b in zip([0.0, *at], at, strict=False)]
    assert gaps[0] == 60.0
    assert all(g == 60.0 for g in gaps[:20])  # 20 minutes at one per minute
    assert gaps[20] == pytest.approx(69.0)  # then x1.15
    assert all(b >= a for a, b in itertools.pairwise(gaps))
    assert max(gaps) == 1800.0 and gaps[-1] == 1800.0
    # the cap is reached after ~4.4 hours (20 min fast, then 24 gaps growing 15 % each)
    assert 4 * 3600 < at[gaps.index(1800.0)] < 5 * 3600


def test_seven_days_cost_a_few_hundred_checks() -> None:
    cadence = Cadence()
    at = cadence.schedule(400)
    within = [t for t in at if t <= cadence.give_up_after_s]
    assert 300 < len(within) < 400  # 20 fast + the back-off + ~330 at the 30 min cap


def test_next_check_never_passes_the_renewal_window_or_expiry() -> None:
    cadence = Cadence(renew_before_s=3600)
    expires = T0 + timedelta(hours=2)
    due = cadence.next_check_at(T0 + timedelta(minutes=50), 1800, started=T0,
                                token_expires_at=expires)
    assert due == expires - timedelta(hours=1)
    inside = cadence.next_check_at(T0 + timedelta(minutes=100), 1800, started=T0,
                                   token_expires_at=expires)
    assert inside == expires


def test_next_check_never_passes_giving_up() -> None:
    cadence = Cadence(give_up_after_s=100)
    assert cadence.next_check_at(T0 + timedelta(seconds=90), 60, started=T0,
                                 token_expires_at=None) == T0 + timedelta(seconds=100)
    assert cadence.gives_up(T0 + timedelta(seconds=100), T0)
    assert not cadence.gives_up(T0 + timedelta(seconds=99), T0)


def test_renewal_window() -> None:
    cadence = Cadence(renew_before_s=12 * 3600)
    expires = T0 + timedelta(hours=72)
    assert not cadence.wants_renewal(T0 + timedelta(hours=59), expires)
    assert cadence.wants_renewal(T0 + timedelta(hours=60), expires)
    assert cadence.wants_renewal(T0, None)


def test_settings_refuse_a_cap_below_the_fast_period() -> None:
    with pytest.raises(ValueError, match="check_cap_s"):
        ManualSettings(check_cap_s=10, fast_period_s=60)
    with pytest.raises(ValueError):
        ManualSettings(factor=0.5)

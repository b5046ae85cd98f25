"""PropagationDelays: the first poll a batch job's earlier bindings suggest."""

from __future__ import annotations

import pytest

from cname_flow.batch.delays import PropagationDelays

KEY = ("127.0.0.1:53", "127.0.0.2:53")


def test_first_poll_without_observations_should_be_the_policy_default() -> None:
    assert PropagationDelays().first_poll_s(KEY, 0.25) == 0.25


def test_first_poll_should_lead_the_shortest_recent_delay() -> None:
    delays = PropagationDelays(window=4, lead=0.9)
    for seen in (2.4, 2.1, 2.6):
        delays.observe(KEY, seen)
    assert delays.first_poll_s(KEY, 0.25) == pytest.approx(0.9 * 2.1)
    assert delays.first_poll_s(("other",), 0.25) == 0.25      # per nameserver set


def test_first_poll_should_never_precede_the_default_nor_pass_the_cap() -> None:
    delays = PropagationDelays(lead=0.9, cap_s=5.0)
    delays.observe(KEY, 0.1)
    assert delays.first_poll_s(KEY, 0.25) == 0.25
    slow = PropagationDelays(lead=0.9, cap_s=5.0)
    slow.observe(KEY, 120.0)
    assert slow.first_poll_s(KEY, 0.25) == 5.0


def test_estimate_should_fall_when_the_zone_gets_faster() -> None:
    """Each wait that sees the record at its first round reports that round's delay."""
    delays = PropagationDelays(window=8, lead=0.9)
    delays.observe(KEY, 10.0)
    polls = []
    for _ in range(30):
        first = delays.first_poll_s(KEY, 0.25)
        polls.append(first)
        delays.observe(KEY, first)              # the zone now serves at once: seen at round 1
    assert polls[-1] < 0.9 * 10.0 * 0.9 ** 20
    assert polls == sorted(polls, reverse=True)


def test_estimate_should_rise_once_a_window_of_bindings_saw_the_zone_slower() -> None:
    delays = PropagationDelays(window=3, lead=0.9)
    delays.observe(KEY, 1.0)
    for _ in range(2):
        delays.observe(KEY, 4.0)
        assert delays.first_poll_s(KEY, 0.25) == pytest.approx(0.9)
    delays.observe(KEY, 4.0)                   # the fast observation left the window
    assert delays.first_poll_s(KEY, 0.25) == pytest.approx(3.6)


def test_missing_records_should_stand_in_until_one_is_seen_everywhere() -> None:
    delays = PropagationDelays(lead=0.9)
    delays.observe_missing(KEY, 1.0)
    delays.observe_missing(KEY, 0.5)           # only the longest counts
    assert delays.first_poll_s(KEY, 0.25) == pytest.approx(0.9)
    delays.observe(KEY, 0.5)
    assert delays.first_poll_s(KEY, 0.25) == pytest.approx(0.45)


@pytest.mark.parametrize("kwargs", [{"window": 0}, {"lead": 0.0}, {"lead": 1.0}, {"cap_s": 0}])
def test_bad_parameters_should_be_refused(kwargs: dict[str, float]) -> None:
    with pytest.raises(ValueError, match="PropagationDelays"):
        PropagationDelays(**kwargs)  # type: ignore[arg-type]


def test_negative_delays_should_be_ignored() -> None:
    delays = PropagationDelays()
    delays.observe(KEY, -1.0)
    assert delays.first_poll_s(KEY, 0.25) == 0.25

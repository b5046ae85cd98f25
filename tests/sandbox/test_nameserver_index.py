"""The per-name timelines behind the DNS servers' point-in-time views and answer cache."""

from __future__ import annotations

import math

from cname_flow.sandbox.nameservers.index import WILDCARDS, Timeline, ZoneIndex


def test_timeline_counts_changes_and_live_versions_at_any_instant() -> None:
    line = Timeline()
    line.record(-math.inf, 1)  # there from the start: live, but no change anyone sees
    line.record(10.0, 1)
    line.record(20.0, -1)
    line.record(15.0, -1)  # a clock that stepped back: inserted in place
    assert [line.seen(t) for t in (0, 10, 14.9, 15, 20, 99)] == [0, 1, 1, 2, 3, 3]
    assert [line.live_at(t) for t in (0, 10, 15, 20)] == [1, 2, 1, 0]


def test_a_version_that_opens_and_closes_at_once_is_never_live() -> None:
    line = Timeline()
    line.record(5.0, 1)
    line.record(5.0, -1)
    assert line.live_at(5.0) == 0 and line.seen(5.0) == 2


def test_zone_index_tracks_owners_ancestors_and_wildcards() -> None:
    index = ZoneIndex("example.com")
    index.record("a.b.example.com", 1.0, 1)
    index.record("*.w.example.com", 2.0, 1)
    index.record("a.b.example.com", 3.0, -1)
    assert index.exists_at("b.example.com", 1.0)  # empty non-terminal (RFC 8020)
    assert not index.exists_at("b.example.com", 3.0)
    assert not index.exists_at("a.b.example.com", 0.5)
    assert index.exists_at("example.com", 0.0)  # the apex always exists
    assert [index.wildcards_at(t) for t in (1.0, 2.0)] == [False, True]
    assert index.seen("example.com", 3.0) == 3 and index.seen("b.example.com", 3.0) == 2
    assert index.seen("never.example.com", 3.0) == 0 and index.seen(WILDCARDS, 3.0) == 1

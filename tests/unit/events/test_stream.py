"""The JSON Lines stream: one fsynced line per event, mode 0600; the reader and its filter."""

from __future__ import annotations

import json
import stat
from datetime import UTC, datetime
from pathlib import Path

import pytest

from cname_flow.events import Event
from cname_flow.events.stream import JsonlSink, read_events

T0 = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)


def ev(kind: str = "binding.verified", subject: str = "b/a.example.com") -> Event:
    return Event(kind, subject, {"domain": subject.split("/")[-1]}, T0)  # type: ignore[arg-type]


@pytest.mark.usefixtures("open_umask")
def test_each_event_is_one_line_of_its_json_in_a_0600_file(tmp_path: Path) -> None:
    path = tmp_path / "sub" / "events.jsonl"
    sink = JsonlSink(path)
    first, second = ev(), ev("drift.found", "reconcile")
    sink.publish(first)
    sink.publish(second)
    lines = path.read_text(encoding="utf-8").splitlines()
    assert [json.loads(line) for line in lines] == [first.as_json(), second.as_json()]
    assert json.loads(lines[0])["schema"] == "cname-flow/event/v1"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_a_write_that_fails_is_logged_never_raised(tmp_path: Path) -> None:
    (tmp_path / "events.jsonl").mkdir()  # a folder in the way
    JsonlSink(tmp_path / "events.jsonl").publish(ev())  # no exception


def test_the_reader_filters_by_type_and_skips_unreadable_lines(tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"
    a, b, c = ev(), ev("binding.failed"), ev("binding.verified", "b/c.example.com")
    sink = JsonlSink(path)
    sink.publish(a)
    with path.open("a", encoding="utf-8") as f:
        f.write("{not json\n")
    sink.publish(b)
    sink.publish(c)
    assert [e["id"] for e in read_events(path)] == [a.id, b.id, c.id]
    assert [e["id"] for e in read_events(path, types={"binding.verified"})] == [a.id, c.id]
    assert list(read_events(tmp_path / "missing.jsonl")) == []


def test_following_holds_back_a_half_written_line_until_it_is_complete(tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"
    first, later = ev(), ev("binding.failed")
    JsonlSink(path).publish(first)
    line = json.dumps(later.as_json()).encode() + b"\n"
    with path.open("ab") as f:
        f.write(line[:10])
    polls: list[float] = []

    def sleep(s: float) -> None:  # the writer finishes its line between two polls
        polls.append(s)
        if len(polls) == 1:
            with path.open("ab") as f:
                f.write(line[10:])

    got = read_events(path, follow=True, poll_s=0.25, sleep=sleep, stop=lambda: len(polls) >= 2)
    assert [e["id"] for e in got] == [first.id, later.id]
    assert polls == [0.25, 0.25]


def test_an_event_survives_its_json_round_trip() -> None:
    e = ev()
    assert Event.from_json(e.as_json()) == e
    with pytest.raises(ValueError, match="unknown event type"):
        Event.from_json({**e.as_json(), "type": "binding.exploded"})

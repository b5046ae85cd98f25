"""The outbox's re-send order, the fan-out, and sinks built from the ``events`` settings."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from cname_flow.config import load_settings
from cname_flow.errors import ConfigError, SecretNotFound
from cname_flow.events import Event, NullSink
from cname_flow.events.outbox import Outbox, OutboxEntry
from cname_flow.events.sinks import FanOutSink, endpoints, outbox_path, sink_from_settings

T0 = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
SENTINEL = "SENTINEL-webhook-secret-c41d"


def ev(n: int) -> Event:
    return Event("binding.verified", f"b/d{n}.example.com", {"n": n}, T0)


def test_drain_keeps_refused_entries_and_what_follows_them_for_the_same_endpoint(
    tmp_path: Path,
) -> None:
    box = Outbox(tmp_path / "outbox.jsonl")
    for n, url in enumerate(["https://a/", "https://b/", "https://a/", "https://b/"]):
        box.add(ev(n), url, attempts=3, error="HTTP 503", at=T0)
    offered: list[int] = []

    def send(entry: OutboxEntry) -> bool:
        n = int(str(entry.event.data["n"]))
        offered.append(n)
        return entry.url == "https://b/" or n != 0

    assert box.drain(send) == (2, 2)
    assert offered == [0, 1, 3]            # 2 is not offered: a's 0 is still stuck before it
    assert [(e.url, e.event.data["n"]) for e in box.entries()] == [("https://a/", 0),
                                                                  ("https://a/", 2)]


class Boom:
    def publish(self, event: Event) -> None:
        raise RuntimeError("bug")


class Keep:
    def __init__(self) -> None:
        self.events: list[Event] = []

    def publish(self, event: Event) -> None:
        self.events.append(event)


def test_the_fan_out_gives_every_sink_the_event_even_after_one_raises() -> None:
    keep, event = Keep(), ev(1)
    FanOutSink([Boom(), keep]).publish(event)
    assert keep.events == [event]


def write(tmp_path: Path, body: str) -> Path:
    path = tmp_path / "cname-flow.yaml"
    path.write_text(body, encoding="utf-8")
    return path


def test_no_events_section_builds_the_null_sink(tmp_path: Path) -> None:
    settings = load_settings(write(tmp_path, "journal: {dir: j}\n"), env={})
    assert isinstance(sink_from_settings(settings.events, tmp_path / "j", {}), NullSink)
    assert outbox_path(settings.events, tmp_path / "j") == tmp_path / "j/events-outbox.jsonl"


def test_a_webhook_secret_comes_from_the_environment_and_an_unset_one_is_named(
    tmp_path: Path,
) -> None:
    settings = load_settings(write(tmp_path, """
events:
  jsonl: ev/events.jsonl
  webhooks:
    - url: http://127.0.0.1:9/hook
      secret: {env: HOOK_SECRET}
      events: [binding.failed]
"""), env={})
    assert settings.events.jsonl == tmp_path / "ev/events.jsonl"
    [hook] = endpoints(settings.events, {"HOOK_SECRET": SENTINEL})
    assert hook.secret == SENTINEL and hook.types == frozenset({"binding.failed"})
    assert SENTINEL not in repr(hook)
    with pytest.raises(SecretNotFound, match=r"events\.webhooks\.0\.secret: environment "
                                             r"variable HOOK_SECRET is not set"):
        sink_from_settings(settings.events, tmp_path, {})


@pytest.mark.parametrize(("hook", "why"), [
    (f"{{url: 'https://h/x', secret: {SENTINEL}}}", "a literal value is not allowed"),
    ("{url: 'https://u:p@h/x', secret: {env: S}}", "must not carry user:password@"),
    ("{url: 'ftp://h/x', secret: {env: S}}", "http:// or https://"),
    ("{url: 'https://h/x', secret: {env: S}, events: [binding.exploded]}", "events.0"),
    ("{url: 'https://h/x', secret: {env: S}, retry_initial_s: 9, retry_max_s: 1}",
     "retry_max_s must be at least retry_initial_s"),
])
def test_bad_webhook_settings_are_refused_naming_the_key_never_the_secret(
    tmp_path: Path, hook: str, why: str,
) -> None:
    with pytest.raises(ConfigError, match=why) as err:
        load_settings(write(tmp_path, f"events:\n  webhooks:\n    - {hook}\n"), env={})
    assert SENTINEL not in str(err.value) and "u:p@" not in str(err.value)
    assert "cname-flow.yaml:3" in str(err.value)

"""``cname-flow events``: prints the stream as JSON Lines, filters by type, refuses without a
stream configured (exit 2)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

from click.testing import CliRunner

from cname_flow.cli.main import main
from cname_flow.events import Event
from cname_flow.events.stream import JsonlSink

T0 = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)


def test_events_prints_the_stream_filtered_by_type(tmp_path: Path) -> None:
    config = tmp_path / "cname-flow.yaml"
    config.write_text("events:\n  jsonl: events.jsonl\n", encoding="utf-8")
    sink = JsonlSink(tmp_path / "events.jsonl")
    made = [Event("binding.verified", "b/a.example.com", {}, T0),
            Event("drift.found", "reconcile", {"count": 1}, T0),
            Event("binding.failed", "b/c.example.com", {"code": "AccessDenied"}, T0)]
    for e in made:
        sink.publish(e)
    runner = CliRunner()
    every = runner.invoke(main, ["--config", str(config), "events"])
    assert every.exit_code == 0, every.output
    assert [json.loads(line) for line in every.output.splitlines()] == [
        e.as_json() for e in made]
    some = runner.invoke(main, ["--config", str(config), "events", "--type", "binding.failed",
                                "--type", "drift.found"])
    assert [json.loads(line)["id"] for line in some.output.splitlines()] == [
        made[1].id, made[2].id]
    bad = runner.invoke(main, ["--config", str(config), "events", "--type", "nope"])
    assert bad.exit_code == 2


def test_events_without_a_stream_is_a_config_error(tmp_path: Path) -> None:
    config = tmp_path / "cname-flow.yaml"
    config.write_text("journal: {dir: j}\n", encoding="utf-8")
    done = CliRunner().invoke(main, ["--config", str(config), "events"])
    assert done.exit_code == 2
    assert "events.jsonl: not set" in done.output

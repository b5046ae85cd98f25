"""The shared output helpers: schema ids, the error document, plain data cells, the
confirmation of destructive commands, and console logs that keep a multi-line field to one line."""

from __future__ import annotations

import io
import json
from datetime import UTC, datetime
from typing import Any

import click
import pytest
from rich.console import Console

from cname_flow.cli import log, output
from cname_flow.errors import InputError, Locked, ZoneNotFound


def test_a_document_starts_with_its_schema_and_keeps_every_key() -> None:
    doc = output.document("bind", {"key": "b/d", "phase": "BOUND", "schema": "ignored"})
    assert list(doc) == ["schema", "key", "phase"]
    assert doc["schema"] == "cname-flow/bind/v1"


def test_the_error_document_of_our_error_names_code_step_and_hint() -> None:
    exc = ZoneNotFound("no zone contains _dnsauth.a.org", service="alidns", code="ZoneNotFound",
                       hint="host the zone")
    exc.step, exc.binding_key = "create_token", "bucket/a.org"
    assert output.error_document(exc) == {"schema": "cname-flow/error/v1", "error": {
        "code": "ZoneNotFound", "message": "no zone contains _dnsauth.a.org",
        "hint": "host the zone", "retryable": False, "step": "create_token",
        "binding": "bucket/a.org", "request_id": ""}}
    assert output.error_document(Locked("busy"))["error"]["retryable"] is True
    interrupted = output.error_document(KeyboardInterrupt())["error"]
    assert interrupted["code"] == "Interrupted" and interrupted["hint"] == output.RESUME_HINT


def test_emit_error_prints_one_parsable_document(capsys: pytest.CaptureFixture[str]) -> None:
    output.emit_error(InputError("bad domain", hint="fix it"))
    data: dict[str, Any] = json.loads(capsys.readouterr().out)
    assert data["error"]["code"] == "InputError" and data["error"]["hint"] == "fix it"


class _CountingStdout(io.StringIO):
    """A stdout that counts its writes."""

    writes = 0

    def write(self, s: str) -> int:
        self.writes += 1
        return super().write(s)


def test_write_json_streams_the_same_text_as_json_dumps(monkeypatch: pytest.MonkeyPatch) -> None:
    big = {"schema": "cname-flow/batch-report/v1", "when": datetime(2026, 12, 2, tzinfo=UTC),
           "bindings": [{"key": f"b/d{i}.例え.jp", "phase": "BOUND", "n": i, "ok": i % 2 == 0,
                         "none": None} for i in range(3000)]}
    out = _CountingStdout()
    monkeypatch.setattr("sys.stdout", out)
    output.write_json(big)
    assert out.getvalue() == json.dumps(big, indent=2, default=str, ensure_ascii=False) + "\n"
    assert out.writes > 1  # written in pieces, not as one joined string


def test_plain_text_is_printed_as_is_even_on_an_emoji_console() -> None:
    buf = io.StringIO()
    Console(file=buf, emoji=True, color_system=None).print(output.plain("F0:CD:A7 [red]x[/red]"))
    assert buf.getvalue().strip() == "F0:CD:A7 [red]x[/red]"


def test_confirm_refuses_off_a_terminal_and_asks_on_one(monkeypatch: pytest.MonkeyPatch) -> None:
    output.confirm("unbind a", yes=True)                       # --yes: nothing asked
    monkeypatch.setattr("sys.stdin.isatty", lambda: False, raising=False)
    with pytest.raises(InputError, match="without confirmation") as refused:
        output.confirm("unbind a", yes=False)
    assert "--yes" in refused.value.hint
    terminal = type("Tty", (io.StringIO,), {"isatty": lambda self: True})
    monkeypatch.setattr("sys.stdin", terminal())
    monkeypatch.setattr("sys.stderr", terminal())
    answers = iter([True, False])
    monkeypatch.setattr(click, "confirm", lambda *a, **k: next(answers))
    output.confirm("unbind a", yes=False)                      # "y"
    with pytest.raises(InputError, match="not confirmed"):
        output.confirm("unbind a", yes=False)                  # "n"

    def ctrl_c(*a: object, **k: object) -> bool:
        raise click.Abort

    monkeypatch.setattr(click, "confirm", ctrl_c)
    with pytest.raises(InputError, match="not confirmed"):
        output.confirm("unbind a", yes=False)                  # Ctrl-C at the question


def test_console_logs_keep_the_first_line_of_a_multiline_field() -> None:
    stream = io.StringIO()
    log.configure(json_logs=False, stream=stream)
    import structlog

    structlog.get_logger("t").warning("step.failed", error="timed out\nHOST ADDRESS\nns1 1.2.3.4")
    line = stream.getvalue()
    assert "\\n" not in line and "HOST" not in line
    assert "timed out … (2 more lines)" in line
    json_stream = io.StringIO()
    log.configure(json_logs=True, stream=json_stream)
    structlog.get_logger("t").warning("step.failed", error="a\nb")
    assert json.loads(json_stream.getvalue())["error"] == "a\nb"   # collectors get it whole
    structlog.reset_defaults()

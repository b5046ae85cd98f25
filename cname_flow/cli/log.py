"""structlog set-up; only the CLI calls :func:`configure`.

On a terminal: human-readable console lines on stderr. Otherwise: one JSON object per line on
stderr (``timestamp``, ``level``, ``event`` and key=value fields), for log collectors and cron mail.
A logged exception (``log.exception``) is rendered on the console as a rich traceback WITHOUT
local variables: structlog's default shows them, and a frame's locals can hold a secret (an
AccessKey secret, an STS token) that no log line may carry.
A last processor (:func:`cname_flow.logs.redact_secrets`) redacts any field whose name says it is
a secret, as a second line of defence: the library never passes secrets to the logger in the first
place. Once this has run, every library logger (:mod:`cname_flow.logs`) goes through this
configuration; without it they go to the silent stdlib ``cname_flow`` logger.
"""

from __future__ import annotations

import logging
import sys
from typing import TextIO

import structlog

from cname_flow.logs import redact_secrets


def configure(*, json_logs: bool | None = None, verbose: bool = False,
              level: str | None = None, stream: TextIO | None = None) -> None:
    """Configure structlog for the process.

    Args:
        json_logs: force JSON (True) or console (False) output; None picks by ``isatty``.
        verbose: one level more: console output shows info events (default: warnings only,
            the commands render progress themselves), JSON output shows debug events (default:
            info, the full event stream for collectors).
        level: explicit minimum level name (``"warning"``…), overriding ``verbose``.
        stream: where log lines go (default stderr).
    """
    out = stream or sys.stderr
    if json_logs is None:
        json_logs = not out.isatty()
    colors = out.isatty()
    renderer: structlog.types.Processor = (
        structlog.processors.JSONRenderer() if json_logs
        else structlog.dev.ConsoleRenderer(colors=colors,
                                           exception_formatter=_traceback_formatter(colors))
    )
    console_only: list[structlog.types.Processor] = [] if json_logs else [first_lines]
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            redact_secrets,
            *console_only,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(
            _level(level, verbose, json_logs)
        ),
        logger_factory=structlog.PrintLoggerFactory(out),
        cache_logger_on_first_use=False,
    )


def first_lines(logger: object, method: str, event: structlog.types.EventDict,
                ) -> structlog.types.EventDict:
    """Console only: a multi-line string field keeps its first line (``… (N more lines)``).

    A propagation timeout's message carries the whole table of nameserver answers; in a
    console line it would show as one line of literal ``\\n``, and the command prints the
    table itself right after. JSON lines keep every field whole (collectors parse them).
    """
    for key, value in event.items():
        if key != "event" and isinstance(value, str) and "\n" in value:
            head, *rest = value.splitlines()
            event[key] = f"{head} … ({len(rest)} more lines)"
    return event


def _traceback_formatter(colors: bool) -> structlog.dev.RichTracebackFormatter:
    """Rich tracebacks as structlog renders them, minus the locals (never shown: secrets)."""
    return structlog.dev.RichTracebackFormatter(
        show_locals=False, color_system="truecolor" if colors else None)


def _level(name: str | None, verbose: bool, json_logs: bool) -> int:
    if name:
        return int(logging.getLevelNamesMapping()[name.upper()])
    if json_logs:
        return logging.DEBUG if verbose else logging.INFO
    return logging.INFO if verbose else logging.WARNING

"""The outbox: events a webhook could not deliver, kept for a re-send (``cname-flow events
--resend``).

A JSON Lines file (mode 0600, each line fsynced), one entry per undelivered (event, endpoint)::

    {"schema": "cname-flow/outbox/v1", "url": "https://hooks.example.com/cname-flow",
     "attempts": 7, "error": "HTTP 503", "failed_at": "2026-12-01T14:03:09+00:00",
     "event": {...the event, as sent...}}

``url`` is the endpoint without its query string (it may carry a token); no secret is ever
written. Appends and the rewrite after a re-send hold ``<outbox>.lock`` (filelock), so processes
appending while a re-send runs lose nothing.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from filelock import FileLock

from cname_flow.errors import JournalError
from cname_flow.events import Event
from cname_flow.events.stream import FILE_MODE, append_line, read_lines
from cname_flow.logs import get_logger

log = get_logger(__name__)

SCHEMA = "cname-flow/outbox/v1"


@dataclass(frozen=True, slots=True)
class OutboxEntry:
    """One undelivered event for one endpoint.

    Attributes:
        url: the endpoint as shown (no query).
        event: the event.
        attempts: requests sent before it was given up.
        error: the last failure.
        failed_at: when it was given up (RFC 3339 string as stored).
    """

    url: str
    event: Event
    attempts: int
    error: str
    failed_at: str

    def as_json(self) -> dict[str, object]:
        """The entry as stored."""
        return {"schema": SCHEMA, "url": self.url, "attempts": self.attempts,
                "error": self.error, "failed_at": self.failed_at, "event": self.event.as_json()}


class Outbox:
    """The outbox file.

    Args:
        path: the JSON Lines file (created on the first entry).
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = FileLock(str(path) + ".lock")

    def add(self, event: Event, url: str, *, attempts: int, error: str, at: datetime) -> None:
        """Append one entry (fsynced). A write that fails is logged, never raised."""
        entry = OutboxEntry(url, event, attempts, error, at.isoformat())
        line = json.dumps(entry.as_json(), separators=(",", ":"), ensure_ascii=False)
        try:
            with self._lock:
                append_line(self.path, line.encode() + b"\n")
        except OSError as exc:
            log.error("event.outbox_failed", path=str(self.path), event_id=event.id,
                      error=exc.strerror or str(exc))

    def entries(self) -> list[OutboxEntry]:
        """Every entry, file order (an unreadable line is skipped and logged).

        Raises:
            JournalError: the file exists but cannot be read.
        """
        out = []
        for obj in read_lines(self.path):
            try:
                out.append(_entry(obj))
            except (KeyError, TypeError, ValueError):
                log.warning("event.outbox_entry_unreadable", path=str(self.path))
        return out

    def drain(self, send: Callable[[OutboxEntry], bool]) -> tuple[int, int]:
        """Offer every entry to ``send`` in order, then keep only those it did not take.

        Once ``send`` refuses an entry for an endpoint, later entries for that endpoint are
        kept without being offered, so each endpoint still sees its events in order.

        Returns:
            (entries sent, entries kept).

        Raises:
            JournalError: the outbox cannot be read or rewritten.
        """
        with self._lock:
            entries, kept, stuck = self.entries(), [], set()
            for entry in entries:
                if entry.url in stuck or not send(entry):
                    stuck.add(entry.url)
                    kept.append(entry)
            if len(kept) != len(entries):
                self._rewrite(kept)
        return len(entries) - len(kept), len(kept)

    def _rewrite(self, kept: list[OutboxEntry]) -> None:
        tmp = self.path.with_name(self.path.name + ".tmp")
        data = "".join(json.dumps(e.as_json(), separators=(",", ":"), ensure_ascii=False) + "\n"
                       for e in kept).encode()
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, FILE_MODE)
            try:
                os.write(fd, data)
                os.fsync(fd)
            finally:
                os.close(fd)
            os.replace(tmp, self.path)
        except OSError as exc:
            raise JournalError(f"cannot rewrite {self.path}: {exc.strerror or exc}") from exc


def _entry(obj: dict[str, object]) -> OutboxEntry:
    event = obj["event"]
    if not isinstance(event, dict):
        raise TypeError("event")
    return OutboxEntry(url=str(obj["url"]), event=Event.from_json(event),
                       attempts=int(str(obj.get("attempts", 0))), error=str(obj.get("error", "")),
                       failed_at=str(obj.get("failed_at", "")))

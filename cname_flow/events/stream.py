"""The JSON Lines event stream: a sink that appends one event per line, and its reader.

Format: JSON Lines (https://jsonlines.org/), UTF-8, one :meth:`~cname_flow.events.Event.as_json`
object per line. Writing: the file is opened with ``O_APPEND`` and mode 0600, each line goes
out in one ``write(2)`` (so processes appending at once do not interleave lines) and is
``fsync``-ed before :meth:`JsonlSink.publish` returns. A reader holds back a last line with no
newline yet (a write in progress) and skips a line that is not JSON (a torn write), saying so.
"""

from __future__ import annotations

import json
import os
import threading
import time
from collections.abc import Callable, Collection, Iterator
from pathlib import Path

from cname_flow.errors import JournalError
from cname_flow.events import Event
from cname_flow.logs import get_logger

log = get_logger(__name__)

#: File mode of the stream and the outbox.
FILE_MODE = 0o600


def encode(event: Event) -> bytes:
    """The event as one compact JSON line, newline included."""
    return json.dumps(event.as_json(), separators=(",", ":"), ensure_ascii=False).encode() + b"\n"


def append_line(path: Path, line: bytes) -> None:
    """Append ``line`` (ending in ``\\n``) to ``path`` in one write, then fsync.

    The file is created with mode 0600 (and its folder, 0700, when missing).

    Raises:
        OSError: the file cannot be opened or written.
    """
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, FILE_MODE)
    try:
        os.fchmod(fd, FILE_MODE)
        os.write(fd, line)
        os.fsync(fd)
    finally:
        os.close(fd)


class JsonlSink:
    """Appends each event to a JSON Lines file (:func:`append_line`): durable when
    :meth:`publish` returns.

    A write that fails (disk full, permission) is logged as ``event.stream_failed`` and the
    event dropped from the stream: an event sink never fails a binding.

    Args:
        path: the stream's file.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()

    def publish(self, event: Event) -> None:
        """Append ``event`` and fsync it."""
        line = encode(event)
        try:
            with self._lock:
                append_line(self.path, line)
        except OSError as exc:
            log.error("event.stream_failed", path=str(self.path), event_id=event.id,
                      type=event.type, error=exc.strerror or str(exc))


def read_lines(path: Path, *, follow: bool = False, poll_s: float = 0.5,
               sleep: Callable[[float], None] = time.sleep,
               stop: Callable[[], bool] = lambda: False) -> Iterator[dict[str, object]]:
    """Every JSON object of a JSON Lines file, in file order.

    Args:
        path: the file; a missing file has no lines (with ``follow``, it is waited for).
        follow: after the end, keep polling for new lines (``tail -f``) until ``stop()``.
        poll_s: seconds between two looks at the file while following.
        sleep: blocking sleep (injected for tests).
        stop: asked between polls; True ends the iteration.

    Raises:
        JournalError: the file exists but cannot be read.
    """
    offset, pending = 0, b""
    while True:
        chunk = _read_from(path, offset)
        offset += len(chunk)
        pending += chunk
        *lines, pending = pending.split(b"\n")
        for raw in lines:
            obj = _decode(path, raw)
            if obj is not None:
                yield obj
        if not follow or stop():
            return
        sleep(poll_s)


def _read_from(path: Path, offset: int) -> bytes:
    try:
        with path.open("rb") as f:
            f.seek(offset)
            return f.read()
    except FileNotFoundError:
        return b""
    except OSError as exc:
        raise JournalError(f"cannot read {path}: {exc.strerror or exc}") from exc


def _decode(path: Path, raw: bytes) -> dict[str, object] | None:
    if not raw.strip():
        return None
    try:
        obj = json.loads(raw)
    except ValueError:
        log.warning("event.line_unreadable", path=str(path), length=len(raw))
        return None
    return obj if isinstance(obj, dict) else None


def read_events(path: Path, *, types: Collection[str] = (), follow: bool = False,
                poll_s: float = 0.5, sleep: Callable[[float], None] = time.sleep,
                stop: Callable[[], bool] = lambda: False) -> Iterator[dict[str, object]]:
    """The events of a stream (:func:`read_lines`), only those of ``types`` when given.

    Raises:
        JournalError: the file exists but cannot be read.
    """
    for obj in read_lines(path, follow=follow, poll_s=poll_s, sleep=sleep, stop=stop):
        if not types or obj.get("type") in types:
            yield obj

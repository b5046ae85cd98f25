"""Reading a journal file: replay, torn-tail detection, history, and the lock-free snapshot.

A torn last line (a crash mid-write: no trailing newline, or invalid JSON on the last line
only) is dropped; the loader reports how many bytes are worth keeping so the writer can
truncate the tail away. Anything else unreadable raises
:class:`~cname_flow.errors.JournalCorrupt` naming ``<file>:<line>``.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from types import MappingProxyType
from typing import BinaryIO

from cname_flow.errors import JournalCorrupt
from cname_flow.journal.codec import (
    EventLine,
    ForgetLine,
    Line,
    LineError,
    MembersLine,
    MetaLine,
    check_header,
    decode_line,
)
from cname_flow.journal.records import (
    BindingRecord,
    JobEvent,
    JournalEvent,
    OutputValue,
    ReplayState,
)


@dataclass(frozen=True, slots=True)
class _RawLine:
    number: int  # 1-based line number
    value: object  # the decoded JSON
    end: int  # byte offset just past this line's newline


def _scan(handle: BinaryIO, path: Path) -> Iterator[_RawLine]:
    """Decode each JSON line; drop a torn last line, raise on a bad line anywhere else.

    Raises:
        JournalCorrupt: a line that is not JSON and is followed by another line.
    """
    offset = 0
    bad_line = 0
    for number, raw in enumerate(handle, start=1):
        if bad_line:
            raise JournalCorrupt(f"{path}:{bad_line}: invalid JSON before the last line")
        if not raw.endswith(b"\n"):
            return  # torn tail: the write of this line never completed
        if raw.strip():
            try:
                value = json.loads(raw)
            except (ValueError, RecursionError):  # RecursionError: nested too deep to decode
                bad_line = number  # fatal unless it turns out to be the last line
                continue
            yield _RawLine(number, value, offset + len(raw))
        offset += len(raw)


def _decode(raw: _RawLine, path: Path) -> Line:
    try:
        return decode_line(raw.value)
    except LineError as exc:
        raise JournalCorrupt(f"{path}:{raw.number}: {exc}") from None


def _header(raw: _RawLine, path: Path) -> tuple[datetime, int]:
    if raw.number != 1:
        raise JournalCorrupt(f"{path}:{raw.number}: the header must be line 1")
    try:
        return check_header(raw.value)
    except LineError as exc:
        raise JournalCorrupt(f"{path}:1: {exc}") from None


@dataclass(frozen=True, slots=True)
class Loaded:
    """A replayed journal file.

    Attributes:
        state: every binding's record and the job metadata.
        created_at: from the header; ``None`` for an empty file or one holding a torn header.
        end: bytes worth keeping; anything past it is a torn tail (or trailing blank lines).
        version: the header's format version (0 without a header).
    """

    state: ReplayState
    created_at: datetime | None
    end: int
    version: int = 0


def load(path: Path) -> Loaded:
    """Replay the journal at ``path``.

    Raises:
        JournalCorrupt: a bad line before the last one, a missing header, an unknown version.
        OSError: the file cannot be read.
    """
    state = ReplayState()
    created_at: datetime | None = None
    end = version = 0
    with path.open("rb") as handle:
        for raw in _scan(handle, path):
            if created_at is None:
                created_at, version = _header(raw, path)
            else:
                apply_line(state, _decode(raw, path))
            end = raw.end
    return Loaded(state, created_at, end, version)


def header_version(path: Path) -> int:
    """The format version in the header of the file at ``path``; 0 when it holds no complete
    header (missing, empty, or torn at its first line).

    Raises:
        JournalCorrupt: the first line is not a cname-flow header of a readable version.
    """
    try:
        with path.open("rb") as handle:
            for raw in _scan(handle, path):
                return _header(raw, path)[1]
    except FileNotFoundError:
        return 0
    return 0


def apply_line(state: ReplayState, line: Line) -> None:
    """Fold one decoded line into ``state``."""
    if isinstance(line, MetaLine):
        state.apply_meta(line.values)
    elif isinstance(line, EventLine):
        state.apply(line.event, line.snapshot)
    elif isinstance(line, ForgetLine):
        state.forget(line.key)
    elif isinstance(line, MembersLine):
        state.members.update(dict.fromkeys(line.keys))
    else:
        state.job_events.append(line.event)


def catch_up(fd: int, offset: int, state: ReplayState, path: Path, end: int | None = None) -> int:
    """Apply the complete lines of ``fd`` from byte ``offset`` (up to ``end``, default the
    file's size) to ``state``: how a reader follows other writers incrementally.

    A last line still without its newline (another process mid-write, or a torn tail) is left
    for later. Costs the bytes read, never the size of the file.

    Returns:
        The offset just past the last complete line applied.

    Raises:
        JournalCorrupt: a complete line that is not a valid journal line (names ``<file>:<line>``
            and the byte offset).
        OSError: the read failed.
    """
    size = os.fstat(fd).st_size if end is None else end
    if size <= offset:
        return offset
    data = os.pread(fd, size - offset, offset)
    complete = data.rfind(b"\n") + 1
    position = offset
    for raw in data[:complete].splitlines(keepends=True):
        if raw.strip():
            try:
                apply_line(state, decode_line(json.loads(raw)))
            except (ValueError, RecursionError) as exc:  # LineError included
                where = f"{path}:{_line_at(fd, position)} (byte {position})"
                raise JournalCorrupt(f"{where}: {exc}") from None
        position += len(raw)
    return offset + complete


def _line_at(fd: int, position: int) -> int:
    """The 1-based number of the line starting at byte ``position`` (the error path only: it
    reads the file up to there)."""
    newlines, start = 0, 0
    while start < position:
        chunk = os.pread(fd, min(1 << 20, position - start), start)
        if not chunk:
            break
        newlines += chunk.count(b"\n")
        start += len(chunk)
    return newlines + 1


def read_events(path: Path, key: str | None = None) -> Iterator[JournalEvent]:
    """Stream the events of the file at ``path``, oldest first, optionally of one key.

    Raises:
        JournalCorrupt: as :func:`load`.
    """
    with path.open("rb") as handle:
        lines = _scan(handle, path)
        for raw in lines:
            _header(raw, path)
            break
        for raw in lines:
            line = _decode(raw, path)
            if isinstance(line, EventLine) and key in (None, line.event.key):
                yield line.event


class JournalView:
    """Read access shared by the live :class:`~cname_flow.journal.Journal` and a snapshot."""

    def __init__(self, path: Path) -> None:
        self._path = path
        self._state = ReplayState()

    @property
    def path(self) -> Path:
        """The journal file."""
        return self._path

    def get(self, key: str) -> BindingRecord | None:
        """The replayed record of ``key`` (``"<bucket>/<domain>"``), or ``None``.

        The record is replaced, never mutated, by later events; treat it as read-only.
        """
        return self._state.records.get(key)

    def bindings(self) -> Mapping[str, BindingRecord]:
        """Every binding's record by key, in first-seen order (a read-only copy of the index)."""
        return MappingProxyType(dict(self._state.records))

    @property
    def meta(self) -> Mapping[str, OutputValue]:
        """Job-level metadata set with ``Journal.set_meta`` (a read-only copy)."""
        return MappingProxyType(dict(self._state.meta))

    @property
    def members(self) -> tuple[str, ...]:
        """Binding keys added with ``Journal.add_members``, in order (a job's bindings)."""
        return tuple(self._state.members)

    @property
    def job_events(self) -> tuple[JobEvent, ...]:
        """Job events recorded with ``Journal.note``, oldest first."""
        return tuple(self._state.job_events)

    def events(self, key: str | None = None) -> Iterator[JournalEvent]:
        """Stream the events on disk, oldest first, optionally of one binding only.

        Reads the file (history and status display): events still buffered by an open
        ``Journal.group()`` are not there yet, and after ``Journal.compact()`` each binding
        has one synthetic event.

        Raises:
            JournalCorrupt: the file is unreadable.
        """
        return read_events(self._path, key)


class JournalSnapshot(JournalView):
    """A journal loaded without its lock (for ``status`` while a job runs); read-only.

    Attributes:
        created_at: from the header; ``None`` when the file holds no complete header yet.
    """

    def __init__(self, path: Path, loaded: Loaded) -> None:
        super().__init__(path)
        self._state = loaded.state
        self.created_at = loaded.created_at

"""The live, locked, append-only journal (see the package docstring for the guarantees)."""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType
from typing import Protocol, Self

from cname_flow.errors import JournalError
from cname_flow.journal.codec import (
    encode_event,
    encode_forget,
    encode_header,
    encode_job_event,
    encode_members,
    encode_meta,
    encode_snapshot,
)
from cname_flow.journal.files import (
    HolderLock,
    disk_error,
    ensure_dir,
    fsync_dir,
    location_error,
    open_append,
    remove_stale_temps,
    replace_file,
    write_all,
)
from cname_flow.journal.reader import JournalSnapshot, JournalView, load
from cname_flow.journal.records import BindingRecord, JobEvent, JournalEvent, OutputValue


class _Releasable(Protocol):
    def release(self) -> None: ...


class Journal(JournalView):
    """The durable, append-only step log of one job (guarantees: :mod:`cname_flow.journal`).

    Use as a context manager (or :meth:`open` / :meth:`close`). Thread-safe: every write holds
    an internal lock. Secrets are refused before anything is written (``ValueError``).

    Args:
        path: the journal file (JSON Lines); created with its header when missing.
        fsync: ``False`` skips every ``fsync`` (tests and throwaway journals only).
    """

    def __init__(self, path: Path, *, fsync: bool = True) -> None:
        super().__init__(Path(path))
        self._fsync = fsync
        self._mutex = threading.RLock()
        self._fd: int | None = None
        self._lock: _Releasable | None = None
        self._created_at = datetime.now(UTC)
        self._size = 0  # bytes known written; a failed append is truncated back to this
        self._depth = 0  # nesting of open group() blocks
        self._pending: list[bytes] = []

    def __enter__(self) -> Self:
        return self.open()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def open(self) -> Self:
        """Take the lock, replay the file, truncate a torn tail away, open for appending.

        Raises:
            Locked: another holder; the message names its pid, host and start time.
            JournalCorrupt: unreadable line, missing header or unknown version.
            ConfigError: the location cannot be used (``journal.dir`` is a file, read-only, not
                readable…; :func:`~cname_flow.journal.files.location_error`).
            JournalError: this object is already open, or the file could not be read or
                written (``retryable`` when the disk is full).
        """
        with self._mutex:
            if self._lock is not None:
                raise JournalError(f"journal {self._path} is already open")
            try:
                ensure_dir(self._path.parent)
                lock = self._acquire_lock()
            except OSError as exc:
                raise location_error(exc, self._path, doing="open") from exc
            try:
                self._open_file()
            except OSError as exc:
                lock.release()
                raise location_error(exc, self._path, doing="open") from exc
            except BaseException:
                lock.release()
                raise
            self._lock = lock
            return self

    def close(self) -> None:
        """Flush what :meth:`group` buffered, close the file and release the lock."""
        with self._mutex:
            try:
                self._flush()
            finally:
                if self._fd is not None:
                    os.close(self._fd)
                    self._fd = None
                if self._lock is not None:
                    self._lock.release()
                    self._lock = None

    def record(self, event: JournalEvent) -> BindingRecord:
        """Append one event; durable (write + fsync) when this returns, unless in :meth:`group`.

        Returns:
            The binding's record after the event.

        Raises:
            ValueError: bad key or status, naive timestamp, or a secret among the outputs.
            JournalError: the journal is not open, or the write/fsync failed (nothing recorded;
                ``retryable`` when the disk or quota is full: exit 75).
        """
        line = encode_event(event)
        with self._mutex:
            self._append([line])
            return self._state.apply(event)

    def record_many(self, events: Sequence[JournalEvent]) -> None:
        """Append several events with one write and one fsync (group commit).

        Raises:
            ValueError: as :meth:`record`, for any of them; nothing is written then.
            JournalError: as :meth:`record`; none of them is recorded then.
        """
        lines = [encode_event(event) for event in events]
        with self._mutex:
            self._append(lines)
            for event in events:
                self._state.apply(event)

    @contextlib.contextmanager
    def group(self) -> Iterator[None]:
        """Batch mode: :meth:`record` buffers until the outermost block exits, then one fsync.

        Replayed state is updated at once, but nothing is durable before the block exits: a
        caller must not start a side effect whose intent is still buffered. Blocks nest; what
        was buffered is flushed even when the block raises.

        Raises:
            JournalError: the flush at exit failed; the in-memory state is reloaded from disk.
        """
        with self._mutex:
            self._require_open()
            self._depth += 1
        try:
            yield
        finally:
            with self._mutex:
                self._depth -= 1
                if self._depth == 0:
                    self._flush()

    def forget(self, key: str) -> bool:
        """Drop ``key``'s record (a forget line); False when there was none (nothing written).

        Raises:
            ValueError: ``key`` is not ``"<bucket>/<domain>"``.
            JournalError: as :meth:`record`.
        """
        line = encode_forget(key, datetime.now(UTC))
        with self._mutex:
            if self._state.records.get(key) is None:
                return False
            self._append([line])
            self._state.forget(key)
            return True

    def add_members(self, keys: Sequence[str]) -> None:
        """Add binding keys to the job's members (those already members are skipped).

        Raises:
            ValueError: a key is not ``"<bucket>/<domain>"``.
            JournalError: as :meth:`record`.
        """
        with self._mutex:
            new = [k for k in dict.fromkeys(keys) if k not in self._state.members]
            if not new:
                return
            self._append([encode_members(new, datetime.now(UTC))])
            self._state.members.update(dict.fromkeys(new))

    def note(self, name: str, **values: OutputValue) -> None:
        """Record a job event (``"started"``, ``"stopped"``…) with its details.

        Raises:
            ValueError: a secret or a value that is not ``str | int | float | bool | None``.
            JournalError: as :meth:`record`.
        """
        event = JobEvent(name, dict(values))
        line = encode_job_event(event)
        with self._mutex:
            self._append([line])
            self._state.job_events.append(event)

    def set_meta(self, **values: OutputValue) -> None:
        """Record job-level metadata (merged into :attr:`meta`; ``None`` deletes a key).

        Raises:
            ValueError: a secret or a value that is not ``str | int | float | bool | None``.
            JournalError: as :meth:`record`.
        """
        line = encode_meta(values, datetime.now(UTC))
        with self._mutex:
            self._append([line])
            self._state.apply_meta(values)

    def compact(self) -> None:
        """Rewrite the file atomically with one synthetic event per binding.

        Temp file + fsync + rename + directory fsync: a crash leaves the old or the new file,
        never a mix. Replayed state (phase, outputs, attempts, errors, times) is unchanged;
        the history shown by :meth:`events` is not kept.

        Raises:
            JournalError: not open, called inside :meth:`group`, or the rewrite failed.
        """
        with self._mutex:
            fd = self._require_open()
            if self._depth:
                raise JournalError("cannot compact a journal inside group()")
            data = self._compacted_bytes()
            try:
                replace_file(self._path, data, durable=self._fsync)
            except OSError as exc:
                raise disk_error(exc, self._path, doing="compact") from exc
            self._fd = None
            os.close(fd)
            self._fd = open_append(self._path)
            self._size = len(data)

    @staticmethod
    def read_only(path: Path) -> JournalSnapshot:
        """Load a journal without taking its lock (for ``status`` while a job runs).

        Raises:
            JournalError: no file at ``path``, or it cannot be read.
            ConfigError: the location cannot be used (as :meth:`open`).
            JournalCorrupt: as :meth:`open`.
        """
        path = Path(path)
        try:
            if not path.exists():
                raise JournalError(f"no journal at {path}")
            return JournalSnapshot(path, load(path))
        except OSError as exc:
            raise location_error(exc, path, doing="read") from exc

    # --- internals ----------------------------------------------------------------------------

    def _acquire_lock(self) -> _Releasable:
        """The lock held while open: here the exclusive, non-blocking ``<journal>.lock``."""
        lock = HolderLock.for_journal(self._path)
        lock.acquire()
        return lock

    def _open_file(self) -> None:
        remove_stale_temps(self._path)
        loaded = load(self._path) if self._path.exists() else None
        fd = open_append(self._path)
        try:
            if loaded is None or loaded.created_at is None:
                self._start_file(fd)
            else:
                self._truncate_tail(fd, loaded.end)
                self._state, self._created_at = loaded.state, loaded.created_at
        except BaseException:
            os.close(fd)
            raise
        self._fd = fd

    def _start_file(self, fd: int) -> None:
        header = encode_header(self._created_at)
        os.ftruncate(fd, 0)
        write_all(fd, header)
        if self._fsync:
            os.fsync(fd)
            fsync_dir(self._path.parent)
        self._size = len(header)

    def _truncate_tail(self, fd: int, end: int) -> None:
        if os.fstat(fd).st_size > end:
            os.ftruncate(fd, end)
            if self._fsync:
                os.fsync(fd)
        self._size = end

    def _require_open(self) -> int:
        if self._fd is None:
            raise JournalError(f"journal {self._path} is not open (use `with Journal(path)`)")
        return self._fd

    def _append(self, lines: list[bytes]) -> None:
        fd = self._require_open()
        if self._depth:
            self._pending.extend(lines)
        else:
            self._write(fd, b"".join(lines))

    def _flush(self) -> None:
        if not self._pending or self._fd is None:
            return
        data = b"".join(self._pending)
        self._pending.clear()
        try:
            self._write(self._fd, data)
        except JournalError:
            self._reload()  # forget what was applied but never written
            raise

    def _reload(self) -> None:
        """Replace the in-memory state with the file's."""
        self._state = load(self._path).state

    def _write(self, fd: int, data: bytes) -> None:
        try:
            write_all(fd, data)
            if self._fsync:
                os.fsync(fd)
        except OSError as exc:
            with contextlib.suppress(OSError):
                os.ftruncate(fd, self._size)
            raise disk_error(exc, self._path, doing="append to") from exc
        self._size += len(data)

    def _compacted_bytes(self) -> bytes:
        now = datetime.now(UTC)
        lines = [encode_header(self._created_at, compacted_at=now)]
        if self._state.meta:
            lines.append(encode_meta(self._state.meta, now))
        if self._state.members:
            lines.append(encode_members(list(self._state.members), now))
        lines.extend(encode_job_event(event) for event in self._state.job_events)
        lines.extend(encode_snapshot(record) for record in self._state.records.values())
        return b"".join(lines)

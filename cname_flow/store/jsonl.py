"""The JSON store: the embedded store of record, one JSON Lines file shared by many processes.

Files under ``journal.dir`` (each ``0600``, the directory ``0700``):

* ``bindings.jsonl``: every binding's events (format: :mod:`cname_flow.journal.codec`, version 2);
* ``bindings.jsonl.lock``: ``flock`` shared by every open store, exclusive for rewrites;
* ``bindings.locks``: one byte-range lock per binding, plus the append lock at byte 0
  (:mod:`cname_flow.store.locks`);
* ``jobs/<id>.jsonl``: each batch job's meta, members and events (:mod:`cname_flow.store.jobs`).

How many writers share one file (on one host):

* Appends are ``O_APPEND``, one ``write`` per event or per group, ``fsync`` before the event
  counts (:meth:`record` returns). The append lock is held around the ``write`` only, so a
  writer that finds the file not ending in a newline knows its writer died mid-write and
  truncates that torn tail before appending; the ``fsync`` runs outside it.
* Each process keeps its replayed state in memory and catches up by reading the file from the
  last byte it applied (:meth:`refresh`, and before every append): the cost of a transition
  depends on what others wrote since, never on the size of the file.
* Rewrites (torn-tail truncation at open, the version-1 fold-in, :meth:`compact`) take the file
  lock exclusively, so they never run while another store has the file open.
* Per-binding locks (:meth:`lock`) are OS locks: released when the holder dies; a second
  holder waits up to ``journal.lock_wait_s`` then gets :class:`~cname_flow.errors.Locked`
  naming the holder's pid, host and command.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Final, Self

from cname_flow.errors import JournalError, Locked
from cname_flow.journal import BindingRecord, Journal
from cname_flow.journal.files import disk_error, ensure_dir, location_error, write_all
from cname_flow.journal.reader import catch_up, load
from cname_flow.store import legacy
from cname_flow.store.base import JobState
from cname_flow.store.jobs import JobFile, job_file, job_files, read_job
from cname_flow.store.locks import FileLock, KeyLock, RangeLocks, busy, wait_for

STORE_FILE: Final = "bindings.jsonl"
LOCKS_FILE: Final = "bindings.locks"
#: Default of ``journal.lock_wait_s``: how long a second process waits for a binding, seconds.
LOCK_WAIT_S: Final = 30.0


class JsonStore(Journal):
    """The JSON store (:class:`~cname_flow.store.base.BindingStore`); see the module docstring.

    Use as a context manager. Thread-safe. Records, groups, meta and history are those of
    :class:`~cname_flow.journal.Journal`; what differs is that the file is shared.

    Args:
        directory: ``journal.dir``.
        lock_wait_s: default wait for a busy binding (and for a busy file lock), seconds.
        fsync: ``False`` skips every ``fsync`` (tests only).
    """

    def __init__(self, directory: Path, *, lock_wait_s: float = LOCK_WAIT_S,
                 fsync: bool = True) -> None:
        super().__init__(Path(directory) / STORE_FILE, fsync=fsync)
        self.directory = Path(directory)
        self.lock_wait_s = lock_wait_s
        self._offset = 0  # bytes of the file applied to the in-memory state
        self._read_fd: int | None = None
        self._ranges: RangeLocks | None = None
        self._file_lock: FileLock | None = None
        self._exclusive = False
        self._leases: set[KeyLock] = set()

    @property
    def location(self) -> str:
        """The store file."""
        return str(self._path)

    # --- catching up and appending -----------------------------------------------------------

    def refresh(self) -> None:
        """Apply what other processes appended since the last read (incremental).

        Raises:
            JournalError: the store is not open.
            JournalCorrupt: a complete line that is not a journal line.
        """
        fd = self._read_fd
        if fd is not None and os.fstat(fd).st_size <= self._offset:
            return  # nothing new: no need to wait for a writer of this process (its fsync)
        with self._mutex:
            self._require_open()
            assert self._read_fd is not None
            self._offset = catch_up(self._read_fd, self._offset, self._state, self._path)

    def _write(self, fd: int, data: bytes) -> None:
        assert self._ranges is not None and self._read_fd is not None
        with self._ranges.appending():
            size = os.fstat(fd).st_size
            if size > self._offset:  # others appended since; a torn tail if no newline ends it
                self._offset = catch_up(self._read_fd, self._offset, self._state, self._path,
                                        size)
                if size > self._offset:
                    os.ftruncate(fd, self._offset)
            try:
                write_all(fd, data)
            except OSError as exc:
                with contextlib.suppress(OSError):
                    os.ftruncate(fd, self._offset)
                raise disk_error(exc, self._path, doing="append to") from exc
            self._offset += len(data)
            self._size = self._offset
        if self._fsync:
            try:
                os.fsync(fd)
            except OSError as exc:
                self._reload()
                error = disk_error(exc, self._path, doing="sync")
                error.message += ": the last events may not be durable; re-run the command"
                raise error from exc

    def _reload(self) -> None:
        loaded = load(self._path)
        self._state, self._offset = loaded.state, loaded.end

    def bindings(self) -> Mapping[str, BindingRecord]:
        """Every binding's record by key, as of the last catch-up (a read-only copy, taken
        while no writer of this process changes the index)."""
        with self._mutex:
            return super().bindings()

    def records(self, keys: Sequence[str]) -> dict[str, BindingRecord]:
        """The records of those ``keys`` that exist, as of the last catch-up."""
        found = {key: self.get(key) for key in keys}
        return {key: record for key, record in found.items() if record is not None}

    # --- per-binding locks ---------------------------------------------------------------------

    def lock(self, key: str, *, wait_s: float | None = None) -> KeyLock:
        """Take ``key``'s lock (waiting up to ``wait_s``, default ``lock_wait_s``; 0: no wait),
        then catch up, so the record read next is the last holder's.

        Raises:
            Locked: still held after the wait; names the holder and says to re-run.
            JournalError: the store is not open.
        """
        ranges = self._ranges  # no mutex: a writer of this process may hold it over an fsync
        if ranges is None:
            raise JournalError(f"store {self._path} is not open (use `with open_store(…)`)")
        wait = self.lock_wait_s if wait_s is None else wait_s
        holder: list[int | None] = [None]

        def attempt() -> bool:
            holder[0] = ranges.try_lock(key)
            return holder[0] is None

        if not wait_for(attempt, wait):
            raise busy(key, holder[0], wait)
        lease = _Lease(ranges, key, self._leases)
        try:
            self.refresh()
        except BaseException:
            lease.release()
            raise
        return lease

    def forget(self, key: str) -> bool:
        """Drop ``key``'s entry (a forget line); False when there is none. Hold its lock."""
        self.refresh()
        return super().forget(key)

    def prune(self, predicate: Callable[[BindingRecord], bool]) -> list[str]:
        """Forget every entry matching ``predicate`` whose lock is free now (one group)."""
        self.refresh()
        leases: list[KeyLock] = []
        try:
            for key, record in self.bindings().items():
                if predicate(record):
                    with contextlib.suppress(Locked):
                        leases.append(self.lock(key, wait_s=0))
            with self.group():
                return [lease.key for lease in leases if self._forget_if(lease.key, predicate)]
        finally:
            for lease in leases:
                lease.release()

    def _forget_if(self, key: str, predicate: Callable[[BindingRecord], bool]) -> bool:
        record = self.get(key)
        return record is not None and predicate(record) and Journal.forget(self, key)

    # --- jobs ------------------------------------------------------------------------------------

    def open_job(self, job_id: str) -> JobFile:
        """Job ``job_id`` for driving (a version-1 job file is folded in first); use ``with``.

        Raises:
            InputError: a bad job id.
            ConfigError, JournalError: the job file cannot be read or upgraded (as :meth:`open`).
            Locked: another process drives this job (on entering the ``with`` block).
        """
        path = job_file(self.directory, job_id)
        self._fold(path)
        return JobFile(path, job_id, fsync=self._fsync)

    def job(self, job_id: str) -> JobState | None:
        """Job ``job_id`` read without its lock, or None when unknown.

        Raises:
            InputError: a bad job id.
            ConfigError, JournalError: the job file cannot be read (as :meth:`open`).
            JournalCorrupt: the job file is unreadable.
        """
        path = job_file(self.directory, job_id)
        self._fold(path)
        return read_job(path, job_id)

    def job_ids(self) -> list[str]:
        """Every job's id, oldest first."""
        return [p.stem for p in job_files(self.directory)]

    # --- opening, closing, rewriting -----------------------------------------------------------

    def open(self) -> Self:
        """Take the file lock (exclusive when alone, else shared), load, fold version 1 in.

        Raises:
            Locked: the file is held exclusively (a rewrite, or a process of the previous
                version) for longer than ``lock_wait_s``.
            JournalCorrupt: an unreadable line, a missing header or an unknown version.
            ConfigError: ``journal.dir`` cannot be used (a file in the way, read-only…; exit 2).
            JournalError: this object is already open, or a file could not be read or written.
        """
        try:
            return super().open()
        except BaseException:
            if self._lock is None:  # not opened: undo what the failed open did
                self._close_files()
            raise

    def close(self) -> None:
        """Flush, release every binding lock this store holds, close, drop the file lock."""
        for lease in list(self._leases):
            lease.release()
        try:
            super().close()
        finally:
            self._close_files()

    def _close_files(self) -> None:
        with self._mutex:
            for name in ("_read_fd", "_fd"):
                fd = getattr(self, name)
                if fd is not None:
                    os.close(fd)
                    setattr(self, name, None)
            if self._ranges is not None:
                self._ranges.detach()
                self._ranges = None

    def compact(self) -> None:
        """Rewrite the store with one line per binding, holding the file exclusively.

        Raises:
            Locked: other processes keep the store open for longer than ``lock_wait_s``.
            JournalError: as :meth:`Journal.compact`.
        """
        with self._mutex:
            assert self._file_lock is not None
            self._file_lock.exclusive(self.lock_wait_s)
            try:
                self.refresh()
                super().compact()
                self._reopen_reader()
                self._offset = self._size
            finally:
                self._file_lock.shared(self.lock_wait_s)
                self._resync()

    def _acquire_lock(self) -> FileLock:
        ensure_dir(self.directory)
        lock = FileLock(self._path.with_suffix(".jsonl.lock"),
                        self._path.with_suffix(".jsonl.holder"))
        try:
            self._exclusive = lock.try_exclusive()
            if not self._exclusive:
                lock.shared(self.lock_wait_s)
        except BaseException:
            lock.release()
            raise
        self._file_lock = lock
        return lock

    def _open_file(self) -> None:
        assert self._file_lock is not None
        if self._exclusive:
            self._open_exclusive()
        else:
            self._open_shared()
        self._ranges = RangeLocks.attach(self.directory / LOCKS_FILE)
        for path in job_files(self.directory):
            self._fold(path)

    def _open_exclusive(self) -> None:
        """Alone with the file: fold a version-1 file in, drop a torn tail, or create it."""
        assert self._file_lock is not None
        legacy.upgrade_store_file(self._path, fsync=self._fsync)
        super()._open_file()  # drops a torn tail, or creates the file with its header
        self._offset = self._size
        self._reopen_reader()
        self._file_lock.shared(self.lock_wait_s)
        self._exclusive = False
        self._resync()

    def _open_shared(self) -> None:
        """Others have the file open: load what is complete, append after it."""
        loaded = load(self._path) if self._path.exists() else None
        if loaded is None or loaded.created_at is None:  # no header: only an opener alone
            assert self._file_lock is not None  # may write one
            self._file_lock.exclusive(self.lock_wait_s)
            self._open_exclusive()
            return
        self._state, self._created_at = loaded.state, loaded.created_at
        self._offset = self._size = loaded.end
        self._fd = os.open(self._path, os.O_WRONLY | os.O_APPEND | os.O_CLOEXEC)
        self._reopen_reader()

    def _resync(self) -> None:
        """Follow a file replaced while the file lock was let go for a moment (``flock``
        drops a lock before converting it, see flock(2)): reopen and reload."""
        fd = self._require_open()
        if os.stat(self._path).st_ino == os.fstat(fd).st_ino:
            return
        os.close(fd)
        self._fd = os.open(self._path, os.O_WRONLY | os.O_APPEND | os.O_CLOEXEC)
        self._reopen_reader()
        self._reload()
        self._size = self._offset

    def _reopen_reader(self) -> None:
        if self._read_fd is not None:
            os.close(self._read_fd)
        self._read_fd = os.open(self._path, os.O_RDONLY | os.O_CLOEXEC)

    def _fold(self, path: Path) -> None:
        try:
            legacy.fold_job(path, get=self._fresh, adopt=self._adopt, fsync=self._fsync)
        except OSError as exc:
            raise location_error(exc, path, doing="read or upgrade") from exc

    def _fresh(self, key: str) -> BindingRecord | None:
        self.refresh()
        return self.get(key)

    def _adopt(self, lines: list[bytes], records: list[BindingRecord]) -> None:
        with self._mutex:
            self._write(self._require_open(), b"".join(lines))
            for record in records:
                self._state.forget(record.key)
                self._state.records[record.key] = record


class _Lease(KeyLock):
    """A binding lock that its store releases on close if the caller did not."""

    def __init__(self, ranges: RangeLocks, key: str, leases: set[KeyLock]) -> None:
        super().__init__(ranges, key)
        self._leases = leases
        leases.add(self)

    def release(self) -> None:
        self._leases.discard(self)
        super().release()

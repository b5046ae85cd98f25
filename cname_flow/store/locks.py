"""OS file locks of the JSON store: one byte-range lock per binding; a shared lock on the file.

Per-binding locks are POSIX record locks (``fcntl(2)`` ``F_SETLK``, see
https://man7.org/linux/man-pages/man2/fcntl.2.html) on one byte of ``<journal.dir>/bindings.locks``
at an offset derived from the binding key (BLAKE2b, 62 bits), so:

* a process holds any number of them on ONE descriptor (a batch of 10,000 bindings in flight
  holds 10,000 one-byte ranges, not 10,000 files);
* the kernel releases them when the process dies: there is no lease to expire by hand;
* ``F_GETLK`` names the holder's pid, and ``/proc/<pid>/cmdline`` its command (Linux).

POSIX record locks belong to the process, not to a descriptor, and closing *any* descriptor of
the file drops them all. So :class:`RangeLocks` keeps one descriptor per lock file per process
(closed only when nothing is held and no store uses it) and excludes the threads (and the store
objects) of its own process itself. Byte 0 is the append lock: held only around one ``write``.

The store file lock (:class:`FileLock`) is ``flock(2)``
(https://man7.org/linux/man-pages/man2/flock.2.html) on ``<store>.lock``: shared by every
writer for as long as it has the store open, exclusive only for what rewrites the file. It is the
file the previous version locked exclusively (with ``filelock``), so processes of both versions
exclude each other rather than corrupt the file.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import socket
import struct
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Final, Self

from cname_flow.errors import Locked
from cname_flow.journal.files import FILE_MODE, read_holder

#: Seconds between two attempts while waiting for a lock.
POLL_S: Final = 0.05
_FLOCK: Final = "hhqqi4x"  # struct flock on Linux: type, whence, start, len, pid (+ padding)
_SPAN: Final = 1 << 62

_registry_mutex = threading.Lock()
_registry: dict[Path, RangeLocks] = {}


def offset_of(key: str) -> int:
    """The byte of the lock file that stands for ``key``: in ``[1, 2**62]`` (0 is the append
    lock). Distinct keys collide with probability about n²/2⁶³ (none in practice)."""
    digest = hashlib.blake2b(key.encode("utf-8"), digest_size=8).digest()
    return 1 + int.from_bytes(digest, "big") % _SPAN


def describe_pid(pid: int | None) -> str:
    """``"pid N on host H (cname-flow bind a.example.com)"``, the command when readable."""
    if pid is None:
        return "another process (holder unknown)"
    command = command_of(pid)
    where = f"pid {pid} on host {socket.gethostname()}"
    return f"{where} ({command})" if command else where


def command_of(pid: int) -> str:
    """The command line of ``pid`` as a user typed it (``--config FILE`` left out), or ``""``."""
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return ""
    args = [a.decode("utf-8", "replace") for a in raw.split(b"\0") if a]
    if "cname_flow" in args and args.index("cname_flow") > 0:
        args = ["cname-flow", *args[args.index("cname_flow") + 1:]]
    elif args:
        args[0] = Path(args[0]).name
    while "--config" in args[:-1]:
        at = args.index("--config")
        del args[at:at + 2]
    return " ".join(args)[:160]


def wait_for(attempt: Callable[[], bool], wait_s: float,
             sleep: Callable[[float], None] = time.sleep) -> bool:
    """Call ``attempt`` until it returns True or ``wait_s`` seconds have passed (0: once)."""
    deadline = time.monotonic() + max(0.0, wait_s)
    while not attempt():
        left = deadline - time.monotonic()
        if left <= 0:
            return False
        sleep(min(POLL_S, left))
    return True


class RangeLocks:
    """This process's byte-range locks on one lock file (see the module docstring).

    Get it with :meth:`attach` and give it back with :meth:`detach`.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self._fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, FILE_MODE)
        self._mutex = threading.Lock()
        self._append_mutex = threading.Lock()
        self._held: dict[str, int] = {}
        self._users = 0

    @classmethod
    def attach(cls, path: Path) -> RangeLocks:
        """The process's table for the lock file ``path`` (opened on first use)."""
        path = path.resolve()
        with _registry_mutex:
            table = _registry.get(path)
            if table is None:
                table = _registry[path] = cls(path)
            table._users += 1
            return table

    def detach(self) -> None:
        """One user fewer; the descriptor closes when no user and no held lock is left."""
        with _registry_mutex:
            self._users -= 1
            self._close_if_idle()

    def try_lock(self, key: str) -> int | None:
        """Take ``key``'s byte now if free.

        Returns:
            None when taken; else the pid holding it (this process's own when another thread
            or store object of this process holds it), or 0 when the holder is unknown.
        """
        with self._mutex:
            if key in self._held:
                return os.getpid()
            offset = offset_of(key)
            try:
                fcntl.lockf(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB, 1, offset, os.SEEK_SET)
            except OSError:
                return self.holder(offset) or 0
            self._held[key] = offset
            return None

    def unlock(self, key: str) -> None:
        """Free ``key``'s byte (no-op when not held)."""
        with self._mutex:
            offset = self._held.pop(key, None)
            if offset is not None:
                fcntl.lockf(self._fd, fcntl.LOCK_UN, 1, offset, os.SEEK_SET)
        if offset is not None and not self._held:
            with _registry_mutex:
                self._close_if_idle()

    def holds(self, key: str) -> bool:
        """Whether this process holds ``key``'s lock."""
        with self._mutex:
            return key in self._held

    def holder(self, offset: int) -> int | None:
        """The pid of another process holding byte ``offset`` (``F_GETLK``), or None."""
        query = struct.pack(_FLOCK, fcntl.F_WRLCK, os.SEEK_SET, offset, 1, 0)
        try:
            answer = fcntl.fcntl(self._fd, fcntl.F_GETLK, query)
        except OSError:
            return None
        kind, _, _, _, pid = struct.unpack(_FLOCK, answer)
        return None if kind == fcntl.F_UNLCK else pid

    @contextlib.contextmanager
    def appending(self) -> Iterator[None]:
        """Hold the append lock (byte 0) of every process, and of this one's threads."""
        with self._append_mutex:
            fcntl.lockf(self._fd, fcntl.LOCK_EX, 1, 0, os.SEEK_SET)
            try:
                yield
            finally:
                fcntl.lockf(self._fd, fcntl.LOCK_UN, 1, 0, os.SEEK_SET)

    def _close_if_idle(self) -> None:  # call with _registry_mutex held
        if self._users <= 0 and not self._held and _registry.get(self.path) is self:
            del _registry[self.path]
            os.close(self._fd)


class KeyLock:
    """A held per-binding lock (:class:`~cname_flow.store.base.BindingLock`)."""

    def __init__(self, table: RangeLocks, key: str) -> None:
        self.key = key
        self._table: RangeLocks | None = table

    def release(self) -> None:
        """Free the lock (idempotent)."""
        table, self._table = self._table, None
        if table is not None:
            table.unlock(self.key)

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


def busy(key: str, pid: int | None, waited_s: float) -> Locked:
    """The :class:`Locked` error (exit 75) of binding ``key`` still held by ``pid`` (0 or None:
    unknown) after waiting ``waited_s`` seconds: names the holder, says to re-run."""
    holder = describe_pid(pid or None)
    waited = f" (waited {waited_s:g} s)" if waited_s else ""
    return Locked(f"binding {key} is in use by {holder}{waited}", holder=holder,
                  hint="re-run the same command once that one is done; it resumes from the "
                       "store (journal.lock_wait_s sets how long to wait)")


class FileLock:
    """``flock(2)`` on the store's lock file: shared for writers, exclusive for rewrites.

    Args:
        path: the lock file (``<store>.lock``), created ``0600``.
        holder_path: side file naming an exclusive holder (read to name a busy holder).
    """

    def __init__(self, path: Path, holder_path: Path) -> None:
        self.path = path
        self.holder_path = holder_path
        self._fd: int | None = None

    def try_exclusive(self) -> bool:
        """Take the lock exclusively if no one holds it at all (shared or not)."""
        return self._try(fcntl.LOCK_EX)

    def shared(self, wait_s: float) -> None:
        """Hold the lock shared (converting an exclusive hold), waiting up to ``wait_s``.

        Raises:
            Locked: someone holds it exclusively (a compaction, a fold-in, a process of the
                previous version) for longer than ``wait_s``.
        """
        if not wait_for(lambda: self._try(fcntl.LOCK_SH), wait_s):
            raise self._busy(wait_s, "in use by")

    def exclusive(self, wait_s: float) -> None:
        """Hold the lock exclusively (converting a shared hold), waiting up to ``wait_s``.

        Raises:
            Locked: other writers still hold it after ``wait_s``.
        """
        if not wait_for(lambda: self._try(fcntl.LOCK_EX), wait_s):
            raise self._busy(wait_s, "still open in")

    def release(self) -> None:
        """Drop the lock and close the descriptor (idempotent)."""
        fd, self._fd = self._fd, None
        if fd is not None:
            os.close(fd)

    def _try(self, mode: int) -> bool:
        if self._fd is None:
            self._fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, FILE_MODE)
        try:
            fcntl.flock(self._fd, mode | fcntl.LOCK_NB)
        except BlockingIOError:
            return False
        return True

    def _busy(self, wait_s: float, what: str) -> Locked:
        holder = read_holder(self.holder_path) or "another process"
        store = self.path.with_suffix("")
        return Locked(f"store {store} is {what} {holder} (waited {wait_s:g} s)", holder=holder,
                      hint="re-run the same command once that one is done")

"""File-system helpers of the journal: the holder-naming lock, modes, atomic replace, fsync.

:class:`HolderLock` is also the reconcile run lock (:func:`cname_flow.reconcile.run.run_lock`).

Files are created ``0600`` and a missing directory ``0700``, whatever the umask.

:func:`location_error` and :func:`disk_error` turn an ``OSError`` of the journal's files into
the error a command reports (never a traceback): a location that cannot be used (``journal.dir``
is a file, read-only, not ours) is a :class:`~cname_flow.errors.ConfigError` (exit 2); a full
disk or quota is a retryable :class:`~cname_flow.errors.JournalError` (exit 75: the re-run
resumes from the store); anything else a :class:`~cname_flow.errors.JournalError` (exit 1).
"""

from __future__ import annotations

import contextlib
import errno
import glob
import json
import os
import socket
import tempfile
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType
from typing import Final, Self

from filelock import FileLock, Timeout

from cname_flow.errors import CnameFlowError, ConfigError, JournalError, Locked
from cname_flow.journal.records import format_ts

FILE_MODE: Final = 0o600
DIR_MODE: Final = 0o700

#: Errors of a location that cannot be used as it is: the user must change it (exit 2).
_LOCATION_ERRNOS: Final = frozenset({
    errno.ENOTDIR, errno.EISDIR, errno.EACCES, errno.EPERM, errno.EROFS, errno.ENAMETOOLONG,
    errno.ELOOP, errno.EEXIST,
})
#: A full file system or quota: temporary, the same command resumes once space is freed.
_FULL_ERRNOS: Final = frozenset({errno.ENOSPC, errno.EDQUOT})


def disk_error(exc: OSError, path: Path, *, doing: str) -> JournalError:
    """The error to raise for ``exc``, an ``OSError`` met while ``doing`` (``"append to"``…)
    the journal file ``path``.

    Returns:
        For ``ENOSPC`` / ``EDQUOT``: a :class:`JournalError` with ``retryable`` True (exit 75)
        whose message says the disk is full and where; else a :class:`JournalError` (exit 1)
        naming the file and the system's reason.
    """
    reason = exc.strerror or str(exc)
    if exc.errno in _FULL_ERRNOS:
        error = JournalError(
            f"disk full: cannot {doing} {path} ({reason})",
            hint=f"free space on the file system holding {path.parent} (or raise the quota), "
            "then re-run the same command: it resumes from the store",
        )
        error.retryable = True
        return error
    return JournalError(f"cannot {doing} {path}: {reason}")


def location_error(exc: OSError, path: Path, *, doing: str = "use") -> CnameFlowError:
    """The error to raise for ``exc``, an ``OSError`` met while opening or reading the journal
    at ``path`` (a file under ``journal.dir``, or the directory itself).

    Returns:
        A :class:`ConfigError` (exit 2) naming ``journal.dir`` when the location cannot be used
        as it is (a file where a directory should be or the reverse, no permission, a read-only
        file system, a name too long); else what :func:`disk_error` returns.
    """
    if exc.errno not in _LOCATION_ERRNOS:
        return disk_error(exc, path, doing=doing)
    where = exc.filename if isinstance(exc.filename, str) else str(path)
    reason = exc.strerror or str(exc)
    if exc.errno == errno.ENOTDIR:
        reason += " (a file is in the way)"
    error = ConfigError([f"journal.dir: cannot {doing} {where}: {reason}"])
    error.hint = "journal.dir must name a directory this user can create, read and write"
    return error


class HolderLock:
    """A non-blocking ``filelock`` plus a side file naming its holder (pid, host, since).

    The holder goes in a side file because every contender opens the lock file itself. The
    side file is advisory: a stale one left by a crash is simply overwritten by the next
    holder, and it is removed on release when it still names this holder (a side file another
    process wrote meanwhile, e.g. over a lock file deleted by hand, is left to it). Both files
    are ``0600`` whatever the umask. Usable as a context manager.

    Args:
        lock_path: the lock file, created ``0600``.
        holder_path: the side file, JSON ``{"pid", "host", "since"}``, ``0600``.
        busy: builds the :class:`~cname_flow.errors.Locked` message from the holder's
            description (``"pid N on host H (since …)"``, or ``""`` when unknown).
        hint: the hint of that error, or ``""``.
    """

    def __init__(
        self, lock_path: Path, holder_path: Path, *, busy: Callable[[str], str], hint: str = ""
    ) -> None:
        self._lock = FileLock(str(lock_path), mode=FILE_MODE, thread_local=False)
        self._holder = holder_path
        self._busy = busy
        self._hint = hint
        self._mine: bytes | None = None  # the side file's content as this holder wrote it

    @classmethod
    def for_journal(cls, journal: Path) -> HolderLock:
        """The lock of a journal file: ``<journal>.lock`` and ``<journal>.holder``."""
        return cls(
            journal.with_suffix(journal.suffix + ".lock"),
            journal.with_suffix(journal.suffix + ".holder"),
            busy=lambda holder: f"journal {journal} is in use by "
            + (holder or "another process (holder unknown)"),
        )

    def acquire(self) -> None:
        """Take the lock or fail at once.

        Raises:
            Locked: another process (or another lock object over the same file) holds it;
                ``.holder`` reads ``"pid N on host H (since …)"`` when the side file tells.
        """
        try:
            self._lock.acquire(blocking=False)
        except Timeout:
            holder = self._read_holder()
            raise Locked(self._busy(holder), holder=holder, hint=self._hint) from None
        try:
            self._write_holder()
        except BaseException:
            self._lock.release()
            raise

    def release(self) -> None:
        """Remove the side file if it still names this holder, and release the lock."""
        mine, self._mine = self._mine, None
        try:
            if mine is not None and self._holder.read_bytes() == mine:
                self._holder.unlink()
        except OSError:
            pass  # gone already, or unreadable: not ours to remove
        finally:
            self._lock.release()

    def __enter__(self) -> Self:
        self.acquire()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.release()

    def _write_holder(self) -> None:
        self._mine = write_holder(self._holder)

    def _read_holder(self) -> str:
        return read_holder(self._holder)


def write_holder(path: Path) -> bytes:
    """Name this process as a lock's holder in the side file ``path`` (pid, host, since),
    ``0600``; return the bytes written (JSON).

    Raises:
        OSError: the side file could not be written.
    """
    since = format_ts(datetime.now(UTC))
    text = json.dumps({"pid": os.getpid(), "host": socket.gethostname(), "since": since})
    data = text.encode("utf-8")
    replace_file(path, data, durable=False)
    return data


def read_holder(path: Path) -> str:
    """``"pid N on host H (since …)"`` from a holder side file, or ``""`` when it tells nothing."""
    try:
        info = json.loads(path.read_text(encoding="utf-8"))
        return f"pid {int(info['pid'])} on host {info['host']} (since {info['since']})"
    except (OSError, ValueError, KeyError, TypeError):
        return ""


def ensure_dir(directory: Path) -> None:
    """Create ``directory`` (and parents) when missing; the directory itself gets ``0700``."""
    try:
        directory.mkdir(mode=DIR_MODE, parents=True)
    except FileExistsError:
        return
    os.chmod(directory, DIR_MODE)  # mkdir's mode is filtered by the umask


def remove_stale_temps(path: Path) -> None:
    """Delete temp files a crashed :func:`replace_file` of ``path`` left behind (hold the lock)."""
    for temp in path.parent.glob(f".{glob.escape(path.name)}.*.tmp"):
        with contextlib.suppress(FileNotFoundError):
            temp.unlink()


def fsync_dir(directory: Path) -> None:
    """Make a create, rename or unlink inside ``directory`` durable."""
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_all(fd: int, data: bytes) -> None:
    """``os.write`` until every byte of ``data`` is written.

    Raises:
        OSError: from ``write(2)`` (``ENOSPC``, ``EIO``…).
    """
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def open_append(path: Path) -> int:
    """Open (creating it ``0600``) ``path`` for ``O_APPEND`` writes; return the descriptor."""
    flags = os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC
    fd = os.open(path, flags, FILE_MODE)
    try:
        os.fchmod(fd, FILE_MODE)
    except BaseException:
        os.close(fd)
        raise
    return fd


def replace_file(path: Path, data: bytes, *, durable: bool, mode: int = FILE_MODE) -> None:
    """Atomically replace ``path`` with ``data``, with permission bits ``mode`` (default
    ``0600``) whatever the umask.

    Temp file in the same directory, ``fsync`` (when ``durable``), ``rename``, directory
    ``fsync`` (when ``durable``): a crash leaves the old or the new content, never a mix.

    Raises:
        OSError: writing, syncing or renaming failed; the temp file is removed.
    """
    fd, temp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        try:
            os.fchmod(fd, mode)
            write_all(fd, data)
            if durable:
                os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(temp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temp)
        raise
    if durable:
        fsync_dir(path.parent)

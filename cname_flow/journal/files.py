"""File-system helpers of the journal: the holder-naming lock, modes, atomic replace, fsync.

Files are created ``0600`` and a missing directory ``0700``, whatever the umask.
"""

from __future__ import annotations

import contextlib
import glob
import json
import os
import socket
import tempfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Final

from filelock import FileLock, Timeout

from cname_flow.errors import JournalLocked
from cname_flow.journal.records import format_ts

FILE_MODE: Final = 0o600
DIR_MODE: Final = 0o700


class JournalLock:
    """Non-blocking ``filelock`` on ``<journal>.lock`` plus a ``<journal>.holder`` side file.

    The holder (pid, host, since) goes in a side file because every contender opens the lock
    file itself. The side file is advisory: a stale one left by a crash is simply overwritten
    by the next holder.

    Args:
        journal: the journal file the lock protects.
    """

    def __init__(self, journal: Path) -> None:
        self._journal = journal
        lock_path = journal.with_suffix(journal.suffix + ".lock")
        self._lock = FileLock(str(lock_path), mode=FILE_MODE, thread_local=False)
        self._holder = journal.with_suffix(journal.suffix + ".holder")

    def acquire(self) -> None:
        """Take the lock or fail at once.

        Raises:
            JournalLocked: another process (or another ``Journal`` object) holds it; the
                message and ``.holder`` read ``"pid N on host H (since …)"``.
        """
        try:
            self._lock.acquire(blocking=False)
        except Timeout:
            holder = self._read_holder()
            by = holder or "another process (holder unknown)"
            message = f"journal {self._journal} is in use by {by}"
            raise JournalLocked(message, holder=holder) from None
        try:
            self._write_holder()
        except BaseException:
            self._lock.release()
            raise

    def release(self) -> None:
        """Forget the holder and release the lock."""
        with contextlib.suppress(FileNotFoundError):
            self._holder.unlink()
        self._lock.release()

    def _write_holder(self) -> None:
        since = format_ts(datetime.now(UTC))
        text = json.dumps({"pid": os.getpid(), "host": socket.gethostname(), "since": since})
        replace_file(self._holder, text.encode("utf-8"), durable=False)

    def _read_holder(self) -> str:
        try:
            info = json.loads(self._holder.read_text(encoding="utf-8"))
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


def replace_file(path: Path, data: bytes, *, durable: bool) -> None:
    """Atomically replace ``path`` with ``data``, mode ``0600``.

    Temp file in the same directory, ``fsync`` (when ``durable``), ``rename``, directory
    ``fsync`` (when ``durable``): a crash leaves the old or the new content, never a mix.

    Raises:
        OSError: writing, syncing or renaming failed; the temp file is removed.
    """
    fd, temp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        try:
            os.fchmod(fd, FILE_MODE)
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

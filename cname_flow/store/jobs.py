"""Job files of the JSON store: ``<journal.dir>/jobs/<job-id>.jsonl``.

A job file holds only the job: its metadata (manifest path, options), its members (binding
keys, in manifest order) and its events (``started``, ``stopped``); the bindings' state lives in
the store of record. It is a :class:`~cname_flow.journal.Journal` (JSON Lines, fsync, torn tail
dropped, ``0600``) whose exclusive lock keeps a second driver of the same job out.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Final

from cname_flow.errors import InputError
from cname_flow.journal import Journal
from cname_flow.store.base import JobState

JOBS_DIR: Final = "jobs"
#: Longest job id, in UTF-8 bytes. The id is a file name's stem: the longest name made from it,
#: a temp file of an atomic rewrite (``.<id>.jsonl.<8 chars>.tmp``), adds 20 bytes, and one
#: path component holds at most 255 bytes (``NAME_MAX``); 200 leaves a margin.
MAX_JOB_ID_BYTES: Final = 200


def jobs_dir(directory: Path) -> Path:
    """``<directory>/jobs``: where every job file lives."""
    return Path(directory) / JOBS_DIR


def job_file(directory: Path, job_id: str) -> Path:
    """The file of job ``job_id`` under the store directory ``directory``.

    Raises:
        InputError: the id is not a plain name (letters, digits, ``-``, ``_``, ``.``, not
            starting with ``.``) or is longer than :data:`MAX_JOB_ID_BYTES` in UTF-8.
    """
    shown = job_id if len(job_id) <= 40 else job_id[:40] + "…"
    if len(job_id.encode("utf-8", "surrogatepass")) > MAX_JOB_ID_BYTES:
        raise InputError(f"job id {shown!r} is too long: at most {MAX_JOB_ID_BYTES} bytes")
    if not job_id or not all(c.isalnum() or c in "-_." for c in job_id) or job_id[0] == ".":
        raise InputError(f"job id {shown!r}: use letters, digits, '-', '_' and '.' only")
    return jobs_dir(directory) / f"{job_id}.jsonl"


def job_files(directory: Path) -> list[Path]:
    """Every job file under ``<directory>/jobs``, oldest first (by modification time)."""
    folder = jobs_dir(directory)
    if not folder.is_dir():
        return []
    return sorted(folder.glob("*.jsonl"), key=lambda p: (os.stat(p).st_mtime, p.name))


class JobFile(Journal):
    """An open job (:class:`~cname_flow.store.base.JobLog`); use as a context manager.

    Args:
        path: the job file.
        job_id: the job's id.
        fsync: as :class:`~cname_flow.journal.Journal`.

    Raises (on open):
        Locked: another process drives the job.
    """

    def __init__(self, path: Path, job_id: str, *, fsync: bool = True) -> None:
        super().__init__(path, fsync=fsync)
        self._job_id = job_id

    @property
    def job_id(self) -> str:
        """The job's id."""
        return self._job_id

    def state(self) -> JobState:
        """The job's meta, members and events as recorded."""
        return JobState(self._job_id, str(self.path), dict(self.meta), self.members,
                        self.job_events)


def read_job(path: Path, job_id: str) -> JobState | None:
    """Job ``job_id`` from ``path`` without its lock, or None when there is no such file.

    Raises:
        JournalCorrupt: the file is unreadable.
    """
    if not path.exists():
        return None
    snap = Journal.read_only(path)
    return JobState(job_id, str(path), dict(snap.meta), snap.members, snap.job_events)

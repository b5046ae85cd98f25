"""Jobs of the PostgreSQL store: ``cname_flow.jobs``, ``job_members``, ``job_events``.

A job holds only its metadata, its members (binding keys, in the order added) and its events,
as a JSON store job file does (:mod:`cname_flow.store.jobs`); the bindings' state is in
``cname_flow.bindings``. One driver at a time: :class:`PgJob` holds the advisory lock of
``"job:<id>"`` (:mod:`cname_flow.store.pg_locks`) while open.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Self, cast

from cname_flow.errors import JournalCorrupt
from cname_flow.journal.codec import JobLine, decode_line, encode_job_event, encode_members
from cname_flow.journal.records import JobEvent, OutputValue, guard_values, merge_outputs
from cname_flow.store.base import JobState
from cname_flow.store.jobs import job_file
from cname_flow.store.pg_conn import SCHEMA, Connections
from cname_flow.store.pg_locks import PgLease, PgLocks, busy


def check_job_id(job_id: str) -> None:
    """Refuse a job id the JSON store would refuse too (same rule, so jobs move between them).

    Raises:
        InputError: not letters, digits, ``-``, ``_``, ``.``; or too long.
    """
    job_file(Path("."), job_id)


def read_job(conns: Connections, job_id: str) -> JobState | None:
    """Job ``job_id`` without its lock, or None when unknown.

    Raises:
        InputError: a bad job id. JournalError: PostgreSQL unreachable.
        JournalCorrupt: a job event that does not decode.
    """
    check_job_id(job_id)
    with conns.transaction("read a job from") as cur:
        cur.execute(f"SELECT meta FROM {SCHEMA}.jobs WHERE job_id = %s", (job_id,))
        row = cur.fetchone()
        if row is None:
            return None
        cur.execute(f"SELECT key FROM {SCHEMA}.job_members WHERE job_id = %s ORDER BY ord",
                    (job_id,))
        members = tuple(str(r[0]) for r in cur.fetchall())
        cur.execute(f"SELECT event FROM {SCHEMA}.job_events WHERE job_id = %s ORDER BY id",
                    (job_id,))
        events = tuple(_job_event(r[0], job_id) for r in cur.fetchall())
    meta = cast(dict[str, OutputValue], row[0])
    return JobState(job_id, f"{conns.location} (job {job_id})", dict(meta), members, events)


def job_ids(conns: Connections) -> list[str]:
    """Every job's id, oldest first.

    Raises:
        JournalError: PostgreSQL unreachable.
    """
    with conns.transaction("list the jobs of") as cur:
        cur.execute(f"SELECT job_id FROM {SCHEMA}.jobs ORDER BY seq")
        return [str(r[0]) for r in cur.fetchall()]


def _job_event(value: object, job_id: str) -> JobEvent:
    line = decode_line(value)
    if not isinstance(line, JobLine):
        raise JournalCorrupt(f"job {job_id}: a job event row is not a job event")
    return line.event


class PgJob:
    """An open job (:class:`~cname_flow.store.base.JobLog`); use as a context manager.

    Raises (on entering):
        Locked: another process (or store) drives the job.
        JournalError: PostgreSQL unreachable.
    """

    def __init__(self, conns: Connections, locks: PgLocks, job_id: str) -> None:
        check_job_id(job_id)
        self._conns = conns
        self._locks = locks
        self._job_id = job_id
        self._lease: PgLease | None = None

    @property
    def job_id(self) -> str:
        """The job's id."""
        return self._job_id

    def __enter__(self) -> Self:
        key = f"job:{self._job_id}"
        holder = self._locks.try_lock(key)
        if holder is not None:
            raise busy(f"batch job {self._job_id}", holder, 0)
        self._lease = PgLease(self._locks, key)
        try:
            with self._conns.transaction("create a job in") as cur:
                cur.execute(f"INSERT INTO {SCHEMA}.jobs (job_id) VALUES (%s) "
                            "ON CONFLICT (job_id) DO NOTHING", (self._job_id,))
        except BaseException:
            self._lease.release()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        if self._lease is not None:
            self._lease.release()
            self._lease = None

    def state(self) -> JobState:
        """The job's meta, members and events as recorded."""
        found = read_job(self._conns, self._job_id)
        return found or JobState(self._job_id, self._conns.location, {}, ())

    def set_meta(self, **values: OutputValue) -> None:
        """Merge job metadata (``None`` deletes a key).

        Raises:
            ValueError: a secret or a value that is not ``str | int | float | bool | None``.
            JournalError: PostgreSQL unreachable (nothing written).
        """
        guard_values(values, what="job meta")
        with self._conns.transaction("write a job to") as cur:
            cur.execute(f"SELECT meta FROM {SCHEMA}.jobs WHERE job_id = %s FOR UPDATE",
                        (self._job_id,))
            row = cur.fetchone()
            meta = cast(dict[str, OutputValue], row[0] if row else {})
            merged = merge_outputs(meta, values)
            cur.execute(f"INSERT INTO {SCHEMA}.jobs (job_id, meta) VALUES (%s, %s::jsonb) "
                        "ON CONFLICT (job_id) DO UPDATE SET meta = excluded.meta",
                        (self._job_id, json.dumps(merged)))

    def add_members(self, keys: Sequence[str]) -> None:
        """Add binding keys to the job, in order (keys already in it are skipped).

        Raises:
            ValueError: a key is not ``"<bucket>/<domain>"``.
            JournalError: PostgreSQL unreachable (nothing written).
        """
        new = list(dict.fromkeys(keys))
        if not new:
            return
        encode_members(new, datetime.now(UTC))  # the key check
        with self._conns.transaction("write a job to") as cur:
            cur.executemany(f"INSERT INTO {SCHEMA}.job_members (job_id, key) VALUES (%s, %s) "
                            "ON CONFLICT DO NOTHING", [(self._job_id, k) for k in new])

    def note(self, name: str, **values: OutputValue) -> None:
        """Record a job event (``"started"``, ``"stopped"``).

        Raises:
            ValueError: a secret or a value that is not ``str | int | float | bool | None``.
            JournalError: PostgreSQL unreachable (nothing written).
        """
        line = encode_job_event(JobEvent(name, dict(values)))
        with self._conns.transaction("write a job to") as cur:
            cur.execute(f"INSERT INTO {SCHEMA}.job_events (job_id, event) VALUES (%s, %s::jsonb)",
                        (self._job_id, line.decode("utf-8")))

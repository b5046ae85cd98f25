"""The store port: the one store of record every entry point reads and writes.

``bind``, ``unbind``, ``plan``, ``status``, ``cert``, batch jobs and reconcile share the binding
records kept here, keyed by binding (``"<bucket>/<domain>"``); a batch job is a named set of
binding keys plus job events, not a second copy of their state (docs: the README, "The store of
record"). The JSON journal (:class:`cname_flow.store.json.JsonStore`) is the embedded default; a
PostgreSQL-backed store (scale-out, with DBOS) implements the same Protocols.

Three levels, narrowest first, so each user asks only for what it needs:

* :class:`RecordLog`: read one binding's record, append its events (the workflow's runner and
  driver; the batch engine's group committer adds :meth:`RecordLog.record_many`).
* :class:`BindingLocks`: one lock per binding, held while the binding is in flight, so many
  processes drive different bindings at once and never the same one twice.
* :class:`BindingStore`: both, plus catching up with other writers, every record, forgetting and
  pruning entries, and jobs (:class:`JobLog`).

What an implementation must guarantee (the workflow relies on it):

* :meth:`RecordLog.record` returns only once the event is durable; intent (``running``) is
  recorded before a side effect. Events of one binding are applied in the order recorded.
* :meth:`BindingLocks.lock` returns only once the store shows every event recorded by the
  previous holder of that binding (a fresh ``get`` after locking is never stale).
* A lock dies with its holder (no lease to expire by hand); a second holder waits up to the
  bounded wait, then gets :class:`~cname_flow.errors.Locked` naming the holder.
* Secrets never reach the store (events are guarded before they are written).

This module imports no vendor SDK and no driver: only value types.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from types import TracebackType
from typing import Protocol

from cname_flow.journal.records import BindingRecord, JobEvent, JournalEvent, OutputValue
from cname_flow.model import AuxStep, Phase


class RecordReader(Protocol):
    """Read access to binding records (the workflow's start-or-resume)."""

    def get(self, key: str) -> BindingRecord | None:
        """The record of ``key`` (``"<bucket>/<domain>"``) as this process last saw it, or None.

        Records are replaced, never mutated; treat them as read-only.
        """
        ...


class RecordLog(RecordReader, Protocol):
    """Append-only event log of binding transitions (what a driver of the machine needs)."""

    def record(self, event: JournalEvent) -> BindingRecord:
        """Append one event durably; return the binding's record after it.

        Raises:
            ValueError: a malformed event or a secret among its outputs (nothing written).
            JournalError: the write failed (nothing recorded).
        """
        ...

    def record_many(self, events: Sequence[JournalEvent]) -> None:
        """Append several events as one group: one durable write (group commit).

        Raises:
            ValueError: as :meth:`record`, for any of them; nothing is written then.
            JournalError: as :meth:`record`; none of them is recorded then.
        """
        ...


class BindingLock(Protocol):
    """A held per-binding lock; :meth:`release` (or leaving the ``with`` block) frees it."""

    key: str

    def release(self) -> None:
        """Free the lock (idempotent)."""
        ...

    def __enter__(self) -> BindingLock: ...

    def __exit__(self, *exc: object) -> None: ...


class BindingLocks(Protocol):
    """Per-binding locks (never one lock for the whole store)."""

    def lock(self, key: str, *, wait_s: float | None = None) -> BindingLock:
        """Take ``key``'s lock, waiting up to ``wait_s`` seconds (None: the store's default,
        ``journal.lock_wait_s``; 0: do not wait); then catch up with the store.

        Raises:
            Locked: still held after the wait; names the holder (pid, host, command) and says
                to re-run the same command.
        """
        ...


@dataclass(frozen=True, slots=True)
class JobState:
    """A job as the store keeps it: which bindings, how it was started, what happened to it.

    Attributes:
        job_id: the job's id.
        location: where it is kept (the job file for the JSON store).
        meta: how it was started: ``manifest`` (absolute path), ``bucket``, ``region``,
            ``concurrency``, ``created``, ``job_id``.
        members: binding keys of the job, in manifest order.
        events: job events (``started``/``stopped`` with pid, signal…), oldest first.
    """

    job_id: str
    location: str
    meta: Mapping[str, OutputValue]
    members: tuple[str, ...]
    events: tuple[JobEvent, ...] = ()


class JobLog(Protocol):
    """An open job, held by one driver at a time (a second gets Locked)."""

    @property
    def job_id(self) -> str:
        """The job's id."""
        ...

    def state(self) -> JobState:
        """The job's meta, members and events as recorded."""
        ...

    def set_meta(self, **values: OutputValue) -> None:
        """Merge job metadata (``None`` deletes a key).

        Raises:
            ValueError: a secret or a value that is not ``str | int | float | bool | None``.
        """
        ...

    def add_members(self, keys: Sequence[str]) -> None:
        """Add binding keys to the job (keys already in it are skipped)."""
        ...

    def note(self, name: str, **values: OutputValue) -> None:
        """Record a job event (``"started"``, ``"stopped"``)."""
        ...


class BindingStore(RecordLog, BindingLocks, Protocol):
    """The store of record (see the module docstring). Open it as a context manager."""

    def __enter__(self) -> BindingStore:
        """Open the store (connect, load…); see each implementation for what it raises."""
        ...

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        """Flush, release every lock this store holds, close."""
        ...

    @property
    def location(self) -> str:
        """Where the store lives (a file for the JSON store, a DSN without password for SQL)."""
        ...

    def refresh(self) -> None:
        """Catch up with what other processes recorded since the last read (incremental).

        Raises:
            JournalCorrupt: the store holds an unreadable line.
        """
        ...

    def bindings(self) -> Mapping[str, BindingRecord]:
        """Every binding's record by key (a read-only copy), as of the last catch-up."""
        ...

    def records(self, keys: Sequence[str]) -> Mapping[str, BindingRecord]:
        """The records of those ``keys`` that exist, read at once (a job's members: one query
        for the PostgreSQL store, not one per binding)."""
        ...

    def group(self) -> AbstractContextManager[None]:
        """Batch mode: records inside the block are made durable together when it exits."""
        ...

    def events(self, key: str | None = None) -> Iterator[JournalEvent]:
        """History, oldest first, optionally of one binding (for display)."""
        ...

    def forget(self, key: str) -> bool:
        """Drop ``key``'s entry; False when there was none (nothing written).

        The caller holds ``key``'s lock (:meth:`BindingLocks.lock`).
        """
        ...

    def prune(self, predicate: Callable[[BindingRecord], bool]) -> list[str]:
        """Forget every entry for which ``predicate`` holds and whose lock is free now.

        Returns:
            The keys forgotten, in store order (entries whose lock is held are left).
        """
        ...

    def open_job(self, job_id: str) -> AbstractContextManager[JobLog]:
        """Open (creating it) job ``job_id`` for driving.

        Raises:
            Locked: another process drives this job.
        """
        ...

    def job(self, job_id: str) -> JobState | None:
        """Job ``job_id`` read without its lock (safe while it runs), or None when unknown."""
        ...

    def job_ids(self) -> list[str]:
        """Every job's id, oldest first."""
        ...


def never_started(record: BindingRecord) -> bool:
    """True when nothing of the binding exists outside the store: no token minted, no DNS
    record written, no PutCname made (e.g. a bind that failed at once on a typo'd bucket).

    Such entries, and unbound ones (:func:`prunable`), can be pruned without losing anything.
    """
    if record.phase not in (Phase.PENDING, Phase.FAILED):
        return False
    made = (record.token, record.txt_record_id, record.route_record_id, record.put_request_id)
    return all(value is None for value in made)


def prunable(record: BindingRecord) -> bool:
    """The default pruning rule: the binding was unbound, or it never started."""
    return record.phase == Phase.UNBOUND or record.last_step == AuxStep.UNBIND or never_started(
        record)

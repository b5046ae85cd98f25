"""The PostgreSQL store of record: the same port as the JSON store, shared by many hosts.

Tables, in schema ``cname_flow`` of the database of ``store.url`` (DBOS keeps its own in
``dbos``), created on open (:mod:`cname_flow.store.pg_conn`):

* ``bindings(key, record)``: each binding's replayed record (the JSON journal's compacted line,
  :func:`~cname_flow.journal.codec.encode_snapshot`), ``record`` NULL once forgotten;
* ``events(id, key, event)``: every event in the journal's own line format, oldest first;
* ``jobs``, ``job_members``, ``job_events`` (:mod:`cname_flow.store.pg_jobs`);
* ``lock_holders``: who holds which binding (:mod:`cname_flow.store.pg_locks`);
* ``migrated``: lines already copied in by ``cname-flow store migrate``.

Guarantees (the port's, :mod:`cname_flow.store.base`):

* :meth:`PgStore.record` is one transaction of two statements: lock and read the binding's row
  (``INSERT … ON CONFLICT DO UPDATE … RETURNING``: creates it empty or locks it as ``SELECT …
  FOR UPDATE`` would), fold the event in with the journal's own
  :func:`~cname_flow.journal.records.apply_event`, then append the event and write the record
  (one statement), commit; it returns once committed. Events of one binding
  apply in commit order. :meth:`PgStore.record_many` and :meth:`PgStore.group` commit the lot
  in one transaction.
* Reads go to PostgreSQL (``get`` is never stale), so :meth:`PgStore.lock` needs no catch-up.
* Locks are session advisory locks that die with their holder's connection.
* A lost connection (PostgreSQL restarting) is a retryable
  :class:`~cname_flow.errors.JournalError`; the next call connects afresh.
* The password of the URL never reaches an error, a log line or :attr:`PgStore.location`.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from types import MappingProxyType
from typing import Any, Final, Self

from cname_flow.errors import JournalCorrupt, JournalError, Locked
from cname_flow.journal.codec import EventLine, decode_line, encode_event, encode_snapshot
from cname_flow.journal.records import BindingRecord, JournalEvent, apply_event
from cname_flow.store.base import JobState
from cname_flow.store.locks import wait_for
from cname_flow.store.pg_conn import SCHEMA, Connections, ensure_schema, mask_url
from cname_flow.store.pg_jobs import PgJob, job_ids, read_job
from cname_flow.store.pg_locks import PgLease, PgLocks, busy, lock_parts

#: Default of ``journal.lock_wait_s`` (as the JSON store's), seconds.
LOCK_WAIT_S: Final = 30.0

#: Lock the rows of keys (sorted: two groups never deadlock), creating missing ones empty, and
#: return their records: one statement (``ON CONFLICT DO UPDATE`` locks an existing row).
_LOCK: Final = (
    f"INSERT INTO {SCHEMA}.bindings AS b (key) SELECT k FROM unnest(%s::text[]) AS k ORDER BY k "
    "ON CONFLICT (key) DO UPDATE SET key = b.key RETURNING b.key, b.record")
#: Append the events (in order) and write the records: one statement.
_WRITE: Final = (
    f"WITH appended AS (INSERT INTO {SCHEMA}.events (key, event) SELECT k, e::jsonb "
    "FROM unnest(%s::text[], %s::text[]) WITH ORDINALITY AS u(k, e, n) ORDER BY n) "
    f"UPDATE {SCHEMA}.bindings AS b SET record = v.r::jsonb, updated_at = now() "
    "FROM unnest(%s::text[], %s::text[]) AS v(k, r) WHERE b.key = v.k")


def encode_record(record: BindingRecord) -> str:
    """``record`` as the JSON text kept in ``bindings.record`` (a compacted journal line)."""
    return encode_snapshot(record).decode("utf-8")


def decode_record(value: object, key: str) -> BindingRecord:
    """The record kept in ``bindings.record`` (decoded JSON).

    Raises:
        JournalCorrupt: it is not a compacted journal line.
    """
    try:
        line = decode_line(value)
    except ValueError as exc:
        raise JournalCorrupt(f"binding {key}: stored record is unreadable: {exc}") from None
    if not isinstance(line, EventLine) or line.snapshot is None:
        raise JournalCorrupt(f"binding {key}: stored record is not a record")
    return apply_event(None, line.event, line.snapshot)


class PgStore:
    """The PostgreSQL store (:class:`~cname_flow.store.base.BindingStore`); see the module
    docstring. Use as a context manager. Thread-safe: any thread may call anything.

    Args:
        url: ``postgresql://…`` (libpq URI); a password in it is never shown.
        lock_wait_s: default wait for a busy binding, seconds (``journal.lock_wait_s``).
        pool_size: most connections lent out at once for transactions (the lock session is
            one more).

    Raises (on open):
        JournalError: PostgreSQL unreachable (retryable), or the schema cannot be made.
    """

    def __init__(self, url: str, *, lock_wait_s: float = LOCK_WAIT_S, pool_size: int = 8) -> None:
        self._location = mask_url(url)
        self._conns = Connections(url, self._location, pool_size)
        self._locks = PgLocks(self._conns)
        self.lock_wait_s = lock_wait_s
        self._mutex = threading.RLock()
        self._depth = 0
        self._pending: list[JournalEvent] = []
        self._overlay: dict[str, BindingRecord] = {}
        self._leases: set[PgLease] = set()

    @property
    def location(self) -> str:
        """The URL with any password replaced by ``***``."""
        return self._location

    def __repr__(self) -> str:
        return f"PgStore({self._location!r})"

    def __enter__(self) -> Self:
        return self.open()

    def __exit__(self, *exc: object) -> None:
        self.close()

    def open(self) -> Self:
        """Connect and create the tables if missing.

        Raises:
            JournalError: as the class says.
        """
        ensure_schema(self._conns)
        return self

    def close(self) -> None:
        """Flush a pending group, release every lock, close the connections."""
        try:
            with self._mutex:
                self._flush()
        finally:
            for lease in list(self._leases):
                lease.release()
            self._locks.close()
            self._conns.close()

    # --- records ---------------------------------------------------------------------------------

    def get(self, key: str) -> BindingRecord | None:
        """``key``'s record as committed (or as recorded inside this store's open group).

        Raises:
            JournalError: PostgreSQL unreachable. JournalCorrupt: an unreadable record.
        """
        with self._mutex:
            if key in self._overlay:
                return self._overlay[key]
        with self._conns.transaction("read") as cur:
            cur.execute(f"SELECT record FROM {SCHEMA}.bindings WHERE key = %s", (key,))
            row = cur.fetchone()
        return None if row is None or row[0] is None else decode_record(row[0], key)

    def record(self, event: JournalEvent) -> BindingRecord:
        """Commit one event; return the binding's record after it (inside :meth:`group`:
        buffered, committed when the block exits).

        Raises:
            ValueError: a malformed event or a secret among its outputs (nothing written).
            JournalError: the transaction failed (nothing recorded; retryable when the
                connection was lost), or this store's lock on the binding was lost and taken
                by another process meanwhile.
        """
        line = encode_event(event)
        with self._mutex:
            if self._depth:
                previous = self._overlay.get(event.key) or self._committed(event.key)
                record = self._overlay[event.key] = apply_event(previous, event)
                self._pending.append(event)
                return record
        return self._commit([event], [line])[event.key]

    def record_many(self, events: Sequence[JournalEvent]) -> None:
        """Commit several events in one transaction (group commit).

        Raises:
            ValueError, JournalError: as :meth:`record`; none of them is recorded then.
        """
        lines = [encode_event(event) for event in events]
        with self._mutex:
            if self._depth:
                for event in events:
                    previous = self._overlay.get(event.key) or self._committed(event.key)
                    self._overlay[event.key] = apply_event(previous, event)
                self._pending.extend(events)
                return
        if events:
            self._commit(list(events), lines)

    @contextlib.contextmanager
    def group(self) -> Iterator[None]:
        """Batch mode: records inside the block are committed in one transaction when the
        outermost block exits (even when it raises). Nothing is durable before: a caller must
        not start a side effect whose intent is still buffered.

        Raises:
            JournalError: the commit at exit failed; none of the block's events is recorded.
        """
        with self._mutex:
            self._depth += 1
        try:
            yield
        finally:
            with self._mutex:
                self._depth -= 1
                if self._depth == 0:
                    self._flush()

    def _flush(self) -> None:
        events, self._pending = self._pending, []
        self._overlay.clear()
        if events:
            self._commit(events, [encode_event(e) for e in events])

    def _committed(self, key: str) -> BindingRecord | None:
        with self._conns.transaction("read") as cur:
            cur.execute(f"SELECT record FROM {SCHEMA}.bindings WHERE key = %s", (key,))
            row = cur.fetchone()
        return None if row is None or row[0] is None else decode_record(row[0], key)

    def _commit(self, events: list[JournalEvent], lines: list[bytes]) -> dict[str, BindingRecord]:
        """One transaction: lock the rows (in key order: no deadlock between two groups),
        check this store still holds the locks it took, apply, insert, write."""
        keys = sorted({e.key for e in events})
        for attempt in (1, 2):
            lost: list[str] = []
            with self._conns.transaction("record events in") as cur:
                current = self._lock_rows(cur, keys, lost)
                if not lost:
                    for event in events:
                        current[event.key] = apply_event(current.get(event.key), event)
                    cur.execute(_WRITE, ([e.key for e in events],
                                         [line.decode("utf-8") for line in lines], keys,
                                         [encode_record(current[k]) for k in keys]))
                    return current
            if attempt == 2 or not all(self._locks.confirm(k) for k in lost):
                raise JournalError(
                    f"PostgreSQL store {self._location}: the lock on binding {lost[0]} was lost "
                    "(its PostgreSQL session ended) and another process took it; nothing was "
                    "recorded", hint="re-run the same command; it resumes from the store")
        raise AssertionError("unreachable")

    def _lock_rows(self, cur: Any, keys: list[str], lost: list[str]) -> dict[str, BindingRecord]:
        """Lock (creating them empty) the rows of ``keys``; return their records. Keys whose
        lock this store took but its lock session no longer holds go to ``lost``."""
        cur.execute(_LOCK, (keys,))
        current = {str(k): decode_record(v, str(k)) for k, v in cur.fetchall() if v is not None}
        mine = [k for k in keys if self._locks.holds(k)]
        if mine:
            parts = [lock_parts(k) for k in mine]
            cur.execute("SELECT l.classid::bigint, l.objid::bigint FROM pg_locks l "
                        "WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 1 "
                        "AND l.pid = %s AND (l.classid::bigint, l.objid::bigint) IN "
                        "(SELECT * FROM unnest(%s::bigint[], %s::bigint[]))",
                        (self._locks.backend_pid, [a for a, _ in parts], [b for _, b in parts]))
            present = {(int(a), int(b)) for a, b in cur.fetchall()}
            lost += [k for k, p in zip(mine, parts, strict=True) if p not in present]
        return current

    # --- reading everything ----------------------------------------------------------------------

    def refresh(self) -> None:
        """Nothing to catch up with: every read goes to PostgreSQL."""

    def bindings(self) -> Mapping[str, BindingRecord]:
        """Every binding's record by key, in first-recorded order (a read-only copy).

        Raises:
            JournalError: PostgreSQL unreachable. JournalCorrupt: an unreadable record.
        """
        with self._conns.transaction("read") as cur:
            cur.execute(f"SELECT key, record FROM {SCHEMA}.bindings WHERE record IS NOT NULL "
                        "ORDER BY seq")
            rows = cur.fetchall()
        found = {str(k): decode_record(v, str(k)) for k, v in rows}
        with self._mutex:
            found.update(self._overlay)
        return MappingProxyType(found)

    def records(self, keys: Sequence[str]) -> dict[str, BindingRecord]:
        """The records of ``keys`` that exist, in one query (a job's members, for following
        progress without one round trip per binding).

        Raises:
            JournalError: PostgreSQL unreachable. JournalCorrupt: an unreadable record.
        """
        with self._conns.transaction("read") as cur:
            cur.execute(f"SELECT key, record FROM {SCHEMA}.bindings WHERE key = ANY(%s) "
                        "AND record IS NOT NULL", (list(keys),))
            rows = cur.fetchall()
        found = {str(k): decode_record(v, str(k)) for k, v in rows}
        with self._mutex:
            found.update((k, r) for k, r in self._overlay.items() if k in set(keys))
        return {k: found[k] for k in keys if k in found}

    def events(self, key: str | None = None) -> Iterator[JournalEvent]:
        """History, oldest first, optionally of one binding (committed events only).

        Raises:
            JournalError: PostgreSQL unreachable. JournalCorrupt: an unreadable event row.
        """
        where, args = ("WHERE key = %s", (key,)) if key is not None else ("", ())
        with self._conns.transaction("read") as cur:
            cur.execute(f"SELECT id, event FROM {SCHEMA}.events {where} ORDER BY id", args)
            rows = cur.fetchall()
        for row_id, value in rows:
            try:
                line = decode_line(value)
            except ValueError as exc:
                raise JournalCorrupt(f"{self._location}: event {row_id}: {exc}") from None
            if isinstance(line, EventLine):
                yield line.event

    # --- locks, forget, prune --------------------------------------------------------------------

    def lock(self, key: str, *, wait_s: float | None = None) -> PgLease:
        """Take ``key``'s lock, polling up to ``wait_s`` seconds (None: ``lock_wait_s``; 0: once).

        Raises:
            Locked: still held after the wait; names the holder (pid, host, command).
            JournalError: PostgreSQL unreachable.
        """
        wait = self.lock_wait_s if wait_s is None else wait_s
        holder: list[str | None] = [None]

        def attempt() -> bool:
            holder[0] = self._locks.try_lock(key)
            return holder[0] is None

        if not wait_for(attempt, wait):
            raise busy(f"binding {key}", holder[0] or "another process", wait)
        return _Lease(self._locks, key, self._leases)

    def forget(self, key: str) -> bool:
        """Drop ``key``'s entry (its history stays in ``events``); False when there was none.
        The caller holds ``key``'s lock.

        Raises:
            JournalError: PostgreSQL unreachable.
        """
        with self._mutex:
            self._flush()
        with self._conns.transaction("forget a binding in") as cur:
            cur.execute(f"DELETE FROM {SCHEMA}.bindings WHERE key = %s AND record IS NOT NULL",
                        (key,))
            return cur.rowcount > 0

    def prune(self, predicate: Callable[[BindingRecord], bool]) -> list[str]:
        """Forget every entry matching ``predicate`` whose lock is free now.

        Returns:
            The keys forgotten, in store order.
        """
        leases: list[PgLease] = []
        try:
            for key, record in self.bindings().items():
                if predicate(record):
                    with contextlib.suppress(Locked):
                        leases.append(self.lock(key, wait_s=0))
            gone: list[str] = []
            for lease in leases:
                now = self.get(lease.key)
                if now is not None and predicate(now) and self.forget(lease.key):
                    gone.append(lease.key)
            return gone
        finally:
            for lease in leases:
                lease.release()

    # --- jobs ------------------------------------------------------------------------------------

    def open_job(self, job_id: str) -> PgJob:
        """Job ``job_id`` for driving (created on entering); use ``with``.

        Raises:
            InputError: a bad job id. Locked: another driver (on entering).
        """
        return PgJob(self._conns, self._locks, job_id)

    def job(self, job_id: str) -> JobState | None:
        """Job ``job_id`` read without its lock, or None when unknown."""
        return read_job(self._conns, job_id)

    def job_ids(self) -> list[str]:
        """Every job's id, oldest first."""
        return job_ids(self._conns)

    # --- for `store migrate` ---------------------------------------------------------------------

    def transaction(self, doing: str) -> contextlib.AbstractContextManager[Any]:
        """A cursor in one transaction (for :mod:`cname_flow.store.migrate` only)."""
        return self._conns.transaction(doing)


class _Lease(PgLease):
    """A binding lock that its store releases on close if the caller did not."""

    def __init__(self, locks: PgLocks, key: str, leases: set[PgLease]) -> None:
        super().__init__(locks, key)
        self._leases = leases
        leases.add(self)

    def release(self) -> None:
        self._leases.discard(self)
        super().release()


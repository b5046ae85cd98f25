"""Per-binding locks of the PostgreSQL store: session-level advisory locks.

Each binding key maps to a 64-bit advisory lock id (BLAKE2b of the key, as the JSON store maps
it to a byte). A store holds its locks on ONE connection of its own (autocommit), so:

* PostgreSQL releases them when that session ends: the holder's process dying, or its
  connection dropping (https://www.postgresql.org/docs/current/explicit-locking.html#ADVISORY-LOCKS);
  there is no lease to expire by hand;
* taking one is ``pg_try_advisory_lock`` polled until the wait runs out, never a blocking call,
  so a waiting thread holds no connection another thread needs;
* a session lock is re-entrant within its session, so this process's own holders are kept apart
  here (a second holder in the same process waits, as the JSON store's does).

The holder's pid, host and command sit in ``cname_flow.lock_holders``, so
:class:`~cname_flow.errors.Locked` names the holder as the JSON store does. When the lock
session is lost (PostgreSQL restarted), the next use reconnects and takes the held locks again;
a lock someone else took meanwhile is reported lost (:meth:`PgLocks.confirm`).
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import socket
import threading
from collections.abc import Iterator
from typing import Final, Self

import psycopg

from cname_flow.errors import JournalError, Locked
from cname_flow.store.locks import command_of, describe_pid
from cname_flow.store.pg_conn import SCHEMA, Connections

_UPSERT_HOLDER: Final = (
    f"INSERT INTO {SCHEMA}.lock_holders (key, backend_pid, pid, host, command) "
    "VALUES (%s, pg_backend_pid(), %s, %s, %s) ON CONFLICT (key) DO UPDATE SET "
    "backend_pid = excluded.backend_pid, pid = excluded.pid, host = excluded.host, "
    "command = excluded.command, since = now()")


def lock_id(key: str) -> int:
    """The advisory lock id of ``key``: a signed 64-bit integer (``bigint``)."""
    digest = hashlib.blake2b(key.encode("utf-8"), digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True)


def lock_parts(key: str) -> tuple[int, int]:
    """``(classid, objid)`` under which ``pg_locks`` shows ``key``'s lock (high, low 32 bits)."""
    unsigned = lock_id(key) & 0xFFFF_FFFF_FFFF_FFFF
    return unsigned >> 32, unsigned & 0xFFFF_FFFF


class PgLocks:
    """This store's advisory locks, on one session of its own (thread-safe).

    Args:
        conns: the store's connections (for connecting and for scrubbed errors).
    """

    def __init__(self, conns: Connections) -> None:
        self._conns = conns
        self._conn: psycopg.Connection[tuple[object, ...]] | None = None
        self._mutex = threading.Lock()
        self._held: set[str] = set()
        self.backend_pid = 0  # the lock session's server pid (0: none yet)

    def try_lock(self, key: str) -> str | None:
        """Take ``key``'s lock now if free.

        Returns:
            None when taken; else who holds it (``"pid N on host H (command)"``).

        Raises:
            JournalError: PostgreSQL cannot be reached (retryable).
        """
        with self._mutex:
            if key in self._held:
                return describe_pid(os.getpid())
            try:
                found = self._try(key)
            except JournalError as exc:  # a session that died quietly (a restart): once more
                if not exc.retryable:
                    raise
                found = self._try(key)
        if found is True:
            return None
        if not isinstance(found, tuple):
            return "another process (holder unknown)"
        pid, host, command = found
        return f"pid {pid} on host {host} ({command})" if command else f"pid {pid} on host {host}"

    def _try(self, key: str) -> tuple[object, ...] | bool | None:
        """True when taken; else the holder's row (pid, host, command) or None."""
        with self._session("lock a binding in") as conn:
            row = conn.execute("SELECT pg_try_advisory_lock(%s)", (lock_id(key),)).fetchone()
            if row is not None and row[0]:
                conn.execute(_UPSERT_HOLDER, (key, os.getpid(), socket.gethostname(),
                                              command_of(os.getpid())))
                self._held.add(key)
                return True
            return conn.execute(f"SELECT pid, host, command FROM {SCHEMA}.lock_holders "
                                "WHERE key = %s", (key,)).fetchone()

    def unlock(self, key: str) -> None:
        """Free ``key``'s lock (no-op when not held; a lost session frees it anyway)."""
        with self._mutex:
            if key not in self._held:
                return
            self._held.discard(key)
            conn = self._conn
            if conn is None or conn.closed:
                return
            try:
                conn.execute(f"DELETE FROM {SCHEMA}.lock_holders WHERE key = %s "
                             "AND backend_pid = pg_backend_pid()", (key,))
                conn.execute("SELECT pg_advisory_unlock(%s)", (lock_id(key),))
            except psycopg.Error:
                self._drop()  # the session is gone, and its locks with it

    def holds(self, key: str) -> bool:
        """Whether this store holds ``key``'s lock (as far as it knows)."""
        with self._mutex:
            return key in self._held

    def confirm(self, key: str) -> bool:
        """After a record found ``key``'s lock missing from its session (PostgreSQL restarted):
        reconnect, take the held locks again; True when ``key``'s is held again.

        Raises:
            JournalError: PostgreSQL cannot be reached (retryable).
        """
        with self._mutex:
            self._drop()
            with self._session("lock a binding in"):
                return key in self._held

    def close(self) -> None:
        """Drop every lock (by ending the session)."""
        with self._mutex:
            self._held.clear()
            self._drop()

    @contextlib.contextmanager
    def _session(self, doing: str) -> Iterator[psycopg.Connection[tuple[object, ...]]]:
        """The lock session (reconnected, held locks taken again, when lost); call with the
        mutex held. A failure inside drops the session."""
        if self._conn is None or self._conn.closed or self._conn.broken:
            self._reconnect(doing)
        assert self._conn is not None
        try:
            with self._conns.errors(doing):
                yield self._conn
        except BaseException:
            if self._conn is not None and (self._conn.broken or self._conn.closed):
                self._drop()
            raise

    def _reconnect(self, doing: str) -> None:
        self._drop()
        conn = self._conns.connect(autocommit=True)
        try:
            with self._conns.errors(doing):
                row = conn.execute("SELECT pg_backend_pid()").fetchone()
                self.backend_pid = int(str(row[0])) if row else 0
                for key in sorted(self._held):
                    again = conn.execute("SELECT pg_try_advisory_lock(%s)",
                                         (lock_id(key),)).fetchone()
                    if again is not None and again[0]:
                        conn.execute(_UPSERT_HOLDER, (key, os.getpid(), socket.gethostname(),
                                                      command_of(os.getpid())))
                    else:
                        self._held.discard(key)  # taken by another while we were away
        except BaseException:
            with contextlib.suppress(Exception):
                conn.close()
            raise
        self._conn = conn

    def _drop(self) -> None:
        conn, self._conn = self._conn, None
        self.backend_pid = 0
        if conn is not None:
            with contextlib.suppress(Exception):
                conn.close()


class PgLease:
    """A held binding (or job) lock (:class:`~cname_flow.store.base.BindingLock`)."""

    def __init__(self, locks: PgLocks, key: str) -> None:
        self.key = key
        self._locks: PgLocks | None = locks

    def release(self) -> None:
        """Free the lock (idempotent)."""
        locks, self._locks = self._locks, None
        if locks is not None:
            locks.unlock(self.key)

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


def busy(what: str, holder: str, waited_s: float) -> Locked:
    """The :class:`Locked` error (exit 75) for ``what`` (``"binding bk/a.example.com"``) still
    held by ``holder`` after ``waited_s`` seconds; worded as the JSON store's."""
    waited = f" (waited {waited_s:g} s)" if waited_s else ""
    return Locked(f"{what} is in use by {holder}{waited}", holder=holder,
                  hint="re-run the same command once that one is done; it resumes from the "
                       "store (journal.lock_wait_s sets how long to wait)")

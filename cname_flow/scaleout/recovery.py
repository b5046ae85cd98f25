"""Recovery of a dead worker's bindings by the surviving workers: heartbeats in PostgreSQL,
DBOS's own recovery.

Without DBOS Conductor, "when an application with an executor ID restarts, it only recovers
pending workflows assigned to that executor ID"; another executor's workflows are recovered
through the admin endpoint ``/dbos-workflow-recovery``
(https://docs.dbos.dev/production/self-hosting/workflow-recovery). Its function,
``DBOS._recover_pending_workflows(executor_ids)``, re-enqueues each PENDING workflow of those
executors; the atomic ENQUEUED → PENDING dequeue admits one runner, so a second request is
harmless (``dbos/_recovery.py``, ``reenqueue_for_recovery`` in ``dbos/_sys_db.py``).

So each worker (:class:`Heartbeat`) beats every ``heartbeat_s`` into
``cname_flow.executors`` and scans for executors whose last beat is older than ``lapse_s``. A
lapsed executor is claimed by *one* survivor through a single conditional UPDATE (the row lock
serialises concurrent claims; the loser's re-check of the WHERE clause fails), which then runs
DBOS's recovery for it. A claim whose claimer itself lapsed may be taken again. An executor that
comes back beats again, which clears the claim (and DBOS recovers its own workflows at launch).
A step that both the dead worker and its successor ran is absorbed by the store's per-binding
lock and the steps' observe-then-act.
"""

from __future__ import annotations

import os
import socket
import threading
from collections.abc import Callable, Sequence

import psycopg
from psycopg.rows import TupleRow

from cname_flow.logs import get_logger
from cname_flow.scaleout.limits import ensure_schema

log = get_logger(__name__)

EXECUTORS_SQL = """
CREATE TABLE IF NOT EXISTS cname_flow.executors (
    executor_id text PRIMARY KEY,
    host text NOT NULL,
    pid integer NOT NULL,
    app_version text NOT NULL,
    started_at timestamptz NOT NULL DEFAULT now(),
    last_seen timestamptz NOT NULL,
    stopped_at timestamptz,
    recovered_by text,
    recovered_at timestamptz
);
"""

_BEAT_SQL = """
INSERT INTO cname_flow.executors AS e (executor_id, host, pid, app_version, last_seen)
VALUES (%(me)s, %(host)s, %(pid)s, %(version)s, clock_timestamp())
ON CONFLICT (executor_id) DO UPDATE SET host = excluded.host, pid = excluded.pid,
    app_version = excluded.app_version, last_seen = excluded.last_seen, stopped_at = NULL,
    recovered_by = NULL, recovered_at = NULL,
    started_at = CASE WHEN e.pid = excluded.pid AND e.host = excluded.host THEN e.started_at
                      ELSE clock_timestamp() END
"""

_CLAIM_SQL = """
UPDATE cname_flow.executors AS e
SET recovered_by = %(me)s, recovered_at = clock_timestamp()
WHERE e.executor_id <> %(me)s
  AND (e.last_seen < clock_timestamp() - make_interval(secs => %(lapse)s)
       OR e.stopped_at IS NOT NULL)
  AND (e.recovered_by IS NULL OR NOT EXISTS (
        SELECT 1 FROM cname_flow.executors AS c
        WHERE c.executor_id = e.recovered_by
          AND c.stopped_at IS NULL
          AND c.last_seen >= clock_timestamp() - make_interval(secs => %(lapse)s)))
RETURNING e.executor_id
"""


def connect(url: str) -> psycopg.Connection[TupleRow]:
    """An autocommit connection with the ``cname_flow`` tables present.

    Raises:
        psycopg.Error: the database is unreachable or refused the DDL.
    """
    conn = psycopg.connect(url, autocommit=True, connect_timeout=5)
    try:
        ensure_schema(conn)
        with conn.transaction():
            conn.execute("SELECT pg_advisory_xact_lock(%s)", (0x636E616D66,))
            conn.execute(EXECUTORS_SQL)
    except BaseException:
        conn.close()
        raise
    return conn


def beat(conn: psycopg.Connection[TupleRow], executor_id: str, app_version: str) -> None:
    """Record that ``executor_id`` (this host, this pid) is alive now; clears any claim."""
    conn.execute(_BEAT_SQL, {"me": executor_id, "host": socket.gethostname(),
                             "pid": os.getpid(), "version": app_version})


def mark_stopped(conn: psycopg.Connection[TupleRow], executor_id: str) -> None:
    """Record a graceful stop: the survivors recover what is left without waiting for the
    lapse (a restart with the same id beats again and recovers its own at launch)."""
    conn.execute("UPDATE cname_flow.executors SET stopped_at = clock_timestamp() "
                 "WHERE executor_id = %s", (executor_id,))


def claim_lapsed(conn: psycopg.Connection[TupleRow], executor_id: str,
                 lapse_s: float) -> list[str]:
    """Claim, for ``executor_id``, every other executor whose beat is older than ``lapse_s``
    seconds (or that stopped), not already claimed by a live executor. One conditional UPDATE:
    of concurrent claimers exactly one gets each row.

    Returns:
        The executor ids claimed (to recover now).
    """
    rows = conn.execute(_CLAIM_SQL, {"me": executor_id, "lapse": lapse_s}).fetchall()
    return sorted(str(r[0]) for r in rows)


def dbos_recover(executor_ids: Sequence[str]) -> int:
    """DBOS's recovery of ``executor_ids``' pending workflows (the function behind
    ``/dbos-workflow-recovery``); returns how many workflows were re-enqueued."""
    from dbos import DBOS

    return len(DBOS._recover_pending_workflows(list(executor_ids)))


class Heartbeat:
    """A daemon thread: beat, then claim and recover lapsed executors, every ``heartbeat_s``.

    A database outage is logged and waited out (the next round reconnects); it never stops
    the worker.

    Args:
        url: the store's PostgreSQL URL (never logged).
        executor_id: this worker's stable id.
        app_version: the application version DBOS runs (recorded for operators).
        heartbeat_s: seconds between beats (> 0).
        lapse_s: a beat older than this many seconds marks an executor dead (> heartbeat_s).
        recover: called with the claimed executor ids (default :func:`dbos_recover`).
    """

    def __init__(
        self, url: str, executor_id: str, app_version: str, *, heartbeat_s: float = 5.0,
        lapse_s: float = 30.0, recover: Callable[[Sequence[str]], int] = dbos_recover,
    ) -> None:
        if heartbeat_s <= 0 or lapse_s <= heartbeat_s:
            raise ValueError(f"need 0 < heartbeat_s < lapse_s, got {heartbeat_s}, {lapse_s}")
        self._url = url
        self.executor_id, self.app_version = executor_id, app_version
        self.heartbeat_s, self.lapse_s = heartbeat_s, lapse_s
        self._recover = recover
        self._conn: psycopg.Connection[TupleRow] | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        #: executor ids this worker recovered (for logs and tests).
        self.recovered: list[str] = []

    def beat_once(self) -> list[str]:
        """One round: beat, claim, recover. Returns the executor ids recovered.

        Raises:
            psycopg.Error: the database failed (the connection is dropped for the next round).
        """
        try:
            if self._conn is None or self._conn.closed:
                self._conn = connect(self._url)
            beat(self._conn, self.executor_id, self.app_version)
            claimed = claim_lapsed(self._conn, self.executor_id, self.lapse_s)
        except psycopg.Error:
            self._drop()
            raise
        for other in claimed:
            count = self._recover([other])
            log.warning("worker.recovered", executor=other, by=self.executor_id,
                        workflows=count)
            self.recovered.append(other)
        return claimed

    def start(self) -> None:
        """Beat once now (so a bad URL fails the start), then in a daemon thread.

        Raises:
            psycopg.Error: the first beat failed.
        """
        self.beat_once()
        self._thread = threading.Thread(target=self._loop, name="cname-flow-heartbeat",
                                        daemon=True)
        self._thread.start()

    def stop(self, *, graceful: bool = True) -> None:
        """Stop beating; ``graceful`` marks the executor stopped (see :func:`mark_stopped`)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=self.heartbeat_s + 5)
        if graceful:
            try:
                if self._conn is None or self._conn.closed:
                    self._conn = connect(self._url)
                mark_stopped(self._conn, self.executor_id)
            except psycopg.Error as exc:
                log.warning("worker.stop_unrecorded", error=type(exc).__name__)
        self._drop()

    def _loop(self) -> None:
        while not self._stop.wait(self.heartbeat_s):
            try:
                self.beat_once()
            except psycopg.Error as exc:
                log.warning("worker.heartbeat_failed", error=type(exc).__name__)
            except Exception:  # a DBOS recovery bug must not kill the beat
                log.exception("worker.recovery_failed")

    def _drop(self) -> None:
        if self._conn is not None:
            self._conn.close()
        self._conn = None

"""Per-API rate limits shared by every worker, in the store's PostgreSQL.

Why not DBOS's queue limiter: ``DBOS.register_queue(limiter={"limit": n, "period": s})``
(https://docs.dbos.dev/python/reference/queues) meters workflow *starts*: the dequeue counts the
queue's ``workflow_status`` rows whose ``started_at_epoch_ms`` lies within the period
(``rate_limit_remaining`` in ``dbos/_sys_db.py``, 3.4.0). A binding workflow makes several API
calls of several APIs at times of its own (retries included), so a start budget cannot bound
the AddDomainRecord or PutCname calls in a second. Hence this limiter, one row per API.

The rule (:class:`SharedRateLimiter`): a call of an API with limit ``n`` per second is granted
only while fewer than ``n`` grants of that API lie within the last ``window_s`` (1 s plus a
small margin for the time between a grant and its request reaching the service), decided under
the API row's lock with the database's clock. So *no* sliding window of ``window_s`` holds more
than ``n`` grants, across every process and host; a token bucket of rate ``r`` and burst ``b``
would allow ``r + b`` in one second (measured: 22 PutCname calls in a second at 20/s, burst 2).

Table ``cname_flow.rate_windows(api, grants)``: the epoch seconds (database clock) of the
grants still inside the window, pruned on every decision.
"""

from __future__ import annotations

import math
import queue
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager

import psycopg
from psycopg.rows import TupleRow

from cname_flow.errors import StepError
from cname_flow.logs import get_logger
from cname_flow.quotas import ApiStats

log = get_logger(__name__)

#: Seconds added to the 1-second window: a grant and the request it lets go reach the service
#: a little apart (thread scheduling, the network), so grants are spaced as if the window were
#: this much longer. Costs ``margin / (1 + margin)`` of the throughput (under 5 %).
MARGIN_S = 0.04

SCHEMA_SQL = """
CREATE SCHEMA IF NOT EXISTS cname_flow;
CREATE TABLE IF NOT EXISTS cname_flow.rate_windows (
    api text PRIMARY KEY,
    grants double precision[] NOT NULL DEFAULT '{}'
);
"""

_GRANT_SQL = """
WITH c AS (SELECT extract(epoch FROM clock_timestamp())::float8 AS t),
live AS (
    SELECT w.api, c.t,
           ARRAY(SELECT g FROM unnest(w.grants) AS g WHERE g > c.t - %(window)s ORDER BY g) AS keep
    FROM cname_flow.rate_windows AS w CROSS JOIN c WHERE w.api = %(api)s
)
UPDATE cname_flow.rate_windows AS w
SET grants = CASE WHEN cardinality(live.keep) < %(limit)s THEN live.keep || live.t
                  ELSE live.keep END
FROM live WHERE w.api = live.api
RETURNING cardinality(live.keep) < %(limit)s, live.t, live.keep[1]
"""

#: One advisory-lock key for the DDL, so workers starting at once do not race on it.
_DDL_LOCK = 0x636E616D65


def ensure_schema(conn: psycopg.Connection[TupleRow]) -> None:
    """Create schema ``cname_flow`` and table ``rate_windows`` if absent (idempotent, serialised
    by a transaction-level advisory lock, so concurrent workers do not collide)."""
    with conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(%s)", (_DDL_LOCK,))
        conn.execute(SCHEMA_SQL)


class ConnectionPool:
    """At most ``size`` autocommit connections to ``url``, shared by threads; a connection that
    failed is dropped and a new one made on the next use.

    Args:
        url: libpq URI (never logged).
        size: connections at most (≥ 1).
    """

    def __init__(self, url: str, size: int = 4) -> None:
        self._url = url
        self._idle: queue.LifoQueue[psycopg.Connection[TupleRow]] = queue.LifoQueue()
        self._slots = threading.BoundedSemaphore(max(1, size))
        self._closed = False

    @contextmanager
    def connection(self) -> Iterator[psycopg.Connection[TupleRow]]:
        """A connection for the block; dropped if the block raises a psycopg error.

        Raises:
            psycopg.OperationalError: no connection could be made.
        """
        with self._slots:
            try:
                conn = self._idle.get_nowait()
            except queue.Empty:
                conn = psycopg.connect(self._url, autocommit=True, connect_timeout=5)
            try:
                yield conn
            except psycopg.Error:
                conn.close()
                raise
            if self._closed or conn.closed:
                conn.close()
            else:
                self._idle.put(conn)

    def close(self) -> None:
        """Close every idle connection (those in use close when given back)."""
        self._closed = True
        while True:
            try:
                self._idle.get_nowait().close()
            except queue.Empty:
                return


class SharedRateLimiter:
    """Callable like :class:`~cname_flow.quotas.RateLimiter`: ``limiter(action)`` blocks the
    calling thread until ``action`` may be sent, then counts the attempt in ``stats``. Actions
    without a rate pass freely (counted). See the module docstring for the rule.

    Args:
        url: the store's PostgreSQL URL (libpq URI).
        rates: action → requests per second (``Settings.batch.rate_limits``); a rate ``r ≥ 1``
            allows ``floor(r)`` calls per window, a rate below 1 one call per ``1/r`` s.
        stats: where attempts are counted.
        margin_s: seconds added to each window (:data:`MARGIN_S`).
        outage_s: how long an unreachable database is retried before the call fails, seconds.
        connections: database connections at most.
        sleep: blocking sleep, seconds (tests).

    Raises (on call):
        StepError: retryable; the database was unreachable for ``outage_s``.
    """

    def __init__(
        self, url: str, rates: Mapping[str, float], stats: ApiStats | None = None, *,
        margin_s: float = MARGIN_S, outage_s: float = 60.0, connections: int = 4,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.stats = stats or ApiStats()
        self.limits: dict[str, tuple[int, float]] = {}
        for action, rate in rates.items():
            if rate <= 0:
                raise ValueError(f"rate limit of {action} must be > 0, got {rate}")
            self.limits[action] = (math.floor(rate), 1.0) if rate >= 1 else (1, 1.0 / rate)
        self.margin_s = margin_s
        self.outage_s = outage_s
        self._sleep = sleep
        self._pool = ConnectionPool(url, connections)
        self._ready = False

    def prepare(self) -> None:
        """Create the table and one row per limited API (idempotent).

        Raises:
            psycopg.Error: the database refused or is unreachable.
        """
        with self._pool.connection() as conn:
            ensure_schema(conn)
            with conn.cursor() as cur:
                cur.executemany(
                    "INSERT INTO cname_flow.rate_windows (api) VALUES (%s) ON CONFLICT DO NOTHING",
                    [(action,) for action in sorted(self.limits)])
        self._ready = True

    def __call__(self, action: str) -> None:
        limit = self.limits.get(action)
        waited = 0.0
        if limit is not None:
            waited = self._acquire(action, *limit)
        self.stats.count(action, waited_s=waited)

    def close(self) -> None:
        """Close the database connections."""
        self._pool.close()

    def _acquire(self, action: str, limit: int, period_s: float) -> float:
        """Block until a grant of ``action`` is ours; return the seconds waited."""
        waited, down_since = 0.0, None
        while True:
            try:
                wait = self._try(action, limit, period_s + self.margin_s)
                down_since = None
            except psycopg.OperationalError as exc:
                now = time.monotonic()
                down_since = down_since or now
                if now - down_since >= self.outage_s:
                    raise StepError(
                        f"rate limiter: the store's database is unreachable ({type(exc).__name__})",
                        hint="check that PostgreSQL is up; the step is retried later",
                        retryable=True) from None
                log.warning("rate_limit.db_unreachable", action=action)
                wait = 0.5
            if wait <= 0:
                return waited
            self._sleep(wait)
            waited += wait

    def _try(self, action: str, limit: int, window_s: float) -> float:
        """One decision under the API row's lock: 0 when granted, else seconds to wait."""
        if not self._ready:
            self.prepare()
        with self._pool.connection() as conn, conn.transaction():
            conn.execute("SELECT 1 FROM cname_flow.rate_windows WHERE api = %s FOR UPDATE",
                         (action,))
            row = conn.execute(_GRANT_SQL, {"api": action, "limit": limit,
                                            "window": window_s}).fetchone()
        if row is None:  # the row vanished (a reset): make it again
            self._ready = False
            return 0.01
        granted, now, oldest = row
        if granted:
            return 0.0
        return max(0.001, float(oldest) + window_s - float(now) + 0.001)

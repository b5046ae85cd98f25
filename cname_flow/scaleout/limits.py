"""Per-API rate limits shared by every worker, in the store's PostgreSQL.

Why not DBOS's queue limiter: ``DBOS.register_queue(limiter={"limit": n, "period": s})``
(https://docs.dbos.dev/python/reference/queues) meters workflow *starts*: the dequeue counts the
queue's ``workflow_status`` rows whose ``started_at_epoch_ms`` lies within the period
(``rate_limit_remaining`` in ``dbos/_sys_db.py``, 3.4.0). A binding workflow makes several API
calls of several APIs at times of its own (retries included), so a start budget cannot bound
the AddDomainRecord or PutCname calls in a second. Hence this limiter, in the same database.

The rule (:class:`SharedRateLimiter`): a call of an API with limit ``n`` per second is granted
only while fewer than ``n`` calls of that API are *in flight or ended within the last second*,
decided under the API row's lock with the database's clock. A call counts from its grant until
one second after its answer (the retry layer reports the end through ``done(action)``,
:meth:`cname_flow.retry.RetriedCalls._limited`). Since a request reaches the service after its
grant and before its answer, no sliding second at the service ever sees more than ``n`` of
them, however late a request leaves (a cold connection, a thread that waited for the GIL) —
a rule on grant times alone is off by that latency, and a token bucket of rate ``r`` and burst
``b`` allows ``r + b`` in a second (measured: 22 PutCname calls in a second at 20/s, burst 2).
The price is the latency: a slot is busy ``latency + 1 s``, so throughput is ``n / (1 +
latency)`` per second (about 0.95 n at 50 ms).

Tables: ``cname_flow.rate_windows(api)`` (one row per API: its lock) and
``cname_flow.rate_grants(id, api, granted_at, ended_at)`` (epoch seconds, database clock),
pruned as they age out. A grant whose end is never reported (its process was killed) counts
for :data:`IN_FLIGHT_MAX_S`.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable, Mapping

import psycopg
from psycopg.rows import TupleRow
from psycopg_pool import ConnectionPool

from cname_flow.errors import StepError
from cname_flow.logs import get_logger
from cname_flow.quotas import ApiStats

log = get_logger(__name__)

#: Seconds added to the 1-second window, for clock granularity between hosts.
MARGIN_S = 0.02

#: Seconds to make a connection, or to wait for a free one, before a try counts as the
#: database being unreachable.
CONNECT_TIMEOUT_S = 5.0

#: Seconds a grant whose end was never reported counts as in flight (a killed process): above
#: the SDK read timeouts, so a slow answer is never mistaken for a lost one.
IN_FLIGHT_MAX_S = 30.0

SCHEMA_SQL = """
CREATE SCHEMA IF NOT EXISTS cname_flow;
CREATE TABLE IF NOT EXISTS cname_flow.rate_windows (api text PRIMARY KEY);
CREATE TABLE IF NOT EXISTS cname_flow.rate_grants (
    id bigserial PRIMARY KEY,
    api text NOT NULL,
    granted_at double precision NOT NULL,
    ended_at double precision
);
CREATE INDEX IF NOT EXISTS rate_grants_api ON cname_flow.rate_grants (api);
"""

#: Under the API row's lock: prune, count what is in flight or ended within the window, and
#: grant (insert) when there is room. Returns (granted id or NULL, now, the earliest end
#: that will leave the window, or NULL when every counted call is in flight).
_GRANT_SQL = """
WITH c AS (SELECT extract(epoch FROM clock_timestamp())::float8 AS t),
pruned AS (
    DELETE FROM cname_flow.rate_grants AS g USING c
    WHERE g.api = %(api)s
      AND coalesce(g.ended_at, g.granted_at + %(stale)s) <= c.t - %(window)s
),
live AS (
    SELECT count(*) AS n, min(g.ended_at) AS first_end
    FROM cname_flow.rate_grants AS g, c
    WHERE g.api = %(api)s
      AND coalesce(g.ended_at, g.granted_at + %(stale)s) > c.t - %(window)s
),
granted AS (
    INSERT INTO cname_flow.rate_grants (api, granted_at)
    SELECT %(api)s, c.t FROM c, live WHERE live.n < %(limit)s
    RETURNING id
)
SELECT (SELECT id FROM granted), c.t, live.first_end FROM c, live
"""

_END_SQL = """
UPDATE cname_flow.rate_grants SET ended_at = extract(epoch FROM clock_timestamp())
WHERE id = %s
"""

#: One advisory-lock key for the DDL, so workers starting at once do not race on it.
_DDL_LOCK = 0x636E616D65


def ensure_schema(conn: psycopg.Connection[TupleRow]) -> None:
    """Create schema ``cname_flow`` and table ``rate_windows`` if absent (idempotent, serialised
    by a transaction-level advisory lock, so concurrent workers do not collide)."""
    with conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(%s)", (_DDL_LOCK,))
        conn.execute(SCHEMA_SQL)


class SharedRateLimiter:
    """Callable like :class:`~cname_flow.quotas.RateLimiter`: ``limiter(action)`` blocks the
    calling thread until ``action`` may be sent, then counts the attempt in ``stats``; the
    caller then reports the call's end with :meth:`done` (the retry layer does). Actions
    without a rate pass freely (counted). See the module docstring for the rule.

    Args:
        url: the store's PostgreSQL URL (libpq URI).
        rates: action → requests per second (``Settings.batch.rate_limits``); a rate ``r ≥ 1``
            allows ``floor(r)`` calls per window, a rate below 1 one call per ``1/r`` s.
        stats: where attempts are counted.
        margin_s: seconds added to each window (:data:`MARGIN_S`).
        outage_s: how long an unreachable database is retried before the call fails, seconds.
        connections: database connections at most (a ``psycopg_pool.ConnectionPool``,
            https://www.psycopg.org/psycopg3/docs/advanced/pool.html).
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
        # psycopg's pool: a connection that failed (a restart) is discarded when given back
        self._pool: ConnectionPool[psycopg.Connection[TupleRow]] = ConnectionPool(
            url, min_size=0, max_size=max(1, connections), open=True, timeout=CONNECT_TIMEOUT_S,
            kwargs={"autocommit": True, "connect_timeout": int(CONNECT_TIMEOUT_S)},
            name="cname-flow-rate-limiter")
        self._ready = False
        self._local = threading.local()

    def prepare(self) -> None:
        """Create the tables and one row per limited API (idempotent).

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

    def done(self, action: str) -> None:
        """The call of ``action`` this thread was last granted has ended (answer or error):
        it leaves the window a second from now. Never raises (an unreported end only keeps
        the slot for :data:`IN_FLIGHT_MAX_S`)."""
        grants = self._local.__dict__.setdefault("grants", {})
        grant = grants.pop(action, None)
        if grant is None:
            return
        try:
            with self._pool.connection() as conn:
                conn.execute(_END_SQL, (grant,))
        except psycopg.Error as exc:
            log.warning("rate_limit.end_unrecorded", action=action, error=type(exc).__name__)

    def close(self) -> None:
        """Close the database connections."""
        self._pool.close()

    def _acquire(self, action: str, limit: int, period_s: float) -> float:
        """Block until a grant of ``action`` is ours (kept for :meth:`done`); return the
        seconds waited.

        Raises:
            StepError: retryable; the database was unreachable for ``outage_s``.
        """
        waited, down_since = 0.0, None
        while True:
            try:
                grant, wait = self._try(action, limit, period_s + self.margin_s)
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
                grant, wait = None, 0.5
            if grant is not None:
                self._local.__dict__.setdefault("grants", {})[action] = grant
                return waited
            self._sleep(wait)
            waited += wait

    def _try(self, action: str, limit: int, window_s: float) -> tuple[int | None, float]:
        """One decision under the API row's lock.

        Returns:
            (the grant's id, 0) when granted, else (None, seconds to wait).
        """
        if not self._ready:
            self.prepare()
        with self._pool.connection() as conn, conn.transaction():
            locked = conn.execute("SELECT 1 FROM cname_flow.rate_windows WHERE api = %s "
                                  "FOR UPDATE", (action,)).fetchone()
            if locked is None:  # the row vanished (a reset): make it again
                self._ready = False
                return None, 0.01
            row = conn.execute(_GRANT_SQL, {"api": action, "limit": limit, "window": window_s,
                                            "stale": IN_FLIGHT_MAX_S}).fetchone()
        assert row is not None
        grant, now, first_end = row
        if grant is not None:
            return int(grant), 0.0
        if first_end is None:  # every counted call is in flight: none leaves the window
            return None, window_s  # before a second after its end, so not before a second
        return None, max(0.001, float(first_end) + window_s - float(now) + 0.001)

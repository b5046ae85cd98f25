"""Connections of the PostgreSQL store: a small pool, errors made ours, the schema, the URL shown.

* :func:`mask_url`: the store's URL with any password (``user:pw@`` or ``?password=``) replaced
  by ``***``; the only form of the URL that reaches an error, a log line or ``location``.
* :class:`Connections`: a bounded set of psycopg 3 connections
  (https://www.psycopg.org/psycopg3/docs/api/connections.html) shared by the threads of one
  process. A transaction borrows one for its duration; a connection that failed (PostgreSQL
  restarted, the network dropped) is thrown away, so the next call connects afresh.
* :func:`pg_errors`: psycopg's errors as :class:`~cname_flow.errors.JournalError` (a lost
  connection is retryable: exit 75, the same command resumes), password scrubbed.
* :func:`ensure_schema`: the tables, in schema ``cname_flow``, made idempotently under a
  transaction-level advisory lock so several processes opening at once do not race
  (https://www.postgresql.org/docs/current/explicit-locking.html#ADVISORY-LOCKS).
"""

from __future__ import annotations

import contextlib
import select
import threading
import time
from collections.abc import Iterator
from typing import Final
from urllib.parse import parse_qsl, unquote, urlencode, urlsplit, urlunsplit

import psycopg
from psycopg.conninfo import make_conninfo

from cname_flow.config.credentials import scrub
from cname_flow.errors import JournalError

#: The schema holding the store's tables (DBOS keeps its own in schema ``dbos``).
SCHEMA: Final = "cname_flow"
#: The layout version written in ``cname_flow.meta``; a newer one is refused.
SCHEMA_VERSION: Final = 1
#: Key of the transaction-level advisory lock taken around the DDL (any fixed 64-bit number).
DDL_LOCK: Final = 0x636E_616D_6566_6C77  # "cnameflw"
#: Seconds a new connection may take before the attempt fails.
CONNECT_TIMEOUT_S: Final = 10
#: Most connections one store opens for transactions at once (a thread beyond waits).
POOL_SIZE: Final = 8
#: A connection idle for longer is checked (``SELECT 1``) before it is lent, seconds: so a
#: PostgreSQL restart while the store was quiet costs no failed call. A connection with unread
#: input is checked however recently it was used (:func:`_has_input`).
PROBE_AFTER_S: Final = 0.25

DDL: Final = f"""
CREATE SCHEMA IF NOT EXISTS {SCHEMA};
CREATE TABLE IF NOT EXISTS {SCHEMA}.meta (
    name text PRIMARY KEY, value text NOT NULL);
CREATE TABLE IF NOT EXISTS {SCHEMA}.bindings (
    key text PRIMARY KEY, record jsonb, seq bigserial, updated_at timestamptz);
CREATE TABLE IF NOT EXISTS {SCHEMA}.events (
    id bigserial PRIMARY KEY, key text NOT NULL, event jsonb NOT NULL,
    at timestamptz NOT NULL DEFAULT now());
CREATE INDEX IF NOT EXISTS events_key ON {SCHEMA}.events (key, id);
CREATE TABLE IF NOT EXISTS {SCHEMA}.jobs (
    job_id text PRIMARY KEY, seq bigserial, meta jsonb NOT NULL DEFAULT '{{}}',
    created timestamptz NOT NULL DEFAULT now());
CREATE TABLE IF NOT EXISTS {SCHEMA}.job_members (
    job_id text NOT NULL, key text NOT NULL, ord bigserial,
    PRIMARY KEY (job_id, key));
CREATE TABLE IF NOT EXISTS {SCHEMA}.job_events (
    id bigserial PRIMARY KEY, job_id text NOT NULL, event jsonb NOT NULL);
CREATE INDEX IF NOT EXISTS job_events_job ON {SCHEMA}.job_events (job_id, id);
CREATE TABLE IF NOT EXISTS {SCHEMA}.lock_holders (
    key text PRIMARY KEY, backend_pid integer NOT NULL, pid integer NOT NULL,
    host text NOT NULL, command text NOT NULL, since timestamptz NOT NULL DEFAULT now());
CREATE TABLE IF NOT EXISTS {SCHEMA}.migrated (
    origin text PRIMARY KEY, at timestamptz NOT NULL DEFAULT now());
"""


def mask_url(url: str) -> str:
    """``url`` with its password (in the authority or a ``password=`` parameter) as ``***``.

    ``postgresql://u:pw@h:5432/db?password=pw&sslmode=require`` →
    ``postgresql://u:***@h:5432/db?password=***&sslmode=require``. A URL that does not parse
    is shown as ``postgresql://***`` rather than risk echoing it.
    """
    try:
        parts = urlsplit(url)
        netloc = parts.netloc
        if "@" in netloc:
            auth, _, host = netloc.rpartition("@")
            user, colon, _ = auth.partition(":")
            netloc = f"{user}:***@{host}" if colon else netloc
        query = parts.query
        if query:
            pairs = [(k, "***" if k.lower() == "password" else v)
                     for k, v in parse_qsl(query, keep_blank_values=True)]
            query = urlencode(pairs, safe="*")
        return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))
    except ValueError:
        return "postgresql://***"


def secrets_of(url: str) -> list[str]:
    """The password(s) ``url`` carries (to scrub them from any text), longest first."""
    found: list[str] = []
    with contextlib.suppress(ValueError):
        parts = urlsplit(url)
        if parts.password:
            found += [parts.password, unquote(parts.password)]
        found += [v for k, v in parse_qsl(parts.query) if k.lower() == "password" and v]
    return sorted({s for s in found if s}, key=len, reverse=True)


class Connections:
    """Up to ``size`` connections to ``url``, lent to one thread at a time (thread-safe).

    Args:
        url: libpq URI (https://www.postgresql.org/docs/current/libpq-connect.html).
        location: the masked URL, for messages.
        size: most connections lent at once; a further borrower waits for one.
    """

    def __init__(self, url: str, location: str, size: int = POOL_SIZE) -> None:
        self._url = url
        self.location = location
        self._secrets = secrets_of(url)
        self._idle: list[tuple[psycopg.Connection[tuple[object, ...]], float]] = []
        self._mutex = threading.Lock()
        self._slots = threading.BoundedSemaphore(size)
        self._closed = False

    def connect(self, *, autocommit: bool = False) -> psycopg.Connection[tuple[object, ...]]:
        """A new connection (not pooled: the caller closes it).

        Raises:
            JournalError: PostgreSQL cannot be reached or refused us (retryable, scrubbed).
        """
        options: dict[str, str | int] = {"application_name": "cname-flow"}
        if "connect_timeout" not in self._url:  # the URL's own wins
            options["connect_timeout"] = CONNECT_TIMEOUT_S
        with self.errors("connect to"):
            return psycopg.Connection.connect(make_conninfo(self._url, **options),
                                              autocommit=autocommit)

    @contextlib.contextmanager
    def transaction(self, doing: str) -> Iterator[psycopg.Cursor[tuple[object, ...]]]:
        """A cursor inside one transaction on a borrowed connection: committed when the block
        ends, rolled back when it raises. A connection that failed is closed, not returned.

        Args:
            doing: what the transaction does, for messages (``"record events in"``).

        Raises:
            JournalError: as :func:`pg_errors` (nothing of the transaction is kept).
        """
        with self._slots:
            conn = self._borrow()
            healthy = False
            try:
                with self.errors(doing), conn.transaction(), conn.cursor() as cur:
                    yield cur
                healthy = True
            finally:
                self._give_back(conn, healthy or not conn.broken)

    def errors(self, doing: str) -> contextlib.AbstractContextManager[None]:
        """:func:`pg_errors` for this store."""
        return pg_errors(self.location, doing, self._secrets)

    def _borrow(self) -> psycopg.Connection[tuple[object, ...]]:
        while True:
            with self._mutex:
                if self._closed:
                    raise JournalError(f"store {self.location} is not open "
                                       "(use `with open_store(…)`)")
                if not self._idle:
                    break
                conn, since = self._idle.pop()
            recent = time.monotonic() - since < PROBE_AFTER_S
            if not conn.closed and ((recent and not _has_input(conn)) or _alive(conn)):
                return conn
            with contextlib.suppress(Exception):
                conn.close()
        return self.connect()

    def _give_back(self, conn: psycopg.Connection[tuple[object, ...]], reuse: bool) -> None:
        with self._mutex:
            if reuse and not self._closed and not conn.closed:
                self._idle.append((conn, time.monotonic()))
                return
            # a broken connection: the idle ones most likely died with it (a restart)
            dropped, self._idle = [conn, *(c for c, _ in self._idle)], []
        for each in dropped:
            with contextlib.suppress(Exception):
                each.close()

    def close(self) -> None:
        """Close every idle connection; those lent out close when given back."""
        with self._mutex:
            self._closed = True
            idle, self._idle = self._idle, []
        for conn, _ in idle:
            with contextlib.suppress(Exception):
                conn.close()


def _has_input(conn: psycopg.Connection[tuple[object, ...]]) -> bool:
    """Whether an idle connection's socket has something to read (no round trip).

    An idle connection is sent nothing unasked but for rare notices; a server that ended the
    session (a restart: ``FATAL: terminating connection due to administrator command``, then
    EOF) leaves exactly that. Such a connection is probed before it is lent, however recently
    it was used: a restart can take less than :data:`PROBE_AFTER_S`.
    """
    try:
        readable, _, _ = select.select([conn.fileno()], [], [], 0)
    except (OSError, ValueError, psycopg.Error):
        return True
    return bool(readable)


def _alive(conn: psycopg.Connection[tuple[object, ...]]) -> bool:
    """Whether ``conn`` still reaches its server (one round trip)."""
    try:
        conn.execute("SELECT 1")
        conn.rollback()
    except psycopg.Error:
        return False
    return True


@contextlib.contextmanager
def pg_errors(location: str, doing: str, secrets: list[str]) -> Iterator[None]:
    """Turn psycopg's errors raised in the block into :class:`JournalError`.

    A lost or refused connection (``OperationalError``) is retryable: the next call connects
    afresh. Every password of the URL is replaced by ``***`` in the message.

    Raises:
        JournalError: ``"PostgreSQL store <masked url>: cannot <doing>: <reason>"``.
    """
    try:
        yield
    except psycopg.Error as exc:
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        reason = scrub(reason, secrets)
        error = JournalError(f"PostgreSQL store {location}: cannot {doing} it: {reason}",
                             hint="check that PostgreSQL is up; the same command resumes")
        error.retryable = isinstance(exc, psycopg.OperationalError)
        raise error from None


def ensure_schema(conns: Connections) -> None:
    """Create the store's tables if missing (idempotent, safe from many processes at once),
    then check the layout version.

    Raises:
        JournalError: PostgreSQL unreachable, no right to create the schema, or a layout of a
            newer cname-flow (``cname_flow.meta`` ``schema_version`` above this one's).
    """
    with conns.transaction("create the tables of") as cur:
        cur.execute("SELECT pg_advisory_xact_lock(%s)", (DDL_LOCK,))
        cur.execute(DDL.encode())
        cur.execute(f"INSERT INTO {SCHEMA}.meta VALUES ('schema_version', %s) "
                    "ON CONFLICT (name) DO NOTHING", (str(SCHEMA_VERSION),))
        cur.execute(f"SELECT value FROM {SCHEMA}.meta WHERE name = 'schema_version'")
        row = cur.fetchone()
    found = int(str(row[0])) if row else SCHEMA_VERSION
    if found > SCHEMA_VERSION:
        raise JournalError(f"PostgreSQL store {conns.location}: schema {SCHEMA} has layout "
                           f"version {found}, this cname-flow knows {SCHEMA_VERSION}",
                           hint="upgrade cname-flow on this host")

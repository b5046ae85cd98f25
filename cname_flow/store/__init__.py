"""The store of record: binding state shared by every entry point, behind a port.

``bind``, ``unbind``, ``plan``, ``status``, ``cert``, batch jobs and reconcile read and write the
same records, keyed by binding (``"<bucket>/<domain>"``), with one lock per binding (README, "The
store of record"). Modules: ``base`` (the Protocols: :class:`BindingStore`, :class:`RecordLog`,
:class:`JobLog`; pruning rules), ``jsonl`` (:class:`JsonStore`, the embedded default over
:mod:`cname_flow.journal`), ``locks`` (OS file locks), ``jobs`` (job files), ``legacy`` (folding
format-1 journals in); ``postgres`` (:class:`~cname_flow.store.postgres.PgStore`, chosen by
``store.url``) with ``pg_conn``, ``pg_locks``, ``pg_jobs``; ``migrate`` (JSON → PostgreSQL).

Example::

    with open_store(Path(".cname-flow")) as store, store.lock(binding.key):
        record = store.get(binding.key)
"""

import os
from collections.abc import Mapping
from pathlib import Path

from cname_flow.journal.files import location_error
from cname_flow.journal.records import BindingRecord
from cname_flow.store.base import (
    BindingLock,
    BindingLocks,
    BindingStore,
    JobLog,
    JobState,
    RecordLog,
    RecordReader,
    never_started,
    prunable,
)
from cname_flow.store.jobs import job_files
from cname_flow.store.jsonl import LOCK_WAIT_S, STORE_FILE, JsonStore


def open_store(directory: Path, *, url: str | None = None,
               lock_wait_s: float = LOCK_WAIT_S) -> BindingStore:
    """The store of record, not yet open: use it as a context manager.

    Args:
        directory: ``journal.dir``: where the JSON store lives (used when ``url`` is None).
        url: ``store.url`` (``postgresql://…``): the PostgreSQL store
            (:class:`cname_flow.store.postgres.PgStore`) instead of the JSON one.
        lock_wait_s: ``journal.lock_wait_s``, seconds.

    Raises (on open): as :class:`JsonStore` or :class:`~cname_flow.store.postgres.PgStore`.
    """
    if url:
        from cname_flow.store.postgres import PgStore  # psycopg only when asked for

        return PgStore(url, lock_wait_s=lock_wait_s)
    return JsonStore(directory, lock_wait_s=lock_wait_s)


def read_all(directory: Path, *, url: str | None = None,
             lock_wait_s: float = LOCK_WAIT_S) -> Mapping[str, BindingRecord]:
    """Every binding in the store (read-only use: ``status``, ``plan``, reconcile's report).

    With the JSON store, a fresh machine (no store, no job under ``directory``) has none and
    nothing is created for it; journals of the previous format are folded in first.

    Raises:
        ConfigError: ``journal.dir`` cannot be used (a file, or under one; not searchable).
        Locked, JournalCorrupt, JournalError: as :func:`open_store`.
    """
    if not url:
        try:  # missing: a fresh machine; a file in the way (ENOTDIR) or no access: the user's
            os.scandir(directory).close()
        except FileNotFoundError:
            return {}
        except OSError as exc:
            raise location_error(exc, directory, doing="read") from exc
        if not (directory / STORE_FILE).exists() and not job_files(directory):
            return {}
    with open_store(directory, url=url, lock_wait_s=lock_wait_s) as store:
        return store.bindings()


__all__ = [
    "LOCK_WAIT_S",
    "BindingLock",
    "BindingLocks",
    "BindingStore",
    "JobLog",
    "JobState",
    "JsonStore",
    "RecordLog",
    "RecordReader",
    "never_started",
    "open_store",
    "prunable",
    "read_all",
]

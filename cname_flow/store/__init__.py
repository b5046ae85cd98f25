"""The store of record: binding state shared by every entry point, behind a port.

``bind``, ``unbind``, ``plan``, ``status``, ``cert``, batch jobs and reconcile read and write the
same records, keyed by binding (``"<bucket>/<domain>"``), with one lock per binding (README, "The
store of record"). Modules: ``base`` (the Protocols: :class:`BindingStore`, :class:`RecordLog`,
:class:`JobLog`; pruning rules), ``jsonl`` (:class:`JsonStore`, the embedded default over
:mod:`cname_flow.journal`), ``locks`` (OS file locks), ``jobs`` (job files), ``legacy`` (folding
format-1 journals in).

Example::

    with open_store(Path(".cname-flow")) as store, store.lock(binding.key):
        record = store.get(binding.key)
"""

from pathlib import Path

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
from cname_flow.store.jsonl import LOCK_WAIT_S, JsonStore


def open_store(directory: Path, *, lock_wait_s: float = LOCK_WAIT_S) -> JsonStore:
    """The store of record kept under ``directory`` (``journal.dir``), not yet open: use it as
    a context manager."""
    return JsonStore(directory, lock_wait_s=lock_wait_s)


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
]

"""The JSON Lines format layer: one JSON line per binding transition, fsynced before it counts.

The runner records intent (``running``) before a side effect and the outcome (``done`` /
``failed``) after it; on resume, replaying the file gives each binding's
:class:`BindingRecord`. Modules: ``records`` (values, secret guard, replay), ``codec`` (the line
format, version 2), ``reader`` (loading, torn tails, incremental catch-up, the lock-free
snapshot), ``files`` (lock, modes, atomic replace), ``store`` (:class:`Journal`, one exclusive
writer per file: a batch job's file). The store of record that many processes share is built on
these in :mod:`cname_flow.store`.

Guarantees (summarised in the README, "How a binding flows"):

* Append-only (``O_APPEND``); :meth:`Journal.record` returns only after ``write`` + ``fsync``.
  A failed write is truncated away, so the file never keeps half a line in its middle. A full
  disk or quota (``ENOSPC``, ``EDQUOT``) is a retryable
  :class:`~cname_flow.errors.JournalError` (exit 75: the same command resumes once space is
  freed); a ``journal.dir`` that cannot be used is a :class:`~cname_flow.errors.ConfigError`.
* A torn last line (a crash mid-write: no trailing newline, or invalid JSON on the last line
  only) is dropped on load and truncated before the next append. Anything else unreadable,
  a missing header or an unknown version raises :class:`~cname_flow.errors.JournalCorrupt`
  naming ``<file>:<line>``.
* Recording costs the same at any journal size: replayed state stays in memory and the file is
  never rewritten per event. :meth:`Journal.group` and :meth:`Journal.record_many` flush many
  events with one ``write`` and one ``fsync`` (group commit). :meth:`Journal.compact` rewrites
  atomically, one synthetic event per binding.
* A non-blocking ``filelock`` on ``<journal>.lock`` keeps a second process out with
  :class:`~cname_flow.errors.Locked`, naming the holder kept in ``<journal>.holder``.
* Files are created ``0600``, a missing directory ``0700``. Outputs whose key names a secret
  (``secret``, ``private_key``, ``security_token``, ``password``) or whose value holds a PEM
  block are refused with ``ValueError`` and never written.

Example::

    with Journal(Path("state/job.jsonl")) as journal:
        journal.record(JournalEvent(binding.key, Step.CREATE_TOKEN, "running", Phase.PENDING))
"""

from cname_flow.journal.reader import JournalSnapshot
from cname_flow.journal.records import (
    BindingOutputs,
    BindingRecord,
    ErrorInfo,
    EventStatus,
    EventStep,
    JournalEvent,
    OutputValue,
)
from cname_flow.journal.store import Journal

__all__ = [
    "BindingOutputs",
    "BindingRecord",
    "ErrorInfo",
    "EventStatus",
    "EventStep",
    "Journal",
    "JournalEvent",
    "JournalSnapshot",
    "OutputValue",
]

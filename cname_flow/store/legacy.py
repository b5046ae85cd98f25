"""Fold journals of format version 1 (before the shared store) into the store, on first use.

Version 1 kept one-shot bindings in ``<journal.dir>/bindings.jsonl`` (one exclusive writer) and
each batch job's bindings, in full, in its own ``jobs/<id>.jsonl``. Folding, idempotent and
crash-safe (no user loses state; a crash leaves the old or the new layout readable):

1. :func:`upgrade_store_file` (the store held exclusively): rewrite ``bindings.jsonl`` with a
   version-2 header and every line after it, atomically (temp file, fsync, rename). Its history
   is kept. A crash leaves the version-1 file, which is folded again next time.
2. :func:`fold_job` (the job's own lock held; the store may be shared): append to the store one
   snapshot line per binding of the job whose store record is missing or older (a forget line
   first when there was one, so nothing of the older record survives), durably; then rewrite the
   job file atomically as version 2 holding only its meta and members. A crash between the two
   leaves a version-1 job file whose records are already in the store: folding it again appends
   nothing (a record is only taken when strictly newer) and finishes the rewrite.

A job file still locked by a process of the previous version (a batch running now) is left for
a later open.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from pathlib import Path

from cname_flow.errors import Locked
from cname_flow.journal import BindingRecord
from cname_flow.journal.codec import (
    encode_forget,
    encode_header,
    encode_members,
    encode_meta,
    encode_snapshot,
)
from cname_flow.journal.files import HolderLock, replace_file
from cname_flow.journal.reader import header_version, load
from cname_flow.logs import get_logger

log = get_logger(__name__)

#: Appends lines to the store durably and adopts the records they stand for.
Adopt = Callable[[list[bytes], list[BindingRecord]], None]


def upgrade_store_file(path: Path, *, fsync: bool) -> bool:
    """Rewrite a version-1 store file as version 2 (hold the store exclusively).

    Returns:
        True when the file was version 1 and has been rewritten.

    Raises:
        JournalCorrupt: the file is unreadable.
        OSError: the rewrite failed (the old file is kept).
    """
    if header_version(path) != 1:
        return False
    loaded = load(path)
    assert loaded.created_at is not None
    data = path.read_bytes()[:loaded.end]
    body = data[data.index(b"\n") + 1:]
    replace_file(path, encode_header(loaded.created_at) + body, durable=fsync)
    log.info("store.upgraded", path=str(path), from_version=1)
    return True


def fold_job(path: Path, *, get: Callable[[str], BindingRecord | None], adopt: Adopt,
             fsync: bool) -> bool:
    """Fold a version-1 job file into the store (see the module docstring).

    Args:
        path: the job file.
        get: the store's current record of a key (caught up).
        adopt: appends lines to the store durably and adopts their records.
        fsync: make the job file's rewrite durable.

    Returns:
        True when the job was version 1 and is now folded; False when it is not version 1 or
        a process of the previous version holds it (it is left for later).

    Raises:
        JournalCorrupt: the job file is unreadable.
        JournalError: the store append failed (the job file is left as it was).
    """
    if header_version(path) != 1:
        return False
    lock = HolderLock.for_journal(path)
    try:
        lock.acquire()
    except Locked as exc:
        log.warning("store.fold_deferred", job=str(path), holder=exc.holder)
        return False
    try:
        if header_version(path) != 1:
            return False  # folded by another process meanwhile
        loaded = load(path)
        lines, records = _newer(loaded.state.records.values(), get)
        if lines:
            adopt(lines, records)
        now = datetime.now(UTC)
        assert loaded.created_at is not None
        data = [encode_header(loaded.created_at), encode_meta(loaded.state.meta, now),
                encode_members(list(loaded.state.records), now)]
        replace_file(path, b"".join(data), durable=fsync)
        log.info("store.job_folded", job=str(path), bindings=len(loaded.state.records),
                 adopted=len(records))
        return True
    finally:
        lock.release()


def _newer(records: Iterable[BindingRecord], get: Callable[[str], BindingRecord | None],
           ) -> tuple[list[bytes], list[BindingRecord]]:
    """The lines that bring the store up to ``records`` where they are newer, and those."""
    lines: list[bytes] = []
    taken: list[BindingRecord] = []
    for record in records:
        mine = get(record.key)
        if mine is not None and mine.updated_at >= record.updated_at:
            continue
        if mine is not None:
            lines.append(encode_forget(record.key, datetime.now(UTC)))
        lines.append(encode_snapshot(record))
        taken.append(record)
    return lines, taken

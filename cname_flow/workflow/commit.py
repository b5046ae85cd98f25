"""Group commit of journal events for the batch engine: many callers, one ``fsync`` per group.

A flusher thread owns the writes. Callers on worker threads block in
:meth:`GroupCommitter.commit_blocking`; callers on the event loop await
:meth:`GroupCommitter.commit`. Whatever is queued while one ``write`` + ``fsync`` runs goes to
disk with the next one, so N callers that land together cost one ``fsync``, and a worker that
journals its own transitions never needs the event loop.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Sequence
from concurrent.futures import Future

from cname_flow.errors import JournalError
from cname_flow.journal import BindingRecord, JournalEvent
from cname_flow.store.base import RecordLog

_Entry = tuple[Sequence[JournalEvent], "Future[None]"]


class GroupCommitter:
    """Appends journal events from many threads and tasks, one ``write`` + ``fsync`` per group.

    Both commit methods return once their events are durable. Call :meth:`start` before the
    first commit and :meth:`close` after the last.

    Args:
        journal: the store's record log (open; the store of record in a batch job).

    Attributes:
        flushes: groups written so far (one ``fsync`` each).
    """

    def __init__(self, journal: RecordLog) -> None:
        self.journal = journal
        self.flushes = 0
        self._pending: list[_Entry] = []
        self._cond = threading.Condition()
        self._closed = False
        self._thread = threading.Thread(target=self._flush_forever, name="journal", daemon=True)

    def start(self) -> None:
        """Start the flusher thread."""
        self._thread.start()

    def commit_blocking(self, *events: JournalEvent) -> BindingRecord:
        """Journal ``events`` durably, in order, in one group; block the calling thread.

        Call it from a worker thread, never from the event loop.

        Returns:
            The record of the last event's binding after the events.

        Raises:
            JournalError: the write or fsync failed (nothing of that group is recorded), or
                the committer is closed.
            ValueError: an event is malformed (see :meth:`RecordLog.record_many`).
        """
        self._enqueue(events).result()
        return self._record_of(events[-1])

    async def commit(self, *events: JournalEvent) -> BindingRecord:
        """:meth:`commit_blocking` for the event loop: awaits durability without blocking it.

        Returns:
            The record of the last event's binding after the events.

        Raises:
            JournalError: as :meth:`commit_blocking`.
        """
        await asyncio.shield(asyncio.wrap_future(self._enqueue(events)))
        return self._record_of(events[-1])

    async def close(self) -> None:
        """Flush what is queued and stop the flusher (later commits raise JournalError)."""
        with self._cond:
            self._closed = True
            self._cond.notify()
        if self._thread.is_alive():
            await asyncio.get_running_loop().run_in_executor(None, self._thread.join)

    def _enqueue(self, events: Sequence[JournalEvent]) -> Future[None]:
        done: Future[None] = Future()
        with self._cond:
            if self._closed:
                raise JournalError("the job's journal committer is closed")
            self._pending.append((events, done))
            self._cond.notify()
        return done

    def _record_of(self, event: JournalEvent) -> BindingRecord:
        record = self.journal.get(event.key)
        assert record is not None  # the event was just applied
        return record

    def _flush_forever(self) -> None:
        while True:
            with self._cond:
                while not self._pending and not self._closed:
                    self._cond.wait()
                batch, self._pending = self._pending, []
                if not batch:
                    return  # closed and drained
            self._flush(batch)

    def _flush(self, batch: list[_Entry]) -> None:
        events = [event for group, _ in batch for event in group]
        try:
            self.journal.record_many(events)
        except Exception as exc:  # every waiter of the group learns why
            for _, done in batch:
                done.set_exception(exc)
            return
        self.flushes += 1
        for _, done in batch:
            done.set_result(None)

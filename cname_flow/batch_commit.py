"""Group commit of journal events for the batch engine: many tasks, one ``fsync`` per group."""

from __future__ import annotations

import asyncio
import contextlib
from concurrent.futures import ThreadPoolExecutor

from cname_flow.journal import BindingRecord, Journal, JournalEvent


class GroupCommitter:
    """Appends journal events from many tasks, one ``write`` + ``fsync`` per group.

    :meth:`commit` returns once its event is durable. Events arriving while a flush runs are
    flushed together by the next one.
    """

    def __init__(self, journal: Journal) -> None:
        self.journal = journal
        self.flushes = 0
        self._pending: list[tuple[JournalEvent, asyncio.Future[None]]] = []
        self._wake = asyncio.Event()
        self._io = ThreadPoolExecutor(max_workers=1, thread_name_prefix="journal")
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        """Start the flusher task on the running loop."""
        self._task = asyncio.get_running_loop().create_task(self._flush_forever())

    async def commit(self, event: JournalEvent) -> BindingRecord:
        """Journal ``event`` durably; return the binding's record after it.

        Raises:
            JournalError: the write or fsync failed (nothing of that group is recorded).
        """
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._pending.append((event, fut))
        self._wake.set()
        await asyncio.shield(fut)
        record = self.journal.get(event.key)
        assert record is not None
        return record

    async def close(self) -> None:
        """Flush what is pending and stop the flusher."""
        if self._task is not None:
            while self._pending:
                await self._flush()
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        self._io.shutdown(wait=True)

    async def _flush_forever(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            await self._flush()

    async def _flush(self) -> None:
        batch, self._pending = self._pending, []
        if not batch:
            return
        events = [event for event, _ in batch]
        loop = asyncio.get_running_loop()
        try:
            await loop.run_in_executor(self._io, self.journal.record_many, events)
        except Exception as exc:
            for _, fut in batch:
                if not fut.done():
                    fut.set_exception(exc)
            return
        self.flushes += 1
        for _, fut in batch:
            if not fut.done():
                fut.set_result(None)


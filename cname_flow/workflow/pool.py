"""The batch engine's worker pool: threads for synchronous SDK calls behind a priority gate.

A :class:`PriorityGate` hands a freed worker to the binding furthest along the machine, so
bindings finish instead of all crowding the first steps; no step kind may hold more than half
the workers (a step blocked on its API's token bucket cannot starve the others).
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import math
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

import structlog

from cname_flow.model import Step
from cname_flow.workflow import machine

_T = TypeVar("_T")

#: Order of the steps: a later step gets a free worker first.
_PRIORITY = {step: -i for i, step in enumerate(machine.step_order())}


class PriorityGate:
    """An asyncio semaphore of ``slots`` whose waiters are served lowest priority value first."""

    def __init__(self, slots: int) -> None:
        self._free = slots
        self._heap: list[tuple[int, int, asyncio.Future[None]]] = []
        self._seq = itertools.count()

    async def acquire(self, priority: int) -> None:
        """Wait for a slot; ties are served first come, first served."""
        if self._free > 0 and not self._heap:
            self._free -= 1
            return
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        heapq.heappush(self._heap, (priority, next(self._seq), fut))
        try:
            await fut
        except asyncio.CancelledError:
            if fut.done() and not fut.cancelled():
                self.release()  # the slot was handed to us as we were cancelled
            raise

    def release(self) -> None:
        """Give the slot to the best waiter, or back to the pool."""
        while self._heap:
            _, _, fut = heapq.heappop(self._heap)
            if not fut.done():
                fut.set_result(None)
                return
        self._free += 1


class Workers:
    """The bounded thread pool behind a :class:`PriorityGate` with a cap per step kind.

    Args:
        concurrency: worker threads (synchronous API calls in flight at once).
    """

    def __init__(self, concurrency: int) -> None:
        self.concurrency = concurrency
        self._pool = ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix="batch")
        self._gate = PriorityGate(concurrency)
        cap = max(1, math.ceil(concurrency / 2))
        self._caps = {step: asyncio.Semaphore(cap) for step in Step}

    async def acquire(self, step: Step) -> None:
        """Wait for a worker for ``step`` (later steps are served first)."""
        await self._caps[step].acquire()
        try:
            await self._gate.acquire(_PRIORITY[step])
        except BaseException:
            self._caps[step].release()
            raise

    def release(self, step: Step) -> None:
        """Give back the worker taken by :meth:`acquire`."""
        self._gate.release()
        self._caps[step].release()

    async def call(self, key: str, fn: Callable[[], _T]) -> _T:
        """Run ``fn`` in a worker thread (structlog context ``binding=key``); hold a slot first."""
        return await asyncio.get_running_loop().run_in_executor(self._pool, _bound_call, key, fn)

    def shutdown(self) -> None:
        """Stop the pool without waiting for abandoned steps (their intent stays journaled)."""
        self._pool.shutdown(wait=False, cancel_futures=True)


def _bound_call(key: str, fn: Callable[[], _T]) -> _T:
    with structlog.contextvars.bound_contextvars(binding=key):
        return fn()


"""Run the propagation check's one asynchronous body synchronously, without an event loop.

The check is written once, as coroutines (:mod:`cname_flow.propagation.checker`,
:func:`cname_flow.propagation.wire.aask`); its I/O is injected. On the batch path the I/O is
``dns.asyncquery`` (or the shared UDP transport) and ``asyncio`` sleeps, and the coroutines are
awaited on the job's event loop. On the one-shot path the I/O is blocking dnspython calls, thread
pools and ``time.sleep``, wrapped by :func:`blocking` into coroutine functions that never suspend;
a coroutine that awaits only such functions runs to completion at its first ``send(None)``
(PEP 492, "Coroutine objects": https://peps.python.org/pep-0492/#coroutine-objects), which is all
:func:`run_sync` does.

Why not ``asyncio.run`` per call: it builds and tears down an event loop each time (tens of
microseconds more per call than this driver), and it refuses to run in a thread whose event
loop is running, which is where a batch job's worker may fall back to the synchronous pre-state
(:meth:`cname_flow.batch.checker.CachingChecker.pre_state`).
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Any, ParamSpec, TypeVar

__all__ = ["blocking", "run_sync"]

_T = TypeVar("_T")
_P = ParamSpec("_P")


def run_sync(coro: Coroutine[Any, Any, _T]) -> _T:
    """Run ``coro`` to completion in the calling thread and return its result.

    ``coro`` must await only coroutines that never suspend (see :func:`blocking`); it runs in
    the calling thread and context, whether or not an event loop runs in that thread.

    Raises:
        RuntimeError: ``coro`` suspended, i.e. awaited a future that needs an event loop (a
            programming error: an asynchronous primitive reached a synchronous facade).
        BaseException: whatever ``coro`` raises, unchanged.
    """
    try:
        coro.send(None)
    except StopIteration as finished:
        result: _T = finished.value
        return result
    coro.close()
    raise RuntimeError(f"{coro!r} suspended; a synchronous facade can only run coroutines "
                       "whose I/O never suspends")


def blocking(fn: Callable[_P, _T]) -> Callable[_P, Coroutine[Any, Any, _T]]:
    """``fn`` as a coroutine function that calls it and returns without ever suspending.

    The call blocks the calling thread as ``fn`` does; await the result only under
    :func:`run_sync`, never on an event loop.
    """

    async def call(*args: _P.args, **kwargs: _P.kwargs) -> _T:
        return fn(*args, **kwargs)

    return call

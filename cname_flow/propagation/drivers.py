"""The two I/O flavours of the propagation check: blocking threads, or one event loop.

:class:`~cname_flow.propagation.checker.PropagationChecker` writes each operation once, as a
coroutine over an :class:`Io`; only the I/O below differs:

* :func:`threaded` (the one-shot bind): blocking dnspython sockets (``dns.query``), one thread
  per query in flight (the caller's executor, or a pool per fan-out), ``time.sleep``; every
  primitive is wrapped by :func:`~cname_flow.propagation.blocking.blocking`, so the coroutines
  finish under :func:`~cname_flow.propagation.blocking.run_sync` without an event loop;
* :func:`evented` (batch jobs): ``dns.asyncquery`` or the shared UDP transport
  (:mod:`cname_flow.propagation.mux`), ``asyncio.gather`` behind a semaphore, ``asyncio.sleep``;
  awaited on the running loop, no thread.

dnspython's two query APIs: https://dnspython.readthedocs.io/en/stable/query.html and
https://dnspython.readthedocs.io/en/stable/async-query.html
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from concurrent.futures import Executor, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import dns.message
from dns.rdatatype import RdataType

from cname_flow.propagation.blocking import blocking, run_sync
from cname_flow.propagation.model import NameserverAddress
from cname_flow.propagation.wire import (
    AsyncQueryFn,
    Exchange,
    QueryFn,
    aask,
    make_query,
    query_id,
)

__all__ = ["AskOne", "Io", "evented", "threaded"]

#: Asks one address.
AskOne = Callable[[NameserverAddress], Coroutine[Any, Any, Exchange]]
#: Runs an :data:`AskOne` for every target in parallel; the exchanges in target order.
FanOut = Callable[[AskOne, Sequence[NameserverAddress]], Awaitable[list[Exchange]]]


@dataclass(frozen=True, slots=True)
class Io:
    """The I/O of one flavour of the check.

    Attributes:
        query: one query to one address.
        fan_out: runs one ask per target in parallel.
        sleep: waits that many seconds.
        clock: monotonic clock in seconds (RTTs are measured on it).
        payload: EDNS(0) UDP payload size advertised in every query, bytes (RFC 6891 §6.2.5).
    """

    query: AsyncQueryFn
    fan_out: FanOut
    sleep: Callable[[float], Awaitable[None]]
    clock: Callable[[], float]
    payload: int

    async def ask_all(
        self, name: str, rdtype: RdataType, targets: Sequence[NameserverAddress], *,
        reuse: dns.message.Message | None = None,
    ) -> list[Exchange]:
        """Ask every target for ``name``/``rdtype`` (RD=0) in parallel; exchanges in order.

        One query is built per call and sent to every target (one message id for the round;
        a transport that finds the id taken on a socket sends a copy with another). With
        ``reuse`` (a query :meth:`query_for` built for the same name and type, e.g. by an earlier
        round of the same wait), that query is sent again under a fresh id instead of
        building a new one: dnspython's ``make_query`` is the largest cost of a round after
        parsing the answers (docs/performance-batch.md).

        Transport errors are in the exchanges (:func:`~cname_flow.propagation.wire.aask`),
        never raised.
        """
        if not targets:
            return []
        if reuse is None:
            q = self.query_for(name, rdtype)
        else:
            q = reuse
            q.id = query_id()  # a new id per round (RFC 5452 §4.3); the round before is done

        async def one(target: NameserverAddress) -> Exchange:
            return await aask(self.query, q, target, self.clock)

        return await self.fan_out(one, targets)

    def query_for(self, name: str, rdtype: RdataType) -> dns.message.Message:
        """A query for ``name``/``rdtype`` as :meth:`ask_all` sends it (RD=0, EDNS(0) with
        ``payload``, NSID requested), to pass back to it as ``reuse``."""
        return make_query(name, rdtype, self.payload)


def threaded(
    query: QueryFn,
    sleep: Callable[[float], None],
    clock: Callable[[], float],
    *,
    payload: int,
    max_parallel: int,
    executor: Executor | None,
) -> Io:
    """Blocking I/O: each ask on a thread of ``executor``, or of a pool of ``max_parallel``
    threads per fan-out when there is none (the caller owns ``executor``)."""

    def in_threads(one: AskOne, targets: Sequence[NameserverAddress]) -> list[Exchange]:
        def run(target: NameserverAddress) -> Exchange:
            return run_sync(one(target))

        if executor is not None:
            return list(executor.map(run, targets))
        workers = min(max_parallel, len(targets))
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="propagation") as pool:
            return list(pool.map(run, targets))

    return Io(blocking(query), blocking(in_threads), blocking(sleep), clock, payload)


def evented(
    query: AsyncQueryFn,
    sleep: Callable[[float], Awaitable[None]],
    clock: Callable[[], float],
    *,
    payload: int,
    max_parallel: int,
) -> Io:
    """Asynchronous I/O on the running event loop: at most ``max_parallel`` asks in flight."""

    async def gathered(one: AskOne, targets: Sequence[NameserverAddress]) -> list[Exchange]:
        gate = asyncio.Semaphore(max_parallel)

        async def gated(target: NameserverAddress) -> Exchange:
            async with gate:
                return await one(target)

        return list(await asyncio.gather(*(gated(target) for target in targets)))

    return Io(query, gathered, sleep, clock, payload)

"""The propagation checker of batch jobs: addresses discovered once per zone, shared transports.

A one-binding run can afford :class:`PropagationChecker`'s thread pool per fan-out and a
socket per query; a batch job cannot:

* with dozens of workers each observing the pre-state of its TXT name, a pool per call
  started four threads per binding, and every start held ``concurrent.futures``' global lock
  while waiting for the new thread to take the GIL: the event loop, whose every hand-off to a
  worker takes that lock too, spent a fifth of its time blocked there. The synchronous
  fan-outs run on one long-lived pool instead (the checker's ``executor``);
* the asynchronous polls of every waiting binding share one UDP socket per nameserver
  address (:class:`~cname_flow.propagation.mux.SharedUdpTransport`) instead of opening one per
  query on the event loop;
* the pre-state that ``write_txt`` reads from a worker thread runs on the job's event loop
  through that same transport (:meth:`CachingChecker.pre_state`) instead of the pool and a
  socket per query: with 2 addresses and 8 threads asking at once, ~1.1 ms CPU per pre-state
  instead of ~1.8 ms (one thread asking: ~0.9-1.2 ms instead of ~1.2-1.5 ms);
* a propagation wait sends its first round when the job's earlier bindings of the same
  nameserver set saw their records everywhere (:mod:`cname_flow.batch.delays`), not 0.25 s
  after the write: about 3 rounds per binding instead of 6 with one nameserver lagging 2 s.

Profiles and figures: docs/performance-batch.md.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import math
import threading
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor

import dns.message

from cname_flow.batch.delays import PropagationDelays
from cname_flow.logs import get_logger
from cname_flow.propagation.checker import (
    NameserverAddress,
    PropagationChecker,
    PropagationPolicy,
)
from cname_flow.propagation.model import PreState
from cname_flow.propagation.mux import SharedUdpTransport

log = get_logger(__name__)

#: Added to the longest time a pre-state's queries can take before a worker stops waiting for
#: the loop and asks again itself, seconds: room for a busy event loop to get round to it.
LOOP_SLACK_S = 5.0


class _Detached(Exception):
    """The checker was closed, or the caller gave up, before a submitted pre-state started."""


class _Ticket:
    """A pre-state handed to the loop; ``abandoned`` once its caller stopped waiting for it."""

    __slots__ = ("abandoned",)

    def __init__(self) -> None:
        self.abandoned = False


class CachingChecker(PropagationChecker):
    """A :class:`PropagationChecker` for many bindings at once (thread-safe).

    Each zone's nameserver addresses are discovered once; target discovery runs on one shared
    pool of ``threads`` threads, started once; the asynchronous polls share one UDP socket per
    address. :meth:`pre_state`, called from worker threads, runs on the job's event loop once
    the checker knows it (:meth:`attach_loop`, or the first asynchronous call on a loop) and on
    the shared pool otherwise. Each :meth:`~PropagationChecker.wait_async` with a known write
    time sends its first round when :attr:`delays` suggests for its nameserver set, and teaches
    it when the record was seen everywhere (the base checker's ``delays`` hook). Call
    :meth:`aclose` on the job's event loop and :meth:`close` when the job ends.

    Args:
        base: the checker whose policy this one follows.
        threads: size of the shared query pool (queries in flight at once across bindings).
    """

    def __init__(self, base: PropagationChecker, *, threads: int = 32) -> None:
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._closed = False  # aclose ran: no loop is attached again
        self._running: set[asyncio.Task[PreState]] = set()  # pre-states on the loop
        self._targets: dict[tuple[str, tuple[str, ...]], list[NameserverAddress]] = {}
        self._discovering: dict[tuple[str, tuple[str, ...]], threading.Lock] = {}
        self._pool = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="dns-query")
        self._transport = SharedUdpTransport(base.policy)
        self.delays: PropagationDelays = PropagationDelays()
        super().__init__(base.policy, executor=self._pool, aquery=self._on_the_loop,
                         delays=self.delays)

    def targets(self, zone: str, provider_nameservers: Sequence[str]) -> list[NameserverAddress]:
        """As :meth:`PropagationChecker.targets`, discovered once per (zone, provider
        nameservers): workers asking at once wait for the one discovery in flight.

        Raises:
            StepError: as :meth:`PropagationChecker.targets` (not cached; the next caller
                tries again).
        """
        key = (zone, tuple(provider_nameservers))
        with self._lock:
            gate = self._discovering.setdefault(key, threading.Lock())
        with gate:
            found = self._targets.get(key)
            if found is None:
                found = super().targets(zone, provider_nameservers)
                self._targets[key] = found
        return list(found)

    def attach_loop(self, loop: asyncio.AbstractEventLoop | None = None) -> None:
        """Run the pre-states of other threads on ``loop`` (default: the running loop).

        Call it on the job's loop before the engine starts; without it the checker learns the
        loop at its first asynchronous call (the first propagation wait), and pre-states
        before that run on the shared pool. Ignored after :meth:`aclose`.

        Raises:
            RuntimeError: no ``loop`` given and none is running in this thread.
        """
        self._learn(loop or asyncio.get_running_loop())

    def pre_state(self, name: str, targets: Sequence[NameserverAddress]) -> PreState:
        """As :meth:`PropagationChecker.pre_state`, on the job's loop when one is attached.

        The calling thread blocks until the loop has the answer. It asks on the shared pool
        itself instead when no loop is attached, when it is the loop's own thread, when the
        loop is closed or stopped, and when the loop has not answered within the longest time
        the queries can take plus :data:`LOOP_SLACK_S` (a stalled or stopping loop).

        Raises:
            StepError: ``targets`` is empty (not retryable), or no address answered
                authoritatively (retryable).
        """
        loop = self._usable_loop()
        if loop is None:
            return super().pre_state(name, targets)
        ticket = _Ticket()
        work = self._pre_state_on_loop(name, targets, ticket)
        try:
            future = asyncio.run_coroutine_threadsafe(work, loop)
        except RuntimeError:  # the loop closed since it was checked
            work.close()
            return super().pre_state(name, targets)
        timeout = pre_state_bound_s(self.policy, len(targets)) + LOOP_SLACK_S
        try:
            return future.result(timeout=timeout)
        except (TimeoutError, concurrent.futures.CancelledError, _Detached) as exc:
            ticket.abandoned = True  # not started yet: it will not start
            if not loop.is_closed():
                future.cancel()  # started: its task is cancelled (a closed loop has none)
            log.info("propagation.pre_state_off_loop", name=name, reason=type(exc).__name__)
        return super().pre_state(name, targets)

    async def aclose(self) -> None:
        """Detach the loop, let pre-states running on it finish, close the polls' UDP sockets.

        Await it on the loop that used them. Pre-states asked afterwards run on the shared pool.
        """
        with self._lock:
            self._closed = True
            self._loop = None
        if self._running:
            await asyncio.wait(set(self._running))
        await self._transport.aclose()

    def close(self) -> None:
        """Stop the query pool (queries in flight finish first)."""
        self._pool.shutdown(wait=True)

    # -- the loop ---------------------------------------------------------------------------

    async def _on_the_loop(
        self, q: dns.message.Message, target: NameserverAddress
    ) -> dns.message.Message:
        """The asynchronous transport: the shared sockets, noting the loop they run on."""
        self._learn(asyncio.get_running_loop())
        return await self._transport(q, target)

    def _learn(self, loop: asyncio.AbstractEventLoop) -> None:
        if self._loop is loop:
            return  # every asynchronous exchange passes here: no lock when nothing changes
        with self._lock:
            if not self._closed and (self._loop is None or self._loop.is_closed()):
                self._loop = loop

    def _usable_loop(self) -> asyncio.AbstractEventLoop | None:
        """The attached loop if this thread may block on it, else None."""
        loop = self._loop
        if loop is None or loop.is_closed() or not loop.is_running():
            return None
        try:
            own = asyncio.get_running_loop()
        except RuntimeError:
            return loop
        return None if own is loop else loop

    async def _pre_state_on_loop(
        self, name: str, targets: Sequence[NameserverAddress], ticket: _Ticket
    ) -> PreState:
        if self._closed or ticket.abandoned:
            raise _Detached  # the transport is closed, or the caller asks on the pool itself
        task = asyncio.current_task()
        assert task is not None  # run_coroutine_threadsafe runs it as a task
        self._running.add(task)
        try:
            return await self.pre_state_async(name, targets)
        finally:
            self._running.discard(task)


def pre_state_bound_s(policy: PropagationPolicy, addresses: int) -> float:
    """Longest a pre-state of ``addresses`` addresses can take on the transport, in seconds.

    Two fan-outs (TXT, then SOA where needed) in waves of ``policy.max_parallel``; each query
    waits at most ``query_timeout_s`` on UDP, then one TCP try (``tcp_timeout_s`` after a UDP
    timeout, ``query_timeout_s`` after a truncated answer).
    """
    waves = max(1, math.ceil(addresses / policy.max_parallel))
    query = policy.query_timeout_s + max(policy.tcp_timeout_s, policy.query_timeout_s)
    return 2 * waves * query

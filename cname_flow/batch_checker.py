"""The propagation checker of batch jobs: addresses discovered once per zone, shared transports.

A one-binding run can afford :class:`PropagationChecker`'s thread pool per fan-out and a
socket per query; a batch job cannot:

* with dozens of workers each observing the pre-state of its TXT name, a pool per call
  started four threads per binding, and every start held ``concurrent.futures``' global lock
  while waiting for the new thread to take the GIL: the event loop, whose every hand-off to a
  worker takes that lock too, spent a fifth of its time blocked there. The synchronous
  fan-outs run on one long-lived pool instead (the checker's ``executor``);
* the asynchronous polls of every waiting binding share one UDP socket per nameserver
  address (:class:`~cname_flow.propagation_mux.SharedUdpTransport`) instead of opening one per
  query on the event loop.

Profiles and figures: docs/performance-batch.md.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor

from cname_flow.propagation import NameserverAddress, PropagationChecker
from cname_flow.propagation_mux import SharedUdpTransport


class CachingChecker(PropagationChecker):
    """A :class:`PropagationChecker` for many bindings at once (thread-safe).

    Each zone's nameserver addresses are discovered once; synchronous queries (pre-state,
    target discovery) run on one shared pool of ``threads`` threads, started once; the
    asynchronous polls share one UDP socket per address. Call :meth:`aclose` on the job's
    event loop and :meth:`close` when the job ends.

    Args:
        base: the checker whose policy this one follows.
        threads: size of the shared query pool (queries in flight at once across bindings).
    """

    def __init__(self, base: PropagationChecker, *, threads: int = 32) -> None:
        pool = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="dns-query")
        transport = SharedUdpTransport(base.policy)
        super().__init__(base.policy, executor=pool, aquery=transport)
        self._pool = pool
        self._transport = transport
        self._targets: dict[tuple[str, tuple[str, ...]], list[NameserverAddress]] = {}
        self._lock = threading.Lock()

    def targets(self, zone: str, provider_nameservers: Sequence[str]) -> list[NameserverAddress]:
        """As :meth:`PropagationChecker.targets`, cached per (zone, provider nameservers)."""
        key = (zone, tuple(provider_nameservers))
        with self._lock:
            found = self._targets.get(key)
        if found is None:
            found = super().targets(zone, provider_nameservers)
            with self._lock:
                self._targets[key] = found
        return list(found)

    async def aclose(self) -> None:
        """Close the polls' UDP sockets (on the loop that used them)."""
        await self._transport.aclose()

    def close(self) -> None:
        """Stop the query pool (queries in flight finish first)."""
        self._pool.shutdown(wait=True)

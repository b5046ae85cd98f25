"""The propagation checker of batch jobs: addresses discovered once per zone, one query pool.

A one-binding run can afford :class:`PropagationChecker`'s thread pool per fan-out; a batch
job cannot. With dozens of workers each observing the pre-state of its TXT name, a pool per
call started four threads per binding, and every start held ``concurrent.futures``' global
lock while waiting for the new thread to take the GIL: the event loop, whose every hand-off
to a worker takes that lock too, spent a fifth of its time blocked there (profile in
docs/performance-batch.md). :class:`CachingChecker` runs the synchronous fan-outs on one
long-lived pool instead.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor

from dns.rdatatype import RdataType

from cname_flow.propagation import NameserverAddress, PropagationChecker
from cname_flow.propagation_wire import Exchange, ask, make_query


class CachingChecker(PropagationChecker):
    """A :class:`PropagationChecker` for many bindings at once (thread-safe).

    Each zone's nameserver addresses are discovered once; synchronous queries (pre-state,
    target discovery) run on one shared pool of ``threads`` threads, started once. Call
    :meth:`close` when the job ends.

    Args:
        base: the checker whose policy this one follows.
        threads: size of the shared query pool (queries in flight at once across bindings).
    """

    def __init__(self, base: PropagationChecker, *, threads: int = 32) -> None:
        super().__init__(base.policy)
        self._targets: dict[tuple[str, tuple[str, ...]], list[NameserverAddress]] = {}
        self._lock = threading.Lock()
        self._pool = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="dns-query")

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

    def close(self) -> None:
        """Stop the query pool (queries in flight finish first)."""
        self._pool.shutdown(wait=True)

    def _exchange_all(
        self, name: str, rdtype: RdataType, targets: Sequence[NameserverAddress]
    ) -> list[Exchange]:
        """The base fan-out (one query per address, in parallel) on the shared pool."""
        payload = self.policy.payload
        futures = [self._pool.submit(ask, self._query, make_query(name, rdtype, payload), target,
                                     self._clock) for target in targets]
        return [future.result() for future in futures]

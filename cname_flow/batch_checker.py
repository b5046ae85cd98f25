"""The propagation checker of batch jobs: nameserver addresses discovered once per zone."""

from __future__ import annotations

import threading
from collections.abc import Sequence

from cname_flow.propagation import NameserverAddress, PropagationChecker


class CachingChecker(PropagationChecker):
    """A :class:`PropagationChecker` that discovers each zone's nameserver addresses once."""

    def __init__(self, base: PropagationChecker) -> None:
        super().__init__(base.policy)
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


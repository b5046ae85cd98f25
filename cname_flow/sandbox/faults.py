"""Seeded fault injection for the sandbox: latency, 5xx errors, throttling, dropped connections.

Each operation name (``"PutCname"``, ``"AddDomainRecord"``, ``"dns"``…) draws from its own
``random.Random`` seeded from ``(seed, operation)``, so a chaos run replays the same decisions
for the same sequence of calls, whatever the interleaving of other operations.
"""

from __future__ import annotations

import asyncio
import random
import threading
from dataclasses import dataclass
from enum import StrEnum

from cname_flow.sandbox.config import FaultsConfig, OpFaults


class FaultKind(StrEnum):
    """What to do to one request instead of serving it."""

    NONE = "none"
    ERROR = "error"  # a 5xx answer (503 ServiceUnavailable)
    THROTTLE = "throttle"  # OSS: 503 SlowDown; Alidns: Throttling.User
    DROP = "drop"  # close the connection without an answer


@dataclass(frozen=True, slots=True)
class FaultDecision:
    """The decision for one request: a kind and a delay in seconds to apply first."""

    kind: FaultKind
    delay_s: float


class FaultPlan:
    """Decides, per request, the latency and the fault to inject.

    Args:
        config: seed and per-operation settings; ``ops["*"]`` applies to operations not listed.
    """

    def __init__(self, config: FaultsConfig) -> None:
        self.config = config
        self._rngs: dict[str, random.Random] = {}
        self._lock = threading.Lock()
        self.injected: dict[str, int] = {}

    def _settings(self, op: str) -> OpFaults | None:
        return self.config.ops.get(op) or self.config.ops.get("*")

    def decide(self, op: str) -> FaultDecision:
        """Draw the decision for one request of operation ``op``."""
        settings = self._settings(op)
        if settings is None:
            return FaultDecision(FaultKind.NONE, 0.0)
        with self._lock:
            rng = self._rngs.get(op)
            if rng is None:
                rng = self._rngs[op] = random.Random(f"{self.config.seed}:{op}")
            jitter = rng.uniform(-settings.jitter_ms, settings.jitter_ms)
            delay = max(0.0, settings.latency_ms + jitter) / 1000.0
            roll = rng.random()
        kind = FaultKind.NONE
        edges = (
            (settings.drop_rate, FaultKind.DROP),
            (settings.error_rate, FaultKind.ERROR),
            (settings.throttle_rate, FaultKind.THROTTLE),
        )
        cumulative = 0.0
        for rate, candidate in edges:
            cumulative += rate
            if roll < cumulative:
                kind = candidate
                break
        if kind is not FaultKind.NONE:
            with self._lock:
                self.injected[f"{op}:{kind}"] = self.injected.get(f"{op}:{kind}", 0) + 1
        return FaultDecision(kind, delay)

    async def apply(self, op: str) -> FaultKind:
        """Sleep the drawn latency, then return the fault kind to inject (often ``NONE``)."""
        decision = self.decide(op)
        if decision.delay_s > 0:
            await asyncio.sleep(decision.delay_s)
        return decision.kind

"""Seeded fault injection for the sandbox: latency, 5xx errors, throttling, dropped connections.

Each operation name (``"PutCname"``, ``"AddDomainRecord"``, ``"dns"``…) draws from its own
``random.Random`` seeded from ``(seed, operation)``, so a chaos run replays the same decisions
for the same sequence of calls, whatever the interleaving of other operations.

Two families of faults: *before* the operation (ERROR, THROTTLE, DROP: nothing changed, the
client may simply retry) and *after* it (ERROR_AFTER, DROP_AFTER: the operation ran and changed
the state, then its answer was lost, the case a client must survive by observing before it acts
again). Rates add up in the order of :class:`FaultKind`, so adding an *after* rate leaves the
decisions of an existing seed's *before* faults where they were.
"""

from __future__ import annotations

import asyncio
import random
import threading
from dataclasses import dataclass
from enum import StrEnum

from starlette.types import Send

from cname_flow.sandbox.config import FaultsConfig, OpFaults


class FaultKind(StrEnum):
    """What to do to one request instead of serving it."""

    NONE = "none"
    ERROR = "error"  # a 5xx answer (503 ServiceUnavailable)
    THROTTLE = "throttle"  # OSS: 503 SlowDown; Alidns: Throttling.User
    DROP = "drop"  # close the connection without an answer
    ERROR_AFTER = "error_after"  # run the operation, then answer 503 instead of its result
    DROP_AFTER = "drop_after"  # run the operation, then reset the connection without an answer

    @property
    def executes(self) -> bool:
        """True when the operation runs despite the fault (``NONE`` and the *after* kinds)."""
        return self in (FaultKind.NONE, FaultKind.ERROR_AFTER, FaultKind.DROP_AFTER)

    @property
    def answer(self) -> FaultKind:
        """What the client gets: ``ERROR``/``DROP`` for the *after* kinds, else this kind."""
        return _ANSWERS.get(self, self)


_ANSWERS = {FaultKind.ERROR_AFTER: FaultKind.ERROR, FaultKind.DROP_AFTER: FaultKind.DROP}


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
            (settings.error_after_rate, FaultKind.ERROR_AFTER),
            (settings.drop_after_rate, FaultKind.DROP_AFTER),
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


async def abort_connection(send: Send) -> None:
    """Reset the client's TCP connection without an answer, then yield so uvicorn sees it gone.

    ``send`` is uvicorn's bound ``RequestResponseCycle.send``; its transport is aborted (a TCP
    RST, no answer), so the app can return normally: nothing is logged as an error.

    Raises:
        ConnectionAbortedError: ``send`` has no transport (not served by uvicorn).
    """
    transport = getattr(getattr(send, "__self__", None), "transport", None)
    if transport is None:
        raise ConnectionAbortedError("fault injection: drop")
    transport.abort()
    await asyncio.sleep(0)
    await asyncio.sleep(0)

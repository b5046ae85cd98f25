"""A batch job's later propagation waits start where its earlier ones saw the record.

The sandbox's second nameserver lags; CachingChecker learns the write-to-visible delay from the
first wait and starts the next wait's rounds later, spending fewer rounds, while the success
rule (every address, two all-OK rounds) still never passes before the lagging server serves.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import replace
from functools import partial

import pytest

from cname_flow.batch.checker import CachingChecker
from cname_flow.propagation.checker import AnswerState, PropagationChecker, PropagationPolicy, Round
from cname_flow.sandbox.config import ZoneConfig
from cname_flow.sandbox.nameservers.server import DnsFleet
from cname_flow.sandbox.state import SandboxState
from tests.e2e.bindkit import world

pytestmark = pytest.mark.e2e

ZONE = "example.com"
LAG_S = 1.0


def lagging_state() -> SandboxState:
    """``example.com`` on ns1 (prompt) and ns2 (:data:`LAG_S` behind)."""
    return SandboxState(world(0.0, LAG_S, zones=[ZoneConfig(name=ZONE, soa_minimum=60)]))


def stamp(rounds: list[tuple[float, Round]], round_: Round) -> None:
    """Record ``round_`` in ``rounds`` with the monotonic time it completed."""
    rounds.append((time.monotonic(), round_))


async def two_waits(state: SandboxState) -> list[tuple[float, list[tuple[float, Round]]]]:
    """Write and wait for two records in turn; per wait: (written_at, [(round time, round)])."""
    fleet = await DnsFleet.start(state)
    checker = CachingChecker(PropagationChecker(replace(
        PropagationPolicy(), nameserver_addresses=fleet.addresses())), threads=2)
    try:
        zone = state.zones[ZONE]
        targets = await asyncio.to_thread(checker.targets, ZONE, list(zone.nameservers))
        waits = []
        for label in ("first", "second"):
            rounds: list[tuple[float, Round]] = []
            written_at = time.monotonic()
            state.add_record(zone, f"_dnsauth.{label}", "TXT", f"tok-{label}", 600)
            await checker.wait_async(
                f"_dnsauth.{label}.{ZONE}", f"tok-{label}", targets, written_at=written_at,
                on_round=partial(stamp, rounds))
            waits.append((written_at, rounds))
        return waits
    finally:
        await checker.aclose()
        checker.close()
        await fleet.stop()


def test_second_wait_should_start_late_and_spend_fewer_rounds() -> None:
    (w1, first), (w2, second) = asyncio.run(two_waits(lagging_state()))
    first_ok = next(t for t, r in first if r.ok) - w1
    assert first_ok >= LAG_S                                   # never before ns2 serves it
    assert not first[0][1].ok                                  # the default schedule is early
    # The learned first round comes no earlier than 0.95 × the first wait's delay.
    assert second[0][0] - w2 >= 0.95 * first_ok
    assert next(t for t, r in second if r.ok) - w2 >= LAG_S   # the rule is unchanged
    assert second[-1][1].ok and second[-2][1].ok               # confirmed by two all-OK rounds
    assert len(second) < len(first)


def test_rounds_before_the_lagging_server_serves_should_show_it_missing() -> None:
    (w1, first), _ = asyncio.run(two_waits(lagging_state()))
    early = [r for t, r in first if t - w1 < LAG_S]
    assert early and all(
        any(a.state is not AnswerState.OK for a in r.answers) for r in early)

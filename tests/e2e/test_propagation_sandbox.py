"""PropagationChecker against the sandbox's authoritative servers over real loopback sockets.

One server serves changes at once, the other after a lag (or never); the checker must not
return before the lagging server serves the token, must return within one backoff step (plus
the confirmation round) after it does, and must name the stuck server when the deadline passes.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import replace

import pytest

from cname_flow.errors import PropagationTimeout
from cname_flow.propagation.checker import AnswerState, PropagationChecker, PropagationPolicy, Round
from cname_flow.sandbox.config import ZoneConfig
from cname_flow.sandbox.nameservers.server import DnsFleet
from cname_flow.sandbox.state import SandboxState
from tests.e2e.bindkit import world

pytestmark = pytest.mark.e2e

ZONE = "example.com"
NAME = "_dnsauth.www.example.com"
TOKEN = "tok-e2e-0123456789"
LAG_S = 1.5
#: Scheduling slack for a loaded CI machine; the bounds below are schedule facts, not speed.
SLACK_S = 0.75


def lagging_state(lag: float | None) -> SandboxState:
    """``example.com`` on ns1 (prompt) and ns2 (``lag`` seconds behind; None: never updates)."""
    return SandboxState(world(0.0, lag, zones=[ZoneConfig(name=ZONE, soa_minimum=60)]))


async def converge(state: SandboxState, policy: PropagationPolicy) -> tuple[
    list[tuple[float, Round]], float, float
]:
    """Write the TXT record, wait; return (rounds with completion times, written_at, returned)."""
    fleet = await DnsFleet.start(state)
    try:
        checker = PropagationChecker(replace(policy, nameserver_addresses=fleet.addresses()))
        zone = state.zones[ZONE]
        targets = await asyncio.to_thread(checker.targets, ZONE, list(zone.nameservers))
        assert len(targets) == 2
        rounds: list[tuple[float, Round]] = []
        written_at = time.monotonic()
        state.add_record(zone, "_dnsauth.www", "TXT", TOKEN, 600)
        try:
            await checker.wait_async(NAME, TOKEN, targets, written_at=written_at,
                                     on_round=lambda r: rounds.append((time.monotonic(), r)))
        finally:
            returned = time.monotonic()
        return rounds, written_at, returned
    finally:
        await fleet.stop()


def states_of(round_: Round) -> dict[str, AnswerState]:
    return {a.target.host.split(".")[0]: a.state for a in round_.answers}


def test_wait_when_one_server_lags_should_return_one_step_after_it_serves() -> None:
    policy = PropagationPolicy(deadline_s=30.0)
    rounds, written_at, returned = asyncio.run(converge(lagging_state(LAG_S), policy))
    served_at = written_at + LAG_S

    first = rounds[0][1]  # at written_at + 1.0 s: ns1 has it, ns2 (1.5 s behind) not yet
    assert states_of(first) == {"ns1": AnswerState.OK, "ns2": AnswerState.PENDING}
    assert not first.ok

    k, first_ok_at = next((i, at) for i, (at, r) in enumerate(rounds) if r.ok)
    assert first_ok_at >= served_at  # never before the lagging server serves the token
    assert first_ok_at - served_at <= backoff_bound(policy, k - 1) + SLACK_S  # one step later
    confirm_wait = max(policy.confirmation_gap_s, backoff_bound(policy, k))
    assert returned - first_ok_at <= confirm_wait + SLACK_S  # then one confirming round
    assert [r.ok for _, r in rounds[k:]] == [True, True]


def backoff_bound(policy: PropagationPolicy, attempt_index: int) -> float:
    """Longest wait tenacity can pick after attempt ``attempt_index + 1`` (jitter included)."""
    base = policy.backoff_initial_s * policy.backoff_exp_base ** attempt_index
    return min(base + policy.backoff_jitter_s, policy.backoff_max_s)


def test_wait_when_one_server_never_updates_should_time_out_naming_it() -> None:
    policy = PropagationPolicy(deadline_s=3.0)
    with pytest.raises(PropagationTimeout) as caught:
        asyncio.run(converge(lagging_state(None), policy))
    table = caught.value.table
    stuck = next(line for line in table.splitlines() if line.startswith("ns2."))
    healthy = next(line for line in table.splitlines() if line.startswith("ns1."))
    assert "PENDING" in stuck and "NXDOMAIN" in stuck and "(-1)" in stuck
    assert "OK" in healthy and "(max)" in healthy
    assert "ns2.sandbox.cname-flow.test" in str(caught.value)

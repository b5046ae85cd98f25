"""The OSS verifier's negative cache: capped by ``resolver.max_negative_ttl``, small by default.

A PutCname asked before the TXT record exists makes the verifier's resolver cache "no TXT yet".
The zones' SOA minimum is Alidns's 600 s, yet no public evidence shows a 10-minute lock-out
(``docs/sandbox-oss.md``), so the sandbox caps that entry: by default at
``NEGATIVE_TTL_CAP_DEFAULT`` seconds, configurable from 0 to 3600.
"""

from __future__ import annotations

import asyncio

import pytest
from pydantic import ValidationError

from cname_flow.sandbox.config import (
    NEGATIVE_TTL_CAP_DEFAULT,
    ResolverConfig,
    SandboxConfig,
    ZoneConfig,
)
from cname_flow.sandbox.nameservers.server import DnsFleet
from cname_flow.sandbox.oss.ops import Caller, OssOperations
from cname_flow.sandbox.oss.xml import OssErrorResponse
from cname_flow.sandbox.state import SandboxState
from tests.fakes import FakeClock

OWNER = Caller("1234567890123456")
BODY = (b"<BucketCnameConfiguration><Cname><Domain>early.example.com</Domain></Cname>"
        b"</BucketCnameConfiguration>")


def _config(cap: int | None = None) -> SandboxConfig:
    zones = [ZoneConfig(name="example.com", soa_ttl=600, soa_minimum=600)]
    update: dict[str, object] = {"zones": zones}
    if cap is not None:
        update["resolver"] = ResolverConfig(max_negative_ttl=cap)
    return SandboxConfig().model_copy(update=update)


async def _unlocked_after(config: SandboxConfig, clock: FakeClock, steps: list[float]) -> float:
    """Seconds after an early PutCname (TXT added right after it) until PutCname succeeds,
    trying at each cumulative offset in ``steps``; ``-1`` when it never did."""
    state = SandboxState(config, clock)
    fleet = await DnsFleet.start(state, faults=None)
    try:
        ops = OssOperations(state, fleet.verifier)
        token = ops.create_cname_token(OWNER, "examplebucket", BODY).decode()
        value = token.split("<Token>")[1].split("</Token>")[0]
        with pytest.raises(OssErrorResponse) as early:
            await ops.put_cname(OWNER, "examplebucket", BODY)
        assert early.value.code == "NeedVerifyDomainOwnership"
        zone = state.zones["example.com"]
        state.add_record(zone, "_dnsauth.early", "TXT", value, 600)
        waited = 0.0
        for step in steps:
            clock.advance(step)
            waited += step
            try:
                await ops.put_cname(OWNER, "examplebucket", BODY)
            except OssErrorResponse as exc:
                assert exc.code == "NeedVerifyDomainOwnership"
                continue
            return waited
        return -1.0
    finally:
        await fleet.stop()


def test_default_cap_is_small_and_bounded() -> None:
    assert SandboxConfig().resolver.max_negative_ttl == NEGATIVE_TTL_CAP_DEFAULT
    assert 0 < NEGATIVE_TTL_CAP_DEFAULT <= 60
    for bad in (-1, 3601):
        with pytest.raises(ValidationError):
            ResolverConfig(max_negative_ttl=bad)
    assert ResolverConfig(max_negative_ttl=0).max_negative_ttl == 0
    assert ResolverConfig(max_negative_ttl=3600).max_negative_ttl == 3600


def test_default_cap_ends_the_lock_out_well_before_the_soa_minimum(clock: FakeClock) -> None:
    cap = NEGATIVE_TTL_CAP_DEFAULT
    steps = [0.0, cap - 1.0, 1.5]
    assert asyncio.run(_unlocked_after(_config(), clock, steps)) == pytest.approx(cap + 0.5)


def test_configured_cap_of_600_s_rehearses_the_full_soa_minimum(clock: FakeClock) -> None:
    steps = [0.0, 120.0, 479.0, 1.5]
    assert asyncio.run(_unlocked_after(_config(600), clock, steps)) == pytest.approx(600.5)


def test_cap_zero_never_caches_no_txt_yet(clock: FakeClock) -> None:
    assert asyncio.run(_unlocked_after(_config(0), clock, [0.0])) == 0.0

"""The shared fixtures of tests/conftest.py do what their docstrings promise.

A module-scoped ``proxied`` fixture puts every proxy variable into the environment first, so the
checks below see ``no_proxy`` and ``sandbox`` clear what is really there.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from cname_flow.config.credentials import Credentials
from cname_flow.dns.alidns import Alidns
from cname_flow.sandbox.app import Sandbox
from cname_flow.sandbox.config import SandboxConfig
from tests.conftest import PROXY_VARIABLES
from tests.fakes import FakeClock

pytestmark = pytest.mark.e2e

#: A proxy nobody listens on: a request sent through it fails at once.
DEAD_PROXY = "http://127.0.0.1:9"

#: The sandboxes the tests of this module were given, in order.
seen: list[Sandbox] = []


@pytest.fixture(scope="module")
def proxied() -> Iterator[None]:
    """Every proxy variable, in both cases, set to :data:`DEAD_PROXY` for this module."""
    with pytest.MonkeyPatch.context() as env:
        for var in PROXY_VARIABLES:
            env.setenv(var, DEAD_PROXY)
            env.setenv(var.lower(), DEAD_PROXY)
        yield


def proxy_values() -> dict[str, str]:
    """The proxy variables present in ``os.environ`` now."""
    names = {*PROXY_VARIABLES, *(v.lower() for v in PROXY_VARIABLES)}
    return {k: v for k, v in os.environ.items() if k in names}


def test_no_proxy_should_clear_every_proxy_variable(proxied: None, no_proxy: None) -> None:
    assert proxy_values() == {}


def test_sandbox_should_be_the_default_world_reachable_despite_proxies(
    proxied: None, sandbox: Sandbox
) -> None:
    seen.append(sandbox)
    info = sandbox.info
    assert sorted(sandbox.state.zones) == sorted(z.name for z in SandboxConfig().zones)
    assert proxy_values() == {}
    dns = Alidns(credentials=Credentials(info.access_key_id, info.access_key_secret),
                 endpoint=info.alidns_endpoint, protocol="http")
    assert dns.find_zone("www.example.com").name == "example.com"


def test_sandbox_should_be_shared_by_the_tests_of_one_module(sandbox: Sandbox) -> None:
    seen.append(sandbox)
    assert all(box is sandbox for box in seen)


def test_clock_should_move_only_when_advanced(clock: FakeClock) -> None:
    start = clock()
    assert clock() == start == 1_800_000_000.0
    clock.advance(0.25)
    assert clock() == start + 0.25

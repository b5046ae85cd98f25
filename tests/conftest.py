"""Fixtures shared by the whole suite: the default ``sandbox``, ``no_proxy``, ``clock``, and a
real PostgreSQL (``postgres_server``, ``pg_url``: :mod:`tests.postgres`).

``sandbox`` means one thing everywhere: the default sandbox world (:class:`SandboxConfig` as
shipped: two accounts, ``example.com`` and friends, two prompt nameservers) running on ephemeral
loopback ports, one per test module. Modules that need another world define a fixture named after
it (``lagging_sandbox``, ``oss_sandbox``, ``alidns_sandbox``, ``sandbox50``, …) rather than
overriding ``sandbox``.

The proxy variables are cleared because the Alibaba Cloud SDK clients honour ``HTTP(S)_PROXY``
for loopback endpoints (the Alidns client also ignores ``NO_PROXY``), which would send the
tests' requests to a proxy that cannot reach 127.0.0.1.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from cname_flow.sandbox.app import Sandbox
from tests.fakes import FakeClock
from tests.postgres import PostgresServer, postgres

#: Environment variables that route HTTP through a proxy, as read by urllib3, requests and the
#: Alibaba Cloud SDKs (upper case here; the lower-case spellings are cleared too).
PROXY_VARIABLES = ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "NO_PROXY")


@pytest.fixture(scope="module")
def no_proxy() -> Iterator[None]:
    """No :data:`PROXY_VARIABLES` (either case) in ``os.environ`` until the module's end.

    Set up by the module's first test that asks for it; the old values come back at the module's
    end. Module-scoped so module-scoped fixtures (every sandbox) can depend on it; a test that
    sets a proxy through ``monkeypatch`` gets this cleared environment back when it ends.
    """
    with pytest.MonkeyPatch.context() as env:
        for var in PROXY_VARIABLES:
            env.delenv(var, raising=False)
            env.delenv(var.lower(), raising=False)
        yield


@pytest.fixture(scope="module")
def sandbox(no_proxy: None) -> Iterator[Sandbox]:
    """The default sandbox world, started once per test module, with :func:`no_proxy` in force.

    Module-scoped: tests of one module share its state (buckets, records, tokens), so they work on
    their own domains; each module gets a fresh sandbox, torn down (ports closed, threads joined)
    when the module's last test ends.
    """
    with Sandbox() as box:
        yield box


@pytest.fixture
def clock() -> FakeClock:
    """A fresh wall clock, at a fixed Unix time, that only the test moves."""
    return FakeClock()


@pytest.fixture
def open_umask() -> Iterator[None]:
    """Run with umask 000, where a file created without an explicit mode is 0666."""
    old = os.umask(0)
    try:
        yield
    finally:
        os.umask(old)


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    """One throwaway PostgreSQL cluster for the session (:func:`tests.postgres.postgres`):
    temporary directory, loopback port, unprivileged user. Started on first use only."""
    with postgres() as server:
        yield server


@pytest.fixture
def pg_url(postgres_server: PostgresServer) -> str:
    """The URL of a fresh, empty database on :func:`postgres_server` (one per test)."""
    return postgres_server.create_database()


# -- real authoritative DNS servers (tests/dnsservers.py): the RFC 2136 provider's world --------

from tests.dnsservers import DnsServer, bind9, knot  # noqa: E402


@pytest.fixture(scope="session")
def bind9_server() -> Iterator[DnsServer]:
    """One real BIND 9 primary for the session (:func:`tests.dnsservers.bind9`): temporary
    directory, loopback port, unprivileged user, zones ``example.com`` and ``example.com.cn``
    updatable with a TSIG key. Started on first use only."""
    with bind9() as server:
        yield server


@pytest.fixture(scope="session")
def knot_server() -> Iterator[DnsServer]:
    """One real Knot primary for the session (:func:`tests.dnsservers.knot`), like
    :func:`bind9_server`."""
    with knot() as server:
        yield server


# -- the propagation lab (tests/dnslab.py): a real BIND primary and a lagging BIND secondary ---

from tests.dnslab import Lab, lab  # noqa: E402


@pytest.fixture(scope="session")
def propagation_lab() -> Iterator[Lab]:
    """A real BIND 9 primary (RFC 2136 + TSIG) and a real BIND 9 secondary that sees changes
    only at its SOA refresh, seconds later (:func:`tests.dnslab.lab`): temporary directories,
    loopback ports, unprivileged user. Started on first use only."""
    with lab() as running:
        yield running


# -- a real PowerDNS with its HTTP API (tests/pdnsserver.py): the PowerDNS provider's world -------

from tests.pdnsserver import PdnsServer, pdns  # noqa: E402


@pytest.fixture(scope="session")
def pdns_server() -> Iterator[PdnsServer]:
    """One real PowerDNS server for the session (:func:`tests.pdnsserver.pdns`): gsqlite3 in a
    temporary directory, DNS and API on loopback ports, unprivileged user, zones ``example.com``
    and ``example.com.cn``. Started on first use only."""
    with pdns() as server:
        yield server

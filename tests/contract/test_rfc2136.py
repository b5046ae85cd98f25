"""The RFC 2136 adapter passes the provider contract against a real BIND 9 and a real Knot.

Real dnspython messages, real TSIG (hmac-sha256), real servers started by the tests
(:mod:`tests.dnsservers`) on loopback ports; nothing is faked.
"""

from __future__ import annotations

import pytest

from cname_flow.dns.rfc2136 import Rfc2136
from tests.contract.dns_provider_contract import DnsProviderContract
from tests.dnsservers import DnsServer


def rfc2136_for(server: DnsServer, **overrides: object) -> Rfc2136:
    """An adapter talking to ``server`` with its key; the contract's TTL floor of 600 s."""
    options: dict[str, object] = {
        "host": server.host, "port": server.port, "key_name": server.key_name,
        "secret": server.secret, "algorithm": server.algorithm, "min_ttl": 600,
        "timeout_s": 5.0,
    }
    options.update(overrides)
    return Rfc2136(**options)  # type: ignore[arg-type]


class TestRfc2136OnBind9(DnsProviderContract):
    @pytest.fixture
    def provider(self, bind9_server: DnsServer) -> Rfc2136:
        return rfc2136_for(bind9_server)


class TestRfc2136OnKnot(DnsProviderContract):
    @pytest.fixture
    def provider(self, knot_server: DnsServer) -> Rfc2136:
        return rfc2136_for(knot_server)

"""The Alidns adapter passes the provider contract against the sandbox's Alidns API.

Real alibabacloud-alidns20150109 client, real ACS3 signatures, real loopback sockets.
"""

from __future__ import annotations

import pytest

from cname_flow.config.credentials import Credentials
from cname_flow.dns.alidns import Alidns
from cname_flow.sandbox.app import Sandbox
from tests.contract.dns_provider_contract import DnsProviderContract

pytestmark = pytest.mark.e2e


class TestAlidnsContract(DnsProviderContract):
    @pytest.fixture
    def provider(self, sandbox: Sandbox) -> Alidns:
        info = sandbox.info
        return Alidns(
            credentials=Credentials(info.access_key_id, info.access_key_secret),
            endpoint=info.alidns_endpoint,
            protocol="http",
        )

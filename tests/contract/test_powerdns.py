"""The PowerDNS adapter passes the provider contract against a real PowerDNS server.

Real HTTP (httpx) to a real ``pdns_server`` with the gsqlite3 backend and its API, started by
the tests (:mod:`tests.pdnsserver`) on loopback ports; nothing is faked. Beyond the contract:
what the server itself holds after each write (the quoted TXT content, the comment marking
ownership), that the customer's records and comments at the same name survive, the errors a
wrong key and a missing zone give, and that the API key never reaches an error.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import dns.flags
import dns.message
import dns.query
import pytest

from cname_flow.dns.base import OWNER_REMARK
from cname_flow.dns.powerdns import PowerDns
from cname_flow.errors import DnsAuthError, DnsProviderError, ZoneNotFound
from cname_flow.retry import RetryPolicy
from tests.contract.dns_provider_contract import DnsProviderContract, fresh
from tests.pdnsserver import PdnsServer


def powerdns_for(server: PdnsServer, **overrides: Any) -> PowerDns:
    """An adapter talking to ``server`` with its key; the contract's TTL floor of 600 s."""
    options: dict[str, Any] = {"api_url": server.api_url, "api_key": server.api_key,
                               "server_id": server.server_id, "min_ttl": 600}
    options.update(overrides)
    return PowerDns(**options)


def rrset_at(server: PdnsServer, zone: str, name: str, rtype: str) -> dict[str, Any] | None:
    """The RRset as the server holds it, read with a client of the test's own."""
    with server.client() as api:
        body = api.get(f"/zones/{zone}.", params={"rrset_name": f"{name}.",
                                                  "rrset_type": rtype}).json()
    found = [r for r in body["rrsets"] if r["name"] == f"{name}." and r["type"] == rtype]
    return found[0] if found else None


def put_rrset(server: PdnsServer, zone: str, change: dict[str, Any]) -> None:
    """Write an RRset as the customer would, past the adapter."""
    with server.client() as api:
        answer = api.patch(f"/zones/{zone}.", json={"rrsets": [change]})
    assert answer.status_code == 204, answer.text


class TestPowerDnsOnPdns(DnsProviderContract):
    @pytest.fixture
    def provider(self, pdns_server: PdnsServer, no_proxy: None) -> Iterator[PowerDns]:
        adapter = powerdns_for(pdns_server)
        yield adapter
        adapter.close()


@pytest.fixture
def adapter(pdns_server: PdnsServer, no_proxy: None) -> Iterator[PowerDns]:
    provider = powerdns_for(pdns_server)
    yield provider
    provider.close()


def test_upsert_should_write_quoted_txt_with_an_owner_comment(
    pdns_server: PdnsServer, adapter: PowerDns
) -> None:
    zone = adapter.find_zone("example.com")
    name = f"_dnsauth.{fresh()}.example.com"
    ref, _ = adapter.upsert(zone, name, "TXT", "token with \"quote\"", 600)
    rrset = rrset_at(pdns_server, "example.com", name, "TXT")
    assert rrset is not None
    assert [r["content"] for r in rrset["records"]] == ['"token with \\"quote\\""']
    [comment] = rrset["comments"]
    assert comment["account"] == "cname-flow"
    assert comment["content"].startswith(f"{OWNER_REMARK} id={ref.record_id.split('|')[-1]} ")


def test_upsert_should_serve_the_token_over_dns_at_once(
    pdns_server: PdnsServer, adapter: PowerDns
) -> None:
    zone = adapter.find_zone("example.com")
    name = f"_dnsauth.{fresh()}.example.com"
    adapter.upsert(zone, name, "TXT", "served-token", 600)
    query = dns.message.make_query(f"{name}.", "TXT")
    query.flags &= ~dns.flags.RD
    answer = dns.query.udp(query, "127.0.0.1", port=pdns_server.dns_port, timeout=2)
    assert answer.flags & dns.flags.AA
    assert [b"".join(rd.strings) for rrset in answer.answer for rd in rrset] == [b"served-token"]


def test_delete_and_update_should_keep_the_customers_record_and_comment(
    pdns_server: PdnsServer, adapter: PowerDns
) -> None:
    name = f"_dnsauth.{fresh()}.example.com"
    customer_comment = {"content": "set by the customer", "account": "alice"}
    put_rrset(pdns_server, "example.com", {
        "name": f"{name}.", "type": "TXT", "ttl": 600, "changetype": "REPLACE",
        "records": [{"content": '"theirs"', "disabled": False}], "comments": [customer_comment]})
    zone = adapter.find_zone("example.com")
    theirs = adapter.list_records(zone, name, "TXT")
    assert [(r.value, r.owned) for r in theirs] == [("theirs", False)]
    ours, _ = adapter.upsert(zone, name, "TXT", "ours-1", 600)
    ours, _ = adapter.upsert(zone, name, "TXT", "ours-2", 600, replace=ours)
    adapter.delete_record(ours)
    rrset = rrset_at(pdns_server, "example.com", name, "TXT")
    assert rrset is not None
    assert [r["content"] for r in rrset["records"]] == ['"theirs"']
    assert [(c["account"], c["content"]) for c in rrset["comments"]] == [
        ("alice", "set by the customer")]


def test_wrong_api_key_should_raise_auth_error_without_the_key(
    pdns_server: PdnsServer, no_proxy: None
) -> None:
    sentinel = "SENTINEL-pdns-key-4f1c9a"
    provider = powerdns_for(pdns_server, api_key=sentinel)
    with pytest.raises(DnsAuthError) as info:
        provider.find_zone("example.com")
    provider.close()
    error = info.value
    assert (error.code, error.status, error.retryable) == ("Unauthorized", 401, False)
    assert "api_key" in error.hint
    assert sentinel not in f"{error} {error.hint} {error!r} {error.__cause__!r}"


def test_unknown_server_id_should_raise_zone_not_found(
    pdns_server: PdnsServer, no_proxy: None
) -> None:
    provider = powerdns_for(pdns_server, server_id="elsewhere")
    with pytest.raises(ZoneNotFound) as info:
        provider.find_zone("example.com")
    provider.close()
    assert info.value.status == 404
    assert "server_id" in info.value.hint


def test_nothing_listening_should_raise_retryable_connection_refused(no_proxy: None) -> None:
    from tests.dnsservers import free_port

    sleeps: list[float] = []
    provider = PowerDns(api_url=f"http://127.0.0.1:{free_port()}", api_key="k",
                        retry=RetryPolicy(attempts=2, jitter_s=0), sleep=sleeps.append)
    with pytest.raises(DnsProviderError) as info:
        provider.find_zone("example.com")
    provider.close()
    assert (info.value.code, info.value.retryable) == ("ConnectionRefused", True)
    assert "webserver=yes" in info.value.hint
    assert sleeps == [1.0]

"""``resolver.upstreams``: the OSS verifier resolves through external authoritative servers.

The "external" server here is another sandbox state's authoritative server, a real DNS server
on a loopback socket hosting a zone (``example.org``) the verifier's own sandbox does not host;
the end-to-end test against real BIND servers is ``tests/e2e/test_propagation_lab.py``.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from pydantic import ValidationError

from cname_flow.errors import ConfigError
from cname_flow.sandbox.config import ResolverConfig, SandboxConfig, ZoneConfig
from cname_flow.sandbox.nameservers.server import AuthoritativeServer, DnsFleet
from cname_flow.sandbox.state import SandboxState


def test_upstreams_when_valid_should_parse_ports_defaulting_to_53() -> None:
    config = ResolverConfig(upstreams=["127.0.0.1:5353", "192.0.2.1", "[fd00::53]:1053"])
    assert config.upstream_addresses() == [("127.0.0.1", 5353), ("192.0.2.1", 53),
                                           ("fd00::53", 1053)]


@pytest.mark.parametrize("entry", ["ns1.example.org", "127.0.0.1:0", "127.0.0.1:x"])
def test_upstreams_when_malformed_should_name_the_entry(entry: str) -> None:
    with pytest.raises(ValidationError) as caught:
        ResolverConfig(upstreams=[entry])
    assert repr(entry) in str(caught.value)


def test_sandbox_yaml_when_upstream_malformed_should_name_file_and_key(tmp_path: Path) -> None:
    path = tmp_path / "sandbox.yaml"
    path.write_text("resolver:\n  upstreams: [not-an-address]\n", encoding="utf-8")
    with pytest.raises(ConfigError) as caught:
        SandboxConfig.load(path)
    assert "resolver.upstreams" in str(caught.value) and "not-an-address" in str(caught.value)


async def _verifier_reads(upstreams: bool) -> tuple[frozenset[str], frozenset[str]]:
    """What the verifier reads at a name only the external server has, and at a name only the
    verifier's own sandbox zone has."""
    outside = SandboxState(SandboxConfig(zones=[ZoneConfig(name="example.org")]))
    outside.add_record(outside.zones["example.org"], "_dnsauth.img", "TXT", "tok-outside", 60)
    external = AuthoritativeServer(outside, "ns1.example.org")
    await external.start()
    try:
        resolver = ResolverConfig(max_negative_ttl=0,
                                  upstreams=[f"127.0.0.1:{external.port}"] if upstreams else [])
        own = SandboxState(SandboxConfig(resolver=resolver))
        own.add_record(own.zones["example.com"], "_dnsauth.img", "TXT", "tok-own", 60)
        fleet = await DnsFleet.start(own)
        try:
            return (await fleet.verifier.txt_values("_dnsauth.img.example.org"),
                    await fleet.verifier.txt_values("_dnsauth.img.example.com"))
        finally:
            await fleet.stop()
    finally:
        await external.stop()


def test_verifier_with_upstreams_should_read_the_external_servers_not_its_own_zones() -> None:
    external, own = asyncio.run(_verifier_reads(upstreams=True))
    assert external == {"tok-outside"}
    assert own == frozenset()  # the external server does not host example.com: REFUSED


def test_verifier_without_upstreams_should_read_its_own_zones_only() -> None:
    external, own = asyncio.run(_verifier_reads(upstreams=False))
    assert external == frozenset()  # not a sandbox zone: REFUSED at once
    assert own == {"tok-own"}

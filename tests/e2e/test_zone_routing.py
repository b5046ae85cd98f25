"""One configuration, two DNS providers chosen per zone (``dns.zones``): a domain in the Alidns
sandbox's zone binds through the real CLI while the RFC 2136 zone of the same configuration is
served by a real BIND 9 (``bind9_server``), and the same routed clients publish, check at BIND
(the zone's authoritative server) and remove a TXT record there.

What this does not cover: a full ``bind`` of the BIND-hosted domain. The sandbox's OSS verifier
resolves only the sandbox's own zones, so its PutCname cannot see a record held by BIND; the
propagation lab (the verifier resolving through real servers) is where that run belongs.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from pathlib import Path

import dns.flags
import dns.message
import dns.query
import pytest

from cname_flow import service
from cname_flow.config import load_settings
from cname_flow.dns.alidns import Alidns
from cname_flow.dns.rfc2136 import Rfc2136
from cname_flow.dns.router import ZoneRouter
from cname_flow.model import txt_name
from tests.dnsservers import DnsServer
from tests.e2e.bindkit import SandboxEnv, sandbox_env, write_config

#: The zone the configuration hands to the RFC 2136 provider (BIND hosts it).
RFC_ZONE = "example.com.cn"


def served_txt(server: DnsServer, name: str) -> list[str]:
    """The TXT values BIND serves authoritatively at ``name`` (RD off)."""
    query = dns.message.make_query(f"{name}.", "TXT")
    query.flags &= ~dns.flags.RD
    answer = dns.query.udp(query, server.host, port=server.port, timeout=2)
    assert answer.flags & dns.flags.AA
    return [b"".join(rd.strings).decode() for rrset in answer.answer for rd in rrset]


@pytest.fixture
def routed(tmp_path: Path, bind9_server: DnsServer,
           monkeypatch: pytest.MonkeyPatch) -> Iterator[SandboxEnv]:
    """The sandbox plus a config whose ``dns.zones`` sends example.com.cn to BIND."""
    monkeypatch.setenv("TSIG_SECRET", bind9_server.secret)
    with sandbox_env(tmp_path) as sb:
        info = sb.sandbox.info
        write_config(sb.config, sb.sandbox, propagation={"nameserver_addresses": {
            **info.nameservers, f"ns1.{RFC_ZONE}": [f"127.0.0.1:{bind9_server.port}"]}},
            extra={"dns": {"provider": "alidns", "zones": {RFC_ZONE: "rfc2136"}},
                   "rfc2136": {"host": bind9_server.host, "port": bind9_server.port,
                               "key_name": bind9_server.key_name,
                               "algorithm": bind9_server.algorithm,
                               "secret": {"env": "TSIG_SECRET"}, "min_ttl": 600}})
        sb.env["TSIG_SECRET"] = bind9_server.secret
        yield sb


def test_one_config_should_bind_at_alidns_and_publish_at_bind_by_zone(
    routed: SandboxEnv, bind9_server: DnsServer
) -> None:
    label = f"img-{uuid.uuid4().hex[:8]}"
    alidns_domain, rfc_domain = f"{label}.example.com", f"{label}.{RFC_ZONE}"

    done = routed.cli("bind", alidns_domain, "--json")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["phase"] == "BOUND"
    token = routed.token("examplebucket", alidns_domain)
    assert [r.value for r in routed.records(txt_name(alidns_domain))] == [token]
    assert served_txt(bind9_server, txt_name(alidns_domain)) == []  # BIND never saw it

    settings = load_settings(routed.config, env={})
    clients = service.Clients.from_settings(settings, routed.env)
    router = clients.dns
    assert isinstance(router, ZoneRouter)
    assert isinstance(router.provider_for(alidns_domain), Alidns)
    assert isinstance(router.provider_for(rfc_domain), Rfc2136)

    name, value = txt_name(rfc_domain), f"token-{label}"
    zone = router.find_zone(name)
    assert (zone.name, zone.nameservers) == (RFC_ZONE, (f"ns1.{RFC_ZONE}",))
    ref, changed = router.upsert(zone, name, "TXT", value, 600)
    assert changed and ref.owned
    targets = clients.checker.targets(zone.name, zone.nameservers)
    assert [(t.host, t.address, t.port) for t in targets] == [
        (f"ns1.{RFC_ZONE}", "127.0.0.1", bind9_server.port)]
    assert clients.checker.wait(name, value, targets).ok
    assert served_txt(bind9_server, name) == [value]
    assert routed.sandbox.state.zone_for(name) is None or not routed.records(name)

    router.delete_record(ref)
    assert served_txt(bind9_server, name) == []

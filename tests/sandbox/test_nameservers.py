"""The sandbox DNS over real loopback sockets, with dnspython as the client.

The fleet runs in its own event-loop thread, as ``sandbox/app.py`` runs it. Most tests drive the
sandbox state with an injected clock, so lags and TTLs are exact and nothing sleeps; two tests
use the wall clock with small lags and TTLs to show the same behaviour in real time (they assert
lower bounds only, which a slow machine cannot break).
"""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections.abc import Coroutine, Iterator
from typing import Any, TypeVar

import dns.edns
import dns.exception
import dns.flags
import dns.message
import dns.name
import dns.query
import dns.rcode
import dns.rdatatype
import pytest

from cname_flow.sandbox.config import (
    FaultsConfig,
    NameserverConfig,
    OpFaults,
    RecordConfig,
    ResolverConfig,
    SandboxConfig,
    ZoneConfig,
)
from cname_flow.sandbox.faults import FaultPlan
from cname_flow.sandbox.nameservers.server import DnsFleet
from cname_flow.sandbox.state import HostedZone, SandboxState
from tests.fakes import FakeClock

pytestmark = pytest.mark.e2e

T = TypeVar("T")
ZONE = "example.com"
NS = ("ns1.sandbox.cname-flow.test", "ns2.sandbox.cname-flow.test", "ns3.sandbox.cname-flow.test")
BASE_SERIAL = 2026112100
TIMEOUT = 3.0


def world(lags: tuple[float | None, ...] = (0.0, 0.3, None), *, soa_ttl: int = 2,
          soa_minimum: int = 2, max_negative_ttl: int = 3600) -> SandboxConfig:
    records = [
        RecordConfig(rr="www", type="A", value="192.0.2.10", ttl=600),
        RecordConfig(rr="alias", type="CNAME", value="www.example.com", ttl=300),
        RecordConfig(rr="away", type="CNAME", value="www.example.net", ttl=300),
        RecordConfig(rr="leaf.ent", type="A", value="192.0.2.11"),
        RecordConfig(rr="*.wild", type="TXT", value="from-wildcard"),
        RecordConfig(rr="mail", type="MX", value="mx.example.com"),
    ]
    return SandboxConfig(
        zones=[
            ZoneConfig(name=ZONE, soa_ttl=soa_ttl, soa_minimum=soa_minimum, records=records),
            ZoneConfig(name="example.net", records=[
                RecordConfig(rr="www", type="TXT", value="net-value", ttl=60),
            ]),
        ],
        nameservers=[NameserverConfig(name=NS[i], lag=lag) for i, lag in enumerate(lags)],
        resolver=ResolverConfig(max_negative_ttl=max_negative_ttl),
    )


class Sandbox:
    """A running fleet in a background event loop, and sync dnspython helpers to query it."""

    def __init__(self, state: SandboxState, faults: FaultPlan | None = None) -> None:
        self.state = state
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.fleet = self.run(DnsFleet.start(state, faults=faults))

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout=30)

    def close(self) -> None:
        self.run(self.fleet.stop())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(timeout=5)
        self.loop.close()

    @property
    def zone(self) -> HostedZone:
        return self.state.zones[ZONE]

    def port(self, server: int) -> int:
        return self.fleet.servers[server].port

    def ask(self, server: int, name: str, rdtype: str = "TXT", **kw: Any) -> dns.message.Message:
        """One query over UDP to an authoritative server (RD=0), TCP on truncation."""
        query = dns.message.make_query(name, rdtype, flags=0, **kw)
        response, _ = dns.query.udp_with_fallback(query, "127.0.0.1", timeout=TIMEOUT,
                                                  port=self.port(server))
        return response

    def resolve(self, name: str, rdtype: str = "TXT") -> dns.message.Message:
        """One recursive query (RD=1) to the caching resolver."""
        query = dns.message.make_query(name, rdtype, use_edns=0, payload=1232)
        response, _ = dns.query.udp_with_fallback(query, "127.0.0.1", timeout=TIMEOUT,
                                                  port=self.fleet.resolver.port)
        return response

    def verify(self, name: str) -> frozenset[str]:
        return self.run(self.fleet.verifier.txt_values(name))


@pytest.fixture
def lagging_sandbox(clock: FakeClock) -> Iterator[Sandbox]:
    """A prompt server, one 0.3 s behind, and one that never updates."""
    box = Sandbox(SandboxState(world(), clock=clock))
    yield box
    box.close()


@pytest.fixture
def updating(clock: FakeClock) -> Iterator[Sandbox]:
    """Two servers that both update (0 and 0.3 s), for the resolver: whichever it asks agrees."""
    box = Sandbox(SandboxState(world(lags=(0.0, 0.3)), clock=clock))
    yield box
    box.close()


def txt(response: dns.message.Message) -> set[str]:
    return {b"".join(rd.strings).decode() for rrset in response.answer
            if rrset.rdtype == dns.rdatatype.TXT for rd in rrset}


def serial(response: dns.message.Message) -> int:
    (rrset,) = response.answer
    return int(rrset[0].serial)


def authority_soa_ttl(response: dns.message.Message) -> int:
    (rrset,) = response.authority
    assert rrset.rdtype == dns.rdatatype.SOA
    return int(rrset.ttl)


# -- authoritative servers: lag ------------------------------------------------------------------


def test_each_server_serves_a_new_txt_only_after_its_own_lag(
    lagging_sandbox: Sandbox, clock: FakeClock
) -> None:
    name = "_dnsauth.www.example.com"
    assert [lagging_sandbox.ask(i, name).rcode() for i in range(3)] == [dns.rcode.NXDOMAIN] * 3
    clock.advance(1)  # a change at the very start instant would count as "seen at start"
    lagging_sandbox.state.add_record(lagging_sandbox.zone, "_dnsauth.www", "TXT", "tok-1", 600)

    assert txt(lagging_sandbox.ask(0, name)) == {"tok-1"}  # lag 0: at once
    assert lagging_sandbox.ask(1, name).rcode() == dns.rcode.NXDOMAIN  # lag 0.3 s: not yet
    clock.advance(0.29)
    assert lagging_sandbox.ask(1, name).rcode() == dns.rcode.NXDOMAIN
    clock.advance(0.02)
    assert txt(lagging_sandbox.ask(1, name)) == {"tok-1"}
    clock.advance(86400)
    assert lagging_sandbox.ask(2, name).rcode() == dns.rcode.NXDOMAIN  # lag None: never


def test_soa_serial_advances_per_server(lagging_sandbox: Sandbox, clock: FakeClock) -> None:
    assert [serial(lagging_sandbox.ask(i, ZONE, "SOA")) for i in range(3)] == [BASE_SERIAL] * 3
    clock.advance(1)
    lagging_sandbox.state.add_record(lagging_sandbox.zone, "a", "TXT", "one", 600)
    clock.advance(0.1)
    lagging_sandbox.state.add_record(lagging_sandbox.zone, "b", "TXT", "two", 600)
    assert [serial(lagging_sandbox.ask(i, ZONE, "SOA")) for i in range(3)] == [
        BASE_SERIAL + 2, BASE_SERIAL, BASE_SERIAL,
    ]
    clock.advance(0.25)  # the 0.3 s server now sees the first change only
    assert serial(lagging_sandbox.ask(1, ZONE, "SOA")) == BASE_SERIAL + 1
    clock.advance(0.1)
    assert serial(lagging_sandbox.ask(1, ZONE, "SOA")) == BASE_SERIAL + 2
    assert serial(lagging_sandbox.ask(2, ZONE, "SOA")) == BASE_SERIAL


def test_deleted_record_lingers_on_a_lagging_server(
    lagging_sandbox: Sandbox, clock: FakeClock
) -> None:
    rec = lagging_sandbox.state.add_record(lagging_sandbox.zone, "gone", "TXT", "v", 600)
    clock.advance(1)
    lagging_sandbox.state.delete_record(lagging_sandbox.zone, rec)
    assert lagging_sandbox.ask(0, "gone.example.com").rcode() == dns.rcode.NXDOMAIN
    assert txt(lagging_sandbox.ask(1, "gone.example.com")) == {"v"}
    clock.advance(0.3)
    assert lagging_sandbox.ask(1, "gone.example.com").rcode() == dns.rcode.NXDOMAIN


def test_lag_in_real_time() -> None:
    box = Sandbox(SandboxState(world(lags=(0.0, 1.0, None))))
    try:
        name = "_dnsauth.rt.example.com"
        written = time.monotonic()
        box.state.add_record(box.zone, "_dnsauth.rt", "TXT", "tok-rt", 600)
        assert txt(box.ask(0, name)) == {"tok-rt"}
        while not txt(box.ask(1, name)):
            assert time.monotonic() - written < 10, "lagging server never caught up"
            time.sleep(0.05)
        assert time.monotonic() - written >= 1.0
        assert box.ask(2, name).rcode() == dns.rcode.NXDOMAIN
    finally:
        box.close()


# -- authoritative servers: answers -------------------------------------------------------------


def test_nxdomain_and_nodata_carry_the_soa_with_the_negative_ttl() -> None:
    box = Sandbox(SandboxState(world(soa_ttl=600, soa_minimum=30)))
    try:
        nx = box.ask(0, "nope.example.com")
        assert nx.rcode() == dns.rcode.NXDOMAIN and nx.flags & dns.flags.AA
        assert not nx.answer and authority_soa_ttl(nx) == 30  # min(SOA TTL, MINIMUM)
        nodata = box.ask(0, "www.example.com", "TXT")
        assert nodata.rcode() == dns.rcode.NOERROR and nodata.flags & dns.flags.AA
        assert not nodata.answer and authority_soa_ttl(nodata) == 30
        ent = box.ask(0, "ent.example.com", "A")  # empty non-terminal: NODATA, not NXDOMAIN
        assert ent.rcode() == dns.rcode.NOERROR and not ent.answer and ent.authority
        soa = box.ask(0, ZONE, "SOA").answer[0]
        assert soa.ttl == 600
        assert soa[0].mname == dns.name.from_text(NS[0])
        assert (soa[0].refresh, soa[0].retry, soa[0].expire, soa[0].minimum) == (
            3600, 1200, 86400, 30)
    finally:
        box.close()


def test_apex_ns_and_nameserver_addresses(lagging_sandbox: Sandbox) -> None:
    ns = lagging_sandbox.ask(0, ZONE, "NS")
    assert {rd.target.to_text() for rd in ns.answer[0]} == {f"{n}." for n in NS}
    assert {rrset.name.to_text() for rrset in ns.additional if rrset.rdtype == 1} == {
        f"{n}." for n in NS}
    a = lagging_sandbox.ask(1, NS[0], "A")
    assert a.flags & dns.flags.AA and a.answer[0][0].address == "127.0.0.1"
    assert lagging_sandbox.fleet.addresses() == {
        n: [f"127.0.0.1:{s.port}"] for n, s in zip(NS, lagging_sandbox.fleet.servers, strict=True)
    }


def test_names_outside_every_zone_are_refused_without_aa(lagging_sandbox: Sandbox) -> None:
    response = lagging_sandbox.ask(0, "www.example.org", "A")
    assert response.rcode() == dns.rcode.REFUSED
    assert not response.flags & dns.flags.AA


def test_cname_followed_inside_the_zone_only(lagging_sandbox: Sandbox) -> None:
    inside = lagging_sandbox.ask(0, "alias.example.com", "A")
    assert [rrset.rdtype for rrset in inside.answer] == [dns.rdatatype.CNAME, dns.rdatatype.A]
    outside = lagging_sandbox.ask(0, "away.example.com", "TXT")
    assert [rrset.rdtype for rrset in outside.answer] == [dns.rdatatype.CNAME]
    assert outside.rcode() == dns.rcode.NOERROR


def test_wildcard_and_mx(lagging_sandbox: Sandbox) -> None:
    wild = lagging_sandbox.ask(0, "_dnsauth.x.wild.example.com")
    assert txt(wild) == {"from-wildcard"}
    assert wild.answer[0].name == dns.name.from_text("_dnsauth.x.wild.example.com")
    assert str(lagging_sandbox.ask(0, "mail.example.com", "MX").answer[0][0]) == (
        "10 mx.example.com.")


def test_long_txt_is_split_into_255_byte_strings(lagging_sandbox: Sandbox) -> None:
    value = "".join(chr(ord("a") + i % 26) for i in range(600))
    lagging_sandbox.state.add_record(lagging_sandbox.zone, "long", "TXT", value, 600)
    (rrset,) = lagging_sandbox.ask(0, "long.example.com", use_edns=0, payload=1232).answer
    assert [len(s) for s in rrset[0].strings] == [255, 255, 90]
    assert b"".join(rrset[0].strings).decode() == value
    assert lagging_sandbox.verify("long.example.com") == {value}


def test_udp_truncation_then_tcp(lagging_sandbox: Sandbox) -> None:
    values = {f"{i:02d}" + "v" * 198 for i in range(12)}  # ~2.5 kB, over any UDP payload here
    for value in values:
        lagging_sandbox.state.add_record(lagging_sandbox.zone, "big", "TXT", value, 600)
    for kw in ({"use_edns": 0, "payload": 1232}, {"use_edns": False}):
        query = dns.message.make_query("big.example.com", "TXT", flags=0, **kw)
        udp = dns.query.udp(query, "127.0.0.1", timeout=TIMEOUT, port=lagging_sandbox.port(0))
        assert udp.flags & dns.flags.TC and not udp.answer
        response, used_tcp = dns.query.udp_with_fallback(
            query, "127.0.0.1", timeout=TIMEOUT, port=lagging_sandbox.port(0))
        assert used_tcp and txt(response) == values


def test_nsid_names_the_server(lagging_sandbox: Sandbox) -> None:
    nsid = dns.edns.GenericOption(dns.edns.OptionType.NSID, b"")
    response = lagging_sandbox.ask(1, "www.example.com", "A", use_edns=0, options=[nsid])
    (option,) = response.options
    assert isinstance(option, dns.edns.NSIDOption) and option.nsid == NS[1].encode()


# -- garbage and faults --------------------------------------------------------------------------


def test_garbage_does_not_stop_the_servers(lagging_sandbox: Sandbox) -> None:
    good = dns.message.make_query("www.example.com", "A", flags=0)
    for port in (lagging_sandbox.port(0), lagging_sandbox.fleet.resolver.port):
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
            udp.settimeout(TIMEOUT)
            for junk in (b"", b"\x01", b"\xff" * 11, bytes(range(256)) * 3):
                udp.sendto(junk, ("127.0.0.1", port))
            udp.sendto(good.to_wire() + b"junk", ("127.0.0.1", port))  # trailing garbage
            answer = dns.message.from_wire(udp.recv(4096))
            while answer.id != good.id:  # skip any answer to the junk above
                answer = dns.message.from_wire(udp.recv(4096))
            assert answer.rcode() == dns.rcode.FORMERR
        for junk in (b"\x00\x40abc", b"\x00\x05\xff\xff\xff\xff\xff", b"\xff"):
            with socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT) as tcp:
                tcp.sendall(junk)  # a cut frame, a frame of garbage, half a length prefix
        response = dns.query.udp(good, "127.0.0.1", timeout=TIMEOUT, port=port)
        assert response.rcode() == dns.rcode.NOERROR and response.answer
        response = dns.query.tcp(good, "127.0.0.1", timeout=TIMEOUT, port=port)
        assert response.rcode() == dns.rcode.NOERROR and response.answer


def test_tcp_connection_serves_several_queries(lagging_sandbox: Sandbox) -> None:
    with socket.create_connection(("127.0.0.1", lagging_sandbox.port(0)), timeout=TIMEOUT) as sock:
        for name in ("www.example.com", "leaf.ent.example.com"):
            query = dns.message.make_query(name, "A", flags=0)
            dns.query.send_tcp(sock, query)
            response, _ = dns.query.receive_tcp(sock)
            assert response.id == query.id and response.answer[0].name == query.question[0].name


@pytest.mark.parametrize(("faults", "expected"), [
    (OpFaults(error_rate=1.0), dns.rcode.SERVFAIL),
    (OpFaults(drop_rate=1.0), None),
])
def test_faults(clock: FakeClock, faults: OpFaults, expected: int | None) -> None:
    plan = FaultPlan(FaultsConfig(ops={"dns": faults}))
    box = Sandbox(SandboxState(world(), clock=clock), faults=plan)
    try:
        query = dns.message.make_query("www.example.com", "A", flags=0)
        if expected is None:
            with pytest.raises(dns.exception.Timeout):
                dns.query.udp(query, "127.0.0.1", timeout=0.5, port=box.port(0))
        else:
            response = dns.query.udp(query, "127.0.0.1", timeout=TIMEOUT, port=box.port(0))
            assert response.rcode() == expected and not response.answer
    finally:
        box.close()


# -- the caching resolver and the verifier -------------------------------------------------------


def all_servers_now(box: Sandbox, name: str, value: str) -> None:
    """Assert every server serves ``value`` at ``name``."""
    for server in range(len(box.fleet.servers)):
        assert value in txt(box.ask(server, name))


def test_resolver_keeps_nxdomain_until_the_negative_ttl_ends(
    updating: Sandbox, clock: FakeClock
) -> None:
    name = "_dnsauth.early.example.com"
    early = updating.resolve(name)
    assert early.rcode() == dns.rcode.NXDOMAIN and early.flags & dns.flags.RA
    assert not early.flags & dns.flags.AA and authority_soa_ttl(early) == 2
    assert updating.verify(name) == frozenset()

    updating.state.add_record(updating.zone, "_dnsauth.early", "TXT", "tok-early", 600)
    clock.advance(0.5)
    all_servers_now(updating, name, "tok-early")
    cached = updating.resolve(name)
    assert cached.rcode() == dns.rcode.NXDOMAIN and authority_soa_ttl(cached) == 2
    assert updating.resolve(name, "A").rcode() == dns.rcode.NXDOMAIN  # NXDOMAIN: every type
    clock.advance(1.0)
    assert updating.verify(name) == frozenset() and authority_soa_ttl(updating.resolve(name)) == 1
    clock.advance(0.51)  # 2.01 s after the first query
    assert txt(updating.resolve(name)) == {"tok-early"}
    assert updating.verify(name) == {"tok-early"}
    seen = [(q, t) for _, q, t in updating.fleet.resolver.queries_seen]
    assert seen[:2] == [(name, "TXT")] * 2 and (name, "A") in seen


def test_resolver_caches_nodata_per_type(updating: Sandbox, clock: FakeClock) -> None:
    before = updating.resolve("www.example.com", "TXT")
    assert before.rcode() == dns.rcode.NOERROR and not before.answer
    assert updating.resolve("www.example.com", "A").answer  # other types unaffected
    updating.state.add_record(updating.zone, "www", "TXT", "now-here", 600)
    clock.advance(0.3)
    all_servers_now(updating, "www.example.com", "now-here")
    assert not updating.resolve("www.example.com", "TXT").answer
    clock.advance(1.7)
    assert txt(updating.resolve("www.example.com", "TXT")) == {"now-here"}


def test_resolver_honours_positive_ttl(updating: Sandbox, clock: FakeClock) -> None:
    rec = updating.state.add_record(updating.zone, "_dnsauth.pos", "TXT", "old", 5)
    name = "_dnsauth.pos.example.com"
    clock.advance(0.3)
    all_servers_now(updating, name, "old")
    assert updating.verify(name) == {"old"}
    updating.state.update_record(updating.zone, rec, "_dnsauth.pos", "TXT", "new", 5)
    clock.advance(2)
    all_servers_now(updating, name, "new")
    stale = updating.resolve(name)
    assert txt(stale) == {"old"} and stale.answer[0].ttl == 3  # TTL counts down in the cache
    assert updating.verify(name) == {"old"}
    clock.advance(3)
    assert updating.verify(name) == {"new"}
    updating.state.update_record(updating.zone, rec, "_dnsauth.pos", "TXT", "newer", 5)
    clock.advance(0.3)
    assert updating.verify(name) == {"new"}  # still cached
    updating.fleet.resolver.flush()
    assert updating.verify(name) == {"newer"}


def test_negative_ttl_is_capped_by_the_resolver(clock: FakeClock) -> None:
    config = world(lags=(0.0, 0.3), soa_ttl=600, soa_minimum=600, max_negative_ttl=1)
    box = Sandbox(SandboxState(config, clock=clock))
    try:
        assert box.resolve("_dnsauth.cap.example.com").rcode() == dns.rcode.NXDOMAIN
        box.state.add_record(box.zone, "_dnsauth.cap", "TXT", "v", 600)
        clock.advance(0.5)
        all_servers_now(box, "_dnsauth.cap.example.com", "v")
        assert box.verify("_dnsauth.cap.example.com") == frozenset()
        clock.advance(0.51)
        assert box.verify("_dnsauth.cap.example.com") == {"v"}
    finally:
        box.close()


def test_resolver_follows_cnames_across_sandbox_zones_and_refuses_the_rest(
    updating: Sandbox,
) -> None:
    chased = updating.resolve("away.example.com", "TXT")
    assert [rrset.rdtype for rrset in chased.answer] == [dns.rdatatype.CNAME, dns.rdatatype.TXT]
    assert updating.verify("away.example.com") == {"net-value"}
    assert updating.resolve("www.example.org", "A").rcode() == dns.rcode.REFUSED
    assert updating.verify("www.example.org") == frozenset()
    assert updating.verify("bad..name") == frozenset()


def test_resolver_answers_over_tcp(updating: Sandbox) -> None:
    query = dns.message.make_query("www.example.com", "A")
    response = dns.query.tcp(query, "127.0.0.1", timeout=TIMEOUT,
                             port=updating.fleet.resolver.port)
    assert response.answer[0][0].address == "192.0.2.10" and response.flags & dns.flags.RA


def test_negative_caching_in_real_time() -> None:
    box = Sandbox(SandboxState(world(lags=(0.0, 0.0), soa_ttl=1, soa_minimum=1)))
    try:
        name = "_dnsauth.rtneg.example.com"
        primed = time.monotonic()
        assert box.resolve(name).rcode() == dns.rcode.NXDOMAIN
        box.state.add_record(box.zone, "_dnsauth.rtneg", "TXT", "tok", 600)
        all_servers_now(box, name, "tok")
        while not box.verify(name):
            assert time.monotonic() - primed < 10, "negative cache entry never expired"
            time.sleep(0.05)
        assert time.monotonic() - primed >= 1.0  # the 1 s negative TTL
    finally:
        box.close()

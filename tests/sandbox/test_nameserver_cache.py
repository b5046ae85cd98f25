"""The authoritative servers' answer cache never serves what the uncached path would not.

Every query here goes over real UDP to a running fleet (where the cache answers) and is compared
with what the server's uncached path (:meth:`AuthoritativeServer.respond`) gives at the same
point in time (the same message, same length), or with the expected answer. The clock is
injected, so a change must become visible to a server with lag L at exactly L, cached or not,
negative answers and SOA serials included.
"""

from __future__ import annotations

import socket
from collections.abc import Iterator

import dns.message
import dns.rcode
import dns.rdatatype
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cname_flow.sandbox.nameservers.transport import render
from cname_flow.sandbox.state import SandboxState
from tests.fakes import FakeClock
from tests.sandbox.test_nameservers import (
    BASE_SERIAL,
    TIMEOUT,
    ZONE,
    Sandbox,
    txt,
    world,
)

pytestmark = pytest.mark.e2e

PROMPT, LAGGING, STUCK = 0, 1, 2
LAG = 0.3


@pytest.fixture
def box(clock: FakeClock) -> Iterator[Sandbox]:
    """Servers with lag 0, 0.3 s and None (never updates), started one second in."""
    sandbox = Sandbox(SandboxState(world(), clock=clock))
    clock.advance(1)  # a change at the very start instant counts as "seen at start"
    yield sandbox
    sandbox.close()


def neg_serial(response: dns.message.Message) -> int:
    (rrset,) = response.authority
    assert rrset.rdtype == dns.rdatatype.SOA
    return int(rrset[0].serial)


def warm(box: Sandbox, name: str, rdtype: str = "TXT") -> list[dns.message.Message]:
    """Ask every server twice (the second answer comes from the cache); return the second."""
    for server in range(3):
        box.ask(server, name, rdtype)
    hits = [s.cache_hits for s in box.fleet.servers]
    answers = [box.ask(server, name, rdtype) for server in range(3)]
    assert [s.cache_hits for s in box.fleet.servers] == [h + 1 for h in hits]
    return answers


def test_a_cached_positive_answer_changes_at_exactly_the_lag(
    box: Sandbox, clock: FakeClock
) -> None:
    name = "_dnsauth.v.example.com"
    rec = box.state.add_record(box.zone, "_dnsauth.v", "TXT", "tok-1", 600)
    clock.advance(1)
    assert [txt(a) for a in warm(box, name)] == [{"tok-1"}, {"tok-1"}, set()]

    box.state.update_record(box.zone, rec, "_dnsauth.v", "TXT", "tok-2", 600)
    assert txt(box.ask(PROMPT, name)) == {"tok-2"}
    clock.advance(LAG - 0.01)
    assert txt(box.ask(LAGGING, name)) == {"tok-1"}
    clock.advance(0.01)
    assert txt(box.ask(LAGGING, name)) == {"tok-2"}
    assert box.ask(STUCK, name).rcode() == dns.rcode.NXDOMAIN


def test_a_cached_nxdomain_turns_into_the_record_at_exactly_the_lag(
    box: Sandbox, clock: FakeClock
) -> None:
    name = "_dnsauth.new.example.com"
    assert [a.rcode() for a in warm(box, name)] == [dns.rcode.NXDOMAIN] * 3
    box.state.add_record(box.zone, "_dnsauth.new", "TXT", "tok", 600)
    assert txt(box.ask(PROMPT, name)) == {"tok"}
    assert box.ask(LAGGING, name).rcode() == dns.rcode.NXDOMAIN
    clock.advance(LAG)  # visible when now - lag reaches the change instant
    assert txt(box.ask(LAGGING, name)) == {"tok"}
    assert box.ask(STUCK, name).rcode() == dns.rcode.NXDOMAIN


def test_cached_negative_answers_carry_the_serial_each_server_sees(
    box: Sandbox, clock: FakeClock
) -> None:
    name = "nothing.example.com"
    assert [neg_serial(a) for a in warm(box, name)] == [BASE_SERIAL] * 3
    box.state.add_record(box.zone, "elsewhere", "TXT", "x", 600)  # another name of the zone
    hits = box.fleet.servers[PROMPT].cache_hits
    answer = box.ask(PROMPT, name)
    assert answer.rcode() == dns.rcode.NXDOMAIN and neg_serial(answer) == BASE_SERIAL + 1
    assert box.fleet.servers[PROMPT].cache_hits == hits + 1  # still cached, serial patched
    assert neg_serial(box.ask(LAGGING, name)) == BASE_SERIAL
    clock.advance(LAG - 0.01)
    assert neg_serial(box.ask(LAGGING, name)) == BASE_SERIAL
    clock.advance(0.01)
    assert neg_serial(box.ask(LAGGING, name)) == BASE_SERIAL + 1
    assert neg_serial(box.ask(STUCK, name)) == BASE_SERIAL
    nodata = box.ask(PROMPT, "www.example.com", "TXT")  # NODATA carries it too
    assert nodata.rcode() == dns.rcode.NOERROR and neg_serial(nodata) == BASE_SERIAL + 1


def test_a_record_below_a_cached_nxdomain_makes_it_an_empty_non_terminal(
    box: Sandbox, clock: FakeClock
) -> None:
    assert [a.rcode() for a in warm(box, "branch.example.com")] == [dns.rcode.NXDOMAIN] * 3
    box.state.add_record(box.zone, "leaf.branch", "TXT", "x", 600)
    nodata = box.ask(PROMPT, "branch.example.com")
    assert nodata.rcode() == dns.rcode.NOERROR and not nodata.answer
    assert box.ask(LAGGING, "branch.example.com").rcode() == dns.rcode.NXDOMAIN
    clock.advance(LAG)
    assert box.ask(LAGGING, "branch.example.com").rcode() == dns.rcode.NOERROR


def test_a_new_wildcard_answers_cached_nxdomains_after_the_lag(
    box: Sandbox, clock: FakeClock
) -> None:
    name = "any.cards.example.com"
    assert [a.rcode() for a in warm(box, name)] == [dns.rcode.NXDOMAIN] * 3
    box.state.add_record(box.zone, "*.cards", "TXT", "dealt", 600)
    assert txt(box.ask(PROMPT, name)) == {"dealt"}
    assert box.ask(LAGGING, name).rcode() == dns.rcode.NXDOMAIN
    clock.advance(LAG)
    assert txt(box.ask(LAGGING, name)) == {"dealt"}


def test_the_first_wildcard_of_a_zone_answers_its_cached_nxdomains(
    box: Sandbox, clock: FakeClock
) -> None:
    net = box.state.zones["example.net"]  # no wildcard so far
    name = "any.deck.example.net"
    assert [a.rcode() for a in warm(box, name)] == [dns.rcode.NXDOMAIN] * 3
    box.state.add_record(net, "*", "TXT", "apex-wild", 60)
    assert txt(box.ask(PROMPT, name)) == {"apex-wild"}
    assert box.ask(LAGGING, name).rcode() == dns.rcode.NXDOMAIN
    clock.advance(LAG)
    assert txt(box.ask(LAGGING, name)) == {"apex-wild"}


def test_a_changed_cname_target_updates_the_cached_chain(box: Sandbox, clock: FakeClock) -> None:
    name = "alias.example.com"  # CNAME www.example.com (A 192.0.2.10)
    assert [len(a.answer) for a in warm(box, name, "A")] == [2, 2, 2]
    [www] = [r for r in box.zone.records.values() if r.rr == "www"]
    box.state.update_record(box.zone, www, "www", "A", "192.0.2.99", 600)
    assert box.ask(PROMPT, name, "A").answer[1][0].address == "192.0.2.99"
    assert box.ask(LAGGING, name, "A").answer[1][0].address == "192.0.2.10"
    clock.advance(LAG)
    assert box.ask(LAGGING, name, "A").answer[1][0].address == "192.0.2.99"


def test_changes_at_other_names_leave_cached_answers_in_use(
    box: Sandbox, clock: FakeClock
) -> None:
    warm(box, "www.example.com", "A")
    for k in range(5):
        box.state.add_record(box.zone, f"_dnsauth.d{k}", "TXT", "t", 600)
        clock.advance(1)
    hits = [s.cache_hits for s in box.fleet.servers]
    answers = [box.ask(server, "www.example.com", "A") for server in range(3)]
    assert [s.cache_hits for s in box.fleet.servers] == [h + 1 for h in hits]
    assert all(a.answer[0][0].address == "192.0.2.10" for a in answers)


# -- property: cached UDP answers are the uncached ones --------------------------------------------

OWNERS = ("a", "b.c", "*.w", "c", "@")
QNAMES = ("a", "b.c", "c", "x.c", "z.w", "w", "q", "@", "b.c.c")
VALUES = {"TXT": ("v1", "v2", "v3"), "A": ("192.0.2.1", "192.0.2.2"),
          "CNAME": ("b.c.example.com", "z.w.example.com")}
STEPS = (0.0, 0.01, LAG - 0.01, LAG, 1.0)

add_op = st.tuples(st.just("add"), st.sampled_from(OWNERS), st.sampled_from(sorted(VALUES)),
                   st.integers(0, 2))
change_op = st.tuples(st.sampled_from(("update", "delete")), st.integers(0, 20),
                      st.integers(0, 2))
tick_op = st.tuples(st.just("tick"), st.sampled_from(STEPS))
ask_op = st.tuples(st.just("ask"), st.sampled_from(QNAMES), st.sampled_from(("TXT", "A", "SOA")))
ops = st.lists(st.one_of(add_op, change_op, tick_op, ask_op, ask_op), min_size=5, max_size=40)


@pytest.fixture(scope="module")
def shared() -> Iterator[tuple[Sandbox, FakeClock]]:
    clock = FakeClock()
    sandbox = Sandbox(SandboxState(world(), clock=clock))
    yield sandbox, clock
    sandbox.close()


def _reset(box: Sandbox, clock: FakeClock) -> None:
    """Back to the configured world, as ``Sandbox.reset`` of the app does (servers keep ports)."""
    clock.advance(10)
    fresh = SandboxState(box.state.config, clock=clock)
    with box.state.lock:
        box.state.__dict__.update(
            {k: v for k, v in fresh.__dict__.items() if k not in ("lock", "config", "clock")})
    clock.advance(1)


def _apply(box: Sandbox, clock: FakeClock, op: tuple[object, ...]) -> None:
    state, zone = box.state, box.zone
    records = sorted(zone.records.values(), key=lambda r: int(r.record_id))
    if op[0] == "add":
        _, owner, rtype, k = op
        assert isinstance(owner, str) and isinstance(rtype, str) and isinstance(k, int)
        state.add_record(zone, owner, rtype, VALUES[rtype][k % len(VALUES[rtype])], 600)
    elif op[0] in ("update", "delete") and records:
        _, i, k = op
        assert isinstance(i, int) and isinstance(k, int)
        rec = records[i % len(records)]
        if op[0] == "delete":
            state.delete_record(zone, rec)
        else:
            values = VALUES.get(rec.type, ("192.0.2.1",))
            state.update_record(zone, rec, rec.rr, rec.type, values[k % len(values)], rec.ttl)
    elif op[0] == "tick":
        assert isinstance(op[1], float)
        clock.advance(op[1])


def _udp_raw(wire: bytes, port: int) -> bytes:
    """The answer's bytes exactly as the server sent them."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.settimeout(TIMEOUT)
        sock.sendto(wire, ("127.0.0.1", port))
        return sock.recv(65535)


def _ask_all(box: Sandbox, qname: str, rdtype: str) -> None:
    name = ZONE if qname == "@" else f"{qname}.{ZONE}"
    for i, server in enumerate(box.fleet.servers):
        for _ in range(2):  # the second time from the cache when still valid
            query = dns.message.make_query(name, rdtype, flags=0).to_wire()
            got = _udp_raw(query, box.port(i))
            expected = server.respond(query)
            assert expected is not None
            want = render(expected, False)
            # Equal as messages (RRsets compare as sets: dnspython shuffles an RRset's records
            # each time it renders one, RFC 2181 §5 leaves their order open), and as long.
            assert len(got) == len(want), (name, rdtype, server.lag)
            assert dns.message.from_wire(got) == dns.message.from_wire(want), (name, rdtype)


@settings(max_examples=60, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(ops)
def test_cached_answers_equal_uncached_ones(
    shared: tuple[Sandbox, FakeClock], script: list[tuple[object, ...]]
) -> None:
    box, clock = shared
    _reset(box, clock)
    for op in script:
        if op[0] == "ask":
            _, qname, rdtype = op
            assert isinstance(qname, str) and isinstance(rdtype, str)
            _ask_all(box, qname, rdtype)
        else:
            _apply(box, clock, op)
    for qname in QNAMES:
        _ask_all(box, qname, "TXT")

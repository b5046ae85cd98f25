"""The pre-state against the sandbox's authoritative servers over real loopback sockets.

The SOA is asked only of addresses whose authoritative TXT answer carried none; the result must
equal the full reference procedure (TXT and SOA asked of every address) for the same servers:
name absent (NXDOMAIN), an old TXT value (positive answer), another type at the name (NODATA),
one server that never updates, one address that does not answer.
"""

from __future__ import annotations

import asyncio
import socket
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import dns.message
import pytest
from dns.rdatatype import RdataType

from cname_flow.errors import StepError
from cname_flow.propagation.checker import (
    AddressAnswer,
    NameserverAddress,
    PreState,
    PropagationChecker,
)
from cname_flow.propagation.model import PropagationPolicy, fold_pre_state
from cname_flow.propagation.wire import (
    QueryFn,
    ask,
    async_udp_then_tcp,
    classify,
    make_query,
    udp_then_tcp,
)
from cname_flow.sandbox.app import Sandbox
from cname_flow.sandbox.config import RecordConfig, ZoneConfig
from tests.e2e.bindkit import world

pytestmark = pytest.mark.e2e

ZONE = "example.com"
SOA_TTL, SOA_MINIMUM = 600, 120  # neg_ttl = min(SOA TTL, MINIMUM) = 120 (RFC 2308 §5)
PRELOADED = [
    RecordConfig(rr="_dnsauth.old", type="TXT", value="old-token", ttl=900),
    RecordConfig(rr="_dnsauth.nodata", type="A", value="192.0.2.7"),
]
#: Short timeouts: the silent address costs one UDP timeout per query.
POLICY = PropagationPolicy(query_timeout_s=0.3, tcp_timeout_s=0.3)


@dataclass
class World:
    sandbox: Sandbox
    targets: list[NameserverAddress]  # ns1 (no lag), ns2 (never updates)
    policy: PropagationPolicy


@pytest.fixture(scope="module")
def lab() -> Iterator[World]:
    zone = ZoneConfig(name=ZONE, soa_ttl=SOA_TTL, soa_minimum=SOA_MINIMUM, records=PRELOADED)
    with Sandbox(world(0.0, None, zones=[zone])) as sandbox:
        policy = PropagationPolicy(query_timeout_s=POLICY.query_timeout_s,
                                   tcp_timeout_s=POLICY.tcp_timeout_s,
                                   nameserver_addresses=sandbox.info.nameservers)
        state = sandbox.state
        targets = PropagationChecker(policy).targets(ZONE, list(state.zones[ZONE].nameservers))
        # after start: ns1 serves it, ns2 (lag None) never does
        state.add_record(state.zones[ZONE], "_dnsauth.lagging", "TXT", "new-token", 600)
        yield World(sandbox, sorted(targets), policy)


@pytest.fixture(scope="module")
def silent() -> Iterator[NameserverAddress]:
    """A loopback UDP port that never answers (and no TCP listener behind it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        yield NameserverAddress("ns3.silent.test", "127.0.0.1", sock.getsockname()[1])


@dataclass
class Counting:
    """A query seam that counts queries by (address host, type)."""

    inner: QueryFn
    asked: Counter[tuple[str, RdataType]]

    def __call__(self, q: dns.message.Message, target: NameserverAddress) -> dns.message.Message:
        self.asked[(target.host.split(".")[0], q.question[0].rdtype)] += 1
        return self.inner(q, target)


def full_reference(policy: PropagationPolicy, name: str,
                   targets: Sequence[NameserverAddress]) -> PreState:
    """The pre-state as first specified: TXT and SOA from every address."""
    query = udp_then_tcp(policy)

    def answers(rdtype: RdataType) -> list[AddressAnswer]:
        return [answer(query, policy, name, rdtype, t) for t in targets]

    return fold_pre_state(name, answers(RdataType.TXT), answers(RdataType.SOA))


def answer(query: QueryFn, policy: PropagationPolicy, name: str, rdtype: RdataType,
           target: NameserverAddress) -> AddressAnswer:
    q = make_query(name, rdtype, policy.payload)
    return classify(ask(query, q, target, time.monotonic), name, None)


CASES = {
    # name, include the silent address, hosts expected to be asked SOA
    "nxdomain": ("_dnsauth.absent.example.com", False, set()),
    "old-value": ("_dnsauth.old.example.com", False, {"ns1", "ns2"}),
    "nodata": ("_dnsauth.nodata.example.com", False, set()),
    "one-lagging": ("_dnsauth.lagging.example.com", False, {"ns1"}),
    "one-unreachable": ("_dnsauth.old.example.com", True, {"ns1", "ns2"}),
    "unreachable-and-absent": ("_dnsauth.absent.example.com", True, set()),
}


@pytest.mark.parametrize("case", list(CASES))
def test_pre_state_should_equal_full_procedure_and_ask_soa_only_when_missing(
    lab: World, silent: NameserverAddress, case: str
) -> None:
    name, with_silent, soa_hosts = CASES[case]
    targets = [*lab.targets, silent] if with_silent else lab.targets
    counting = Counting(udp_then_tcp(lab.policy), Counter())
    checker = PropagationChecker(lab.policy, query=counting)

    pre = checker.pre_state(name, targets)

    assert pre == full_reference(lab.policy, name, targets)
    asked_soa = {host for (host, rdtype) in counting.asked if rdtype == RdataType.SOA}
    assert asked_soa == soa_hosts
    assert {host for (host, rdtype) in counting.asked if rdtype == RdataType.TXT} == {
        t.host.split(".")[0] for t in targets}
    assert all(n == 1 for n in counting.asked.values())
    assert pre.serial is not None and pre.neg_ttl == SOA_MINIMUM


def test_pre_state_should_report_what_each_case_serves(lab: World) -> None:
    """The facts behind the equality above, so it cannot hold by both being empty."""
    checker = PropagationChecker(lab.policy)
    old = checker.pre_state("_dnsauth.old.example.com", lab.targets)
    assert (old.values, old.old_ttl, old.cname) == (frozenset({"old-token"}), 900, None)
    absent = checker.pre_state("_dnsauth.absent.example.com", lab.targets)
    assert (absent.values, absent.old_ttl) == (frozenset(), None)
    lagging = checker.pre_state("_dnsauth.lagging.example.com", lab.targets)
    assert lagging.values == frozenset({"new-token"})  # served by ns1 only
    # ns1 saw the record added after start, ns2 never will: the higher serial, ns1's, is kept
    ns2 = answer(udp_then_tcp(lab.policy), lab.policy, "_dnsauth.lagging.example.com",
                 RdataType.SOA, lab.targets[1])
    assert ns2.serial is not None and lagging.serial is not None
    assert lagging.serial > ns2.serial
    assert absent.serial == lagging.serial


@pytest.mark.parametrize("case", list(CASES))
def test_pre_state_async_should_equal_the_synchronous_one(
    lab: World, silent: NameserverAddress, case: str
) -> None:
    name, with_silent, _ = CASES[case]
    targets = [*lab.targets, silent] if with_silent else lab.targets
    checker = PropagationChecker(lab.policy, aquery=async_udp_then_tcp(lab.policy))
    assert asyncio.run(checker.pre_state_async(name, targets)) == checker.pre_state(name, targets)


def test_pre_state_async_when_no_address_answers_should_raise_retryable(
    silent: NameserverAddress,
) -> None:
    checker = PropagationChecker(POLICY)
    with pytest.raises(StepError, match="no authoritative answer") as caught:
        asyncio.run(checker.pre_state_async("_dnsauth.x.example.com", [silent]))
    assert caught.value.retryable is True

"""Scripted authoritative servers, a fake clock and response builders for the propagation tests."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

import dns.flags
import dns.message
import dns.rcode
import dns.rdatatype
import dns.rrset

from cname_flow.propagation.model import NameserverAddress

ZONE = "example.com"
NAME = "_dnsauth.www.example.com"
TOKEN = "tok-0123456789abcdef"

Behaviour = Callable[[dns.message.Message, float], "dns.message.Message | BaseException"]
Answering = Callable[[dns.message.Message, float], dns.message.Message]


@dataclass
class FakeClock:
    """Monotonic clock advanced only by :meth:`sleep` / :meth:`asleep`, which record each delay."""

    now: float = 1000.0
    sleeps: list[float] = field(default_factory=list)

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds

    async def asleep(self, seconds: float) -> None:
        self.sleep(seconds)


def soa_rrset(serial: int, *, ttl: int = 600, minimum: int = 300) -> dns.rrset.RRset:
    text = f"ns1.{ZONE}. hostmaster.{ZONE}. {serial} 3600 1200 86400 {minimum}"
    return dns.rrset.from_text(f"{ZONE}.", ttl, "IN", "SOA", text)


def respond(
    query: dns.message.Message,
    *,
    aa: bool = True,
    rcode: int = dns.rcode.NOERROR,
    txt: tuple[str, ...] = (),
    owner: str | None = None,
    cname: str | None = None,
    serial: int | None = None,
    ttl: int = 600,
) -> dns.message.Message:
    """A response to ``query``; ``txt`` items are zone-file text (``'"a" "b"'`` splits strings)."""
    response = dns.message.make_response(query)
    if aa:
        response.flags |= dns.flags.AA
    response.set_rcode(dns.rcode.Rcode(rcode))
    qname = owner or str(query.question[0].name)
    if cname is not None:
        response.answer.append(dns.rrset.from_text(qname, ttl, "IN", "CNAME", cname))
    if txt:
        response.answer.append(dns.rrset.from_text_list(qname, ttl, "IN", "TXT", list(txt)))
    if serial is not None:
        response.authority.append(soa_rrset(serial))
    return response


def quoted(*values: str) -> tuple[str, ...]:
    return tuple(f'"{value}"' for value in values)


def serving(value_from: float | None, *, serial: int = 2, old: tuple[str, ...] = ()) -> Answering:
    """An authoritative server that serves TOKEN from ``value_from`` (clock time) on.

    Before that it answers NXDOMAIN (or the ``old`` values) with SOA serial ``serial - 1``.
    SOA queries are answered NODATA with the current serial.
    """

    def behave(query: dns.message.Message, now: float) -> dns.message.Message:
        live = value_from is not None and now >= value_from
        current = serial if live else serial - 1
        if query.question[0].rdtype == dns.rdatatype.SOA:
            return respond(query, serial=current)
        if live:
            return respond(query, txt=quoted(*old, TOKEN))
        if old:
            return respond(query, txt=quoted(*old))
        return respond(query, rcode=dns.rcode.NXDOMAIN, serial=current)

    return behave


@dataclass
class FakeAuthorities:
    """The query seam: routes each query to the behaviour of its target address, logs it."""

    clock: FakeClock
    behaviours: Mapping[str, Behaviour]
    log: list[tuple[str, dns.message.Message]] = field(default_factory=list)

    def __call__(
        self, query: dns.message.Message, target: NameserverAddress
    ) -> dns.message.Message:
        self.log.append((target.address, query))
        outcome = self.behaviours[target.address](query, self.clock.now)
        if isinstance(outcome, BaseException):
            raise outcome
        return outcome

    async def aquery(
        self, query: dns.message.Message, target: NameserverAddress
    ) -> dns.message.Message:
        return self(query, target)

    def asked(self, rdtype: dns.rdatatype.RdataType) -> list[str]:
        return [address for address, q in self.log if q.question[0].rdtype == rdtype]


def targets(*addresses: str) -> list[NameserverAddress]:
    return [NameserverAddress(f"ns{i}.{ZONE}", a, 53) for i, a in enumerate(addresses, start=1)]

"""Is the zone delegated to the provider's nameservers? Ask the parent zone's servers.

The parent's NS set for ``<zone>`` (its delegation, RFC 1034 §4.2.2 / RFC 7719 "referral") must
equal the NS set the DNS provider assigns the zone (Alidns ``DescribeDomainInfo.DnsServers``):
when they differ, resolvers ask servers that never see cname-flow's TXT record (OSS's verifier
included). Each parent server is asked ``<zone> NS`` with recursion off (RD=0), over UDP with
dnspython; a referral carries the NS set in the authority section, an authoritative answer
(a server hosting both zones, like the sandbox) in the answer section: both are read.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import dns.exception
import dns.flags
import dns.message
import dns.name
import dns.query
import dns.rdatatype
import dns.resolver
import dns.rrset

#: Seconds one question to one parent server may take.
QUERY_TIMEOUT_S = 3.0


@dataclass(frozen=True, slots=True)
class Delegation:
    """What the parent's servers say about a zone.

    Attributes:
        zone: the zone apex, lowercase, no trailing dot.
        parent: the parent zone asked about it.
        answers: parent server address (``"ip:port"``) → the NS names it gave (sorted,
            lowercase, no trailing dot); empty tuple when it gave none.
        errors: parent server address → why it could not be asked (timeout, refused…).
    """

    zone: str
    parent: str
    answers: dict[str, tuple[str, ...]]
    errors: dict[str, str]

    def ns_set(self) -> set[str]:
        """The union of the NS names every answering parent server gave."""
        return {ns for names in self.answers.values() for ns in names}


def _norm(name: str) -> str:
    return name.lower().rstrip(".")


def parse_server(text: str, default_port: int = 53) -> tuple[str, int]:
    """``"127.0.0.1:5353"`` → ``("127.0.0.1", 5353)``; ``"[::1]:53"`` and a bare address too.

    Raises:
        ValueError: the port is not a number.
    """
    if text.startswith("["):
        host, _, rest = text[1:].partition("]")
        return host, int(rest.lstrip(":")) if rest else default_port
    if text.count(":") == 1:
        host, _, port = text.partition(":")
        return host, int(port)
    return text, default_port


def parent_servers(parent: str, *, lifetime_s: float = 5.0) -> list[str]:
    """Addresses (``"ip:53"``) of the parent zone's authoritative servers, found through the
    system's recursive resolver (its NS set, then each name's A records).

    Raises:
        dns.exception.DNSException: the resolver could not answer.
    """
    resolver = dns.resolver.Resolver()
    resolver.lifetime = lifetime_s
    addresses: list[str] = []
    for ns in resolver.resolve(parent, "NS"):
        for a in resolver.resolve(ns.target, "A"):
            addresses.append(f"{a.address}:53")
    return addresses


def check_delegation(zone: str, servers: Sequence[str] | None = None) -> Delegation:
    """Ask each parent server for ``<zone> NS`` (RD=0) and collect the NS names given.

    Args:
        zone: the zone apex (``"example.com"``).
        servers: parent server addresses (``"ip[:port]"``); ``None`` finds them with
            :func:`parent_servers` (needs a working recursive resolver).

    Raises:
        ValueError: ``zone`` is a top-level name (no parent to ask), or a bad address.
    """
    name = dns.name.from_text(_norm(zone))
    if len(name.labels) <= 2:
        raise ValueError(f"{zone!r} has no parent zone to ask")
    parent = _norm(name.parent().to_text())
    errors: dict[str, str] = {}
    if servers is None:
        try:
            servers = parent_servers(parent)
        except dns.exception.DNSException as exc:
            return Delegation(_norm(zone), parent, {}, {parent: f"no servers found: {exc}"})
    answers: dict[str, tuple[str, ...]] = {}
    for server in servers:
        host, port = parse_server(server)
        query = dns.message.make_query(name, dns.rdatatype.NS)
        query.flags &= ~dns.flags.RD
        try:
            reply = dns.query.udp(query, host, port=port, timeout=QUERY_TIMEOUT_S)
        except (dns.exception.DNSException, OSError) as exc:
            errors[server] = type(exc).__name__ + (f": {exc}" if str(exc) else "")
            continue
        answers[server] = tuple(sorted(_ns_names(name, [*reply.answer, *reply.authority])))
    return Delegation(_norm(zone), parent, answers, errors)


def _ns_names(zone: dns.name.Name, rrsets: Iterable[dns.rrset.RRset]) -> set[str]:
    return {_norm(rdata.target.to_text()) for rrset in rrsets
            if rrset.rdtype == dns.rdatatype.NS and rrset.name == zone for rdata in rrset}

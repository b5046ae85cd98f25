"""Which addresses the propagation check polls: every address of every authoritative NS host.

The NS hosts are the provider's nameservers plus the child zone's apex NS set (RFC 1034 §4.2.1;
the zone's own NS data outranks any other list, RFC 2181 §5.4.1), asked of the provider's
nameservers directly (RD=0). Each host's addresses come from, in order: the policy's
``nameserver_addresses`` override, the A/AAAA records in the additional section of the apex NS
answer (RFC 1035 §3.3.11), then an A/AAAA lookup of the *host name* through the system resolver
(``getaddrinfo``), which never involves the name being waited for.
"""

from __future__ import annotations

import socket
from collections.abc import Callable, Iterable, Sequence

import dns.message
import dns.name
import dns.rdatatype

from cname_flow.errors import StepError
from cname_flow.logs import get_logger
from cname_flow.propagation.model import (
    NameserverAddress,
    PropagationPolicy,
    normalize_host,
)
from cname_flow.propagation.wire import Exchange, is_authoritative_noerror

log = get_logger(__name__)

#: Looks up a host name's IPv4 and IPv6 addresses; returns [] when it has none.
ResolveHostFn = Callable[[str], list[str]]
#: Asks every target for (name, type) in parallel; returns the exchanges in target order.
GatherFn = Callable[[str, dns.rdatatype.RdataType, Sequence[NameserverAddress]], list[Exchange]]


def system_addresses(host: str) -> list[str]:
    """A and AAAA addresses of ``host`` from the system resolver, IPv4 first, no duplicates."""
    try:
        infos = socket.getaddrinfo(host, None, proto=socket.IPPROTO_UDP)
    except (socket.gaierror, UnicodeError):
        return []
    found = [str(info[4][0]) for info in sorted(infos, key=lambda info: info[0] != socket.AF_INET)
             if info[0] in (socket.AF_INET, socket.AF_INET6)]
    return list(dict.fromkeys(found))


def addresses_of(
    host: str,
    policy: PropagationPolicy,
    resolve_host: ResolveHostFn,
    glue: Sequence[str] = (),
) -> list[NameserverAddress]:
    """Every address to poll for ``host``: override, else glue, else the system resolver."""
    pairs = policy.overrides_for(host)
    if pairs is None:
        ips = list(glue) or resolve_host(host)
        pairs = [(ip, policy.dns_port) for ip in ips]
    if not pairs:
        log.warning("propagation.ns_unresolved", host=host)
    return [NameserverAddress(host, ip, port) for ip, port in pairs]


def apex_nameservers(zone: str, exchanges: Iterable[Exchange]) -> dict[str, list[str]]:
    """NS hosts of ``zone`` from authoritative NOERROR answers, each with its glue addresses."""
    apex = dns.name.from_text(zone)
    found: dict[str, list[str]] = {}
    for exchange in exchanges:
        response = exchange.response
        if response is None or not is_authoritative_noerror(response):
            continue
        for rrset in response.answer:
            if rrset.rdtype == dns.rdatatype.NS and rrset.name == apex:
                for rdata in rrset:
                    host = normalize_host(rdata.to_text())
                    found.setdefault(host, _glue(response, host))
    return found


def _glue(response: dns.message.Message, host: str) -> list[str]:
    owner = dns.name.from_text(host)
    return [rdata.to_text() for rrset in response.additional
            if rrset.name == owner and rrset.rdtype in (dns.rdatatype.A, dns.rdatatype.AAAA)
            for rdata in rrset]


def discover(
    zone: str,
    provider_nameservers: Sequence[str],
    policy: PropagationPolicy,
    gather: GatherFn,
    resolve_host: ResolveHostFn,
) -> list[NameserverAddress]:
    """The sorted, de-duplicated target set of ``zone`` (provider NS ∪ child apex NS).

    Raises:
        StepError: not retryable; no address could be found for any nameserver.
    """
    zone = normalize_host(zone)
    provider = {normalize_host(h): None for h in provider_nameservers if h.strip()}
    targets = [a for host in provider for a in addresses_of(host, policy, resolve_host)]
    child = apex_nameservers(zone, gather(zone, dns.rdatatype.NS, targets)) if targets else {}
    if not child:
        log.warning("propagation.apex_ns_unknown", zone=zone, provider=sorted(provider))
    elif set(child) != set(provider):
        log.warning("propagation.ns_mismatch", zone=zone, provider=sorted(provider),
                    child=sorted(child))
    for host, glue in child.items():
        if host not in provider:
            targets += addresses_of(host, policy, resolve_host, glue)
    if not targets:
        raise StepError(
            f"zone {zone}: no authoritative nameserver address to check "
            f"(provider nameservers: {', '.join(provider) or 'none'})",
            hint="check the zone's delegation or set nameserver_addresses",
            retryable=False,
        )
    unique = sorted(set(targets))
    log.info("propagation.targets", zone=zone, hosts=sorted({t.host for t in unique}),
             addresses=len(unique))
    return unique

"""Authoritative answers from the sandbox state, as one nameserver sees it at its own point in time.

:class:`ZoneAnswerer` fills a dnspython response for one question (RFC 1034 §4.3.2, without
delegations): records from :meth:`SandboxState.rrsets_at`, SOA and NS synthesized at each apex,
CNAMEs followed inside their zone only, wildcards per RFC 4592, and negative answers carrying the
SOA with TTL min(SOA TTL, MINIMUM) (RFC 2308 §3). TXT values longer than 255 bytes become several
character-strings (RFC 1035 §3.3.14).

Time is the caller's: a server with lag ``L`` asks with ``at = state.server_time(L)``. Each
answer comes with its :class:`Validity`: the names (subtrees) it read and how many changes of each
the server had seen, so a cache can tell when the same question would get another answer.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

import dns.exception
import dns.flags
import dns.message
import dns.name
import dns.rcode
import dns.rdata
import dns.rdataclass
import dns.rdatatype
import dns.rdtypes.ANY.SOA
import dns.rdtypes.ANY.TXT
import dns.rdtypes.IN.A
import dns.rdtypes.IN.AAAA
import dns.rrset

from cname_flow.sandbox.nameservers.index import WILDCARDS, ZONE_CHANGES
from cname_flow.sandbox.state import HostedZone, RecordVersion, SandboxState

logger = logging.getLogger(__name__)

IN = dns.rdataclass.IN
SOA_REFRESH, SOA_RETRY, SOA_EXPIRE = 3600, 1200, 86400
#: TTL of the synthesized apex NS RRset and of nameserver address records, seconds.
NS_TTL = 3600
#: Longest CNAME chain followed inside one zone (RFC 1034 §3.6.2 wants loops detected).
MAX_CNAME_HOPS = 8
#: Largest character-string in a TXT RDATA (RFC 1035 §3.3), bytes.
TXT_STRING_MAX = 255
_HOSTMASTER = dns.name.Name((b"hostmaster",))
_WILDCARD = dns.name.Name((b"*",))
#: SOA RDATA ends with SERIAL, REFRESH, RETRY, EXPIRE, MINIMUM, 4 bytes each (RFC 1035 §3.3.13).
SOA_SERIAL_FROM_END = 20
#: SOA RRsets kept per answerer (one per zone, serial and TTL); emptied when full.
MAX_SOAS = 4096


@dataclass(frozen=True, slots=True)
class Validity:
    """What one answer depended on, so that a cache can tell when it goes stale.

    The answer served at ``at`` stays the answer at any later ``at2`` for which, in ``zone``'s
    index, every ``(key, count)`` of ``seen`` still has ``seen(key, at2) == count``
    (:meth:`~cname_flow.sandbox.nameservers.index.ZoneIndex.seen`) and ``epoch`` is still the
    state's
    epoch; except for the SOA serial of a negative answer, which follows the zone's changes and
    is patched in place (``soa_rdata`` is that SOA's RDATA as rendered, ``serial`` its serial).

    Attributes:
        epoch: ``state.epoch`` when answered.
        at: the server time answered for, Unix seconds.
        zone: the zone answered from; None for answers that never change (REFUSED, host
            addresses).
        seen: ``(index key, changes seen)`` per subtree the answer read.
        soa_rdata: the negative answer's SOA RDATA (wire); empty for positive answers.
        serial: the serial inside ``soa_rdata``.
    """

    epoch: object
    at: float
    zone: HostedZone | None = None
    seen: tuple[tuple[str, int], ...] = ()
    soa_rdata: bytes = b""
    serial: int = 0


@dataclass(slots=True)
class _Trace:
    """What an answer in progress has read: subtree keys, and the negative SOA it carries."""

    keys: set[str] = field(default_factory=set)
    soa: dns.rrset.RRset | None = None
    serial: int = 0


@functools.lru_cache(maxsize=65536)
def record_rdata(rtype: str, value: str) -> dns.rdata.Rdata | None:
    """The RDATA for an Alidns record value, or None when the type is not served over DNS.

    Args:
        rtype: Alidns type (``"TXT"``, ``"A"``, ``"CNAME"``, ``"MX"``…).
        value: Alidns ``Value``: raw text for TXT (split into 255-byte character-strings);
            master-file text otherwise, with relative names taken as absolute; an MX value
            without a preference gets 10 (Alidns keeps the priority in a separate field).
    """
    if rtype == "TXT":
        raw = value.encode()
        chunks = [raw[i : i + TXT_STRING_MAX] for i in range(0, len(raw), TXT_STRING_MAX)]
        return dns.rdtypes.ANY.TXT.TXT(IN, dns.rdatatype.TXT, chunks or [b""])
    try:
        rdtype = dns.rdatatype.from_text(rtype)
        text = f"10 {value}" if rtype == "MX" and " " not in value.strip() else value
        return dns.rdata.from_text(IN, rdtype, text, origin=dns.name.root, relativize=False)
    except (dns.exception.DNSException, ValueError):
        return None  # REDIRECT_URL, FORWARD_URL, or a value the API should have refused


@functools.lru_cache(maxsize=1024)
def _name(text: str) -> dns.name.Name:
    """An absolute name from text (zone apexes and host names, parsed once)."""
    return dns.name.from_text(text)


@functools.lru_cache(maxsize=1024)
def _ns_rrset(zone: str, nameservers: tuple[str, ...]) -> dns.rrset.RRset:
    """The apex NS RRset (RRsets are never modified once built, so sharing them is safe)."""
    return dns.rrset.from_text_list(_name(zone), NS_TTL, IN, dns.rdatatype.NS,
                                    [f"{ns}." for ns in nameservers])


def _rrsets(owner: dns.name.Name, versions: Iterable[RecordVersion]) -> dict[int, dns.rrset.RRset]:
    """Group record versions into RRsets by type; the RRset TTL is the smallest record TTL."""
    out: dict[int, dns.rrset.RRset] = {}
    for version in versions:
        rdata = record_rdata(version.type, version.value)
        if rdata is None:
            continue
        rrset = out.get(rdata.rdtype)
        if rrset is None:
            rrset = out[rdata.rdtype] = dns.rrset.RRset(owner, IN, rdata.rdtype)
        rrset.add(rdata, version.ttl)  # RFC 2181 §5.2: mixed TTLs collapse to the minimum
    return out


class ZoneAnswerer:
    """Builds authoritative answers for every zone of ``state``.

    Args:
        state: the sandbox state (zones, record histories, serials).
        host_addresses: nameserver host name (no trailing dot) → IPv4/IPv6 literal, served as
            A/AAAA so the NS targets resolve; answered AA even though no zone holds them.
    """

    def __init__(self, state: SandboxState, host_addresses: Mapping[str, str]) -> None:
        self.state = state
        self._soas: dict[tuple[str, int, int], dns.rrset.RRset] = {}
        self.hosts = {
            dns.name.from_text(name): self._address_rrset(dns.name.from_text(name), address)
            for name, address in host_addresses.items()
        }

    @staticmethod
    def _address_rrset(name: dns.name.Name, address: str) -> dns.rrset.RRset:
        cls = dns.rdtypes.IN.AAAA.AAAA if ":" in address else dns.rdtypes.IN.A.A
        rdtype = dns.rdatatype.AAAA if ":" in address else dns.rdatatype.A
        return dns.rrset.from_rdata(name, NS_TTL, cls(IN, rdtype, address))

    def answer(self, response: dns.message.Message, qname: dns.name.Name,
               qtype: dns.rdatatype.RdataType, at: float) -> Validity:
        """Fill ``response`` (sections, rcode, AA) for ``qname``/``qtype`` as served at ``at``.

        Names outside every zone get REFUSED without AA. HostedZone transfers are REFUSED.

        Returns:
            What the answer depended on (see :class:`Validity`).
        """
        zone = None if qname in self.hosts else self.state.zone_for(qname.to_text(True))
        if zone is None:
            self._answer_host(response, qname, qtype)
            return Validity(self.state.epoch, at)
        response.flags |= dns.flags.AA
        if qtype in (dns.rdatatype.AXFR, dns.rdatatype.IXFR):
            response.flags &= ~dns.flags.AA
            response.set_rcode(dns.rcode.REFUSED)
            return Validity(self.state.epoch, at)
        trace = _Trace()
        with self.state.lock:
            self._answer_in_zone(response, zone, qname, qtype, at, trace)
            index = zone.index
            seen = tuple((key, index.seen(key, at)) for key in sorted(trace.keys))
            soa = b"" if trace.soa is None else trace.soa[0].to_digestable()
            return Validity(self.state.epoch, at, zone, seen, soa, trace.serial)

    def _exists(self, zone: HostedZone, name: str, at: float, trace: _Trace) -> bool:
        trace.keys.add(name)
        return zone.index.exists_at(name, at)

    def _answer_host(self, response: dns.message.Message, qname: dns.name.Name,
                     qtype: dns.rdatatype.RdataType) -> None:
        """A nameserver's own address (NODATA for other types), or REFUSED for unknown names."""
        rrset = self.hosts.get(qname)
        if rrset is None:
            response.set_rcode(dns.rcode.REFUSED)
            return
        response.flags |= dns.flags.AA
        if qtype in (rrset.rdtype, dns.rdatatype.ANY):
            response.answer.append(rrset)

    def _answer_in_zone(self, response: dns.message.Message, zone: HostedZone, qname: dns.name.Name,
                        qtype: dns.rdatatype.RdataType, at: float, trace: _Trace) -> None:
        name, seen = qname, {qname}
        for _ in range(MAX_CNAME_HOPS):
            rrsets = self._lookup(zone, name, at, trace)
            if rrsets is None:
                response.set_rcode(dns.rcode.NXDOMAIN)
                response.authority.append(self._negative_soa(zone, at, trace))
                return
            if qtype == dns.rdatatype.ANY and rrsets:
                response.answer.extend(rrsets.values())
                return
            if qtype in rrsets:
                response.answer.append(rrsets[qtype])
                if qtype == dns.rdatatype.NS:
                    response.additional.extend(self._glue(rrsets[qtype]))
                return
            cname = rrsets.get(dns.rdatatype.CNAME)
            if cname is None:
                response.authority.append(self._negative_soa(zone, at, trace))  # NODATA
                return
            response.answer.append(cname)
            name = cname[0].target
            if name in seen or self.state.zone_for(name.to_text(omit_final_dot=True)) is not zone:
                return  # loop, or the target is another zone's business
            seen.add(name)

    def _lookup(self, zone: HostedZone, name: dns.name.Name, at: float,
                trace: _Trace) -> dict[int, dns.rrset.RRset] | None:
        """RRsets at ``name`` (apex SOA/NS included, wildcards applied); None for NXDOMAIN."""
        text = name.to_text(omit_final_dot=True).lower()
        trace.keys.add(text)
        rrsets = _rrsets(name, self.state.rrsets_at(zone, text, at))
        if text == zone.name:
            trace.keys.add(ZONE_CHANGES)  # the SOA's serial
            rrsets[dns.rdatatype.SOA] = self._soa(zone, at, zone.soa_ttl)
            rrsets[dns.rdatatype.NS] = self._ns(zone)
        if rrsets or self._exists(zone, text, at, trace):
            return rrsets
        return self._wildcard(zone, name, at, trace)

    def _wildcard(self, zone: HostedZone, name: dns.name.Name, at: float,
                  trace: _Trace) -> dict[int, dns.rrset.RRset] | None:
        """RFC 4592 §3.3.1: the wildcard child of the closest encloser, renamed to ``name``."""
        trace.keys.add(WILDCARDS)
        if not zone.index.wildcards_at(at):
            return None
        apex = _name(zone.name)
        encloser = name.parent()
        while encloser != apex and not self._exists(
            zone, encloser.to_text(omit_final_dot=True).lower(), at, trace
        ):
            encloser = encloser.parent()
        source = _WILDCARD.concatenate(encloser).to_text(omit_final_dot=True).lower()
        trace.keys.add(source)
        versions = self.state.rrsets_at(zone, source, at)
        return _rrsets(name, versions) if versions else None

    def _soa(self, zone: HostedZone, at: float, ttl: int) -> dns.rrset.RRset:
        """The zone's SOA as served at ``at`` (built once per serial and TTL)."""
        serial = self.state.serial_at(zone, at)
        key = (zone.name, serial, ttl)
        rrset = self._soas.get(key)
        if rrset is None:
            if len(self._soas) >= MAX_SOAS:
                self._soas.clear()
            apex = _name(zone.name)
            mname = _name(zone.nameservers[0]) if zone.nameservers else apex
            soa = dns.rdtypes.ANY.SOA.SOA(  # type: ignore[no-untyped-call]  # untyped upstream
                IN, dns.rdatatype.SOA, mname, _HOSTMASTER.concatenate(apex), serial,
                SOA_REFRESH, SOA_RETRY, SOA_EXPIRE, zone.soa_minimum,
            )
            # Pre-rendered (uncompressed, RFC 1035 §4.1.4 makes compression optional): nearly every
            # negative answer carries this RDATA, and compressing its two names dominated them.
            wire = soa.to_wire()
            assert wire is not None  # None only when writing to a file
            rendered = dns.rdata.GenericRdata(IN, dns.rdatatype.SOA, wire)
            rrset = self._soas[key] = dns.rrset.from_rdata(apex, ttl, rendered)
        return rrset

    def _negative_soa(self, zone: HostedZone, at: float, trace: _Trace) -> dns.rrset.RRset:
        """The SOA for a negative answer, TTL min(SOA TTL, MINIMUM) (RFC 2308 §3)."""
        trace.soa = self._soa(zone, at, zone.negative_ttl)
        trace.serial = self.state.serial_at(zone, at)
        return trace.soa

    @staticmethod
    def _ns(zone: HostedZone) -> dns.rrset.RRset:
        return _ns_rrset(zone.name, zone.nameservers)

    def _glue(self, ns: dns.rrset.RRset) -> list[dns.rrset.RRset]:
        return [self.hosts[rd.target] for rd in ns if rd.target in self.hosts]

"""Authoritative answers from the sandbox state, as one nameserver sees it at its own point in time.

:class:`ZoneAnswerer` fills a dnspython response for one question (RFC 1034 §4.3.2, without
delegations): records from :meth:`SandboxState.rrsets_at`, SOA and NS synthesized at each apex,
CNAMEs followed inside their zone only, wildcards per RFC 4592, and negative answers carrying the
SOA with TTL min(SOA TTL, MINIMUM) (RFC 2308 §3). TXT values longer than 255 bytes become several
character-strings (RFC 1035 §3.3.14).

Time is the caller's: a server with lag ``L`` asks with ``at = state.server_time(L)``.
"""

from __future__ import annotations

import bisect
import functools
import logging
from collections.abc import Iterable, Mapping

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

from cname_flow.sandbox.state import RecordVersion, SandboxState, Zone

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
        self._index_version: tuple[int, int] | None = None
        self._existing: frozenset[str] = frozenset()
        self._has_wildcards = False
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
               qtype: dns.rdatatype.RdataType, at: float) -> None:
        """Fill ``response`` (sections, rcode, AA) for ``qname``/``qtype`` as served at ``at``.

        Names outside every zone get REFUSED without AA. Zone transfers are REFUSED.
        """
        zone = None if qname in self.hosts else self.state.zone_for(qname.to_text(True))
        if zone is None:
            self._answer_host(response, qname, qtype)
            return
        response.flags |= dns.flags.AA
        if qtype in (dns.rdatatype.AXFR, dns.rdatatype.IXFR):
            response.flags &= ~dns.flags.AA
            response.set_rcode(dns.rcode.REFUSED)
            return
        with self.state.lock:
            self._refresh_index(at)
            self._answer_in_zone(response, zone, qname, qtype, at)

    def version(self, at: float) -> tuple[int, int]:
        """A key that changes whenever the data served at ``at`` may have changed.

        ``(state.mutations, changes visible at at)``: a mutation changes the first part at once;
        a lagging server's view changes when ``at`` passes a change time, the second part.
        """
        with self.state.lock:
            visible = sum(
                bisect.bisect_right(zone.change_times, at) for zone in self.state.zones.values()
            )
            return self.state.mutations, visible

    def _refresh_index(self, at: float) -> None:
        """Rebuild the set of existing names (owners and their ancestors) when the data changed.

        Same answers as :meth:`SandboxState.name_exists_at` (empty non-terminals exist, RFC 8020),
        but one set lookup per question instead of a scan of the zone.
        """
        version = self.version(at)
        if version == self._index_version:
            return
        names: set[str] = set()
        for zone in self.state.zones.values():
            for owner, versions in zone.versions.items():
                if owner in names or not any(v.visible_at(at) for v in versions):
                    continue
                name = owner
                while name not in names and name != zone.name and "." in name:
                    names.add(name)
                    name = name.split(".", 1)[1]
        self._existing, self._index_version = frozenset(names), version
        self._has_wildcards = any(name.startswith("*.") for name in names)
        self._soas.clear()

    def _exists(self, zone: Zone, name: str) -> bool:
        return name == zone.name or name in self._existing

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

    def _answer_in_zone(self, response: dns.message.Message, zone: Zone,
                        qname: dns.name.Name, qtype: dns.rdatatype.RdataType, at: float) -> None:
        name, seen = qname, {qname}
        for _ in range(MAX_CNAME_HOPS):
            rrsets = self._lookup(zone, name, at)
            if rrsets is None:
                response.set_rcode(dns.rcode.NXDOMAIN)
                response.authority.append(self._negative_soa(zone, at))
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
                response.authority.append(self._negative_soa(zone, at))  # NODATA
                return
            response.answer.append(cname)
            name = cname[0].target
            if name in seen or self.state.zone_for(name.to_text(omit_final_dot=True)) is not zone:
                return  # loop, or the target is another zone's business
            seen.add(name)

    def _lookup(self, zone: Zone, name: dns.name.Name,
                at: float) -> dict[int, dns.rrset.RRset] | None:
        """RRsets at ``name`` (apex SOA/NS included, wildcards applied); None for NXDOMAIN."""
        text = name.to_text(omit_final_dot=True)
        rrsets = _rrsets(name, self.state.rrsets_at(zone, text, at))
        if text == zone.name:
            rrsets[dns.rdatatype.SOA] = self._soa(zone, at, zone.soa_ttl)
            rrsets[dns.rdatatype.NS] = self._ns(zone)
        if rrsets or self._exists(zone, text):
            return rrsets
        return self._wildcard(zone, name, at)

    def _wildcard(self, zone: Zone, name: dns.name.Name,
                  at: float) -> dict[int, dns.rrset.RRset] | None:
        """RFC 4592 §3.3.1: the wildcard child of the closest encloser, renamed to ``name``."""
        if not self._has_wildcards:
            return None
        apex = _name(zone.name)
        encloser = name.parent()
        while encloser != apex and not self._exists(zone, encloser.to_text(omit_final_dot=True)):
            encloser = encloser.parent()
        source = _WILDCARD.concatenate(encloser)
        versions = self.state.rrsets_at(zone, source.to_text(omit_final_dot=True), at)
        return _rrsets(name, versions) if versions else None

    def _soa(self, zone: Zone, at: float, ttl: int) -> dns.rrset.RRset:
        """The zone's SOA as served at ``at`` (built once per data version and TTL)."""
        serial = self.state.serial_at(zone, at)
        key = (zone.name, serial, ttl)
        rrset = self._soas.get(key)
        if rrset is None:
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

    def _negative_soa(self, zone: Zone, at: float) -> dns.rrset.RRset:
        """The SOA for a negative answer, TTL min(SOA TTL, MINIMUM) (RFC 2308 §3)."""
        return self._soa(zone, at, zone.negative_ttl)

    @staticmethod
    def _ns(zone: Zone) -> dns.rrset.RRset:
        return _ns_rrset(zone.name, zone.nameservers)

    def _glue(self, ns: dns.rrset.RRset) -> list[dns.rrset.RRset]:
        return [self.hosts[rd.target] for rd in ns if rd.target in self.hosts]

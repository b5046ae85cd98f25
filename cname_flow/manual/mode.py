"""Whether a binding is manual, and the zone its record goes in.

A binding is manual when its domain lies in a zone ``dns.zones`` maps to ``manual``, when
``bind --dns manual`` asked for it, or when its record in the store says so (``dns_mode``): a
binding started with ``--dns manual`` stays manual when ``reconcile`` continues it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING

from cname_flow.dns.base import Zone
from cname_flow.errors import InputError
from cname_flow.journal import BindingRecord
from cname_flow.manual.cadence import Cadence

if TYPE_CHECKING:
    from cname_flow.config import Settings

#: The ``Zone.zone_id`` of a zone no provider holds.
MANUAL_ZONE_ID = "manual"


@dataclass(frozen=True, slots=True)
class ManualMode:
    """How one binding is treated in manual mode.

    Attributes:
        active: the binding is manual by configuration or flag (a record marked manual in the
            store makes it manual too: :func:`effective`).
        zone: its zone apex from ``dns.zones``, or None (then taken from the store, or found
            through DNS).
        cadence: the check schedule and the token renewal window.
        patience_s: how long this run keeps checking before it leaves the binding waiting in
            the store (a one-shot ``bind``: ``manual.bind_wait_s``; ``reconcile``: 0, one check
            if one is due).
        nameserver_hosts: NS host names to start the authoritative-server discovery from (the
            lab's ``propagation.nameserver_addresses``); empty: the zone's NS set is looked up.
        lab_addresses: ``(ip, port)`` of those hosts: a zone not configured is found by asking
            them for the domain's SOA (RD=0) instead of the system resolver.
    """

    active: bool = False
    zone: str | None = None
    cadence: Cadence = field(default_factory=Cadence)
    patience_s: float = 0.0
    nameserver_hosts: tuple[str, ...] = ()
    lab_addresses: tuple[tuple[str, int], ...] = ()

    def zone_of(self, domain: str) -> Zone:
        """The zone ``domain``'s record goes in, with its NS host names.

        Raises:
            InputError: no zone is configured and none could be found through DNS.
        """
        name = self.zone or _find_zone(domain, self.lab_addresses)
        hosts = self.nameserver_hosts or _ns_hosts(name)
        return Zone(name=name, zone_id=MANUAL_ZONE_ID, nameservers=hosts, min_ttl=60)


def effective(mode: ManualMode | None, record: BindingRecord | None) -> ManualMode | None:
    """The binding's manual mode: ``mode`` when active, else one read from its record (which
    was marked manual by an earlier run), else None (not manual)."""
    if mode is not None and mode.active:
        if mode.zone is None and record is not None:
            zone = record.get("manual_zone")
            return replace(mode, zone=zone) if isinstance(zone, str) else mode
        return mode
    if record is None or record.get("dns_mode") != "manual":
        return None
    zone = record.get("manual_zone")
    base = mode or ManualMode()
    return replace(base, active=True, zone=zone if isinstance(zone, str) else base.zone)


def manual_zone(zones: dict[str, str], domain: str, manual_id: str) -> str | None:
    """The longest zone of ``zones`` (``dns.zones``) holding ``domain`` whose provider is
    ``manual_id``, or None."""
    name = domain.rstrip(".").lower()
    hits = [z for z, p in zones.items() if p == manual_id and (name == z or
                                                               name.endswith("." + z))]
    return max(hits, key=len) if hits else None


def _find_zone(domain: str, lab: Sequence[tuple[str, int]] = ()) -> str:
    """The zone apex of ``domain`` from the DNS: with ``lab`` addresses, the SOA that their
    authoritative answer to ``domain`` SOA carries (RFC 2308 §3: a negative answer holds the
    zone's SOA in its authority section; RD=0); else dnspython's ``zone_for_name`` (SOA
    queries of the domain and its parents through the system resolver). The ``_dnsauth`` name
    itself is never asked, so no resolver caches a negative answer for it.

    Raises:
        InputError: the zone could not be found.
    """
    import dns.exception
    import dns.resolver

    try:
        for ip, port in lab:
            found = _soa_owner(domain, ip, port)
            if found:
                return found
        return str(dns.resolver.zone_for_name(domain)).rstrip(".").lower()
    except dns.exception.DNSException as exc:
        raise InputError(
            f"cannot find the DNS zone of {domain}: {exc}",
            hint=f"list it in the config: dns: {{zones: {{<zone of {domain}>: manual}}}}",
        ) from None


def _soa_owner(domain: str, ip: str, port: int) -> str | None:
    """The owner of the SOA in an authoritative answer to ``domain`` SOA from ``ip``:``port``."""
    import dns.flags
    import dns.message
    import dns.query
    import dns.rdatatype

    query = dns.message.make_query(domain, dns.rdatatype.SOA)
    query.flags &= ~dns.flags.RD
    response = dns.query.udp(query, ip, port=port, timeout=3.0)
    if not response.flags & dns.flags.AA:
        return None
    for rrset in (*response.answer, *response.authority):
        if rrset.rdtype == dns.rdatatype.SOA:
            return str(rrset.name).rstrip(".").lower()
    return None


def _ns_hosts(zone: str) -> tuple[str, ...]:
    """The zone's NS host names from the DNS (the system resolver); the propagation check then
    asks those servers themselves for the apex NS set (RD=0).

    Raises:
        InputError: the NS set could not be read.
    """
    import dns.exception
    import dns.resolver

    try:
        answer = dns.resolver.resolve(zone, "NS")
    except dns.exception.DNSException as exc:
        raise InputError(f"cannot read the NS records of zone {zone}: {exc}",
                         hint="check the zone's delegation") from None
    return tuple(sorted(str(r.target).rstrip(".").lower() for r in answer))


def mode_for(settings: Settings, domain: str, *, forced: bool = False,
             patience_s: float = 0.0) -> ManualMode:
    """The manual mode of ``domain`` under ``settings``: active when ``dns.zones`` puts it in a
    manual zone (:func:`cname_flow.dns.provider_for`) or ``forced`` (``bind --dns manual``).

    Args:
        settings: loaded settings (``dns.zones``, ``manual``, ``propagation``).
        domain: the custom domain.
        forced: ``--dns manual`` was given.
        patience_s: how long this run keeps checking (see :class:`ManualMode`).
    """
    from cname_flow.dns import MANUAL, provider_for
    from cname_flow.propagation.model import parse_address

    active = forced or provider_for(settings, domain) == MANUAL
    lab = settings.propagation.nameserver_addresses
    return ManualMode(
        active=active, zone=manual_zone(dict(settings.dns.zones), domain, MANUAL),
        cadence=Cadence.from_settings(settings.manual), patience_s=patience_s,
        nameserver_hosts=tuple(sorted(lab)),
        lab_addresses=tuple(parse_address(a, 53) for host in sorted(lab) for a in lab[host]))

"""One :class:`~cname_flow.dns.base.DnsProvider` over several: each call goes to the provider
``dns.zones`` names for the zone the call's name lies in.

Routing is by name, the rule :func:`cname_flow.dns.provider_for` applies: the longest
configured zone the name lies in (at a label boundary) picks the provider, else the default
(``dns.provider``). Every call carries a name to route by: ``find_zone(name)``,
``list_records(zone, name, …)``, ``upsert(zone, name, …)``, and a
:class:`~cname_flow.dns.base.RecordRef` its owner name (``ref.fqdn``, from ``ref.zone`` and
``ref.rr``) for ``claim`` and ``delete_record``. So a record id read back from the journal in a
later run reaches the provider that wrote it, with no state kept between runs.

A :class:`~cname_flow.dns.base.Zone` is remembered with the provider that found it; a later
call naming that zone whose name routes to another provider is refused (an ``InputError``),
never sent to a provider that does not host the zone.

``manual`` zones have no provider: :meth:`ZoneRouter.find_zone` raises
:class:`~cname_flow.manual.errors.ManualZone` for a name in one (the manual mode asks none).
"""

from __future__ import annotations

import threading
from collections.abc import Mapping, Sequence

from cname_flow.dns.base import DnsProvider, RecordRef, Zone, canonical_name, in_zone
from cname_flow.errors import InputError
from cname_flow.manual.errors import ManualZone

#: The provider id of zones whose TXT record a person adds (as :data:`cname_flow.dns.MANUAL`).
MANUAL = "manual"


class ZoneRouter:
    """A :class:`DnsProvider` that sends each call to the provider of its name's zone.

    Args:
        zones: ``{zone: provider id}`` (``dns.zones``); names any case, trailing dot allowed.
        providers: a built provider for every id ``zones`` and ``default`` use, except
            :data:`MANUAL`.
        default: the provider id of names in no listed zone (``dns.provider``).

    Raises:
        InputError: an id of ``zones`` or ``default`` has no provider (and is not manual).

    Safe to share between threads when the providers are.
    """

    id = "router"

    def __init__(self, zones: Mapping[str, str], providers: Mapping[str, DnsProvider],
                 default: str) -> None:
        self._zones = {canonical_name(z): p for z, p in zones.items()}
        self._providers = dict(providers)
        self._default = default
        missing = sorted({default, *self._zones.values()} - {MANUAL} - set(self._providers))
        if missing:
            raise InputError(f"no DNS provider built for {', '.join(missing)}")
        self._lock = threading.Lock()
        self._found: dict[Zone, str] = {}

    def __repr__(self) -> str:
        return f"ZoneRouter(default={self._default!r}, zones={self._zones!r})"

    # ----------------------------------------------------------------- routing
    def route(self, name: str) -> tuple[str, str]:
        """(provider id, the ``zones`` entry that chose it or ``""`` for the default) of
        ``name``.

        Raises:
            InputError: ``name`` is not a valid name.
        """
        fqdn = canonical_name(name)
        matches = [z for z in self._zones if in_zone(fqdn, z)]
        zone = max(matches, key=len, default="")
        return (self._zones[zone] if zone else self._default), zone

    def provider_for(self, name: str) -> DnsProvider:
        """The provider that holds ``name``.

        Raises:
            ManualZone: ``name`` lies in a manual zone.
        """
        provider_id, zone = self.route(name)
        if provider_id == MANUAL:
            raise ManualZone(canonical_name(name), zone)
        return self._providers[provider_id]

    def _for_zone(self, zone: Zone, name: str) -> DnsProvider:
        """The provider of ``name``, which must be the one that found ``zone`` (if known)."""
        provider_id, _ = self.route(name)
        with self._lock:
            found_by = self._found.get(zone)
        if found_by is not None and found_by != provider_id:
            raise InputError(f"{canonical_name(name)} routes to the {provider_id} provider, "
                             f"but zone {zone.name} was found at {found_by}")
        return self.provider_for(name)

    # ----------------------------------------------------------------- the port
    def find_zone(self, name: str) -> Zone:
        """The zone holding ``name`` at the provider its name routes to.

        Raises:
            ManualZone: ``name`` lies in a manual zone (no provider is asked).
            ZoneNotFound: that provider hosts no zone containing ``name``.
            DnsProviderError: that provider failed.
        """
        provider_id, _ = self.route(name)
        zone = self.provider_for(name).find_zone(name)
        with self._lock:
            self._found.setdefault(zone, provider_id)
        return zone

    def rr_for(self, zone: Zone, name: str) -> str:
        """``name`` relative to ``zone``, by the provider of ``name``."""
        return self._for_zone(zone, name).rr_for(zone, name)

    def list_records(self, zone: Zone, name: str, rtype: str) -> list[RecordRef]:
        """Records at ``name`` of type ``rtype``, from the provider of ``name``."""
        return self._for_zone(zone, name).list_records(zone, name, rtype)

    def upsert(
        self,
        zone: Zone,
        name: str,
        rtype: str,
        value: str,
        ttl: int,
        *,
        replace: RecordRef | None = None,
        observed: Sequence[RecordRef] | None = None,
    ) -> tuple[RecordRef, bool]:
        """``upsert`` at the provider of ``name`` (see :meth:`BaseDnsProvider.upsert`)."""
        return self._for_zone(zone, name).upsert(zone, name, rtype, value, ttl,
                                                 replace=replace, observed=observed)

    def claim(self, ref: RecordRef) -> RecordRef:
        """``claim`` at the provider of the record's owner name."""
        return self.provider_for(ref.fqdn).claim(ref)

    def delete_record(self, ref: RecordRef) -> None:
        """``delete_record`` at the provider of the record's owner name."""
        self.provider_for(ref.fqdn).delete_record(ref)

"""The DNS provider port and the base class that owns its idempotency rules.

:class:`DnsProvider` is the port the flow codes against. :class:`BaseDnsProvider` implements it
once, observe-then-act (octoDNS ``BaseProvider``, lexicon ``Provider``): it finds zones, turns
names into relative host records, never adds a record that is already there and treats deleting
a missing record as done. A provider adapter only fills in the ``_hooks``, whose contracts are
written in their docstrings.

Names are IDNA A-labels, lowercase, without a trailing dot; TTLs are seconds.
"""

from __future__ import annotations

import threading
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Protocol

import idna

from cname_flow.errors import DnsProviderError, InputError, ZoneNotFound
from cname_flow.logs import get_logger

_log = get_logger(__name__)

#: The remark cname-flow puts on every record it creates, so it only ever touches its own.
OWNER_REMARK = "managed-by:cname-flow"


@dataclass(frozen=True, slots=True)
class Zone:
    """A zone hosted at the provider.

    Attributes:
        name: zone apex, A-label (``"example.com"``).
        zone_id: the provider's id of the zone.
        nameservers: the zone's authoritative nameserver host names.
        min_ttl: the smallest TTL the provider accepts in this zone, seconds.
    """

    name: str
    zone_id: str
    nameservers: tuple[str, ...]
    min_ttl: int


@dataclass(frozen=True, slots=True)
class RecordRef:
    """One record at the provider.

    Attributes:
        record_id: the provider's record id.
        zone: zone apex the record lives in.
        rr: host record relative to the zone (``"@"`` for the apex).
        type: record type, upper case (``"TXT"``).
        value: record data as the provider stores it (TXT without outer quotes).
        ttl: seconds.
        remark: the provider-side note; :data:`OWNER_REMARK` on records cname-flow created.
    """

    record_id: str
    zone: str
    rr: str
    type: str
    value: str
    ttl: int
    remark: str = ""

    @property
    def fqdn(self) -> str:
        """The record's owner name, e.g. ``"_dnsauth.img.example.com"``."""
        return self.zone if self.rr == "@" else f"{self.rr}.{self.zone}"

    @property
    def owned(self) -> bool:
        """True when cname-flow created this record."""
        return self.remark == OWNER_REMARK


class DnsProvider(Protocol):
    """Port: the record operations cname-flow needs from a DNS provider.

    Every method raises :class:`DnsProviderError` (or ``DnsAuthError``/``ZoneNotFound``).
    """

    id: str

    def find_zone(self, name: str) -> Zone:
        """The account's zone that is the longest label-boundary suffix of ``name``."""
        ...

    def rr_for(self, zone: Zone, name: str) -> str:
        """``name`` relative to ``zone``: ``"@"`` for the apex."""
        ...

    def list_records(self, zone: Zone, name: str, rtype: str) -> list[RecordRef]:
        """Records whose owner name is exactly ``name`` and whose type is ``rtype``."""
        ...

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
        """Make ``value`` present at ``name``; returns (record, changed?).

        ``observed``: the ``name``/``rtype`` records the caller has just listed, to act on
        instead of listing them again.
        """
        ...

    def claim(self, ref: RecordRef) -> RecordRef:
        """Mark ``ref`` as cname-flow's (:data:`OWNER_REMARK`); returns it marked."""
        ...

    def delete_record(self, ref: RecordRef) -> None:
        """Delete one record; a record that is already gone counts as deleted."""
        ...


def canonical_name(name: str) -> str:
    """``name`` lowercased, without a trailing dot, U-labels turned into A-labels.

    Underscore labels (``_dnsauth``) pass through unchanged.

    Raises:
        InputError: a label that is not valid IDNA.
    """
    labels = name.strip().rstrip(".").lower().split(".")
    try:
        return ".".join(_a_label(label) for label in labels)
    except idna.IDNAError as exc:
        raise InputError(f"name {name!r}: not a valid IDNA name ({exc})") from exc


def _a_label(label: str) -> str:
    return label if label.isascii() else idna.encode(label, uts46=True).decode("ascii")


def normalize_value(rtype: str, value: str) -> str:
    """The value as the provider stores it: TXT loses one pair of outer quotes (Alidns does
    this), CNAME/NS/MX targets are lowercased without a trailing dot."""
    text = value.strip()
    if rtype == "TXT":
        if len(text) >= 2 and text[0] == text[-1] == '"':
            return text[1:-1]
        return text
    if rtype in {"CNAME", "NS", "MX"}:
        return text.rstrip(".").lower()
    return text


def in_zone(name: str, zone: str) -> bool:
    """True when ``name`` equals ``zone`` or lies under it at a label boundary."""
    return name == zone or name.endswith("." + zone)


class BaseDnsProvider(ABC):
    """Implements :class:`DnsProvider` over six provider hooks; subclasses set :attr:`id`.

    Zone names are listed once and cached (refreshed once when a name matches none); zone
    details are cached per zone, and threads that miss the cache together share one lookup.
    Safe to share between threads.
    """

    id: str = "base"

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._zone_list: tuple[str, ...] | None = None
        self._zones: dict[str, Zone] = {}
        self._lookups: dict[str, threading.Lock] = {}  # one lookup in flight per zone

    # ----------------------------------------------------------------- the port
    def find_zone(self, name: str) -> Zone:
        """The longest zone of the account that is ``name`` or a label-boundary parent of it.

        Never a public-suffix guess: only zones the account hosts count.

        Raises:
            ZoneNotFound: no zone of the account contains ``name``.
            DnsProviderError: the provider failed.
        """
        fqdn = canonical_name(name)
        zone_name = self._match_zone(fqdn, refresh=False) or self._match_zone(fqdn, refresh=True)
        if zone_name is None:
            raise ZoneNotFound(
                f"{self.id}: no zone of this account contains {fqdn}",
                service=self.id,
                code="ZoneNotFound",
                hint=f"host the domain's zone at {self.id} or use credentials of its account",
            )
        return self._zone_details(zone_name)

    def rr_for(self, zone: Zone, name: str) -> str:
        """``name`` relative to ``zone``: ``"@"`` for the apex, else e.g. ``"_dnsauth.img"``.

        Raises:
            InputError: ``name`` is not inside ``zone``.
        """
        fqdn = canonical_name(name)
        if fqdn == zone.name:
            return "@"
        if not in_zone(fqdn, zone.name):
            raise InputError(f"{fqdn} is not inside zone {zone.name}")
        return fqdn[: -len(zone.name) - 1]

    def list_records(self, zone: Zone, name: str, rtype: str) -> list[RecordRef]:
        """Records at exactly ``name`` (case-insensitive) of type ``rtype``.

        Raises:
            DnsProviderError: the provider failed.
        """
        rr, kind = self.rr_for(zone, name), rtype.upper()
        found = self._records(zone, rr, kind)
        return [r for r in found if r.rr.lower() == rr and r.type.upper() == kind]

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
        """Make ``value`` present at ``name``, observing first.

        A record with this value already there → ``(it, False)``. Else, when ``replace`` (a
        record we own) still exists, it is updated in place; otherwise a record is added and
        marked :data:`OWNER_REMARK`. ``ttl`` is raised to ``zone.min_ttl``.

        The observation is :meth:`list_records`, unless the caller passes what it has just
        listed as ``observed`` (the records at ``name`` of type ``rtype``), which saves one
        listing call; a record added since is still caught by the provider's duplicate check.

        Returns:
            (the record holding ``value``, whether anything changed).

        Raises:
            DnsProviderError: the provider failed.
        """
        kind = rtype.upper()
        want = normalize_value(kind, value)
        ttl = max(ttl, zone.min_ttl)
        existing = list(observed) if observed is not None else self.list_records(zone, name, kind)
        present = _with_value(existing, want)
        if present is not None:
            _log.debug("dns.record.present", provider=self.id, name=present.fqdn, type=kind)
            return present, False
        if replace is not None and any(r.record_id == replace.record_id for r in existing):
            updated = self._replace(replace, want, ttl)
            if updated is not None:
                return updated, True
        return self._add(zone, self.rr_for(zone, name), kind, want, ttl)

    def claim(self, ref: RecordRef) -> RecordRef:
        """Mark ``ref`` as ours by setting :data:`OWNER_REMARK` (one remark call, none when it
        already carries it).

        For a record the caller has proved is its own although unmarked: one that cname-flow
        added just before a crash, or whose add answer was lost (the add ran, the answer never
        arrived), so the remark never followed. The caller decides what proves ownership; this
        only writes the mark.

        Returns:
            ``ref`` with ``remark`` :data:`OWNER_REMARK`.

        Raises:
            DnsProviderError: the provider failed (the record is unchanged, or marked anyway).
        """
        if ref.owned:
            return ref
        self._set_remark(ref.record_id, OWNER_REMARK)
        _log.info("dns.record.claimed", provider=self.id, name=ref.fqdn, type=ref.type,
                  record_id=ref.record_id)
        return replace(ref, remark=OWNER_REMARK)

    def delete_record(self, ref: RecordRef) -> None:
        """Delete ``ref``; a record that is already gone counts as deleted.

        Raises:
            DnsProviderError: the provider failed.
        """
        if self._delete(ref.record_id):
            _log.info("dns.record.deleted", provider=self.id, name=ref.fqdn, type=ref.type)
        else:
            _log.debug("dns.record.absent", provider=self.id, name=ref.fqdn, type=ref.type)

    # ------------------------------------------------------------ shared logic
    def _match_zone(self, fqdn: str, *, refresh: bool) -> str | None:
        with self._lock:
            if refresh or self._zone_list is None:
                self._zone_list = tuple(canonical_name(z) for z in self._zone_names())
            candidates = [z for z in self._zone_list if in_zone(fqdn, z)]
        return max(candidates, key=len, default=None)

    def _zone_details(self, zone_name: str) -> Zone:
        """The cached details of ``zone_name``; threads asking at once share one lookup."""
        with self._lock:
            cached = self._zones.get(zone_name)
            if cached is not None:
                return cached
            flight = self._lookups.setdefault(zone_name, threading.Lock())
        with flight:
            with self._lock:
                cached = self._zones.get(zone_name)
            if cached is None:
                cached = self._zone(zone_name)
                with self._lock:
                    self._zones[zone_name] = cached
        return cached

    def _replace(self, old: RecordRef, value: str, ttl: int) -> RecordRef | None:
        if not self._update(old, value, ttl):
            return None
        _log.info("dns.record.updated", provider=self.id, name=old.fqdn, type=old.type)
        return RecordRef(old.record_id, old.zone, old.rr, old.type, value, ttl, old.remark)

    def _add(self, zone: Zone, rr: str, kind: str, value: str, ttl: int) -> tuple[RecordRef, bool]:
        record_id = self._create(zone, rr, kind, value, ttl)
        if record_id is None:  # an identical record appeared since we looked
            found = _with_value(self._records(zone, rr, kind), value)
            if found is None:
                raise DnsProviderError(
                    f"{self.id}: record {rr} {kind} reported as duplicate but not found",
                    service=self.id,
                    code="DuplicateRecordNotFound",
                    retryable=True,
                )
            return found, False
        self._mark_owned(record_id)
        ref = RecordRef(record_id, zone.name, rr, kind, value, ttl, OWNER_REMARK)
        _log.info("dns.record.created", provider=self.id, name=ref.fqdn, type=kind, ttl=ttl)
        return ref, True

    def _mark_owned(self, record_id: str) -> None:
        """Set :data:`OWNER_REMARK`; if that fails, take the new record back (best effort) so a
        replay adds an owned record instead of finding an unmarked one (a TXT record holding our
        token would be claimed, :meth:`claim`; a routing CNAME could not be told from the
        customer's own)."""
        try:
            self._set_remark(record_id, OWNER_REMARK)
        except DnsProviderError:
            try:
                self._delete(record_id)
            except DnsProviderError:
                _log.warning("dns.record.unmarked", provider=self.id, record_id=record_id)
            raise

    # --------------------------------------------------------------- the hooks
    @abstractmethod
    def _zone_names(self) -> list[str]:
        """Every zone the account hosts, as names (A-labels preferred).

        Contract: list all pages; raise :class:`DnsProviderError` on failure, never return a
        partial list.
        """

    @abstractmethod
    def _zone(self, zone_name: str) -> Zone:
        """Details of one zone the account hosts: id, nameservers, TTL floor.

        Contract: ``zone_name`` came from :meth:`_zone_names`; raise :class:`ZoneNotFound` if
        it vanished.
        """

    @abstractmethod
    def _records(self, zone: Zone, rr: str, rtype: str) -> list[RecordRef]:
        """Records of type ``rtype`` at host record ``rr`` in ``zone`` (all pages).

        Contract: may return extra records (the base filters by exact rr and type); TXT values
        as stored (no outer quotes); ``rr`` compared case-insensitively.
        """

    @abstractmethod
    def _create(self, zone: Zone, rr: str, rtype: str, value: str, ttl: int) -> str | None:
        """Add one record; return its id, or ``None`` when an identical record already exists.

        Contract: ``ttl`` is already at least ``zone.min_ttl``; do not retry a duplicate.
        """

    @abstractmethod
    def _update(self, ref: RecordRef, value: str, ttl: int) -> bool:
        """Change ``ref`` in place to ``value``/``ttl``; ``False`` when the record is gone.

        Contract: an update to identical values is a success, not an error.
        """

    @abstractmethod
    def _set_remark(self, record_id: str, remark: str) -> None:
        """Set the provider-side note of one record (ownership marker)."""

    @abstractmethod
    def _delete(self, record_id: str) -> bool:
        """Delete one record; ``False`` when it was already gone (never an error)."""


def _with_value(records: list[RecordRef], value: str) -> RecordRef | None:
    for record in records:
        if normalize_value(record.type, record.value) == value:
            return record
    return None

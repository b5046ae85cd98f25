"""Record ids and ownership markers of the RFC 2136 provider (:mod:`cname_flow.dns.rfc2136`),
and the rdata it reads and writes; pure, no I/O.

A record cname-flow writes gets a companion TXT record at ``_cname-flow.<name>``
(:func:`marker_name`), one string set per owned record: ``"managed-by:cname-flow" "type=<TYPE>"
"id=<key>" "value=<digest>"``, where ``digest`` is the first 32 hex digits of the SHA-256 of
the record's value. A record id (:class:`RecordKey`) reads ``<zone>|<rr>|<TYPE>|<key>``.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

import dns.name
import dns.rdata
import dns.rdataclass
import dns.rdatatype
import dns.rdtypes.ANY.CNAME
import dns.rdtypes.ANY.TXT

from cname_flow.dns.base import OWNER_REMARK
from cname_flow.errors import InputError

#: The label under which a record's ownership marker lives.
MARKER_LABEL = "_cname-flow"
_IN = dns.rdataclass.IN


@dataclass(frozen=True, slots=True)
class RecordKey:
    """A record id's parts: ``<zone>|<rr>|<TYPE>|<key>``."""

    zone: str
    rr: str
    type: str
    key: str

    @property
    def fqdn(self) -> str:
        return self.zone if self.rr == "@" else f"{self.rr}.{self.zone}"

    def text(self) -> str:
        return f"{self.zone}|{self.rr}|{self.type}|{self.key}"

    @classmethod
    def parse(cls, record_id: str) -> RecordKey:
        parts = record_id.split("|")
        if len(parts) != 4 or not all(parts):
            raise InputError(f"{record_id!r} is not an rfc2136 record id "
                             "(<zone>|<rr>|<TYPE>|<key>)")
        return cls(*parts)


@dataclass
class Observed:
    """One name and type at the primary: the values (→ TTL) and the markers (type, digest) →
    marker keys."""

    values: dict[str, int] = field(default_factory=dict)
    markers: dict[tuple[str, str], list[str]] = field(default_factory=dict)

    def key_of(self, rtype: str, value: str) -> str:
        keys = self.markers.get((rtype, digest(value)))
        return min(keys) if keys else "v" + digest(value)[:16]


def digest(value: str) -> str:
    """The first 32 hex digits of the SHA-256 of ``value``: what a marker names."""
    return hashlib.sha256(value.encode()).hexdigest()[:32]


def marker_name(fqdn: str) -> str:
    """Where the markers of the records at ``fqdn`` live."""
    return f"{MARKER_LABEL}.{fqdn}"


def absolute(name: str) -> dns.name.Name:
    return dns.name.from_text(name.rstrip(".") + ".")


def rdata_of(rtype: str, value: str) -> dns.rdata.Rdata:
    if rtype == "CNAME":
        return dns.rdata.from_text(_IN, dns.rdatatype.CNAME, absolute(value).to_text())
    raw = value.encode()
    chunks = [raw[i:i + 255] for i in range(0, len(raw), 255)] or [b""]
    return dns.rdtypes.ANY.TXT.TXT(_IN, dns.rdatatype.TXT, chunks)


def text_of(rd: dns.rdata.Rdata) -> str:
    if isinstance(rd, dns.rdtypes.ANY.CNAME.CNAME):
        return rd.target.to_text(omit_final_dot=True).lower()
    if isinstance(rd, dns.rdtypes.ANY.TXT.TXT):
        return b"".join(rd.strings).decode(errors="replace")
    return rd.to_text()


def marker(rtype: str, key: str, value: str) -> dns.rdata.Rdata:
    return marker_of_digest(rtype, key, digest(value))


def marker_of_digest(rtype: str, key: str, value_digest: str) -> dns.rdata.Rdata:
    strings = [OWNER_REMARK, f"type={rtype}", f"id={key}", f"value={value_digest}"]
    return dns.rdtypes.ANY.TXT.TXT(_IN, dns.rdatatype.TXT, [s.encode() for s in strings])


def parse_marker(rd: dns.rdata.Rdata) -> tuple[str, str, str] | None:
    """(type, value digest, key) of a marker, ``None`` for any other TXT string set."""
    if not isinstance(rd, dns.rdtypes.ANY.TXT.TXT):
        return None
    strings = [s.decode(errors="replace") for s in rd.strings]
    if len(strings) != 4 or strings[0] != OWNER_REMARK:
        return None
    fields = dict(s.partition("=")[::2] for s in strings[1:])
    rtype, key, value_digest = fields.get("type"), fields.get("id"), fields.get("value")
    if not rtype or not key or not value_digest:
        return None
    return rtype, value_digest, key


def value_of(seen: Observed, rid: RecordKey) -> str | None:
    """The current value of the record ``rid`` names, ``None`` when it is gone."""
    for value in seen.values:
        if seen.key_of(rid.type, value) == rid.key:
            return value
    for value in seen.values:  # an owned record asked for by a key one of its markers has
        if rid.key in seen.markers.get((rid.type, digest(value)), []):
            return value
    return None

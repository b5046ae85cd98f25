"""RFC 2136 dynamic updates signed with TSIG (RFC 8945) behind the :class:`DnsProvider` port.

Works with any primary that accepts signed updates: BIND 9, Knot, PowerDNS (``dnsupdate=yes``),
Technitium. dnspython builds and signs every message (``dns.update``, ``dns.tsigkeyring``,
``dns.query``); reads go to the same primary (UDP, TCP when truncated, RD off), so a write is
read back at once, before any secondary has it. Updates go over TCP.

**Zones.** DNS has no "list my zones": :meth:`Rfc2136.find_zone` asks the primary for the SOA of
the name and of each parent in turn; the first name the primary answers for authoritatively
with its own SOA is the zone (certbot-dns-rfc2136 does the same). A referral (the name is
delegated elsewhere) or no answer at any level is :class:`~cname_flow.errors.ZoneNotFound`.
The nameservers are the apex NS set; the TTL floor is the ``min_ttl`` setting (RFC 2136 has
none).

**Ownership.** RFC 2136 records carry no remark, so each record cname-flow writes gets a
companion TXT record one label below it, at ``_cname-flow.<name>`` (external-dns's "TXT
registry" does the same), in the same UPDATE message, which a server applies atomically
(RFC 2136 §3.7): a record and its marker exist together or not at all. One marker string set
per owned record::

    _cname-flow._dnsauth.img.example.com. 600 IN TXT "managed-by:cname-flow" "type=TXT"
        "id=r1a2b3c4d5e6" "value=<first 32 hex of SHA-256 of the value>"

A record is owned when a marker of its type names the digest of its value. Record ids read
``<zone>|<rr>|<TYPE>|<key>``: ``key`` is the marker's ``id`` for an owned record (random, fixed
at creation, kept across an in-place update), else ``v`` + the value's digest, stable while the
value is. Only the exact RR is ever deleted (delete-RR-with-rdata, RFC 2136 §2.5.4): other
values at the name, ours or not, stay. Prerequisites (§2.4) stop the server from silently
ignoring an add: a TXT requires "no CNAME at the name", a new CNAME "name not in use"; an
in-place CNAME change or a CNAME delete requires "the CNAME is still the one we read", a TXT
delete "a TXT RRset is there" (NXRRSET: it went meanwhile, which counts as deleted). The
update policy must allow TXT at the ``_cname-flow`` names too (``zonesub TXT CNAME`` does).

**Secrets.** The TSIG secret lives only in the keyring given to dnspython; no message, log line
or record id holds it, and errors are scrubbed of it besides.
"""

from __future__ import annotations

import secrets
import socket
import time
from collections.abc import Callable

import dns.flags
import dns.message
import dns.name
import dns.query
import dns.rcode
import dns.rdata
import dns.rdataclass
import dns.rdatatype
import dns.rdtypes.ANY.CNAME
import dns.rdtypes.ANY.TXT
import dns.rrset
import dns.tsig
import dns.tsigkeyring
import dns.update

from cname_flow.dns.base import OWNER_REMARK, BaseDnsProvider, RecordRef, Zone, canonical_name
from cname_flow.dns.rfc2136_errors import RFC2136_ERRORS, RcodeError, map_rfc2136_error
from cname_flow.dns.rfc2136_records import (
    Observed,
    RecordKey,
    absolute,
    digest,
    marker,
    marker_name,
    marker_of_digest,
    parse_marker,
    rdata_of,
    text_of,
    value_of,
)
from cname_flow.errors import DnsProviderError, InputError, ZoneNotFound
from cname_flow.retry import RetriedCalls, RetryPolicy

#: The record types this provider writes.
SUPPORTED_TYPES = frozenset({"TXT", "CNAME"})
#: TSIG algorithms (RFC 8945 §6) accepted in the settings, by their key-statement names.
ALGORITHMS: dict[str, dns.name.Name] = {
    "hmac-sha256": dns.tsig.HMAC_SHA256,
    "hmac-sha384": dns.tsig.HMAC_SHA384,
    "hmac-sha512": dns.tsig.HMAC_SHA512,
    "hmac-sha224": dns.tsig.HMAC_SHA224,
    "hmac-sha1": dns.tsig.HMAC_SHA1,
    "hmac-md5": dns.tsig.HMAC_MD5,
}


class Rfc2136(BaseDnsProvider):
    """RFC 2136 + TSIG adapter talking to one primary.

    Args:
        host: the primary's IP address or host name.
        port: its DNS port.
        key_name: the TSIG key's name, as in the server's key statement.
        secret: the key's secret, base64 (never logged).
        algorithm: a key of :data:`ALGORITHMS`.
        min_ttl: the TTL floor reported as :attr:`Zone.min_ttl`, seconds.
        timeout_s: per-message timeout, seconds.
        rate_limiter / on_error / retry / sleep: as for the Alidns adapter (one retry layer).
    """

    id = "rfc2136"

    def __init__(
        self,
        *,
        host: str,
        key_name: str,
        secret: str,
        port: int = 53,
        algorithm: str = "hmac-sha256",
        min_ttl: int = 60,
        timeout_s: float = 5.0,
        rate_limiter: Callable[[str], None] | None = None,
        on_error: Callable[[str, DnsProviderError], None] | None = None,
        retry: RetryPolicy | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        super().__init__()
        if algorithm not in ALGORITHMS:
            raise InputError(f"TSIG algorithm {algorithm!r} is not one of "
                             f"{', '.join(ALGORITHMS)}")
        self._host, self._port, self._timeout = host, port, timeout_s
        self._address: str | None = None
        self._min_ttl = min_ttl
        self._algorithm = ALGORITHMS[algorithm]
        self._key_name = dns.name.from_text(key_name)
        try:
            self._keyring = dns.tsigkeyring.from_text({key_name: (algorithm, secret)})
        except (ValueError, TypeError):
            raise InputError("the TSIG secret is not valid base64 (it is not shown)") from None
        self._secrets = (secret,) if secret else ()
        self._found: set[str] = set()
        self._call = RetriedCalls(
            retry or RetryPolicy(), sdk_errors=RFC2136_ERRORS, map_error=self._map_error,
            sleep=sleep, rate_limiter=rate_limiter, on_error=on_error,
            log_fields={"provider": self.id},
        )

    def __repr__(self) -> str:
        return f"Rfc2136(server={self.server!r}, key_name={self._key_name.to_text()!r})"

    @property
    def server(self) -> str:
        """``host:port`` of the primary."""
        return f"{self._host}:{self._port}"

    # ----------------------------------------------------------------- zones
    def find_zone(self, name: str) -> Zone:
        """The zone the primary serves that contains ``name``, by SOA discovery (see the module).

        Raises:
            ZoneNotFound: no name from ``name`` up is a zone apex at the primary, or ``name``
                lies below a delegation to other servers.
            DnsProviderError: the primary failed or did not answer.
        """
        fqdn = canonical_name(name)
        labels = fqdn.split(".")
        for start in range(len(labels)):
            candidate = ".".join(labels[start:])
            answer = self._query(candidate, "SOA", action="FindZone", lenient=True)
            zone_name = _zone_of(answer, candidate)
            if zone_name is not None:
                with self._lock:
                    self._found.add(zone_name)
                return self._zone_details(zone_name)
            if _is_referral(answer):
                raise ZoneNotFound(
                    f"{self.id}: {fqdn} is delegated away from {self.server} (at {candidate})",
                    service=self.id, code="ZoneNotFound",
                    hint="point rfc2136.host at the primary of the delegated zone")
        raise ZoneNotFound(
            f"{self.id}: the server {self.server} hosts no zone containing {fqdn}",
            service=self.id, code="ZoneNotFound",
            hint="set rfc2136.host/port to the primary of the domain's zone")

    def _zone_names(self) -> list[str]:
        # DNS cannot list a server's zones; find_zone discovers them by SOA instead.
        with self._lock:
            return sorted(self._found)

    def _zone(self, zone_name: str) -> Zone:
        answer = self._query(zone_name, "NS", action="DescribeZone")
        servers = sorted({rd.target.to_text(omit_final_dot=True).lower()
                          for rrset in _at(answer, zone_name, "NS") for rd in rrset})
        return Zone(zone_name, zone_name, tuple(servers), self._min_ttl)

    # ----------------------------------------------------------------- hooks
    def _records(self, zone: Zone, rr: str, rtype: str) -> list[RecordRef]:
        self._supported(rtype)
        seen = self._observe(zone.name, rr, rtype)
        return [
            RecordRef(RecordKey(zone.name, rr, rtype, seen.key_of(rtype, value)).text(),
                      zone.name, rr, rtype, value, ttl,
                      OWNER_REMARK if (rtype, digest(value)) in seen.markers else "")
            for value, ttl in seen.values.items()
        ]

    def _create(self, zone: Zone, rr: str, rtype: str, value: str, ttl: int) -> str | None:
        self._supported(rtype)
        rid = RecordKey(zone.name, rr, rtype, "r" + secrets.token_hex(6))
        update = self._update_of(zone.name)
        owner = absolute(rid.fqdn)
        if rtype == "CNAME":
            update.absent(owner)  # a CNAME must be alone at its name (RFC 2181 §10.1)
        else:
            update.absent(owner, "CNAME")  # else the server ignores the add (RFC 2136 §3.4.2.2)
        update.add(owner, ttl, rdata_of(rtype, value))
        update.add(absolute(marker_name(rid.fqdn)), ttl, marker(rtype, rid.key, value))
        try:
            self._send("AddRecord", update)
        except DnsProviderError as exc:
            if exc.code == "YXDOMAIN" and value in self._observe(zone.name, rr, rtype).values:
                return None  # the same CNAME appeared since the caller looked
            raise
        return rid.text()

    def _update(self, ref: RecordRef, value: str, ttl: int) -> bool:
        rid = RecordKey.parse(ref.record_id)
        seen = self._observe(rid.zone, rid.rr, rid.type)
        old = value_of(seen, rid)
        if old is None:
            return False
        owner, update = absolute(rid.fqdn), self._update_of(rid.zone)
        if rid.type == "CNAME":
            update.present(owner, rdata_of("CNAME", old))  # still the CNAME we read
            update.delete(owner, "CNAME")
        else:
            update.absent(owner, "CNAME")
            update.delete(owner, rdata_of(rid.type, old))
        update.add(owner, ttl, rdata_of(rid.type, value))
        self._unmark(update, rid, seen, old)
        update.add(absolute(marker_name(rid.fqdn)), ttl, marker(rid.type, rid.key, value))
        try:
            self._send("UpdateRecord", update)
        except DnsProviderError as exc:
            if exc.code == "NXRRSET":
                return False  # the CNAME changed or went since we read it
            raise
        return True

    def _set_remark(self, record_id: str, remark: str) -> None:
        rid = RecordKey.parse(record_id)
        seen = self._observe(rid.zone, rid.rr, rid.type)
        value = value_of(seen, rid)
        if value is None:
            raise DnsProviderError(
                f"{self.id}: record {record_id} is not at {self.server}",
                service=self.id, code="RecordNotFound", retryable=False,
                hint="list the records again: it was deleted or changed meanwhile")
        update = self._update_of(rid.zone)
        marked = (rid.type, digest(value)) in seen.markers
        if remark == OWNER_REMARK and not marked:
            update.add(absolute(marker_name(rid.fqdn)), seen.values[value],
                       marker(rid.type, rid.key, value))
        elif remark == "" and marked:
            self._unmark(update, rid, seen, value)
        elif remark not in ("", OWNER_REMARK):
            raise InputError(f"rfc2136 records take no remark but {OWNER_REMARK!r}")
        else:
            return
        self._send("SetMarker", update)

    def _delete(self, record_id: str) -> bool:
        rid = RecordKey.parse(record_id)
        seen = self._observe(rid.zone, rid.rr, rid.type)
        value = value_of(seen, rid)
        update = self._update_of(rid.zone)
        if value is None:  # gone; drop markers it may have left (deleted by hand)
            stale = [(t, d) for (t, d), keys in seen.markers.items()
                     if t == rid.type and rid.key in keys]
            for rtype, value_digest in stale:
                update.delete(absolute(marker_name(rid.fqdn)),
                              marker_of_digest(rtype, rid.key, value_digest))
            if stale:
                self._send("DeleteMarker", update)
            return False
        owner = absolute(rid.fqdn)
        if rid.type == "CNAME":
            update.present(owner, rdata_of("CNAME", value))  # still the CNAME we read
        else:
            update.present(owner, rid.type)
        update.delete(owner, rdata_of(rid.type, value))  # this RR only (RFC 2136 §2.5.4)
        self._unmark(update, rid, seen, value)
        try:
            self._send("DeleteRecord", update)
        except DnsProviderError as exc:
            if exc.code == "NXRRSET":
                return False  # gone, or changed by someone else, since we read it
            raise
        return True

    def _mark_owned(self, record_id: str) -> None:
        """Nothing to do: :meth:`_create` wrote the marker in the record's own UPDATE."""

    # -------------------------------------------------------------- plumbing
    def _observe(self, zone: str, rr: str, rtype: str) -> Observed:
        fqdn = zone if rr == "@" else f"{rr}.{zone}"
        seen = Observed()
        for rrset in _at(self._query(fqdn, rtype, action="ListRecords"), fqdn, rtype):
            for rd in rrset:
                seen.values[text_of(rd)] = rrset.ttl
        marks = self._query(marker_name(fqdn), "TXT", action="ListRecords")
        for rrset in _at(marks, marker_name(fqdn), "TXT"):
            for rd in rrset:
                parsed = parse_marker(rd)
                if parsed is not None:
                    seen.markers.setdefault(parsed[:2], []).append(parsed[2])
        return seen

    def _unmark(self, update: dns.update.UpdateMessage, rid: RecordKey, seen: Observed,
                value: str) -> None:
        """Add to ``update`` the deletion of every marker of ``value``."""
        value_digest = digest(value)
        for key in seen.markers.get((rid.type, value_digest), []):
            update.delete(absolute(marker_name(rid.fqdn)),
                          marker_of_digest(rid.type, key, value_digest))

    def _update_of(self, zone: str) -> dns.update.UpdateMessage:
        return dns.update.UpdateMessage(absolute(zone), keyring=self._keyring,
                                        keyname=self._key_name, keyalgorithm=self._algorithm)

    def _send(self, action: str, update: dns.update.UpdateMessage) -> None:
        def once() -> None:
            answer = dns.query.tcp(update, self._where(), port=self._port,
                                   timeout=self._timeout)
            if answer.rcode() != dns.rcode.NOERROR:
                raise RcodeError(answer.rcode())

        self._call(action, once)

    def _query(self, name: str, rtype: str, *, action: str,
               lenient: bool = False) -> dns.message.Message:
        """Ask the primary, RD off. ``lenient``: REFUSED and NOTAUTH (not my zone) are answers
        too, not errors (zone discovery)."""
        ok = {dns.rcode.NOERROR, dns.rcode.NXDOMAIN}
        if lenient:
            ok |= {dns.rcode.REFUSED, dns.rcode.NOTAUTH}
        query = dns.message.make_query(absolute(name), rtype)
        query.flags &= ~dns.flags.RD

        def once() -> dns.message.Message:
            answer, _ = dns.query.udp_with_fallback(query, self._where(), port=self._port,
                                                    timeout=self._timeout)
            if answer.rcode() not in ok:
                raise RcodeError(answer.rcode())
            return answer

        result: dns.message.Message = self._call(action, once)
        return result

    def _where(self) -> str:
        """The primary's IP address (dnspython wants one), resolved once."""
        if self._address is None:
            info = socket.getaddrinfo(self._host, self._port, type=socket.SOCK_STREAM)
            self._address = str(info[0][4][0])
        return self._address

    def _supported(self, rtype: str) -> None:
        if rtype not in SUPPORTED_TYPES:
            raise InputError(f"the rfc2136 provider writes TXT and CNAME records, not {rtype}")

    def _map_error(self, exc: BaseException, action: str) -> DnsProviderError:
        return map_rfc2136_error(exc, action, self.server, self._secrets)


def _at(answer: dns.message.Message, name: str, rtype: str) -> list[dns.rrset.RRset]:
    """The answer's RRsets of exactly ``name`` and ``rtype`` (a CNAME met on the way is not
    one of them), from an authoritative answer only."""
    if answer.rcode() != dns.rcode.NOERROR or not answer.flags & dns.flags.AA:
        return []
    owner, kind = absolute(name), dns.rdatatype.from_text(rtype)
    return [r for r in answer.answer if r.name == owner and r.rdtype == kind]


def _zone_of(answer: dns.message.Message, name: str) -> str | None:
    """The zone an authoritative answer to ``name SOA`` shows: ``name`` itself when the SOA
    is in the answer, else the owner of the SOA in the authority section (a negative answer,
    RFC 2308 §3), if it encloses ``name``; ``None`` for anything else (a CNAME, a refusal)."""
    if _at(answer, name, "SOA"):
        return name
    if answer.rcode() not in (dns.rcode.NOERROR, dns.rcode.NXDOMAIN) or not (
            answer.flags & dns.flags.AA):
        return None
    owner = absolute(name)
    for rrset in answer.authority:
        if rrset.rdtype == dns.rdatatype.SOA and owner.is_subdomain(rrset.name):
            return canonical_name(rrset.name.to_text())
    return None


def _is_referral(answer: dns.message.Message) -> bool:
    return (answer.rcode() == dns.rcode.NOERROR and not answer.flags & dns.flags.AA
            and any(r.rdtype == dns.rdatatype.NS for r in answer.authority))

"""The sandbox's single state store, shared by the OSS API, the Alidns API and the DNS servers.

Times are Unix seconds (floats) from an injectable clock. Every mutation of DNS data is kept as
a version history per owner name, so each authoritative nameserver can answer from its own
point in time (``now - lag``): a prompt primary, a lagging secondary, one that never updates.

Thread safety: every public method takes ``self.lock`` (an ``RLock``); callers composing several
calls into one atomic operation hold ``with state.lock:`` around them.
"""

from __future__ import annotations

import bisect
import json
import math
import os
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict
from pathlib import Path

from cname_flow.sandbox.config import SandboxConfig
from cname_flow.sandbox.nameservers.index import ZoneIndex
from cname_flow.sandbox.records import (
    BoundCertificate,
    Bucket,
    CasCertificate,
    CnameRecord,
    Credential,
    DnsRecord,
    HostedZone,
    RecordVersion,
    TokenRecord,
    new_request_id,
    owner_name,
)

STATE_VERSION = 1

__all__ = [
    "STATE_VERSION",
    "BoundCertificate",
    "Bucket",
    "CasCertificate",
    "CnameRecord",
    "Credential",
    "DnsRecord",
    "HostedZone",
    "RecordVersion",
    "SandboxState",
    "TokenRecord",
    "new_request_id",
    "owner_name",
]


class SandboxState:
    """Everything the sandbox knows. See the module docstring for time and locking rules.

    Args:
        config: the world to build.
        clock: returns Unix seconds; injected by tests.
    """

    def __init__(self, config: SandboxConfig, clock: Callable[[], float] = time.time) -> None:
        self.config = config
        self.clock = clock
        self.lock = threading.RLock()
        self.started_at = clock()
        self.mutations = 0
        #: replaced whenever the record histories restart (restore, reset): caches keyed on
        #: the histories compare it by identity.
        self.epoch = object()
        self._next_record_id = 100000
        self.credentials: dict[str, Credential] = {}
        self.buckets: dict[str, Bucket] = {}
        self.zones: dict[str, HostedZone] = {}
        self.cas: dict[str, CasCertificate] = {}
        self.uploaded_certs = 0
        self._load_config()

    # -- construction ------------------------------------------------------------------------

    def _load_config(self) -> None:
        cfg, now = self.config, self.started_at
        for acct in cfg.accounts:
            self.credentials[acct.access_key_id] = Credential(
                acct.access_key_id, acct.access_key_secret, acct.id
            )
            for sts in acct.sts:
                self.credentials[sts.access_key_id] = Credential(
                    sts.access_key_id, sts.access_key_secret, acct.id, sts.security_token
                )
        for b in cfg.buckets:
            bucket = Bucket(b.name, b.region, b.owner, now, b.kind)
            for domain in b.cnames:
                bucket.cnames[domain.lower()] = CnameRecord(domain.lower(), "Enabled", now)
            self.buckets[b.name] = bucket
        ns = tuple(n.name for n in cfg.nameservers)
        for i, z in enumerate(cfg.zones):
            zone = HostedZone(
                name=z.name.lower().rstrip("."),
                owner=z.owner,
                edition=z.edition,
                min_ttl=z.effective_min_ttl,
                soa_ttl=z.soa_ttl,
                soa_minimum=z.soa_minimum,
                nameservers=ns,
                domain_id=f"{0x5A000000 + i:08x}",
                created_at=now,
                base_serial=2026112100,
            )
            self.zones[zone.name] = zone
            for r in z.records:
                self._insert(zone, r.rr, r.type, r.value, r.ttl, "default", "", -math.inf)
        for c in cfg.cas_certificates:
            pem = c.pem if c.pem is not None else (c.cert_file.read_text() if c.cert_file else "")
            self.cas[c.cert_id] = CasCertificate(c.cert_id, pem)

    # -- identifiers ---------------------------------------------------------------------------

    def next_record_id(self) -> str:
        """A fresh, increasing Alidns RecordId (a decimal string, as the real API returns)."""
        with self.lock:
            self._next_record_id += 1
            return str(self._next_record_id)

    # -- buckets and credentials ----------------------------------------------------------------

    def credential(self, access_key_id: str) -> Credential | None:
        """The credential for an AccessKey id, or None when unknown."""
        return self.credentials.get(access_key_id)

    def bucket_binding(self, domain: str) -> Bucket | None:
        """The bucket (of any account) that has ``domain`` bound, or None."""
        with self.lock:
            d = domain.lower()
            return next((b for b in self.buckets.values() if d in b.cnames), None)

    def touch(self) -> None:
        """Mark the state changed (for periodic persistence)."""
        self.mutations += 1

    # -- zones and records ----------------------------------------------------------------------

    def zone_for(self, name: str) -> HostedZone | None:
        """The hosted zone whose name is the longest label-boundary suffix of ``name``."""
        n = name.lower().rstrip(".")
        with self.lock:
            best: HostedZone | None = None
            for zone in self.zones.values():
                if (n == zone.name or n.endswith("." + zone.name)) and (
                    best is None or len(zone.name) > len(best.name)
                ):
                    best = zone
            return best

    def find_record(self, record_id: str) -> tuple[HostedZone, DnsRecord] | None:
        """The zone and record for a RecordId, or None."""
        with self.lock:
            for zone in self.zones.values():
                rec = zone.records.get(record_id)
                if rec is not None:
                    return zone, rec
            return None

    def add_record(
        self, zone: HostedZone, rr: str, rtype: str, value: str, ttl: int, line: str = "default",
        remark: str = "",
    ) -> DnsRecord:
        """Add a record now; the caller has validated it. Returns the stored record."""
        with self.lock:
            return self._insert(zone, rr, rtype, value, ttl, line, remark, self.clock())

    def _insert(
        self, zone: HostedZone, rr: str, rtype: str, value: str, ttl: int, line: str, remark: str,
        at: float,
    ) -> DnsRecord:
        ms = int(max(at, self.started_at) * 1000)
        rec = DnsRecord(
            self.next_record_id(), zone.name, rr.lower(), rtype.upper(), value, ttl, line,
            remark, created_ms=ms, updated_ms=ms,
        )
        zone.records[rec.record_id] = rec
        zone.owners.setdefault(rec.fqdn, {})[rec.record_id] = rec
        self._open_version(zone, rec, at)
        return rec

    def update_record(
        self, zone: HostedZone, rec: DnsRecord, rr: str, rtype: str, value: str, ttl: int,
        line: str = "default",
    ) -> None:
        """Change a record in place now (RecordId kept); servers see it after their lag."""
        with self.lock:
            now = self.clock()
            self._close_version(zone, rec, now)
            self._unlist(zone, rec)
            rec.rr, rec.type, rec.value = rr.lower(), rtype.upper(), value
            zone.owners.setdefault(rec.fqdn, {})[rec.record_id] = rec
            rec.ttl, rec.line = ttl, line
            rec.updated_ms = int(now * 1000)
            self._open_version(zone, rec, now)

    def delete_record(self, zone: HostedZone, rec: DnsRecord) -> None:
        """Remove a record now; servers stop serving it after their lag."""
        with self.lock:
            self._close_version(zone, rec, self.clock())
            zone.records.pop(rec.record_id, None)
            self._unlist(zone, rec)

    @staticmethod
    def _unlist(zone: HostedZone, rec: DnsRecord) -> None:
        same_owner = zone.owners.get(rec.fqdn, {})
        same_owner.pop(rec.record_id, None)
        if not same_owner:
            zone.owners.pop(rec.fqdn, None)

    def records_at(self, zone: HostedZone, name: str) -> list[DnsRecord]:
        """The current records (any status) owned by ``name`` in ``zone``, in RecordId order."""
        with self.lock:
            return list(zone.owners.get(name.lower().rstrip("."), {}).values())

    def _open_version(self, zone: HostedZone, rec: DnsRecord, at: float) -> None:
        if rec.status != "ENABLE":
            return
        version = RecordVersion(rec.record_id, rec.fqdn, rec.type, rec.value, rec.ttl, at)
        zone.versions.setdefault(version.fqdn, []).append(version)
        zone.index.record(version.fqdn, at, 1)
        self._changed(zone, at)

    def _close_version(self, zone: HostedZone, rec: DnsRecord, at: float) -> None:
        for version in zone.versions.get(rec.fqdn, []):
            if version.record_id == rec.record_id and version.valid_to == math.inf:
                version.valid_to = at
                zone.index.record(version.fqdn, at, -1)
        self._changed(zone, at)

    def _changed(self, zone: HostedZone, at: float) -> None:
        self.mutations += 1
        zone.index.touch(at)
        if at > -math.inf:
            bisect.insort_right(zone.change_times, at)

    # -- what a nameserver serves ---------------------------------------------------------------

    def server_time(self, lag: float | None) -> float:
        """The point in time a nameserver with this lag (None: never updates) serves."""
        return self.started_at if lag is None else self.clock() - lag

    def rrsets_at(self, zone: HostedZone, name: str, at: float) -> list[RecordVersion]:
        """Record versions at owner ``name`` that a server at time ``at`` serves."""
        with self.lock:
            return [v for v in zone.versions.get(name.lower().rstrip("."), []) if v.visible_at(at)]

    def name_exists_at(self, zone: HostedZone, name: str, at: float) -> bool:
        """True when ``name`` owns records at ``at`` or is an empty non-terminal (RFC 8020)."""
        with self.lock:
            return zone.index.exists_at(name.lower().rstrip("."), at)

    def serial_at(self, zone: HostedZone, at: float) -> int:
        """SOA serial a server at ``at`` reports: base serial plus changes it has seen."""
        with self.lock:
            return zone.base_serial + bisect.bisect_right(zone.change_times, at)

    def iter_zones(self) -> Iterator[HostedZone]:
        """Zones in name order."""
        with self.lock:
            yield from sorted(self.zones.values(), key=lambda z: z.name)

    # -- persistence ----------------------------------------------------------------------------

    def to_json(self) -> dict[str, object]:
        """A JSON-able snapshot of the mutable state (buckets, tokens, bindings, records)."""
        with self.lock:
            return {
                "version": STATE_VERSION,
                "next_record_id": self._next_record_id,
                "uploaded_certs": self.uploaded_certs,
                "buckets": [asdict(b) for b in self.buckets.values()],
                "records": [asdict(r) for z in self.zones.values() for r in z.records.values()],
            }

    def save(self, path: Path) -> None:
        """Write a snapshot atomically (temp file, fsync, rename), mode 0600."""
        data = json.dumps(self.to_json(), separators=(",", ":")).encode()
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name, suffix=".tmp")
        try:
            os.fchmod(fd, 0o600)
            os.write(fd, data)
            os.fsync(fd)
        finally:
            os.close(fd)
        Path(tmp).replace(path)

    def restore(self, path: Path) -> None:
        """Load a snapshot written by :meth:`save` over the configured world.

        Record histories restart: every restored record is visible to every nameserver.
        """
        raw = json.loads(path.read_text(encoding="utf-8"))
        with self.lock:
            self.epoch = object()
            self._next_record_id = int(raw["next_record_id"])
            self.uploaded_certs = int(raw.get("uploaded_certs", 0))
            self.buckets = {}
            for b in raw["buckets"]:
                bucket = Bucket(b["name"], b["region"], b["owner"], b["created_at"],
                                b.get("kind", "standard"))
                for d, c in b["cnames"].items():
                    cert = BoundCertificate(**c["certificate"]) if c["certificate"] else None
                    bucket.cnames[d] = CnameRecord(
                        c["domain"], c["status"], c["last_modified"], cert
                    )
                for d, t in b["tokens"].items():
                    bucket.tokens[d] = TokenRecord(**t)
                self.buckets[bucket.name] = bucket
            for zone in self.zones.values():
                zone.records.clear()
                zone.owners.clear()
                zone.versions.clear()
                zone.change_times.clear()
                zone.index = ZoneIndex(zone.name)
            for r in raw["records"]:
                target = self.zones.get(r["zone"])
                if target is None:
                    continue
                rec = DnsRecord(**r)
                target.records[rec.record_id] = rec
                target.owners.setdefault(rec.fqdn, {})[rec.record_id] = rec
                self._open_version(target, rec, -math.inf)

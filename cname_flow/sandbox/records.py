"""The sandbox's data model: accounts, buckets, tokens, bound domains, zones and DNS records.

Plain dataclasses, no behaviour beyond derived properties; :mod:`cname_flow.sandbox.state` owns
them and every mutation. Times are Unix seconds (floats).
"""

from __future__ import annotations

import math
import secrets
from dataclasses import dataclass, field

from cname_flow.sandbox.nameservers.index import ZoneIndex


def new_request_id() -> str:
    """A 24-character upper-case hex request id, as OSS and Alidns send."""
    return secrets.token_hex(12).upper()


@dataclass(slots=True)
class Credential:
    """An AccessKey pair (optionally temporary, with an STS security token) and its account."""

    access_key_id: str
    access_key_secret: str
    account_id: str
    security_token: str | None = None


@dataclass(slots=True)
class TokenRecord:
    """A CNAME token issued by CreateCnameToken (times in Unix seconds)."""

    domain: str
    token: str
    created_at: float
    expires_at: float


@dataclass(slots=True)
class BoundCertificate:
    """The certificate attached to a bound domain (ListCname's Certificate block)."""

    type: str  # "Upload" | "CAS"
    cert_id: str
    status: str
    creation_date: float
    fingerprint: str  # SHA-1 of the leaf DER, upper-case colon-hex
    valid_start: float
    valid_end: float


@dataclass(slots=True)
class CnameRecord:
    """A domain bound to a bucket."""

    domain: str
    status: str
    last_modified: float
    certificate: BoundCertificate | None = None


@dataclass(slots=True)
class Bucket:
    """An OSS bucket with its bound domains and issued tokens, keyed by lowercase domain."""

    name: str
    region: str
    owner: str
    created_at: float
    #: "standard" or "agentic" (wildcard CNAMEs); bound wildcards are keyed ``*.<base>``.
    kind: str = "standard"
    cnames: dict[str, CnameRecord] = field(default_factory=dict)
    tokens: dict[str, TokenRecord] = field(default_factory=dict)


@dataclass(slots=True)
class DnsRecord:
    """One Alidns record. ``rr`` is lowercase and relative to the zone (``@`` for the apex)."""

    record_id: str
    zone: str
    rr: str
    type: str
    value: str
    ttl: int
    line: str = "default"
    remark: str = ""
    status: str = "ENABLE"
    locked: bool = False
    created_ms: int = 0
    updated_ms: int = 0
    priority: int | None = None  # MX preference; None for other types

    @property
    def fqdn(self) -> str:
        """Owner name, lowercase, no trailing dot."""
        return owner_name(self.rr, self.zone)


@dataclass(slots=True)
class RecordVersion:
    """What one record looked like between ``valid_from`` and ``valid_to`` (Unix seconds)."""

    record_id: str
    fqdn: str
    type: str
    value: str
    ttl: int
    valid_from: float
    valid_to: float = math.inf

    def visible_at(self, at: float) -> bool:
        """True when a server whose clock reads ``at`` serves this version."""
        return self.valid_from <= at < self.valid_to


@dataclass(slots=True)
class CasCertificate:
    """A CAS certificate preloaded from the sandbox config."""

    cert_id: str
    pem: str


@dataclass(slots=True)
class HostedZone:
    """A hosted zone. NS and SOA at the apex are synthesized from these fields by the servers."""

    name: str
    owner: str
    edition: str
    min_ttl: int
    soa_ttl: int
    soa_minimum: int
    nameservers: tuple[str, ...]
    domain_id: str
    created_at: float
    base_serial: int
    records: dict[str, DnsRecord] = field(default_factory=dict)
    versions: dict[str, list[RecordVersion]] = field(default_factory=dict)
    change_times: list[float] = field(default_factory=list)
    #: owner name → RecordId → record (the Alidns API's lookups by sub-domain).
    owners: dict[str, dict[str, DnsRecord]] = field(default_factory=dict)
    #: per-name timelines of ``versions`` (the DNS servers' point-in-time lookups).
    index: ZoneIndex = field(init=False)

    def __post_init__(self) -> None:
        self.index = ZoneIndex(self.name)

    @property
    def negative_ttl(self) -> int:
        """RFC 2308 negative-caching TTL: min(SOA TTL, SOA MINIMUM)."""
        return min(self.soa_ttl, self.soa_minimum)


def owner_name(rr: str, zone: str) -> str:
    """``rr`` relative to ``zone`` as a lowercase absolute name without trailing dot."""
    return zone if rr in ("@", "") else f"{rr}.{zone}".lower()

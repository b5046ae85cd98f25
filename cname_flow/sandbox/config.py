"""The sandbox's configuration (``sandbox.yaml``): accounts, buckets, zones, nameservers, faults.

Everything has a default, so ``SandboxConfig()`` is the documented default world:
zones ``example.com`` and ``example.com.cn`` (free edition, TTL floor 600 s), bucket
``examplebucket`` in ``cn-hangzhou``, and a second account whose bucket ``otherbucket`` already
holds ``taken.example.com`` (the "bound elsewhere" case).
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from cname_flow.errors import ConfigError
from cname_flow.propagation.model import parse_address
from cname_flow.quotas import ALIDNS_RATE_LIMITS

#: Alidns edition code → minimum TTL in seconds (ranges per edition:
#: https://www.alibabacloud.com/help/doc-detail/29806.htm; codes: dnscontrol's alidns table).
EDITION_MIN_TTL: dict[str, int] = {
    "mianfei": 600,
    "version_personal": 600,
    "version_enterprise_basic": 60,
    "version_enterprise_advanced": 1,
    "version_cached": 60,
}

#: Default cap of the verifier's negative cache, seconds (see :class:`ResolverConfig`).
NEGATIVE_TTL_CAP_DEFAULT = 30


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class StsConfig(_Model):
    """A temporary credential (STS) that maps to its account."""

    access_key_id: str
    access_key_secret: str
    security_token: str


class AccountConfig(_Model):
    """One Alibaba Cloud account with its AccessKey pair and optional STS credentials."""

    id: str
    access_key_id: str
    access_key_secret: str
    #: Temporary credentials: each item has access_key_id, access_key_secret, security_token.
    sts: list[StsConfig] = Field(default_factory=list)


class BucketConfig(_Model):
    """A bucket preloaded into the sandbox; ``cnames`` are domains already bound to it."""

    name: str
    region: str = "cn-hangzhou"
    owner: str = "1234567890123456"
    cnames: list[str] = Field(default_factory=list)
    #: ``agentic``: an Agentic Bucket, the only kind that takes wildcard CNAMEs (PutCname,
    #: https://help.aliyun.com/en/oss/developer-reference/putcname); ``standard`` otherwise.
    kind: Literal["standard", "agentic"] = "standard"


class RecordConfig(_Model):
    """A DNS record preloaded into a zone (``rr`` relative to the zone, ``@`` for the apex)."""

    rr: str
    type: str
    value: str
    ttl: int = 600


class ZoneConfig(_Model):
    """A zone hosted at the sandbox's Alidns, served by every sandbox nameserver."""

    name: str
    owner: str = "1234567890123456"
    edition: str = "mianfei"
    #: TTL floor; defaults from the edition.
    min_ttl: int | None = None
    soa_ttl: int = 600
    soa_minimum: int = 600
    records: list[RecordConfig] = Field(default_factory=list)

    @property
    def effective_min_ttl(self) -> int:
        """The zone's TTL floor in seconds."""
        return self.min_ttl if self.min_ttl is not None else EDITION_MIN_TTL.get(self.edition, 600)


class NameserverConfig(_Model):
    """One authoritative nameserver: its host name, loopback address and propagation lag.

    ``lag`` is in seconds; ``None`` means the server never sees changes made after start.
    ``port`` 0 picks a free port.
    """

    name: str
    address: str = "127.0.0.1"
    port: int = 0
    lag: float | None = 0.0


class ResolverConfig(_Model):
    """The caching recursive resolver the OSS verifier asks (positive and negative caching)."""

    address: str = "127.0.0.1"
    port: int = 0
    #: Upper bound of the verifier's negative cache ("no TXT yet"), seconds, 0..3600 (0: never
    #: cached; 3600: Unbound's ``cache-max-negative-ttl``). The real verifier's caching is
    #: undocumented and no public report shows a 10-minute lock-out after an early PutCname
    #: (``docs/sandbox-oss.md``, "Re-verification, negative cache, wildcards"), so the default
    #: is small rather than Alidns's SOA minimum of 600 s; raise it to rehearse the worst case.
    max_negative_ttl: int = Field(default=NEGATIVE_TTL_CAP_DEFAULT, ge=0, le=3600)
    #: External authoritative servers the resolver asks instead of the sandbox's own
    #: nameservers: ``"ip"``, ``"ip:port"`` or ``"[ipv6]:port"`` (port 53 when none), asked
    #: round robin with RD=0 like the sandbox's own. When set, the verifier (PutCname's
    #: ownership proof) resolves every name through them, zones the sandbox does not host
    #: included: point it at your own BIND, Knot or PowerDNS (``docs/sandbox-oss.md``,
    #: "Verifying through external nameservers"). Empty: the sandbox's own nameservers.
    upstreams: list[str] = Field(default_factory=list)

    @field_validator("upstreams")
    @classmethod
    def _addresses(cls, value: list[str]) -> list[str]:
        for entry in value:
            try:
                parse_address(entry, 53)
            except ValueError as exc:
                raise ValueError(f"{entry!r} is not \"ip\", \"ip:port\" or \"[ipv6]:port\" "
                                 f"({exc})") from None
        return value

    def upstream_addresses(self) -> list[tuple[str, int]]:
        """:attr:`upstreams` as ``(ip, port)`` pairs, in order."""
        return [parse_address(entry, 53) for entry in self.upstreams]


class CasCertificateConfig(_Model):
    """A CAS certificate known to the sandbox, referenced by PutCname's CertId."""

    cert_id: str
    cert_file: Path | None = None
    pem: str | None = None


class OpFaults(_Model):
    """Faults for one operation (or ``"*"``): latency in milliseconds and probabilities 0..1.

    ``error_rate``, ``throttle_rate`` and ``drop_rate`` refuse the request before it runs;
    ``error_after_rate`` (503) and ``drop_after_rate`` (connection reset) run it, then lose its
    answer ("executed, answer lost").
    """

    latency_ms: float = 0.0
    jitter_ms: float = 0.0
    error_rate: float = 0.0
    throttle_rate: float = 0.0
    drop_rate: float = 0.0
    error_after_rate: float = 0.0
    drop_after_rate: float = 0.0


class FaultsConfig(_Model):
    """Seeded faults: the same seed replays the same sequence of decisions per operation."""

    seed: int = 0
    ops: dict[str, OpFaults] = Field(default_factory=dict)


class OssLimits(_Model):
    """OSS CNAME limits: tokens per the CreateCnameToken reference, domains per bucket per the
    custom-domain guide, clock skew per RequestTimeTooSkewed (sources: ``docs/sandbox-oss.md``)."""

    token_validity_s: int = 72 * 3600
    max_tokens_per_bucket: int = 1000
    max_cnames_per_bucket: int = 100
    max_skew_s: int = 15 * 60
    #: PutCname with a CertificateConfiguration on a domain already bound to this bucket asks
    #: for a fresh ownership proof (TXT ``_dnsauth.<domain>`` holding a valid token), as a real
    #: certificate change did in certimate-go/certimate#1042 (403 NeedVerifyDomainOwnership on a
    #: "bound and verified" domain). ``False``: the old guess, bound domains skip the proof.
    reverify_bound: bool = True


class IcpConfig(_Model):
    """ICP filing enforcement: a mainland-China bucket answers PutCname for a domain without an
    ICP filing with 404 ``NoSuchCnameInRecord`` (PutCname error table,
    https://www.alibabacloud.com/help/en/oss/developer-reference/putcname; evidence in
    ``docs/sandbox-oss.md``). Off by default, so the default world (region cn-hangzhou) binds any
    domain; ``enforce: true`` turns it on.

    Attributes:
        enforce: check filings at all.
        regions: regions that require a filing; ``None``: every mainland region (``cn-*`` but
            ``cn-hongkong``).
        filed: domains with a filing; a filing covers the domain and every name under it.
    """

    enforce: bool = False
    regions: list[str] | None = None
    filed: list[str] = Field(default_factory=list)


class AlidnsLimits(_Model):
    """Alidns rate limits per action (requests/s), the throttle answer's HTTP status."""

    rate_limits: dict[str, float] = Field(default_factory=lambda: dict(ALIDNS_RATE_LIMITS))
    enforce_rate_limits: bool = True
    throttle_status: int = 400
    #: When set, throttled answers carry ``x-acs-retry-after: <ms>``.
    retry_after_ms: int | None = None
    #: ``LastOperationNotFinished`` (docs/sandbox-alidns.md): when on, a change to a host
    #: record (zone + RR) within ``last_operation_window_s`` seconds of the previous change to
    #: it is refused. Off by default; 3 s is the first wait Terraform's provider retries after.
    last_operation_not_finished: bool = False
    last_operation_window_s: float = 3.0


def _default_accounts() -> list[AccountConfig]:
    return [
        AccountConfig(
            id="1234567890123456",
            access_key_id="LTAI5tSandboxExampleKey",
            access_key_secret="sandbox-secret-do-not-use-in-production",
        ),
        AccountConfig(
            id="6543210987654321",
            access_key_id="LTAI5tSandboxOtherAccount",
            access_key_secret="sandbox-other-account-secret",
        ),
    ]


def _default_buckets() -> list[BucketConfig]:
    return [
        BucketConfig(name="examplebucket"),
        BucketConfig(name="otherbucket", owner="6543210987654321", cnames=["taken.example.com"]),
    ]


def _default_zones() -> list[ZoneConfig]:
    return [ZoneConfig(name="example.com"), ZoneConfig(name="example.com.cn")]


def _default_nameservers() -> list[NameserverConfig]:
    return [
        NameserverConfig(name="ns1.sandbox.cname-flow.test", address="127.0.0.1"),
        NameserverConfig(name="ns2.sandbox.cname-flow.test", address="127.0.0.1"),
    ]


def _default_cas() -> list[CasCertificateConfig]:
    from cname_flow.sandbox.democert import DEMO_CAS_CERT_ID, demo_certificate_pem

    return [CasCertificateConfig(cert_id=DEMO_CAS_CERT_ID, pem=demo_certificate_pem())]


class SandboxConfig(_Model):
    """The whole sandbox world. Every field has a default (see the module docstring)."""

    region: str = "cn-hangzhou"
    host: str = "127.0.0.1"
    oss_port: int = 0
    alidns_port: int = 0
    accounts: list[AccountConfig] = Field(default_factory=_default_accounts)
    buckets: list[BucketConfig] = Field(default_factory=_default_buckets)
    zones: list[ZoneConfig] = Field(default_factory=_default_zones)
    nameservers: list[NameserverConfig] = Field(default_factory=_default_nameservers)
    resolver: ResolverConfig = Field(default_factory=ResolverConfig)
    #: Default: the demo certificate ``4930000-cn-hangzhou`` (:mod:`cname_flow.sandbox.democert`).
    cas_certificates: list[CasCertificateConfig] = Field(default_factory=_default_cas)
    oss: OssLimits = Field(default_factory=OssLimits)
    icp: IcpConfig = Field(default_factory=IcpConfig)
    alidns: AlidnsLimits = Field(default_factory=AlidnsLimits)
    faults: FaultsConfig = Field(default_factory=FaultsConfig)
    #: Seconds added to the sandbox state's clock (OSS ``Date`` headers, OSS signature skew, token
    #: expiry): a positive offset plays a server ahead of the client, to rehearse a client whose
    #: clock is late (``cname-flow doctor``'s clock check; OSS refuses requests more than
    #: ``oss.max_skew_s`` away with 403 RequestTimeTooSkewed).
    clock_offset_s: float = 0.0

    @classmethod
    def load(cls, path: Path) -> SandboxConfig:
        """Read and validate a sandbox YAML file.

        Raises:
            ConfigError: unreadable file, bad YAML, or fields that do not validate (all listed).
        """
        try:
            raw = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        except (OSError, yaml.YAMLError) as exc:
            raise ConfigError([f"{path}: {exc}"], source=str(path)) from exc
        try:
            return cls.model_validate(raw)
        except ValidationError as exc:
            reasons = [
                f"{path}: {'.'.join(str(p) for p in err['loc'])}: {err['msg']}"
                for err in exc.errors()
            ]
            raise ConfigError(reasons, source=str(path)) from exc

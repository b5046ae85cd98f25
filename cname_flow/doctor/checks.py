"""``cname-flow doctor``: each check as a value, run in order, nothing written anywhere.

Checks (names as the table and ``--json`` show them):

- ``credentials``: an AccessKey is found (config references, environment, default chain), then
  accepted by OSS (GetBucketInfo does not answer InvalidAccessKeyId / SignatureDoesNotMatch).
- ``clock``: skew against OSS's ``Date`` (:mod:`cname_flow.doctor.clock`): warn beyond 5 min,
  fail from 15 min (OSS refuses the request, RequestTimeTooSkewed).
- ``bucket region`` and ``ICP``: the bucket's region (GetBucketInfo); a note for mainland
  regions (``cn-*`` except ``cn-hongkong``), whose custom domains need an ICP filing.
- one row per RAM action probed with a harmless read: ``oss:GetBucketInfo``, ``oss:ListCname``,
  ``oss:GetCnameToken`` (with a domain), the DNS provider's zone lookup and record listing.
- ``write permissions``: never probed (no harmless write exists); the row says so.
- ``delegation``: the parent zone's NS set equals the provider's
  (:mod:`cname_flow.doctor.delegation`).

Statuses: ``ok``, ``warn`` and ``note`` (do not fail), ``fail``, ``skip`` (not run: what it
needs is missing, the row says what).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from cname_flow import service
from cname_flow.config import Settings
from cname_flow.dns.base import Zone
from cname_flow.doctor import clock, policy
from cname_flow.doctor.delegation import check_delegation
from cname_flow.errors import (
    BucketNotFound,
    ConfigError,
    DnsAuthError,
    DnsProviderError,
    OssAuthError,
    OssError,
    ZoneNotFound,
)
from cname_flow.model import normalize_domain

SCHEMA = "cname-flow/doctor/v1"
Status = Literal["ok", "warn", "note", "fail", "skip"]


@dataclass(frozen=True, slots=True)
class Check:
    """One row of the doctor's table.

    Attributes:
        name: what was checked (``"credentials"``, ``"oss:ListCname"``, ``"delegation"``…).
        status: ``ok | warn | note | fail | skip``.
        detail: what was found (never a secret: adapter messages are scrubbed at the boundary).
        hint: what to do about it, or ``""``.
    """

    name: str
    status: Status
    detail: str
    hint: str = ""

    def to_json(self) -> dict[str, str]:
        """``{"name", "status", "detail", "hint"}``."""
        return {"name": self.name, "status": self.status, "detail": self.detail,
                "hint": self.hint}


@dataclass(frozen=True, slots=True)
class DoctorReport:
    """Every check, in order, and the minimal RAM policy (``policy.minimal_policy``)."""

    checks: tuple[Check, ...]
    policy: dict[str, Any] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        """True when no check failed (warnings and notes do not fail)."""
        return all(c.status != "fail" for c in self.checks)

    def to_json(self) -> dict[str, Any]:
        """``{"schema": "cname-flow/doctor/v1", "ok", "checks": [...], "policy": {...}}``."""
        return {"schema": SCHEMA, "ok": self.ok, "checks": [c.to_json() for c in self.checks],
                "policy": self.policy}


def is_mainland(region: str) -> bool:
    """Mainland China regions (``cn-*`` but ``cn-hongkong``): custom domains need ICP."""
    return region.startswith("cn-") and region != "cn-hongkong"


@dataclass
class _Run:
    settings: Settings
    out: list[Check] = field(default_factory=list)

    def add(self, name: str, status: Status, detail: str, hint: str = "") -> None:
        self.out.append(Check(name, status, detail, hint))


def run_doctor(
    settings: Settings, *, clients_factory: Callable[[Settings], service.Clients],
    env: Mapping[str, str] | None = None, bucket: str | None = None,
    domain: str | None = None, parent_servers: Sequence[str] | None = None,
    cas: bool = False, skew: Callable[[str], float] = clock.server_skew,
) -> DoctorReport:
    """Run every check (module docstring) and return the report; nothing is written.

    Args:
        settings: the loaded settings (endpoints, credentials references, defaults.bucket).
        clients_factory: builds the SDK adapters (:meth:`service.Clients.from_settings`).
        env: the environment credentials are read from (``os.environ`` when ``None``).
        bucket: the bucket to probe (default ``defaults.bucket``; none: bucket rows skipped).
        domain: a domain to probe the DNS side with (its zone, records, delegation).
        parent_servers: the parent zone's servers (``"ip[:port]"``), instead of finding them
            through the system resolver.
        cas: include the certificate (CAS) statement in the policy.
        skew: measures the clock skew of an OSS URL, seconds (injected in unit tests).

    Raises:
        InputError: ``domain`` is not a valid domain name.
    """
    run = _Run(settings)
    bucket = bucket or settings.defaults.bucket
    domain = normalize_domain(domain) if domain else None
    reachable = _clock(run, skew)
    clients = _credentials(run, clients_factory, env)
    if clients is not None and not reachable:
        run.add("credentials accepted", "skip", "the OSS endpoint did not answer (see clock)",
                "fix the network path first: every OSS probe would only retry and fail")
    elif clients is not None:
        _oss(run, clients, bucket, domain)
        zone = _dns(run, clients, domain)
        if zone is not None:
            _delegation(run, zone, parent_servers)
    writes = ", ".join([*policy.OSS_WRITE, *policy.ALIDNS_WRITE])
    run.add("write permissions", "note", f"not probed (no harmless write exists): {writes}",
            "grant them with the policy below; `bind --dry-run` then a first bind confirms")
    return DoctorReport(tuple(run.out), policy.minimal_policy(bucket, cas=cas))


def _clock(run: _Run, skew: Callable[[str], float]) -> bool:
    """Add the clock row; False when the OSS endpoint did not answer at all."""
    o = run.settings.oss
    url = clock.endpoint_url(o.endpoint, o.region)
    try:
        ahead = skew(url)
    except clock.ClockUnavailable as exc:
        run.add("clock", "fail", f"could not read OSS's Date: {exc}",
                "check the network path to the OSS endpoint (proxy, firewall, DNS)")
        return False
    how = (f"within 1 s of OSS ({url})" if abs(ahead) < 1.5 else
           f"{abs(ahead):.0f} s {'behind' if ahead > 0 else 'ahead of'} OSS ({url})")
    if abs(ahead) >= clock.REFUSED_SKEW_S:
        run.add("clock", "fail", f"local clock {how}: OSS refuses requests skewed by 15 min "
                "(RequestTimeTooSkewed)", "synchronise the clock (chrony / systemd-timesyncd)")
    elif abs(ahead) > clock.WARN_SKEW_S:
        run.add("clock", "warn", f"local clock {how}; OSS refuses at 15 min",
                "synchronise the clock (chrony / systemd-timesyncd)")
    else:
        run.add("clock", "ok", f"local clock {how}")
    return True


def _credentials(run: _Run, factory: Callable[[Settings], service.Clients],
                 env: Mapping[str, str] | None) -> service.Clients | None:
    try:
        creds = service.credentials(run.settings, env)
        clients = factory(run.settings)
    except ConfigError as exc:
        run.add("credentials", "fail", f"no usable AccessKey: {exc.message}", exc.hint)
        return None
    kind = "STS token" if creds.is_sts else "AccessKey"
    run.add("credentials", "ok", f"{kind} {creds.access_key_id} from {creds.source or 'config'}")
    return clients


def _oss(run: _Run, clients: service.Clients, bucket: str | None, domain: str | None) -> None:
    if bucket is None:
        for name in ("credentials accepted", *policy.OSS_READ):
            run.add(name, "skip", "no bucket", "pass --bucket or set defaults.bucket")
        return
    try:
        region = clients.oss.bucket_region(bucket)
    except OssError as exc:
        _oss_refused(run, exc, bucket)
        return
    run.add("credentials accepted", "ok", "OSS accepted the signature (GetBucketInfo)")
    run.add("oss:GetBucketInfo", "ok", f"bucket {bucket}")
    run.add("bucket region", "ok", f"{bucket} is in {region}")
    if is_mainland(region):
        run.add("ICP", "note", f"{region} is a mainland China region: OSS binds a custom domain "
                "there only with an ICP filing (PutCname answers NoSuchCnameInRecord otherwise)",
                "file the domain at https://beian.aliyun.com, or use a bucket outside the "
                "mainland (cn-hongkong, ap-*, eu-*, us-*)")
    _probe(run, "oss:ListCname", lambda: f"{len(clients.oss.list_cnames(bucket))} domain(s) "
           f"bound to {bucket}")
    if domain is None:
        run.add("oss:GetCnameToken", "skip", "no domain", "pass --domain to probe it")
    else:
        _probe(run, "oss:GetCnameToken", lambda: "token " + (
            "held" if clients.oss.get_token(bucket, domain) else "none yet") + f" for {domain}")


def _oss_refused(run: _Run, exc: OssError, bucket: str) -> None:
    refused = exc.refused if isinstance(exc, OssAuthError) else None
    if refused == "credentials":
        run.add("credentials accepted", "fail", f"OSS refused the AccessKey: {exc.code}",
                "check the AccessKey id and secret (a RAM user's key, not disabled)")
    elif refused == "clock":
        run.add("credentials accepted", "fail", "OSS refused the request's time "
                f"({exc.code}): the key could not be checked", "fix the clock first")
    elif isinstance(exc, BucketNotFound):
        run.add("credentials accepted", "ok", "OSS accepted the signature")
        run.add("oss:GetBucketInfo", "fail", f"no bucket {bucket}: {exc.message}", exc.hint)
    elif refused == "permission":
        run.add("credentials accepted", "ok", "OSS accepted the signature")
        run.add("oss:GetBucketInfo", "fail", f"AccessDenied on {bucket}",
                "grant oss:GetBucketInfo (policy below)")
    else:
        run.add("oss:GetBucketInfo", "fail", f"{exc.code}: {exc.message}", exc.hint)


def _probe(run: _Run, action: str, call: Callable[[], str]) -> None:
    try:
        run.add(action, "ok", call())
    except (OssError, DnsProviderError) as exc:
        denied = isinstance(exc, OssAuthError | DnsAuthError) and exc.refused == "permission"
        run.add(action, "fail", f"{exc.code}: {exc.message}",
                f"grant {action} (policy below)" if denied else exc.hint)


def _dns(run: _Run, clients: service.Clients, domain: str | None) -> Zone | None:
    provider = clients.dns.id
    if domain is None:
        run.add(f"{provider}: zone", "skip", "no domain", "pass --domain to probe the DNS side")
        return None
    label = "alidns:DescribeDomains" if provider == "alidns" else f"{provider}: zone"
    try:
        zone = clients.dns.find_zone(domain)
    except ZoneNotFound as exc:
        run.add(label, "fail", exc.message, exc.hint)
        return None
    except DnsAuthError as exc:
        run.add(label, "fail", f"{exc.code}: {exc.message}",
                f"grant {label} (policy below)" if exc.refused == "permission"
                else "check the AccessKey")
        return None
    except DnsProviderError as exc:
        run.add(label, "fail", f"{exc.code}: {exc.message}", exc.hint)
        return None
    run.add(label, "ok", f"zone {zone.name} (NS {', '.join(zone.nameservers) or 'none'})")
    records = ("alidns:DescribeSubDomainRecords" if provider == "alidns"
               else f"{provider}: records")
    owner = f"_dnsauth.{domain}"
    _probe(run, records, lambda: f"{len(clients.dns.list_records(zone, owner, 'TXT'))} TXT "
           f"record(s) at {owner}")
    return zone


def _delegation(run: _Run, zone: Zone, servers: Sequence[str] | None) -> None:
    want = {n.lower().rstrip(".") for n in zone.nameservers}
    if not want:
        run.add("delegation", "skip", f"the provider names no nameservers for {zone.name}")
        return
    try:
        found = check_delegation(zone.name, servers)
    except ValueError as exc:
        run.add("delegation", "skip", str(exc))
        return
    got = found.ns_set()
    if not found.answers:
        errors = "; ".join(f"{k}: {v}" for k, v in found.errors.items())
        run.add("delegation", "warn", f"no server of {found.parent} answered ({errors})",
                "pass --parent-server ADDR[:PORT] to name them")
    elif got == want:
        run.add("delegation", "ok", f"{found.parent} delegates {zone.name} to "
                f"{', '.join(sorted(want))}")
    else:
        run.add("delegation", "fail", f"{found.parent} delegates {zone.name} to "
                f"{', '.join(sorted(got)) or 'nothing'}; the provider serves it from "
                f"{', '.join(sorted(want))}",
                "set the zone's NS records at the registrar to the provider's nameservers")

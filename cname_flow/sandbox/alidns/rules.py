"""Alidns request parameters, error answers and record validation rules for the sandbox.

Error codes, messages and HTTP statuses follow the public sources listed in
docs/sandbox-alidns.md; where the real service's answer is undocumented the guess is listed there.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from cname_flow.errors import InputError
from cname_flow.model import normalize_domain
from cname_flow.sandbox.state import DnsRecord, HostedZone, SandboxState

MAX_TTL = 86400
MAX_RECORDS_PER_RRSET = 90  # same RR + Type + Line (old AddDomainRecord error table)
MAX_TXT_LENGTH = 512
LINES = frozenset({"default", "telecom", "unicom", "mobile", "oversea", "edu", "drpeng", "btvn"})
RECORD_TYPES = frozenset({"A", "AAAA", "CNAME", "TXT", "MX", "NS", "CAA", "SRV"})
#: CNAME may share the zone apex (``@``) with these types; everywhere else it stands alone.
APEX_CNAME_COMPANIONS = frozenset({"TXT", "MX"})

_RR_LABEL = re.compile(r"^(\*|(?!-)[a-z0-9_*-]{1,63}(?<!-))$")
_HOST_LABEL = re.compile(r"^(?!-)[a-z0-9_-]{1,63}(?<!-)$")


class AlidnsError(Exception):
    """An Alidns error answer: JSON ``{RequestId, HostId, Code, Message, Recommend}``.

    Args:
        code: the ``Code`` field, e.g. ``"DomainRecordDuplicate"``.
        message: the ``Message`` field (never contains secrets).
        status: HTTP status, 400 unless the real service uses another.
    """

    def __init__(self, code: str, message: str, status: int = 400) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message
        self.status = status


def invalid_parameter(name: str) -> AlidnsError:
    """The generic bad-value answer ("Specified parameter TTL is not valid.")."""
    return AlidnsError("InvalidParameter", f"Specified parameter {name} is not valid.")


def record_not_found() -> AlidnsError:
    """Unknown RecordId, or one owned by another account."""
    return AlidnsError(
        "DomainRecordNotBelongToUser", "The DNS record does not exist in your account."
    )


@dataclass(frozen=True, slots=True)
class Params:
    """One request's operation parameters (decoded query and form body, signing keys removed)."""

    values: Mapping[str, str]

    def get(self, name: str, default: str | None = None) -> str | None:
        """The value, or ``default`` when absent or empty."""
        value = self.values.get(name)
        return value if value else default

    def required(self, name: str) -> str:
        """The value of a mandatory parameter.

        Raises:
            AlidnsError: ``Missing<Name>`` ("<Name> is mandatory for this action.").
        """
        value = self.values.get(name, "")
        if not value.strip():
            raise AlidnsError(f"Missing{name}", f"{name} is mandatory for this action.")
        return value

    def integer(self, name: str, default: int, low: int, high: int) -> int:
        """An integer parameter within ``[low, high]``, ``default`` when absent.

        Raises:
            AlidnsError: InvalidParameter when not an integer or out of range.
        """
        raw = self.get(name)
        if raw is None:
            return default
        try:
            value = int(raw)
        except ValueError:
            raise invalid_parameter(name) from None
        if not low <= value <= high:
            raise invalid_parameter(name)
        return value

    def choice(self, name: str, allowed: Iterable[str], default: str | None = None) -> str | None:
        """An enumerated parameter (compared upper-case), ``default`` when absent.

        Raises:
            AlidnsError: InvalidParameter when not one of ``allowed``.
        """
        raw = self.get(name)
        if raw is None:
            return default
        if raw.upper() not in allowed:
            raise invalid_parameter(name)
        return raw.upper()


def domain_name(raw: str) -> str:
    """A DomainName parameter as a lowercase A-label name.

    Raises:
        AlidnsError: InvalidDomainName.Format when it is not a domain name.
    """
    try:
        return normalize_domain(raw)
    except InputError:
        raise AlidnsError(
            "InvalidDomainName.Format", "The format of the specified domain name is invalid."
        ) from None


def host_name(raw: str) -> str:
    """A SubDomain / InputString as a lowercase name: like :func:`domain_name`, but labels may
    also hold ``_`` and ``*`` (``_dnsauth.img.example.com``).

    Raises:
        AlidnsError: InvalidDomainName.Format.
    """
    name = raw.strip().rstrip(".").lower()
    labels = name.split(".")
    if len(labels) < 2 or len(name) > 253 or not all(_RR_LABEL.match(x) for x in labels):
        return domain_name(raw)  # IDN input, or an error answer
    return name


def owned_zone(zones: Mapping[str, HostedZone], account: str, name: str) -> HostedZone:
    """The zone called ``name`` hosted by ``account``.

    Raises:
        AlidnsError: IncorrectDomainUser when the zone belongs to another account or ``name``
            is a subdomain of one of the account's zones; InvalidDomainName.NoExist otherwise.
    """
    zone = zones.get(name)
    if zone is not None and zone.owner == account:
        return zone
    parent_owned = any(
        name.endswith("." + z.name) and z.owner == account for z in zones.values()
    )
    if zone is not None or parent_owned:
        raise AlidnsError(
            "IncorrectDomainUser", "The domain name does not belong to the current user."
        )
    raise AlidnsError(
        "InvalidDomainName.NoExist",
        "The specified domain name does not exist. Refresh the page and try again.",
    )


def owned_record(state: SandboxState, account: str, record_id: str) -> tuple[HostedZone, DnsRecord]:
    """The zone and record for a RecordId the account owns.

    Raises:
        AlidnsError: DomainRecordNotBelongToUser for unknown or foreign records.
    """
    found = state.find_record(record_id.strip())
    if found is None or found[0].owner != account:
        raise record_not_found()
    return found


def normalize_rr(raw: str, zone: HostedZone) -> str:
    """A host record (RR) lowercased and checked: ``@``, or dot-separated labels.

    Labels are letters, digits, ``-``, ``_`` or ``*`` (1–63 characters, no leading or
    trailing ``-``); the full name must fit 253 characters.

    Raises:
        AlidnsError: InvalidRR.Format.
    """
    rr = raw.strip().lower()
    if rr == "@":
        return rr
    labels = rr.split(".")
    if not all(_RR_LABEL.match(label) for label in labels) or len(f"{rr}.{zone.name}") > 253:
        raise AlidnsError("InvalidRR.Format", "The format of the specified RR is invalid.")
    return rr


def check_ttl(raw: str | None, zone: HostedZone) -> int:
    """The TTL in seconds (default 600), within ``[zone.min_ttl, 86400]``.

    Raises:
        AlidnsError: InvalidParameter for a non-integer or non-positive TTL;
            QuotaExceeded.TTL outside the edition's range.
    """
    if raw is None or raw == "":
        ttl = 600
    else:
        try:
            ttl = int(raw)
        except ValueError:
            raise invalid_parameter("TTL") from None
        if ttl <= 0:
            raise invalid_parameter("TTL")
    if not zone.min_ttl <= ttl <= MAX_TTL:
        raise AlidnsError(
            "QuotaExceeded.TTL",
            "The specified TTL is invalid. A valid TTL must be in the range of "
            f"{zone.min_ttl} to {MAX_TTL}.",
        )
    return ttl


def check_type(raw: str) -> str:
    """The record type, upper-case.

    Raises:
        AlidnsError: InvalidParameter for a type the sandbox does not host.
    """
    rtype = raw.strip().upper()
    if rtype not in RECORD_TYPES:
        raise invalid_parameter("Type")
    return rtype


def check_line(raw: str | None) -> str:
    """The resolution line (default ``default``).

    Raises:
        AlidnsError: InvalidParameter for an unknown line.
    """
    line = raw or "default"
    if line not in LINES:
        raise invalid_parameter("Line")
    return line


def check_priority(raw: str | None, rtype: str) -> int | None:
    """MX preference 1–50 (default 5); None for other types.

    Raises:
        AlidnsError: InvalidParameter when out of range.
    """
    if rtype != "MX":
        return None
    return Params({"Priority": raw or ""}).integer("Priority", 5, 1, 50)


def _is_host(value: str) -> bool:
    name = value.rstrip(".").lower()
    return 0 < len(name) <= 253 and all(_HOST_LABEL.match(x) for x in name.split("."))


def _is_ip(value: str, version: int) -> bool:
    try:
        return ipaddress.ip_address(value).version == version
    except ValueError:
        return False


def check_value(raw: str, rtype: str) -> str:
    """The record value as stored: TXT loses one pair of outer double quotes.

    Raises:
        AlidnsError: InvalidParameter when the value does not fit the type.
    """
    value = raw.strip()
    if rtype == "TXT":
        if len(value) >= 2 and value[0] == value[-1] == '"':
            value = value[1:-1]
        ok = 0 < len(value) <= MAX_TXT_LENGTH
    elif rtype == "A":
        ok = _is_ip(value, 4)
    elif rtype == "AAAA":
        ok = _is_ip(value, 6)
    elif rtype in ("CNAME", "MX", "NS"):
        ok = _is_host(value)
    else:
        ok = bool(value)
    if not ok:
        raise invalid_parameter("Value")
    return value


def check_conflicts(
    zone: HostedZone, rr: str, rtype: str, line: str, value: str, skip: str | None = None
) -> None:
    """Duplicate, type-conflict and per-RRset quota checks against the zone's other records.

    Args:
        skip: the RecordId being updated (not compared with itself).

    Raises:
        AlidnsError: DomainRecordDuplicate, DomainRecordConflict or QuotaExceeded.Record.
    """
    same_host = [
        r for r in zone.records.values() if r.rr == rr and r.line == line and r.record_id != skip
    ]
    for other in same_host:
        if other.type == rtype and other.value == value:
            raise AlidnsError("DomainRecordDuplicate", "The DNS record already exists.")
    for other in same_host:
        if _conflicts(rr, rtype, other):
            raise AlidnsError(
                "DomainRecordConflict",
                "The DNS record conflicts with other records on the same host and line.",
            )
    if sum(1 for r in same_host if r.type == rtype) >= MAX_RECORDS_PER_RRSET:
        raise AlidnsError(
            "QuotaExceeded.Record",
            "The number of DNS records with the same host, type and line exceeds the limit.",
        )


def _conflicts(rr: str, rtype: str, other: DnsRecord) -> bool:
    if rtype == other.type:
        return rtype == "CNAME"  # one CNAME per host and line
    if "CNAME" not in (rtype, other.type):
        return False
    companion = other.type if rtype == "CNAME" else rtype
    return not (rr == "@" and companion in APEX_CNAME_COMPANIONS)

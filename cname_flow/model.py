"""Value objects shared by every module: bindings, CNAME tokens, ListCname rows, phases.

All domains inside cname-flow are IDNA A-labels, lowercase, without a trailing dot
(:func:`normalize_domain` makes them so). Times are aware UTC datetimes.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from urllib.parse import urlsplit

import idna

from cname_flow.errors import InputError

_LABEL = re.compile(r"^(?!-)[a-z0-9-]{1,63}(?<!-)$")
#: A last label that URL parsers (WHATWG "ends in a number") take for part of an IPv4 address.
_NUMERIC_TLD = re.compile(r"^([0-9]+|0x[0-9a-f]*)$")


def display_domain(name: str) -> str:
    """How a name is shown to a person: an IDN as its U-label with the A-label in parentheses
    (``例子.中国 (xn--fsqu00a.xn--fiqs8s)``), any other name (or text holding one, such as a
    binding key ``bucket/domain``) unchanged. Decoding is IDNA 2008 (RFC 5891, ``idna``); a
    label that does not decode is shown as it is stored.
    """
    head, sep, tail = name.rpartition("/")
    if "xn--" not in tail:
        return name
    try:
        unicode = idna.decode(tail)
    except (UnicodeError, ValueError):
        return name
    return f"{head}{sep}{unicode} ({tail})"


def _refuse_url_or_wildcard(raw: str, name: str) -> None:
    """A URL or a wildcard is a common first try; say what to give instead (exit 2)."""
    if "://" in name or "/" in name:
        host = urlsplit(name if "://" in name else f"//{name}").hostname or ""
        example = host or "www.example.com"
        raise InputError(f"domain {raw!r}: give the host name, not a URL: {example}",
                         hint="")
    if "*" in name:
        base = name.replace("*.", "").replace("*", "").strip(".") or "example.com"
        if name.startswith("*.") and "*" not in name[2:]:
            raise InputError(f"domain {raw!r}: a wildcard is not taken here; only bind and "
                             f"batch take one (*.{base}, a wildcard binding)")
        raise InputError(f"domain {raw!r}: '*' may only be the whole first label of a "
                         f"wildcard binding, as in *.{base}")


def normalize_domain(raw: str) -> str:
    """Return ``raw`` as a lowercase IDNA A-label name without a trailing dot.

    Accepts any case, one trailing dot, U-labels (``例子.中国``) or A-labels
    (``xn--fsqu00a.xn--fiqs8s``); labels are mapped as UTS 46 (non-transitional) does and
    checked as IDNA 2008 (RFC 5891) with the ``idna`` library, then as RFC 1123 host labels.

    Args:
        raw: the name as the user gave it (str, any script).

    Returns:
        The A-label name, e.g. ``"xn--fsqu00a.xn--fiqs8s"`` (ASCII, at most 253 characters).

    Raises:
        InputError: empty name, bad label, name longer than 253 bytes, a single label, an IP
            address (``1.2.3.4``, ``::1``), or a name whose last label is numeric (RFC 3696
            §2: a top-level domain is never all-numeric; ``0x7f`` counts as one, as URL
            parsers read such a name as an IPv4 address).
    """
    name = raw.strip()
    if name.endswith("."):
        name = name[:-1]
    if not name:
        raise InputError(f"domain {raw!r}: empty name")
    _refuse_url_or_wildcard(raw, name)
    if _is_ip(name):
        raise InputError(f"domain {raw!r}: an IP address cannot be a custom domain",
                         hint="give the host name that should serve the bucket")
    try:
        ascii_name = idna.encode(name, uts46=True).decode("ascii")
    except UnicodeError as exc:  # idna.IDNAError and the codec's own errors
        raise InputError(f"domain {raw!r}: not a valid IDNA name ({exc})") from exc
    ascii_name = ascii_name.lower()
    labels = ascii_name.split(".")
    if len(labels) < 2:
        raise InputError(f"domain {raw!r}: a custom domain needs at least two labels")
    if len(ascii_name) > 253:
        raise InputError(f"domain {raw!r}: longer than 253 bytes")
    for label in labels:
        if not _LABEL.match(label):
            raise InputError(f"domain {raw!r}: label {label!r} is not a valid host label")
    if _NUMERIC_TLD.match(labels[-1]):
        raise InputError(f"domain {raw!r}: the last label {labels[-1]!r} is numeric; an IP "
                         "address or a made-up name cannot be a custom domain")
    return ascii_name


def _is_ip(name: str) -> bool:
    """Whether ``name`` reads as an IPv4 or IPv6 address (brackets allowed around IPv6)."""
    try:
        ipaddress.ip_address(name[1:-1] if name.startswith("[") and name.endswith("]") else name)
    except ValueError:
        return False
    return True


def txt_name(domain: str) -> str:
    """The ownership-proof TXT record name OSS checks: ``_dnsauth.<domain>``; for a wildcard
    ``*.<base>``, ``_dnsauth.<base>`` (an assumption: the docs do not say; README)."""
    return f"_dnsauth.{domain.removeprefix('*.')}"


class Phase(StrEnum):
    """Where a binding stands in the flow (README, "How a binding flows")."""

    PENDING = "PENDING"
    TOKEN_READY = "TOKEN_READY"
    TXT_WRITTEN = "TXT_WRITTEN"
    TXT_VISIBLE = "TXT_VISIBLE"
    CNAME_PUT = "CNAME_PUT"
    VERIFIED = "VERIFIED"
    BOUND = "BOUND"
    FAILED = "FAILED"
    #: ``unbind`` removed the binding (DeleteCname, our DNS records deleted); a new ``bind``
    #: starts again at PENDING.
    UNBOUND = "UNBOUND"


class Step(StrEnum):
    """The step that leaves a phase."""

    CREATE_TOKEN = "create_token"
    WRITE_TXT = "write_txt"
    WAIT_PROPAGATION = "wait_propagation"
    PUT_CNAME = "put_cname"
    VERIFY = "verify"
    FINISH = "finish"


class AuxStep(StrEnum):
    """Journal events of a binding that are not steps of the machine."""

    START = "start"  # a binding seen for the first time (phase PENDING)
    TOKEN = "token"  # the expired-token back-edge: the token is cleared
    BACKOFF = "backoff"
    UNBIND = "unbind"
    CERT_REMOVE = "cert_remove"
    RECONCILE = "reconcile"
    JOB = "job"  # a compacted line of a record with no last step
    DNS_CHECK = "dns_check"  # manual mode: one check of the customer's record (findings)
    TOKEN_RENEW = "token_renew"  # manual mode: the CNAME token re-minted before/at expiry


@dataclass(frozen=True, slots=True)
class CertificateSpec:
    """The certificate a binding should carry: either PEM files or a CAS certificate id.

    Attributes:
        cert_file: PEM file, leaf first, chain allowed.
        key_file: PEM private key matching the leaf.
        cert_id: CAS certificate id with its region suffix, e.g. ``"4930000-cn-hangzhou"``.
    """

    cert_file: Path | None = None
    key_file: Path | None = None
    cert_id: str | None = None


@dataclass(frozen=True, slots=True)
class BindingOptions:
    """Per-binding options.

    Attributes:
        route: also upsert ``<domain> CNAME <route_target>`` in the zone.
        route_target: CNAME target; ``None`` means ``<bucket>.oss-<region>.aliyuncs.com``.
        remove_txt: delete our ``_dnsauth`` record after verification.
        force_cert: send ``Force`` instead of ``PreviousCertId`` when rotating.
    """

    route: bool = False
    route_target: str | None = None
    remove_txt: bool = False
    force_cert: bool = False


@dataclass(frozen=True, slots=True)
class Binding:
    """Desired state of one domain on one bucket.

    Attributes:
        domain: A-label, lowercase, no trailing dot.
        bucket: OSS bucket name.
        region: OSS region id, e.g. ``"cn-hangzhou"``; ``""`` until the bucket's own region
            is learned (none was given).
        certificate: certificate to attach, or ``None``.
        options: route / TXT / certificate options.
    """

    domain: str
    bucket: str
    region: str
    certificate: CertificateSpec | None = None
    options: BindingOptions = field(default_factory=BindingOptions)

    @property
    def key(self) -> str:
        """Journal key: ``"<bucket>/<domain>"``."""
        return f"{self.bucket}/{self.domain}"

    @property
    def route_target(self) -> str:
        """The CNAME target the domain should point at for ``--route``: the option, else the
        bucket's public endpoint in its region, ``<bucket>.oss-<region>.aliyuncs.com``
        (https://www.alibabacloud.com/help/en/oss/user-guide/regions-and-endpoints).

        Raises:
            ValueError: no option and the region is not known yet (``""``).
        """
        if self.options.route_target:
            return self.options.route_target
        if not self.region:
            raise ValueError(f"{self.key}: the bucket's region is not known yet")
        return f"{self.bucket}.oss-{self.region}.aliyuncs.com"


@dataclass(frozen=True, slots=True)
class CnameToken:
    """A CNAME token from CreateCnameToken / GetCnameToken.

    Attributes:
        bucket: bucket the token was issued for.
        domain: custom domain (A-label).
        token: the value to publish as TXT ``_dnsauth.<domain>``.
        expires_at: aware UTC datetime (72 h after creation).
    """

    bucket: str
    domain: str
    token: str
    expires_at: datetime

    def expired(self, now: datetime | None = None, *, margin_s: float = 0.0) -> bool:
        """True when the token is past (or within ``margin_s`` seconds of) its expiry."""
        now = now or datetime.now(UTC)
        return (self.expires_at - now).total_seconds() <= margin_s


@dataclass(frozen=True, slots=True)
class CertificateInfo:
    """The Certificate block of a ListCname row.

    Attributes:
        type: ``"Upload"`` or ``"CAS"``.
        cert_id: OSS/CAS certificate id.
        status: ``"Enabled"`` normally.
        fingerprint: SHA-1 of the leaf DER, upper-case colon-hex (``"AB:CD:..."``).
        valid_start: aware UTC datetime or None.
        valid_end: aware UTC datetime or None.
    """

    type: str
    cert_id: str
    status: str
    fingerprint: str
    valid_start: datetime | None
    valid_end: datetime | None


@dataclass(frozen=True, slots=True)
class CnameEntry:
    """One row of ListCname.

    Attributes:
        domain: A-label domain.
        status: ``"Enabled"`` or ``"Disabled"``.
        last_modified: aware UTC datetime or None.
        certificate: certificate block, or None when no certificate is bound.
    """

    domain: str
    status: str
    last_modified: datetime | None
    certificate: CertificateInfo | None = None


@dataclass(frozen=True, slots=True)
class CertificateRequest:
    """The CertificateConfiguration sent with PutCname (OSS API).

    Exactly one of (``cert_id``), (``certificate`` + ``private_key``) or ``delete_certificate``.
    ``private_key`` is PEM text; it is never logged or journaled (``repr`` hides it).

    Attributes:
        cert_id: CAS certificate id with region suffix.
        certificate: PEM chain, leaf first.
        private_key: PEM private key.
        previous_cert_id: CertId bound now (compare-and-swap), or None for a first attach.
        force: overwrite whatever is bound (never together with ``delete_certificate``).
        delete_certificate: unbind the certificate.
    """

    cert_id: str | None = None
    certificate: str | None = None
    private_key: str | None = field(default=None, repr=False)
    previous_cert_id: str | None = None
    force: bool = False
    delete_certificate: bool = False

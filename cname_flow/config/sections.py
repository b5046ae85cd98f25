"""Sections of :class:`cname_flow.config.settings.Settings`: frozen pydantic models with defaults.

Units are in the names: ``*_s`` seconds, ``payload`` bytes, ``rate_limits`` requests per second.
Defaults come from: the OSS SDK for Python V2 (connect 10 s, read/write 20 s;
https://www.alibabacloud.com/help/en/oss/developer-reference/configure-client-using-oss-sdk-for-python-v2),
the Alibaba Cloud SDK V2.0 for Python behind Alidns (connect 5 s, read 10 s;
https://www.alibabacloud.com/help/en/sdk/developer-reference/configure-a-timeout-period),
the checker's own :class:`~cname_flow.propagation.model.PropagationPolicy` (this module's
``propagation`` defaults are read from it, not restated), and the Alidns API quotas of
:mod:`cname_flow.quotas`.

The ``ownership`` section is the one source of the PutCname retry bounds:
:class:`cname_flow.workflow.putcname.OwnershipPolicy` reads its defaults from it. Config sits
between the two: it knows the checker's pure values below it and nothing of the workflow above.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    PositiveFloat,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError

from cname_flow import names
from cname_flow.errors import InputError
from cname_flow.propagation.model import PropagationPolicy, parse_address
from cname_flow.quotas import ALIDNS_RATE_LIMITS

_ENV_NAME = r"^[A-Za-z_][A-Za-z0-9_]*$"


def _named(check: Callable[[str], str]) -> Callable[[str], str]:
    """A field validator applying ``check``, the rule of :mod:`cname_flow.names` for that kind
    of name (the command line's own), so the config accepts exactly what a command would.

    The validator returns what ``check`` returns (maybe normalised) and turns its
    :class:`InputError` into the ``ValueError`` pydantic collects, with the same words (and
    hint); :func:`cname_flow.config.settings.load_settings` prefixes ``<file>:<line>: <key>``.
    """
    def validate(value: str) -> str:
        try:
            return check(value)
        except InputError as exc:
            raise ValueError(f"{exc.message}; {exc.hint}" if exc.hint else exc.message) from None
    return validate


#: An OSS or Alidns region id (:func:`cname_flow.names.check_region`).
Region = Annotated[str, AfterValidator(_named(names.check_region))]
#: An OSS bucket name (:func:`cname_flow.names.check_bucket`).
Bucket = Annotated[str, AfterValidator(_named(names.check_bucket))]
#: A ``--route`` CNAME target, normalised (:func:`cname_flow.names.check_route_target`).
RouteTarget = Annotated[str, AfterValidator(_named(names.check_route_target))]
Port = Annotated[int, Field(ge=1, le=65535)]

#: Client-side pacing, requests/s: the documented Alidns quotas, plus guesses where nothing is
#: published (DescribeDomainInfo, DescribeDomains, the OSS CNAME operations: 100 each, kept well
#: under what the services serve).
DEFAULT_RATE_LIMITS: dict[str, float] = {
    **ALIDNS_RATE_LIMITS,
    "DescribeDomainInfo": 100,
    "DescribeDomains": 100,
    "CreateCnameToken": 100,
    "GetCnameToken": 100,
    "PutCname": 100,
    "ListCname": 100,
    "DeleteCname": 100,
}


class SettingsModel(BaseModel):
    """Base of every settings section: frozen, unknown keys refused."""

    model_config = ConfigDict(extra="forbid", frozen=True)


def _host_port(value: str, *, what: str) -> str:
    """Check ``host`` or ``host:port`` (IPv6 in brackets); return it unchanged."""
    try:
        parts = urlsplit(f"//{value}")
        port = parts.port
    except ValueError:
        raise ValueError(f"{what}: the port is not a number in 1..65535") from None
    host = parts.hostname or ""
    if not host or parts.path or parts.query or parts.fragment or parts.username:
        raise ValueError(f"{what}: expected host or host:port")
    if port == 0:
        raise ValueError(f"{what}: the port is not a number in 1..65535")
    try:
        ipaddress.ip_address(host)
    except ValueError:
        try:
            names.check_host(host)
        except InputError as exc:
            raise ValueError(f"{what}: {host!r} is neither a host name nor an IP address "
                             f"({exc.message})") from None
    return value


class OssSettings(SettingsModel):
    """How to reach OSS (alibabacloud-oss-v2 ``Config``).

    Attributes:
        region: OSS region id, also the V4 signing scope.
        endpoint: ``None`` → the SDK default for ``region`` over https (production). Otherwise
            ``host[:port]`` (https) or ``http://host:port`` / ``https://host:port``.
        use_path_style: ``None`` (default) → inferred from the endpoint: path-style
            (``https://host/<bucket>/?cname``) off ``*.aliyuncs.com``, virtual-hosted
            (``https://<bucket>.host/?cname``) on it. ``True``/``False`` forces one style, e.g.
            ``True`` for a proxy in front of OSS without wildcard DNS.
        signature_version: ``"v4"`` (SDK default) or ``"v1"``.
        connect_timeout_s: TCP connect timeout, seconds (SDK default 10).
        read_timeout_s: read timeout, seconds (SDK default 20).
    """

    region: Region = "cn-hangzhou"
    endpoint: str | None = None
    use_path_style: bool | None = None
    signature_version: Literal["v4", "v1"] = "v4"
    connect_timeout_s: PositiveFloat = 10.0
    read_timeout_s: PositiveFloat = 20.0

    @field_validator("endpoint")
    @classmethod
    def _endpoint(cls, value: str | None) -> str | None:
        if value is None:
            return None
        scheme, sep, rest = value.partition("://")
        if sep and scheme.lower() not in ("http", "https"):
            raise ValueError("the scheme must be http or https")
        _host_port(rest.rstrip("/") if sep else value, what="endpoint")
        return value


class AlidnsSettings(SettingsModel):
    """How to reach Alidns (alibabacloud-tea-openapi ``Config``).

    Attributes:
        endpoint: ``host[:port]`` with NO scheme (the SDK signs the endpoint as the host header);
            ``None`` → :attr:`effective_endpoint` derived from ``region``.
        protocol: ``"https"`` (production) or ``"http"`` (the sandbox).
        region: Alidns region id.
        connect_timeout_s: seconds (SDK default 5).
        read_timeout_s: seconds (SDK default 10).
    """

    endpoint: str | None = None
    protocol: Literal["https", "http"] = "https"
    region: Region = "cn-hangzhou"
    connect_timeout_s: PositiveFloat = 5.0
    read_timeout_s: PositiveFloat = 10.0

    @field_validator("endpoint")
    @classmethod
    def _endpoint(cls, value: str | None) -> str | None:
        if value is None:
            return None
        if "://" in value:
            raise ValueError("give host[:port] without a scheme; set protocol: http|https instead")
        return _host_port(value, what="endpoint")

    @property
    def effective_endpoint(self) -> str:
        """The endpoint to use: the configured one or the production default for the region."""
        if self.endpoint is not None:
            return self.endpoint
        if self.region == "cn-hangzhou":
            return "alidns.aliyuncs.com"
        return f"alidns.{self.region}.aliyuncs.com"


class DnsSettings(SettingsModel):
    """Which DNS provider publishes the ``_dnsauth`` TXT record (and the ``--route`` CNAME).

    Attributes:
        provider: a provider id of :data:`cname_flow.dns.PROVIDERS`: ``"alidns"`` (the
            ``alidns`` section) or ``"rfc2136"`` (the ``rfc2136`` section). An unknown id is
            refused, naming the known ones, when the clients are built
            (:func:`cname_flow.dns.build_provider`).
        zones: a provider id per zone, for zones whose DNS is elsewhere: ``{zone: provider}``;
            a domain takes the provider of the longest listed zone it lies in, else
            ``provider`` (:func:`cname_flow.dns.provider_for`). The id ``"manual"`` means a
            person adds the TXT record (a customer's DNS); cname-flow writes nothing there.
    """

    provider: Annotated[str, Field(pattern=r"^[a-z][a-z0-9_-]*$")] = "alidns"
    zones: dict[str, Annotated[str, Field(pattern=r"^[a-z][a-z0-9_-]*$")]] = {}

    @field_validator("zones")
    @classmethod
    def _zone_names(cls, value: dict[str, str]) -> dict[str, str]:
        out: dict[str, str] = {}
        for zone, provider in value.items():
            name = zone.strip().rstrip(".").lower()
            if not name or " " in name or ".." in name:
                raise ValueError(f"zone {zone!r}: not a DNS zone name")
            out[name] = provider
        return out


class EnvRef(SettingsModel):
    """A reference to an environment variable holding a secret: ``{env: NAME, optional: false}``."""

    env: Annotated[str, Field(pattern=_ENV_NAME)]
    optional: bool = False


def _env_ref(value: Any) -> Any:
    """Accept ``{env: NAME}`` or ``"env/NAME"``; refuse anything else without echoing it."""
    if value is None or isinstance(value, dict | EnvRef):
        return value
    if isinstance(value, str) and value.startswith("env/"):
        return {"env": value[len("env/") :]}
    raise PydanticCustomError(
        "literal_secret",
        "a literal value is not allowed here (it is not shown); secrets come only from the "
        "environment: write {env: NAME} and export NAME",
    )


class CredentialSettings(SettingsModel):
    """Where the AccessKey comes from. Only references; the secret itself never is a setting.

    All ``None`` (the default) means: ``OSS_ACCESS_KEY_ID``/``OSS_ACCESS_KEY_SECRET``, then
    ``ALIBABA_CLOUD_ACCESS_KEY_ID``/``..._SECRET``, then the alibabacloud-credentials chain.
    """

    access_key_id: EnvRef | None = None
    access_key_secret: EnvRef | None = None
    security_token: EnvRef | None = None

    @field_validator("access_key_id", "access_key_secret", "security_token", mode="before")
    @classmethod
    def _refs(cls, value: Any) -> Any:
        return _env_ref(value)

    @model_validator(mode="after")
    def _pair(self) -> CredentialSettings:
        if (self.access_key_id is None) != (self.access_key_secret is None):
            raise ValueError("give access_key_id and access_key_secret together, or neither")
        if self.security_token is not None and self.access_key_id is None:
            raise ValueError("security_token needs access_key_id and access_key_secret")
        return self

    @property
    def explicit(self) -> bool:
        """True when the configuration names the environment variables itself."""
        return self.access_key_id is not None


def _address(value: str) -> str:
    """Check one nameserver address with the checker's own parser; return it unchanged."""
    try:
        parse_address(value, 53)
    except ValueError:
        raise ValueError(f"{value!r} is not an address (ip, ip:port or [ipv6]:port)") from None
    return value


#: A nameserver's name, lowercase without a trailing dot (:func:`cname_flow.names.check_host`).
NameserverHost = Annotated[str, AfterValidator(_named(names.check_host))]
Address = Annotated[str, AfterValidator(_address)]


#: The checker's own defaults are the settings' defaults (one source of truth).
_POLICY = PropagationPolicy()


class PropagationSettings(SettingsModel):
    """Polling the authoritative nameservers; fields and defaults are the checker's.

    The same fields as :class:`~cname_flow.propagation.model.PropagationPolicy`, whose defaults
    these are; this model adds range checks and ``file:line`` errors. :meth:`to_policy` converts.

    Attributes:
        query_timeout_s / tcp_timeout_s: per-query timeouts, UDP then the TCP retry, seconds.
        payload: EDNS UDP payload size, bytes.
        first_poll_s: wait after the write before the first round, seconds.
        backoff_*: ``wait_exponential_jitter(initial, exp_base, max, jitter)`` between rounds.
        confirmations: green rounds needed, at least ``confirmation_gap_s`` seconds apart.
        deadline_s: give up (PropagationTimeout) after this many seconds.
        max_parallel: queries in flight at once.
        strict: lame or unreachable nameservers fail the check instead of warning.
        dns_port: port of the authoritative servers (53; injectable for the sandbox).
        nameserver_addresses: NS host name → ``["ip", "ip:port", "[v6]:port"]``, overriding
            address lookup (split horizon, sandbox).
    """

    query_timeout_s: PositiveFloat = _POLICY.query_timeout_s
    tcp_timeout_s: PositiveFloat = _POLICY.tcp_timeout_s
    payload: Annotated[int, Field(ge=512, le=65535)] = _POLICY.payload
    first_poll_s: Annotated[float, Field(ge=0)] = _POLICY.first_poll_s
    backoff_initial_s: PositiveFloat = _POLICY.backoff_initial_s
    backoff_exp_base: Annotated[float, Field(ge=1)] = _POLICY.backoff_exp_base
    backoff_max_s: PositiveFloat = _POLICY.backoff_max_s
    backoff_jitter_s: Annotated[float, Field(ge=0)] = _POLICY.backoff_jitter_s
    confirmations: Annotated[int, Field(ge=1)] = _POLICY.confirmations
    confirmation_gap_s: Annotated[float, Field(ge=0)] = _POLICY.confirmation_gap_s
    deadline_s: PositiveFloat = _POLICY.deadline_s
    max_parallel: Annotated[int, Field(ge=1, le=1024)] = _POLICY.max_parallel
    strict: bool = _POLICY.strict
    dns_port: Port = _POLICY.dns_port
    nameserver_addresses: dict[NameserverHost, Annotated[list[Address], Field(min_length=1)]] = (
        Field(default_factory=dict)
    )

    @model_validator(mode="after")
    def _backoff(self) -> PropagationSettings:
        if self.backoff_initial_s > self.backoff_max_s:
            raise ValueError("backoff_initial_s must not exceed backoff_max_s")
        return self

    def to_policy(self) -> PropagationPolicy:
        """The checker's :class:`~cname_flow.propagation.model.PropagationPolicy` from this section.

        Every field carries over under its own name (the two declare the same fields, and the
        settings' defaults are the policy's); the addresses become tuples, as the frozen policy
        wants. :meth:`PropagationPolicy.overrides_for` answers the per-host address lookups.
        """
        fields = self.model_dump(exclude={"nameserver_addresses"})
        addresses = {host: tuple(addrs) for host, addrs in self.nameserver_addresses.items()}
        return PropagationPolicy(**fields, nameserver_addresses=addresses)


class OwnershipSettings(SettingsModel):
    """Retrying PutCname while OSS answers NeedVerifyDomainOwnership.

    ``wait_exponential_jitter(initial_s, max=max_s, exp_base, jitter=jitter_s)`` until
    ``max(min_window_s, cache_floor + 15)`` seconds have passed, never beyond ``cap_s``, where
    ``cache_floor`` is a TTL the OSS verifier's resolver may still be caching (RFC 2181 §8 for
    positive answers, RFC 2308 §5 for negative ones). PutCname:
    https://www.alibabacloud.com/help/en/oss/developer-reference/putcname. All values are seconds.

    These are the single source of the bounds: the workflow's
    :class:`~cname_flow.workflow.putcname.OwnershipPolicy` takes its defaults from here.
    """

    initial_s: PositiveFloat = 5.0
    exp_base: Annotated[float, Field(ge=1)] = 2.0
    max_s: PositiveFloat = 60.0
    jitter_s: Annotated[float, Field(ge=0)] = 2.0
    min_window_s: PositiveFloat = 60.0
    cap_s: PositiveFloat = 900.0

    @model_validator(mode="after")
    def _order(self) -> OwnershipSettings:
        if self.initial_s > self.max_s:
            raise ValueError("initial_s must not exceed max_s")
        if self.min_window_s > self.cap_s:
            raise ValueError("min_window_s must not exceed cap_s")
        return self


class JournalSettings(SettingsModel):
    """Where the store of record lives, and how long a busy binding is waited for.

    Attributes:
        dir: the store's directory; a relative ``dir`` is resolved against the config file's
            folder.
        lock_wait_s: seconds a command waits for a binding another process is driving before it
            exits 75 naming that process (0: do not wait).
    """

    dir: Path = Field(default=Path(".cname-flow"), validate_default=True)
    lock_wait_s: Annotated[float, Field(ge=0, le=86400)] = 30.0

    @field_validator("dir")
    @classmethod
    def _resolve(cls, value: Path, info: ValidationInfo) -> Path:
        base = (info.context or {}).get("base_dir")
        if value.is_absolute() or base is None:
            return value
        return Path(base) / value


class StoreSettings(SettingsModel):
    """Which store of record: the JSON journal under ``journal.dir`` (default), or PostgreSQL.

    Attributes:
        url: ``postgresql://[user@]host[:port]/database[?…]`` (libpq URI,
            https://www.postgresql.org/docs/current/libpq-connect.html#LIBPQ-CONNSTRING):
            bindings, jobs and the DBOS workers' queue live in that database. ``None``: the JSON
            journal. Also ``CNAME_FLOW_STORE_URL``. A password belongs in ``PGPASSWORD`` or
            ``~/.pgpass``; one given in the URL is accepted but never shown.
    """

    url: str | None = None

    @field_validator("url")
    @classmethod
    def _postgres(cls, value: str | None) -> str | None:
        if value is None or value == "":
            return None
        scheme = value.split("://", 1)[0].lower() if "://" in value else ""
        if scheme not in ("postgresql", "postgres"):
            raise ValueError("must be a postgresql:// URL (libpq URI), e.g. "
                             "postgresql://cname@db.internal:5432/cname_flow")
        return value


class DefaultSettings(SettingsModel):
    """Values a binding takes when the command line or the manifest leaves them out.

    Attributes:
        bucket: OSS bucket name.
        region: fallback region of ``reconcile`` manifests (``None`` → ``oss.region``).
            ``bind`` and ``batch`` do not take it: a binding naming no region takes its
            bucket's own, learned from OSS (GetBucketInfo); one naming another is refused.
        txt_ttl: TTL of the ``_dnsauth`` TXT record, seconds; ``None`` → the provider's minimum.
        route_target: CNAME target for ``--route``, a lowercase A-label host name;
            ``None`` → ``<bucket>.oss-<region>.aliyuncs.com``.

    Each name is checked by the rule ``bind`` applies to the same name
    (:mod:`cname_flow.names`), so a default the config accepts is one ``bind`` accepts.
    """

    bucket: Bucket | None = None
    region: Region | None = None
    txt_ttl: Annotated[int, Field(ge=1, le=86400)] | None = None
    route_target: RouteTarget | None = None


class BatchSettings(SettingsModel):
    """Batch runs: bindings driven at once and client-side rate limits (requests/s per API).

    ``rate_limits`` given in the file are merged over :data:`DEFAULT_RATE_LIMITS`.
    """

    concurrency: Annotated[int, Field(ge=1, le=10000)] = 64
    rate_limits: dict[str, PositiveFloat] = Field(default_factory=lambda: dict(DEFAULT_RATE_LIMITS))

    @field_validator("rate_limits", mode="before")
    @classmethod
    def _merge(cls, value: Any) -> Any:
        if isinstance(value, dict):
            return {**DEFAULT_RATE_LIMITS, **value}
        return value

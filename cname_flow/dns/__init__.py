"""DNS provider adapters behind the :class:`~cname_flow.dns.base.DnsProvider` port; their registry.

:func:`build_provider` is the one place that turns a provider id into an adapter, and
:func:`build_dns` the one that turns the ``dns`` settings into the DNS port (one adapter, or a
router by zone when ``dns.zones`` names others): the one-shot commands
(:meth:`cname_flow.service.Clients.from_settings`) and batch jobs
(:func:`cname_flow.batch.jobs.batch_clients`) both go through it. Each entry of
:data:`PROVIDERS` imports its adapter when called, so importing this package (as the workflow
does, for the port in :mod:`cname_flow.dns.base`) loads no vendor SDK.

Known providers: ``"alidns"`` (Alibaba Cloud DNS, OpenAPI 2015-01-09,
https://www.alibabacloud.com/help/en/dns/api-alidns-2015-01-09-dir), configured by the
``alidns`` settings section; ``"rfc2136"`` (dynamic updates with TSIG to a primary such as
BIND 9 or Knot, :mod:`cname_flow.dns.rfc2136`), configured by the ``rfc2136`` section, its
secret read from the environment variable that section names; ``"powerdns"`` (the HTTP API
of a PowerDNS Authoritative Server, :mod:`cname_flow.dns.powerdns`), configured by the
``powerdns`` section, its API key read likewise; ``"cloudflare"`` (Cloudflare's API v4
through its official SDK, :mod:`cname_flow.dns.cloudflare`), configured by the ``cloudflare``
section, its API token read likewise.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, TypedDict

from cname_flow.errors import ConfigError, InputError

if TYPE_CHECKING:
    from cname_flow.config import Credentials, Settings
    from cname_flow.config.sections import AlidnsSettings, EnvRef
    from cname_flow.dns.base import DnsProvider
    from cname_flow.errors import DnsProviderError

#: Called with an API action name before each attempt (client-side rate limiting, counting).
RateLimit = Callable[[str], None]

#: Called with the action name and the mapped error after each failed attempt (counting).
ErrorHook = Callable[[str, "DnsProviderError"], None]

#: Builds one provider: ``(settings, credentials, rate_limiter, on_error, env) -> DnsProvider``;
#: ``env`` is the environment mapping its secret variable is read from (never ``os.environ``
#: behind the caller's back).
ProviderFactory = Callable[
    ["Settings", "Credentials", "RateLimit | None", "ErrorHook | None", Mapping[str, str]],
    "DnsProvider",
]


class AlidnsOptions(TypedDict):
    """Keyword arguments of :class:`cname_flow.dns.alidns.Alidns` that come from the settings."""

    endpoint: str | None
    region: str
    protocol: str
    connect_timeout_s: float
    read_timeout_s: float


def alidns_options(section: AlidnsSettings) -> AlidnsOptions:
    """The ``alidns`` settings section as :class:`~cname_flow.dns.alidns.Alidns` keywords.

    Args:
        section: the validated ``alidns`` section (endpoint ``host[:port]`` or ``None``,
            protocol, region id, timeouts in seconds).
    """
    return AlidnsOptions(
        endpoint=section.endpoint,
        region=section.region,
        protocol=section.protocol,
        connect_timeout_s=section.connect_timeout_s,
        read_timeout_s=section.read_timeout_s,
    )


def _secret(settings: Settings, section: str, key: str, ref: EnvRef,
            env: Mapping[str, str]) -> str:
    """The value of the variable ``ref`` names, read from ``env``.

    Raises:
        SecretNotFound: the variable is unset or empty in ``env`` (file:line of the setting).
    """
    from cname_flow.config.credentials import read_secret

    return read_secret(ref, env, at=settings.where(section, key), setting=f"{section}.{key}",
                       source=str(settings.source or ""))


def _alidns(
    settings: Settings,
    credentials: Credentials,
    rate_limiter: RateLimit | None,
    on_error: ErrorHook | None,
    env: Mapping[str, str],
) -> DnsProvider:
    from cname_flow.dns.alidns import Alidns  # here, so the registry loads no SDK at import

    return Alidns(
        credentials=credentials,
        rate_limiter=rate_limiter,
        on_error=on_error,
        **alidns_options(settings.alidns),
    )


def _require(settings: Settings, name: str, keys: Sequence[str]) -> None:
    """Refuse a provider whose section ``name`` leaves any of ``keys`` unset.

    Raises:
        ConfigError: one reason per unset key, each naming where it would be set
            (``"config.yaml:3: powerdns.api_key: required when the powerdns provider is used"``).
    """
    section = getattr(settings, name)
    missing = [f"{settings.where(name, key)}: {name}.{key}: required when the {name} provider "
               "is used" for key in keys if getattr(section, key) is None]
    if missing:
        raise ConfigError(missing, source=str(settings.source or ""))


def _rfc2136(
    settings: Settings,
    credentials: Credentials,
    rate_limiter: RateLimit | None,
    on_error: ErrorHook | None,
    env: Mapping[str, str],
) -> DnsProvider:
    """The RFC 2136 adapter from the ``rfc2136`` section; the TSIG secret is read from the
    variable ``rfc2136.secret`` names, in ``env`` (the AccessKey is not used).

    Raises:
        ConfigError: ``rfc2136.host``, ``key_name`` or ``secret`` is not set, or the secret
            is not base64 (never shown).
        SecretNotFound: the variable ``rfc2136.secret`` names is unset or empty.
    """
    from cname_flow.dns.rfc2136 import Rfc2136

    section, source = settings.rfc2136, str(settings.source or "")
    _require(settings, "rfc2136", ("host", "key_name", "secret"))
    assert section.host is not None and section.key_name is not None
    assert section.secret is not None
    secret = _secret(settings, "rfc2136", "secret", section.secret, env)
    try:
        return Rfc2136(host=section.host, port=section.port, key_name=section.key_name,
                       secret=secret, algorithm=section.algorithm, min_ttl=section.min_ttl,
                       timeout_s=section.timeout_s, rate_limiter=rate_limiter,
                       on_error=on_error)
    except InputError as exc:  # the secret is not base64; the message never shows it
        raise ConfigError([f"{settings.where('rfc2136', 'secret')}: rfc2136.secret: "
                           f"environment variable {section.secret.env}: {exc.message}"],
                          source=source) from None


def _powerdns(
    settings: Settings,
    credentials: Credentials,
    rate_limiter: RateLimit | None,
    on_error: ErrorHook | None,
    env: Mapping[str, str],
) -> DnsProvider:
    """The PowerDNS HTTP API adapter from the ``powerdns`` section; the API key is read from
    the variable ``powerdns.api_key`` names, in ``env`` (the AccessKey is not used).

    Raises:
        ConfigError: ``powerdns.api_url`` or ``api_key`` is not set.
        SecretNotFound: the variable ``powerdns.api_key`` names is unset or empty.
    """
    from cname_flow.dns.powerdns import PowerDns

    section = settings.powerdns
    _require(settings, "powerdns", ("api_url", "api_key"))
    assert section.api_url is not None and section.api_key is not None
    api_key = _secret(settings, "powerdns", "api_key", section.api_key, env)
    return PowerDns(api_url=section.api_url, api_key=api_key, server_id=section.server_id,
                    min_ttl=section.min_ttl, connect_timeout_s=section.connect_timeout_s,
                    read_timeout_s=section.read_timeout_s, rate_limiter=rate_limiter,
                    on_error=on_error)


def _cloudflare(
    settings: Settings,
    credentials: Credentials,
    rate_limiter: RateLimit | None,
    on_error: ErrorHook | None,
    env: Mapping[str, str],
) -> DnsProvider:
    """The Cloudflare API v4 adapter from the ``cloudflare`` section; the API token is read from
    the variable ``cloudflare.api_token`` names, in ``env`` (the AccessKey is not used).
    Imports the ``cloudflare`` SDK (only here, when the provider is built).

    Raises:
        ConfigError: ``cloudflare.api_token`` is not set.
        SecretNotFound: the variable ``cloudflare.api_token`` names is unset or empty.
    """
    section = settings.cloudflare
    _require(settings, "cloudflare", ("api_token",))
    assert section.api_token is not None
    api_token = _secret(settings, "cloudflare", "api_token", section.api_token, env)
    from cname_flow.dns.cloudflare import DEFAULT_BASE_URL, Cloudflare

    return Cloudflare(api_token=api_token, base_url=section.base_url or DEFAULT_BASE_URL,
                      min_ttl=section.min_ttl, connect_timeout_s=section.connect_timeout_s,
                      read_timeout_s=section.read_timeout_s, rate_limiter=rate_limiter,
                      on_error=on_error)


#: Provider id (the ``dns.provider`` setting) → factory.
PROVIDERS: Mapping[str, ProviderFactory] = {
    "alidns": _alidns,
    "rfc2136": _rfc2136,
    "powerdns": _powerdns,
    "cloudflare": _cloudflare,
}


#: The provider id of zones whose TXT record a person adds (``dns.zones: {zone: manual}``).
MANUAL = "manual"


def provider_for(settings: Settings, domain: str) -> str:
    """The provider id that holds ``domain``'s zone: the ``dns.zones`` entry of the longest zone
    ``domain`` lies in (at a label boundary), else ``dns.provider``.

    Args:
        settings: loaded settings.
        domain: a domain name (any case, trailing dot allowed).

    Returns:
        A provider id such as ``"alidns"``, ``"rfc2136"`` or :data:`MANUAL`.
    """
    name = domain.strip().rstrip(".").lower()
    best: tuple[int, str] | None = None
    for zone, provider in settings.dns.zones.items():
        if (name == zone or name.endswith("." + zone)) and (best is None or len(zone) > best[0]):
            best = (len(zone), provider)
    return best[1] if best is not None else settings.dns.provider


def build_provider(
    kind: str,
    settings: Settings,
    credentials: Credentials,
    *,
    rate_limiter: RateLimit | None = None,
    on_error: ErrorHook | None = None,
    env: Mapping[str, str] | None = None,
) -> DnsProvider:
    """Build the DNS provider adapter named ``kind`` from the settings.

    Args:
        kind: a provider id, a key of :data:`PROVIDERS` (usually ``settings.dns.provider``).
        settings: loaded settings; the provider reads its own section (``alidns`` for Alidns).
        credentials: the resolved AccessKey.
        rate_limiter: called with the action name before every API attempt, retries included.
        on_error: called with the action name and the mapped error after every failed attempt
            (a batch job counts throttled answers through it); it must not raise.
        env: the environment the provider's secret variable (``rfc2136.secret``,
            ``powerdns.api_key``, ``cloudflare.api_token``) is read from: the mapping the
            caller resolved its credentials from; ``None`` for ``os.environ``.

    Returns:
        The adapter, typed as the :class:`~cname_flow.dns.base.DnsProvider` port.

    Raises:
        ConfigError: ``kind`` is not a known provider; the reason gives where ``dns.provider``
            was set and lists the known ids; or the provider's own settings are missing.
        SecretNotFound: the provider's secret variable is unset or empty in ``env``.
    """
    factory = PROVIDERS.get(kind)
    if factory is None:
        known = ", ".join(sorted(PROVIDERS))
        where = settings.where("dns", "provider")
        raise ConfigError(
            [f"{where}: dns.provider: unknown DNS provider {kind!r} (known: {known})"],
            source=str(settings.source or ""),
        )
    return factory(settings, credentials, rate_limiter, on_error,
                   os.environ if env is None else env)


def build_dns(
    settings: Settings,
    credentials: Credentials,
    *,
    rate_limiter: RateLimit | None = None,
    on_error: ErrorHook | None = None,
    env: Mapping[str, str] | None = None,
) -> DnsProvider:
    """The DNS port for ``settings``: the ``dns.provider`` adapter alone, or a
    :class:`~cname_flow.dns.router.ZoneRouter` over one adapter per provider id when
    ``dns.zones`` sends some zone to another id (``manual`` included, so that no provider
    writes in a manual zone), or when ``dns.provider`` is ``manual`` itself.

    Every adapter is built here, up front, so a missing setting of any of them is reported
    before anything runs; none is built for ``manual``.

    Args:
        settings / credentials / rate_limiter / on_error / env: as for :func:`build_provider`,
            shared by every adapter.

    Raises:
        ConfigError: an unknown provider id (where it was set is named), or an adapter's own
            settings are missing.
        SecretNotFound: an adapter's secret variable is unset.
    """
    default, zones = settings.dns.provider, settings.dns.zones
    ids = {default, *zones.values()}
    if ids == {default} and default != MANUAL:
        return build_provider(default, settings, credentials, rate_limiter=rate_limiter,
                              on_error=on_error, env=env)
    unknown = [f"{settings.where('dns', 'zones', zone)}: dns.zones.{zone}: unknown DNS "
               f"provider {pid!r} (known: {', '.join(sorted([*PROVIDERS, MANUAL]))})"
               for zone, pid in zones.items() if pid != MANUAL and pid not in PROVIDERS]
    if unknown:
        raise ConfigError(unknown, source=str(settings.source or ""))
    from cname_flow.dns.router import ZoneRouter

    providers = {pid: build_provider(pid, settings, credentials, rate_limiter=rate_limiter,
                                     on_error=on_error, env=env)
                 for pid in sorted(ids - {MANUAL})}
    return ZoneRouter(zones, providers, default)


__all__ = [
    "MANUAL",
    "PROVIDERS",
    "AlidnsOptions",
    "ErrorHook",
    "ProviderFactory",
    "RateLimit",
    "alidns_options",
    "build_dns",
    "build_provider",
    "provider_for",
]

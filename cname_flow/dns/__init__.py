"""DNS provider adapters behind the :class:`~cname_flow.dns.base.DnsProvider` port; their registry.

:func:`build_provider` is the one place that turns the ``dns.provider`` setting into an adapter:
the one-shot commands (:meth:`cname_flow.service.Clients.from_settings`) and batch jobs
(:func:`cname_flow.batch.jobs.batch_clients`) both go through it. Each entry of
:data:`PROVIDERS` imports its adapter when called, so importing this package (as the workflow
does, for the port in :mod:`cname_flow.dns.base`) loads no vendor SDK.

Known providers: ``"alidns"`` (Alibaba Cloud DNS, OpenAPI 2015-01-09,
https://www.alibabacloud.com/help/en/dns/api-alidns-2015-01-09-dir), configured by the
``alidns`` settings section.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, TypedDict

from cname_flow.errors import ConfigError

if TYPE_CHECKING:
    from cname_flow.config import Credentials, Settings
    from cname_flow.config.sections import AlidnsSettings
    from cname_flow.dns.base import DnsProvider
    from cname_flow.errors import DnsProviderError

#: Called with an API action name before each attempt (client-side rate limiting, counting).
RateLimit = Callable[[str], None]

#: Called with the action name and the mapped error after each failed attempt (counting).
ErrorHook = Callable[[str, "DnsProviderError"], None]

#: Builds one provider: ``(settings, credentials, rate_limiter, on_error) -> DnsProvider``.
ProviderFactory = Callable[
    ["Settings", "Credentials", "RateLimit | None", "ErrorHook | None"], "DnsProvider"
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


def _alidns(
    settings: Settings,
    credentials: Credentials,
    rate_limiter: RateLimit | None,
    on_error: ErrorHook | None,
) -> DnsProvider:
    from cname_flow.dns.alidns import Alidns  # here, so the registry loads no SDK at import

    return Alidns(
        credentials=credentials,
        rate_limiter=rate_limiter,
        on_error=on_error,
        **alidns_options(settings.alidns),
    )


#: Provider id (the ``dns.provider`` setting) → factory.
PROVIDERS: Mapping[str, ProviderFactory] = {"alidns": _alidns}


def build_provider(
    kind: str,
    settings: Settings,
    credentials: Credentials,
    *,
    rate_limiter: RateLimit | None = None,
    on_error: ErrorHook | None = None,
) -> DnsProvider:
    """Build the DNS provider adapter named ``kind`` from the settings.

    Args:
        kind: a provider id, a key of :data:`PROVIDERS` (usually ``settings.dns.provider``).
        settings: loaded settings; the provider reads its own section (``alidns`` for Alidns).
        credentials: the resolved AccessKey.
        rate_limiter: called with the action name before every API attempt, retries included.
        on_error: called with the action name and the mapped error after every failed attempt
            (a batch job counts throttled answers through it); it must not raise.

    Returns:
        The adapter, typed as the :class:`~cname_flow.dns.base.DnsProvider` port.

    Raises:
        ConfigError: ``kind`` is not a known provider; the reason gives where ``dns.provider``
            was set and lists the known ids.
    """
    factory = PROVIDERS.get(kind)
    if factory is None:
        known = ", ".join(sorted(PROVIDERS))
        where = settings.where("dns", "provider")
        raise ConfigError(
            [f"{where}: dns.provider: unknown DNS provider {kind!r} (known: {known})"],
            source=str(settings.source or ""),
        )
    return factory(settings, credentials, rate_limiter, on_error)


__all__ = ["PROVIDERS", "AlidnsOptions", "ErrorHook", "ProviderFactory", "RateLimit",
           "alidns_options", "build_provider"]

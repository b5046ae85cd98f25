"""The conventions users bring from ossutil and the aliyun CLI: ``--profile``,
``ALIBABA_CLOUD_PROFILE``, ``--region/--endpoint`` and ``OSS_REGION``/``OSS_ENDPOINT``, and a
banner when production is reached with no config file (docs/conventions.md).

Precedence of the OSS region and endpoint, highest first: the root options ``--region`` /
``--endpoint``; ``CNAME_FLOW__OSS__REGION`` / ``CNAME_FLOW__OSS__ENDPOINT``; ``OSS_REGION`` /
``OSS_ENDPOINT`` (ossutil 2.0's variables, which also beat its configuration file); the config
file; the default (``cn-hangzhou``, the SDK's production endpoint of the region).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

import click

from cname_flow.errors import ConfigError

if TYPE_CHECKING:
    from cname_flow import service
    from cname_flow.config import Settings
    from cname_flow.quotas import ApiStats

@dataclass(frozen=True)
class GlobalOptions:
    """The root group's Alibaba Cloud options (ossutil / aliyun CLI conventions).

    Attributes:
        profile: ``--profile`` (or ``$ALIBABA_CLOUD_PROFILE``): a profile of
            ``~/.aliyun/config.json``; None for the usual credential order.
        region: ``--region``: overrides ``oss.region`` (and ``$OSS_REGION``).
        endpoint: ``--endpoint``: overrides ``oss.endpoint`` (and ``$OSS_ENDPOINT``).
    """

    profile: str | None = None
    region: str | None = None
    endpoint: str | None = None


#: ossutil 2.0's region and endpoint variables, and where each lands in the settings.
STANDARD_VARIABLES = {"OSS_REGION": "CNAME_FLOW__OSS__REGION",
                      "OSS_ENDPOINT": "CNAME_FLOW__OSS__ENDPOINT"}


def overlay_environment(
    options: GlobalOptions, env: Mapping[str, str] | None = None,
) -> tuple[dict[str, str], dict[str, str]]:
    """The environment the settings are read from, with the root options and the standard
    variables written as ``CNAME_FLOW__OSS__*`` overrides.

    Args:
        options: the root group's options.
        env: the process environment (default ``os.environ``).

    Returns:
        (environment, renames): ``renames`` maps ``"env CNAME_FLOW__OSS__REGION"`` to what the
        user really wrote (``"--region"``, ``"env OSS_REGION"``), for error messages.
    """
    environ = dict(os.environ if env is None else env)
    renames: dict[str, str] = {}
    for standard, ours in STANDARD_VARIABLES.items():
        if environ.get(standard) and not environ.get(ours):
            environ[ours] = environ[standard]
            renames[f"env {ours}"] = f"env {standard}"
    for flag, value, ours in (("--region", options.region, "CNAME_FLOW__OSS__REGION"),
                              ("--endpoint", options.endpoint, "CNAME_FLOW__OSS__ENDPOINT")):
        if value is not None:
            environ[ours] = value
            renames[f"env {ours}"] = flag
    return environ, renames


def load_with_conventions(path: Path | None, options: GlobalOptions) -> Settings:
    """:func:`cname_flow.config.load_settings` with the root options and standard variables.

    Raises:
        ConfigError: as ``load_settings``; a bad ``--region`` is named as ``--region``.
    """
    from cname_flow.config import load_settings

    environ, renames = overlay_environment(options)
    try:
        return load_settings(path, env=environ)
    except ConfigError as exc:
        if not renames:
            raise
        reasons = []
        for reason in exc.reasons:
            for ours, theirs in renames.items():
                reason = reason.replace(ours, theirs)
            reasons.append(reason)
        raise type(exc)(reasons, source=exc.source) from None


def real_clients(settings: Settings, options: GlobalOptions, *,
                 api: ApiStats | None = None) -> service.Clients:
    """The real SDK adapters for ``settings``, with credentials from ``--profile`` when given;
    prints :func:`production_banner` on stderr when it applies. With ``api``, every attempt
    and throttled answer of both adapters is counted there (reconcile's metrics).

    Raises:
        ConfigError: no usable credentials (the named profile included).
    """
    from cname_flow import service

    creds = service.credentials(settings, profile=options.profile)
    banner = production_banner(settings, creds.access_key_id)
    if banner:
        click.echo(banner, err=True)
    if api is None:
        return service.Clients.from_settings(settings, credentials=creds)
    from cname_flow.quotas import RateLimiter

    return service.Clients.from_settings(
        settings, credentials=creds, rate_limiter=RateLimiter(settings.batch.rate_limits, api),
        on_error=api.count_error)


def production_banner(settings: Settings, access_key_id: str) -> str | None:
    """The stderr banner when production endpoints are used without a config file, else None.

    Names the endpoint, the region and the AccessKey id (never the secret): with no file, a
    stray ``OSS_ACCESS_KEY_ID`` is all that decides which account is changed.
    """
    region = settings.oss.region
    endpoint = settings.oss.endpoint or f"oss-{region}.aliyuncs.com"
    host = urlsplit(endpoint if "://" in endpoint else f"//{endpoint}").hostname or ""
    if settings.source is not None or not host.endswith(".aliyuncs.com"):
        return None
    return (f"note: no config file: using the production OSS endpoint {endpoint} "
            f"(region {region}) with AccessKey id {access_key_id}; "
            "pass --config FILE to choose the target explicitly")

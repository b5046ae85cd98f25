"""Settings: YAML file + environment → one validated, frozen :class:`Settings` object.

:func:`load_settings` reads the YAML file (PyYAML), applies ``CNAME_FLOW__<SECTION>__<KEY>``
environment overrides, and validates everything with pydantic (unknown keys forbidden). Every
problem is reported at once in one :class:`~cname_flow.errors.ConfigError` whose reasons read
``"<file>:<line>: <dotted.key>: <what is wrong>"`` (README, "Configuration"; octoDNS
``ContextLoader``). Secrets never appear in the file: credentials are references to environment
variables (``{env: NAME}``), resolved later by
:func:`cname_flow.config.credentials.resolve_credentials`, which this module does not import.

With no file the defaults talk to the production endpoints: OSS over https at the SDK's default
endpoint for the region, Alidns at ``alidns.aliyuncs.com``.
"""

from __future__ import annotations

import difflib
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field, PrivateAttr, ValidationError
from pydantic_core import ErrorDetails

from cname_flow.config.dns_sections import (
    CloudflareSettings,
    PowerDnsSettings,
    Rfc2136Settings,
)
from cname_flow.config.events_section import EventsSettings
from cname_flow.config.manual_section import ManualSettings
from cname_flow.config.sections import (
    AlidnsSettings,
    BatchSettings,
    CredentialSettings,
    DefaultSettings,
    DnsSettings,
    EnvRef,
    JournalSettings,
    OssSettings,
    OwnershipSettings,
    PropagationSettings,
    SettingsModel,
    StoreSettings,
)
from cname_flow.config.yaml_source import (
    LocatedDocument,
    format_path,
    load_located,
    read_document,
)
from cname_flow.errors import ConfigError

#: Prefix of environment overrides: ``CNAME_FLOW__OSS__REGION=cn-shanghai`` sets ``oss.region``.
ENV_PREFIX = "CNAME_FLOW__"

#: The store's URL, as deployments name it (same as ``CNAME_FLOW__STORE__URL``).
STORE_URL_ENV = "CNAME_FLOW_STORE_URL"

_LINE = re.compile(r"^[^\n]*?:(\d+): ")


class Settings(SettingsModel):
    """Everything cname-flow reads from its configuration, validated and frozen.

    Build it with :func:`load_settings`; ``Settings()`` alone is the all-defaults configuration
    (production endpoints, credentials from the environment's default chain).

    Attributes:
        oss: OSS client settings (region, endpoint, signature version, timeouts).
        alidns: Alidns client settings (endpoint ``host:port``, protocol, region).
        dns: which DNS provider publishes the records (``provider: alidns`` or ``rfc2136``).
        rfc2136: the RFC 2136 primary and TSIG key (``dns.provider: rfc2136``).
        manual: how bindings in manual zones are checked and re-minted (docs/manual-mode.md).
        powerdns: the PowerDNS HTTP API and its key (``dns.provider: powerdns``).
        cloudflare: the Cloudflare API and its token (``dns.provider: cloudflare``).
        credentials: where the AccessKey comes from (environment references only).
        propagation: authoritative-nameserver polling (the checker's policy; see ``to_policy``).
        ownership: PutCname retry while OSS answers NeedVerifyDomainOwnership.
        journal: where the durable step log lives.
        store: which store of record (the JSON journal, or PostgreSQL for scale-out).
        defaults: values a binding takes when the command line or manifest leaves them out.
        batch: concurrency and client-side rate limits.
        events: the event stream and webhooks (:mod:`cname_flow.config.events_section`).
        source: the file the settings were read from, ``None`` for defaults + environment.
    """

    oss: OssSettings = Field(default_factory=OssSettings)
    alidns: AlidnsSettings = Field(default_factory=AlidnsSettings)
    dns: DnsSettings = Field(default_factory=DnsSettings)
    rfc2136: Rfc2136Settings = Field(default_factory=Rfc2136Settings)
    manual: ManualSettings = Field(default_factory=ManualSettings)
    powerdns: PowerDnsSettings = Field(default_factory=PowerDnsSettings)
    cloudflare: CloudflareSettings = Field(default_factory=CloudflareSettings)
    credentials: CredentialSettings = Field(default_factory=CredentialSettings)
    propagation: PropagationSettings = Field(default_factory=PropagationSettings)
    ownership: OwnershipSettings = Field(default_factory=OwnershipSettings)
    journal: JournalSettings = Field(default_factory=JournalSettings)
    store: StoreSettings = Field(default_factory=StoreSettings)
    defaults: DefaultSettings = Field(default_factory=DefaultSettings)
    batch: BatchSettings = Field(default_factory=BatchSettings)
    events: EventsSettings = Field(default_factory=EventsSettings)
    source: Path | None = None

    _origins: dict[tuple[str | int, ...], str] = PrivateAttr(default_factory=dict)

    def where(self, *path: str | int) -> str:
        """Where a setting was given: ``"config.yaml:12"``, ``"env CNAME_FLOW__OSS__REGION"``.

        Args:
            path: the setting's key path, e.g. ``where("credentials", "access_key_secret")``.

        Returns:
            The origin of the closest enclosing key that was given explicitly, else the source
            file name, else ``"<defaults>"``.
        """
        for end in range(len(path), 0, -1):
            origin = self._origins.get(tuple(path[:end]))
            if origin is not None:
                return origin
        return str(self.source) if self.source is not None else "<defaults>"


def load_settings(path: Path | None, env: Mapping[str, str] | None = None) -> Settings:
    """Read, merge and validate the configuration.

    Args:
        path: the YAML file, or ``None`` for defaults plus environment overrides only.
        env: the environment to read ``CNAME_FLOW__*`` overrides from; ``os.environ`` if ``None``.
            Credentials are not resolved here (see
            :func:`cname_flow.config.credentials.resolve_credentials`).

    Returns:
        Frozen settings. Relative ``journal.dir`` is resolved against the file's directory (the
        current directory when ``path`` is ``None``).

    Raises:
        ConfigError: the file cannot be read, is not valid YAML, or any setting is unknown, of
            the wrong type or out of range. ``reasons`` lists every problem, each
            ``"<file>:<line>: <dotted.key>: <what is wrong>"``. Secret values are never echoed.
    """
    environ = os.environ if env is None else env
    source = str(path) if path is not None else ""
    doc = _read(path) if path is not None else LocatedDocument(data=None, source="")
    reasons = list(doc.problems)
    data = _top_mapping(doc, reasons)
    _apply_env_overrides(data, doc, environ, reasons)
    if environ.get(STORE_URL_ENV):
        _set_path(data, ["store", "url"], environ[STORE_URL_ENV])
        doc.origins[("store", "url")] = f"env {STORE_URL_ENV}"
    base_dir = path.resolve().parent if path is not None else Path.cwd()
    if data.get("journal") is None:  # so the default dir is resolved against base_dir too
        data["journal"] = {}
    settings: Settings | None = None
    try:
        settings = Settings.model_validate(data, context={"base_dir": base_dir})
    except ValidationError as exc:
        reasons.extend(_reason(err, doc) for err in exc.errors(include_input=False))
    if reasons or settings is None:
        raise ConfigError(sorted(reasons, key=_by_line), source=source) from None
    settings = settings.model_copy(update={"source": path})
    settings._origins = dict(doc.origins)
    return settings


def _read(path: Path) -> LocatedDocument:
    return load_located(read_document(path), str(path))


def _top_mapping(doc: LocatedDocument, reasons: list[str]) -> dict[str, Any]:
    if doc.data is None:
        return {}
    if not isinstance(doc.data, dict):
        reasons.append(f"{doc.source}:1: (top level): must be a mapping of sections")
        return {}
    data = dict(doc.data)
    if "source" in data:
        reasons.append(
            f"{doc.where(('source',))}: source: not a setting (it is the file's own path)"
        )
        del data["source"]
    return data


def _apply_env_overrides(
    data: dict[str, Any], doc: LocatedDocument, env: Mapping[str, str], reasons: list[str]
) -> None:
    """Set ``CNAME_FLOW__A__B=value`` as ``data["a"]["b"]``, the value parsed as YAML."""
    for name in sorted(env):
        if not name.startswith(ENV_PREFIX) or not env[name]:
            continue
        keys = [part.lower() for part in name[len(ENV_PREFIX) :].split("__")]
        if not all(keys):
            reasons.append(f"env {name}: malformed override name (use CNAME_FLOW__SECTION__KEY)")
            continue
        if not _set_path(data, keys, _parse_scalar(env[name])):
            reasons.append(f"env {name}: {'.'.join(keys[:-1])}: is not a mapping")
            continue
        doc.origins[tuple(keys)] = f"env {name}"


def _parse_scalar(raw: str) -> Any:
    """The override's value read as YAML by the same guarded loader; the raw string otherwise."""
    try:
        return load_located(raw, "").data
    except ConfigError:
        return raw


def _set_path(data: dict[str, Any], keys: list[str], value: Any) -> bool:
    node = data
    for key in keys[:-1]:
        child = node.get(key)
        if child is None:
            child = node[key] = {}
        elif isinstance(child, dict):
            child = node[key] = dict(child)
        else:
            return False
        node = child
    node[keys[-1]] = value
    return True


def _by_line(reason: str) -> tuple[int, int]:
    """Sort key putting file reasons in line order, then environment and other reasons."""
    match = _LINE.match(reason)
    return (0, int(match.group(1))) if match else (1, 0)


def _reason(err: ErrorDetails, doc: LocatedDocument) -> str:
    loc = tuple(err["loc"])
    where = doc.where(loc)
    dotted = format_path(loc) or "(top level)"
    if err["type"] == "extra_forbidden":
        return f"{where}: {dotted}: unknown setting{_suggestion(loc)}"
    if err["type"] == "missing":
        return f"{where}: {dotted}: required"
    return f"{where}: {dotted}: {err['msg'].removeprefix('Value error, ')}"


def _suggestion(loc: tuple[str | int, ...]) -> str:
    allowed = _fields_at(loc[:-1])
    if not allowed or not isinstance(loc[-1], str):
        return ""
    close = difflib.get_close_matches(loc[-1], allowed, n=1, cutoff=0.6)
    hint = f"; did you mean {close[0]!r}?" if close else ""
    return f"{hint} (allowed: {', '.join(sorted(allowed))})"


def _fields_at(path: tuple[str | int, ...]) -> list[str]:
    """Field names of the settings model reached by ``path``, or ``[]`` if it is not a model."""
    model: type[BaseModel] = Settings
    for key in path:
        field = model.model_fields.get(str(key))
        annotation = field.annotation if field is not None else None
        candidates = [annotation, *getattr(annotation, "__args__", ())]
        nested = [c for c in candidates if isinstance(c, type) and issubclass(c, BaseModel)]
        if not nested:
            return []
        model = nested[0]
    return [name for name in model.model_fields if name != "source" or model is not Settings]


__all__ = [
    "ENV_PREFIX",
    "AlidnsSettings",
    "BatchSettings",
    "CloudflareSettings",
    "CredentialSettings",
    "DefaultSettings",
    "DnsSettings",
    "EnvRef",
    "JournalSettings",
    "OssSettings",
    "OwnershipSettings",
    "PowerDnsSettings",
    "PropagationSettings",
    "Rfc2136Settings",
    "Settings",
    "load_settings",
]

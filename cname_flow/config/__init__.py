"""Settings: the YAML config with locations, its sections, credentials.

The face of the configuration: load the file with :func:`load_settings` into a frozen
:class:`Settings`, then find the AccessKey with :func:`resolve_credentials` (given the
``credentials`` section and :meth:`Settings.where`, so the two modules do not know each other).

Example::

    settings = load_settings(Path("config.yaml"))
    creds = resolve_credentials(settings.credentials, where=settings.where,
                                source=str(settings.source or ""))
"""

from cname_flow.config.credentials import Credentials, resolve_credentials
from cname_flow.config.sections import (
    DEFAULT_RATE_LIMITS,
    AlidnsSettings,
    BatchSettings,
    CredentialSettings,
    DefaultSettings,
    DnsSettings,
    JournalSettings,
    OssSettings,
    OwnershipSettings,
    PropagationSettings,
)
from cname_flow.config.settings import ENV_PREFIX, Settings, load_settings

__all__ = [
    "DEFAULT_RATE_LIMITS",
    "ENV_PREFIX",
    "AlidnsSettings",
    "BatchSettings",
    "CredentialSettings",
    "Credentials",
    "DefaultSettings",
    "DnsSettings",
    "JournalSettings",
    "OssSettings",
    "OwnershipSettings",
    "PropagationSettings",
    "Settings",
    "load_settings",
    "resolve_credentials",
]

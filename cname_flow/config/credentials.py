"""AccessKey resolution: configuration references → environment → alibabacloud-credentials chain.

The configuration only ever names environment variables; this module reads them. The resolved
:class:`Credentials` keep the secret and the STS token out of ``repr``/``str``, and no error raised
here carries a secret value. The variable names and the default chain are those of the SDKs:
alibabacloud-oss-v2 (https://www.alibabacloud.com/help/en/oss/developer-reference/oss-sdk-for-python-v2-configure-access-credentials)
and alibabacloud-credentials
(https://www.alibabacloud.com/help/en/sdk/developer-reference/v2-manage-python-access-credentials).

This module does not know :class:`~cname_flow.config.settings.Settings`: it takes the
``credentials`` section and a :class:`Locator` that says where each key was written.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Protocol

from cname_flow.config.sections import CredentialSettings, EnvRef
from cname_flow.errors import ConfigError, SecretNotFound

#: The environment pairs tried in order when the configuration names none:
#: (access key id, access key secret, security token).
ENV_PAIRS: tuple[tuple[str, str, str], ...] = (
    ("OSS_ACCESS_KEY_ID", "OSS_ACCESS_KEY_SECRET", "OSS_SESSION_TOKEN"),
    (
        "ALIBABA_CLOUD_ACCESS_KEY_ID",
        "ALIBABA_CLOUD_ACCESS_KEY_SECRET",
        "ALIBABA_CLOUD_SECURITY_TOKEN",
    ),
)

NOTHING_FOUND_HINT = (
    "no Alibaba Cloud credentials found: export OSS_ACCESS_KEY_ID and OSS_ACCESS_KEY_SECRET "
    "(+ OSS_SESSION_TOKEN for STS), or ALIBABA_CLOUD_ACCESS_KEY_ID and "
    "ALIBABA_CLOUD_ACCESS_KEY_SECRET (+ ALIBABA_CLOUD_SECURITY_TOKEN), or name your variables "
    "under credentials: in the config ({env: NAME}), or set up an alibabacloud-credentials "
    "profile (~/.alibabacloud/credentials.ini) or an ECS RAM role"
)


@dataclass(frozen=True)
class Credentials:
    """An AccessKey pair (optionally STS) ready for the SDK clients.

    Attributes:
        access_key_id: the AccessKey id (not secret; shown in repr).
        access_key_secret: the AccessKey secret; hidden from repr.
        security_token: the STS token, or ``None`` for a long-term key; hidden from repr.
        source: where it came from, e.g. ``"env OSS_ACCESS_KEY_ID"`` (safe to log).
    """

    access_key_id: str
    access_key_secret: str = field(repr=False)
    security_token: str | None = field(default=None, repr=False)
    source: str = ""

    @property
    def is_sts(self) -> bool:
        """True for temporary (STS) credentials."""
        return self.security_token is not None


#: Produces credentials from the alibabacloud-credentials default chain, or ``None`` if none.
DefaultChain = Callable[[], "Credentials | None"]


class Locator(Protocol):
    """Where a setting was given, for error messages.

    Called with a key path such as ``("credentials", "access_key_id")``; returns a location like
    ``"config.yaml:3"`` or ``"env CNAME_FLOW__CREDENTIALS__ACCESS_KEY_ID"``.
    :meth:`cname_flow.config.settings.Settings.where` is one.
    """

    def __call__(self, *path: str) -> str:
        """The location of the setting at ``path``."""
        ...


def _nowhere(*path: str) -> str:
    return "<config>"


def sdk_default_chain() -> Credentials | None:
    """Ask ``alibabacloud_credentials.client.Client()`` (profile file, ECS RAM role, OIDC, URI).

    Returns:
        The credentials, or ``None`` when no provider in the chain has any. The chain's own
        error text is dropped on purpose: it may quote provider responses.
    """
    from alibabacloud_credentials.client import Client
    from alibabacloud_credentials.exceptions import CredentialException

    try:
        model = Client().get_credential()
    except CredentialException:
        return None
    key_id = model.get_access_key_id()
    secret = model.get_access_key_secret()
    if not key_id or not secret:
        return None
    return Credentials(
        access_key_id=key_id,
        access_key_secret=secret,
        security_token=model.get_security_token() or None,
        source=f"alibabacloud-credentials chain ({model.get_provider_name() or 'default'})",
    )


def resolve_credentials(
    refs: CredentialSettings,
    env: Mapping[str, str] | None = None,
    *,
    where: Locator = _nowhere,
    source: str = "",
    default_chain: DefaultChain = sdk_default_chain,
) -> Credentials:
    """Find the AccessKey to use.

    Order: the variables the configuration names (``credentials.access_key_id: {env: NAME}``)
    → ``OSS_ACCESS_KEY_ID``/``OSS_ACCESS_KEY_SECRET`` (+ ``OSS_SESSION_TOKEN``) →
    ``ALIBABA_CLOUD_ACCESS_KEY_ID``/``..._SECRET`` (+ ``ALIBABA_CLOUD_SECURITY_TOKEN``) →
    ``default_chain`` (only if nothing else matched). Empty variables count as unset.

    Args:
        refs: the ``credentials`` section of the settings (environment references only).
        env: the environment; ``os.environ`` if ``None``.
        where: where each setting was given (``settings.where``), quoted in errors.
        source: the configuration file's name for :class:`SecretNotFound`, ``""`` if none.
        default_chain: last resort; injectable so tests never reach the ECS metadata service.

    Returns:
        The credentials with ``source`` saying where they came from.

    Raises:
        SecretNotFound: a variable the configuration names is unset; the reason names the key
            and its ``file:line``.
        ConfigError: only one half of an environment pair is set, or nothing was found at all
            (the reason lists the variables to set).
    """
    environ = os.environ if env is None else env
    if refs.explicit:
        return _from_config(refs, environ, where, source)
    for id_var, secret_var, token_var in ENV_PAIRS:
        found = _from_env_pair(environ, id_var, secret_var, token_var)
        if found is not None:
            return found
    chained = default_chain()
    if chained is None:
        raise ConfigError([NOTHING_FOUND_HINT])
    return chained


def _from_config(
    refs: CredentialSettings, env: Mapping[str, str], where: Locator, source: str
) -> Credentials:
    assert refs.access_key_id is not None and refs.access_key_secret is not None
    missing: list[str] = []
    values: dict[str, str | None] = {}
    for key, ref in (
        ("access_key_id", refs.access_key_id),
        ("access_key_secret", refs.access_key_secret),
        ("security_token", refs.security_token),
    ):
        values[key] = _lookup(ref, env)
        if ref is not None and values[key] is None and not ref.optional:
            at = where("credentials", key)
            missing.append(f"{at}: credentials.{key}: environment variable {ref.env} is not set")
    if missing:
        raise SecretNotFound(missing, source=source)
    return Credentials(
        access_key_id=values["access_key_id"] or "",
        access_key_secret=values["access_key_secret"] or "",
        security_token=values["security_token"],
        source=f"env {refs.access_key_id.env} (named in config)",
    )


def _lookup(ref: EnvRef | None, env: Mapping[str, str]) -> str | None:
    if ref is None:
        return None
    return env.get(ref.env) or None


def _from_env_pair(
    env: Mapping[str, str], id_var: str, secret_var: str, token_var: str
) -> Credentials | None:
    key_id, secret = env.get(id_var) or None, env.get(secret_var) or None
    if key_id is None and secret is None:
        return None
    if key_id is None or secret is None:
        have, lack = (id_var, secret_var) if key_id is not None else (secret_var, id_var)
        raise ConfigError([f"environment: {have} is set but {lack} is not; set both or neither"])
    return Credentials(
        access_key_id=key_id,
        access_key_secret=secret,
        security_token=env.get(token_var) or None,
        source=f"env {id_var}",
    )


def secret_values(credentials: Credentials) -> tuple[str, ...]:
    """The values that must never appear in a message: the secret and the STS token, if any."""
    values = (credentials.access_key_secret, credentials.security_token or "")
    return tuple(value for value in values if value)


def scrub(text: str, secrets: Iterable[str]) -> str:
    """Return ``text`` with every occurrence of each secret replaced by ``***``.

    Args:
        text: a message about to be raised or logged (e.g. an SDK error's text).
        secrets: values to hide; empty strings are ignored. Longest first, so a secret that
            contains another is hidden whole.
    """
    for secret in sorted((s for s in secrets if s), key=len, reverse=True):
        text = text.replace(secret, "***")
    return text

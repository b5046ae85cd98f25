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

import logging
import os
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
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


#: The variable naming the aliyun CLI profile to use, read by alibabacloud-credentials too.
PROFILE_ENV = "ALIBABA_CLOUD_PROFILE"

#: The logger of alibabacloud-credentials: it has its own stderr handler and prints tracebacks
#: of every provider it tries (ECS metadata…) before our message; silenced when we call it.
SDK_LOGGER = "credentials"


def _quiet_sdk_logger() -> None:
    logging.getLogger(SDK_LOGGER).disabled = True


def profile_file(env: Mapping[str, str]) -> Path:
    """The aliyun CLI's profile file, ``$HOME/.aliyun/config.json``."""
    home = env.get("HOME")
    return (Path(home) if home else Path.home()) / ".aliyun" / "config.json"


def cli_profile(name: str, env: Mapping[str, str] | None = None) -> Credentials:
    """Credentials of profile ``name`` of the aliyun CLI's ``~/.aliyun/config.json``, through
    ``alibabacloud_credentials.provider.CLIProfileCredentialsProvider`` (modes AK, StsToken,
    RamRoleArn, EcsRamRole, ChainableRamRoleArn, as that library reads them:
    https://www.alibabacloud.com/help/en/sdk/developer-reference/v2-manage-python-access-credentials).

    Raises:
        ConfigError: no such file, no such profile, a mode the library cannot use, or the
            profile's own call (e.g. STS AssumeRole) failed. The library's text is not
            quoted: it may carry a provider's response.
    """
    from alibabacloud_credentials.exceptions import CredentialException
    from alibabacloud_credentials.provider.cli_profile import CLIProfileCredentialsProvider

    _quiet_sdk_logger()
    path = profile_file(os.environ if env is None else env)
    if not path.is_file():
        raise ConfigError([f"profile {name!r}: no aliyun CLI profile file {path} "
                           "(create it with `aliyun configure --profile NAME`)"])
    provider = CLIProfileCredentialsProvider(profile_name=name, profile_file=str(path))
    try:
        got = provider.get_credentials()
    except (CredentialException, KeyError, ValueError, OSError) as exc:
        raise ConfigError([f"profile {name!r} in {path}: cannot give credentials "
                           f"({type(exc).__name__}): is it listed there, with mode AK, "
                           "StsToken or RamRoleArn and its keys filled in?"]) from None
    key_id, secret = got.get_access_key_id(), got.get_access_key_secret()
    if not key_id or not secret:
        raise ConfigError([f"profile {name!r} in {path}: no AccessKey id or secret"])
    return Credentials(access_key_id=key_id, access_key_secret=secret,
                       security_token=got.get_security_token() or None,
                       source=f"aliyun CLI profile {name} ({path})")


def sdk_default_chain() -> Credentials | None:
    """Ask ``alibabacloud_credentials.client.Client()`` (profile file, ECS RAM role, OIDC, URI).

    Returns:
        The credentials, or ``None`` when no provider in the chain has any. The chain's own
        error text is dropped on purpose: it may quote provider responses.
    """
    from alibabacloud_credentials.client import Client
    from alibabacloud_credentials.exceptions import CredentialException

    _quiet_sdk_logger()
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
    profile: str | None = None,
) -> Credentials:
    """Find the AccessKey to use.

    Order: ``profile`` (``--profile``: that profile of ``~/.aliyun/config.json``) → the
    variables the configuration names (``credentials.access_key_id: {env: NAME}``)
    → ``OSS_ACCESS_KEY_ID``/``OSS_ACCESS_KEY_SECRET`` (+ ``OSS_SESSION_TOKEN``) →
    ``ALIBABA_CLOUD_ACCESS_KEY_ID``/``..._SECRET`` (+ ``ALIBABA_CLOUD_SECURITY_TOKEN``) →
    the profile ``$ALIBABA_CLOUD_PROFILE`` names → ``default_chain`` (only if nothing else
    matched). Empty variables count as unset. This is the order of alibabacloud-credentials'
    default chain, with a command-line ``--profile`` first, as the aliyun CLI puts it.

    Args:
        refs: the ``credentials`` section of the settings (environment references only).
        env: the environment; ``os.environ`` if ``None``.
        where: where each setting was given (``settings.where``), quoted in errors.
        source: the configuration file's name for :class:`SecretNotFound`, ``""`` if none.
        default_chain: last resort; injectable so tests never reach the ECS metadata service.
        profile: a profile name given on the command line (``--profile``), or None.

    Returns:
        The credentials with ``source`` saying where they came from.

    Raises:
        SecretNotFound: a variable the configuration names is unset; the reason names the key
            and its ``file:line``.
        ConfigError: only one half of an environment pair is set, or nothing was found at all
            (the reason lists the variables to set).
    """
    environ = os.environ if env is None else env
    if profile:
        return cli_profile(profile, environ)
    if refs.explicit:
        return _from_config(refs, environ, where, source)
    for id_var, secret_var, token_var in ENV_PAIRS:
        found = _from_env_pair(environ, id_var, secret_var, token_var)
        if found is not None:
            return found
    if environ.get(PROFILE_ENV):
        return cli_profile(environ[PROFILE_ENV], environ)
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


def read_secret(ref: EnvRef, env: Mapping[str, str], *, at: str, setting: str,
                source: str = "") -> str:
    """The value of the environment variable a setting names (``{env: NAME}``), from ``env``.

    Args:
        ref: the setting's reference.
        env: the environment to read (``os.environ``, or the mapping a caller resolved with).
        at: where the setting was given (``"config.yaml:12"``).
        setting: its dotted name (``"rfc2136.secret"``).
        source: the configuration file, for the error.

    Raises:
        SecretNotFound: the variable is unset or empty; the reason reads
            ``"<at>: <setting>: environment variable NAME is not set"`` (never a value).
    """
    value = env.get(ref.env) or ""
    if not value:
        raise SecretNotFound([f"{at}: {setting}: environment variable {ref.env} is not set"],
                             source=source)
    return value


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


#: Secrets at least this long are hidden wherever they occur; shorter ones only as whole
#: tokens, so a one-letter test secret cannot turn "Max retries exceeded" into "Ma*** retries".
SCRUB_SUBSTRING_MIN = 8


def scrub(text: str, secrets: Iterable[str]) -> str:
    """Return ``text`` with each secret replaced by ``***``.

    Args:
        text: a message about to be raised or logged (e.g. an SDK error's text).
        secrets: values to hide; empty strings are ignored. Longest first, so a secret that
            contains another is hidden whole. A secret of :data:`SCRUB_SUBSTRING_MIN` or more
            characters is hidden wherever it occurs; a shorter one only where it stands as a
            whole token (not inside a longer run of letters and digits).
    """
    for secret in sorted((s for s in secrets if s), key=len, reverse=True):
        if len(secret) >= SCRUB_SUBSTRING_MIN:
            text = text.replace(secret, "***")
        else:
            text = re.sub(rf"(?<![A-Za-z0-9]){re.escape(secret)}(?![A-Za-z0-9])", "***", text)
    return text

"""Settings sections of the DNS providers other than Alidns (whose section is in
:mod:`cname_flow.config.sections`).

``rfc2136``: the primary that takes RFC 2136 dynamic updates signed with a TSIG key (RFC 8945).
The secret is never a setting: ``secret`` names the environment variable holding it
(``{env: NAME}`` or ``env/NAME``), as ``credentials`` does for the AccessKey. Example::

    dns:
      provider: rfc2136
    rfc2136:
      host: 192.0.2.53          # the zone's primary (an IP address or a host name)
      port: 53
      key_name: cname-flow-upd  # as in the server's key statement
      algorithm: hmac-sha256
      secret: {env: CNAME_FLOW_TSIG_SECRET}   # base64, as in the key statement

``powerdns``: a PowerDNS Authoritative Server's HTTP API; its key is read from the environment
variable ``api_key`` names (:class:`PowerDnsSettings`).

``cloudflare``: Cloudflare's API v4 through the official SDK; its API token is read from the
environment variable ``api_token`` names (:class:`CloudflareSettings`).
"""

from __future__ import annotations

import contextlib
import ipaddress
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from pydantic import Field, PositiveFloat, field_validator

from cname_flow.config.sections import EnvRef, Port, SettingsModel, _env_ref, _host_port

#: TSIG algorithms a key statement names (RFC 8945 §6; BIND and Knot spell them so).
TsigAlgorithm = Literal["hmac-sha256", "hmac-sha384", "hmac-sha512", "hmac-sha224",
                        "hmac-sha1", "hmac-md5"]


class Rfc2136Settings(SettingsModel):
    """The ``rfc2136`` section: one primary, one TSIG key.

    Attributes:
        host: the primary's IP address or host name; required when ``dns.provider`` is
            ``rfc2136`` (checked when the provider is built).
        port: its DNS port (TCP for updates, UDP then TCP for reads).
        key_name: the TSIG key's name, as in the server's key statement; required likewise.
        algorithm: the key's algorithm.
        secret: the environment variable holding the key's base64 secret; required likewise.
        timeout_s: per-message timeout, seconds.
        min_ttl: the TTL floor cname-flow reports for the zones (RFC 2136 has none), seconds.
    """

    host: str | None = None
    port: Port = 53
    key_name: Annotated[str, Field(pattern=r"^[A-Za-z0-9_.-]+$", max_length=253)] | None = None
    algorithm: TsigAlgorithm = "hmac-sha256"
    secret: EnvRef | None = None
    timeout_s: PositiveFloat = 5.0
    min_ttl: Annotated[int, Field(ge=1, le=86400)] = 60

    @field_validator("host")
    @classmethod
    def _host(cls, value: str | None) -> str | None:
        if value is None:
            return None
        with contextlib.suppress(ValueError):
            return str(ipaddress.ip_address(value.strip("[]")))
        if ":" in value:
            raise ValueError("give the port as rfc2136.port, not in the host")
        return _host_port(value, what="host")

    @field_validator("secret", mode="before")
    @classmethod
    def _ref(cls, value: Any) -> Any:
        return _env_ref(value)


def http_url(value: str, *, path: bool) -> str:
    """``value`` checked as an HTTP API's base URL: ``http(s)://host[:port]``, plus a path when
    ``path`` allows one; never a query, fragment or user (RFC 3986 §3).

    Returns:
        The URL stripped, without a trailing ``/`` (and reduced to scheme and authority when no
        path is allowed).

    Raises:
        ValueError: what is wrong, in words pydantic reports with the setting's location.
    """
    parts = urlsplit(value.strip())
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError("expected http(s)://host[:port][/path]" if path else
                         "expected http://host[:port] or https://host[:port]")
    if (parts.path.strip("/") and not path) or parts.query or parts.fragment or parts.username:
        raise ValueError("give only scheme, host, port and path" if path else
                         "give only scheme, host and port (the API path is added)")
    try:
        _ = parts.port
    except ValueError:
        raise ValueError("the port is not a number in 1..65535") from None
    return value.strip().rstrip("/") if path else f"{parts.scheme}://{parts.netloc}"


class PowerDnsSettings(SettingsModel):
    """The ``powerdns`` section: one PowerDNS Authoritative Server's HTTP API
    (https://doc.powerdns.com/authoritative/http-api/). Example::

        dns:
          provider: powerdns
        powerdns:
          api_url: http://127.0.0.1:8081     # the web server (webserver-address/-port)
          server_id: localhost
          api_key: {env: CNAME_FLOW_PDNS_API_KEY}

    Attributes:
        api_url: the web server's base URL, ``http(s)://host[:port]`` (no path); required when
            the provider is used (checked when it is built).
        server_id: the server id in the API's paths (``localhost`` for a stand-alone server).
        api_key: the environment variable holding the API key (``api-key`` in pdns.conf);
            required likewise. Never a literal.
        min_ttl: the TTL floor cname-flow reports for the zones (PowerDNS has none), seconds.
        connect_timeout_s: TCP connect timeout, seconds.
        read_timeout_s: time to wait for an answer, seconds.
    """

    api_url: str | None = None
    server_id: Annotated[str, Field(pattern=r"^[A-Za-z0-9_.-]+$", max_length=100)] = "localhost"
    api_key: EnvRef | None = None
    min_ttl: Annotated[int, Field(ge=1, le=86400)] = 60
    connect_timeout_s: PositiveFloat = 5.0
    read_timeout_s: PositiveFloat = 10.0

    @field_validator("api_url")
    @classmethod
    def _url(cls, value: str | None) -> str | None:
        return None if value is None else http_url(value, path=False)

    @field_validator("api_key", mode="before")
    @classmethod
    def _ref(cls, value: Any) -> Any:
        return _env_ref(value)


class CloudflareSettings(SettingsModel):
    """The ``cloudflare`` section: Cloudflare's API v4
    (https://developers.cloudflare.com/api/resources/dns/subresources/records/). Example::

        dns:
          zones:
            example.com: cloudflare
        cloudflare:
          api_token: {env: CLOUDFLARE_API_TOKEN}   # scopes Zone:Read and DNS:Edit

    Attributes:
        api_token: the environment variable holding an API token (sent as
            ``Authorization: Bearer``); required when the provider is used (checked when it is
            built). Never a literal.
        base_url: the API's base URL, ``None`` for the SDK's
            ``https://api.cloudflare.com/client/v4``; set only for tests and proxies.
        min_ttl: the TTL floor reported for the zones, seconds: 60 is Cloudflare's minimum
            (30 in Enterprise zones; ``ttl`` in
            https://developers.cloudflare.com/api/resources/dns/subresources/records/methods/create/).
        connect_timeout_s: TCP connect timeout, seconds.
        read_timeout_s: time to wait for an answer, seconds.
    """

    api_token: EnvRef | None = None
    base_url: str | None = None
    min_ttl: Annotated[int, Field(ge=30, le=86400)] = 60
    connect_timeout_s: PositiveFloat = 5.0
    read_timeout_s: PositiveFloat = 20.0

    @field_validator("base_url")
    @classmethod
    def _url(cls, value: str | None) -> str | None:
        return None if value is None else http_url(value, path=True)

    @field_validator("api_token", mode="before")
    @classmethod
    def _ref(cls, value: Any) -> Any:
        return _env_ref(value)

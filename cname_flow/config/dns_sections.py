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
"""

from __future__ import annotations

import contextlib
import ipaddress
from typing import Annotated, Any, Literal

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

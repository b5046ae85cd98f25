"""The record a person must add for a manual binding, as data and as journal outputs.

OSS checks TXT ``_dnsauth.<domain>`` holding the CNAME token (OSS user guide, "Map custom
domain names", https://www.alibabacloud.com/help/en/oss/user-guide/map-custom-domain-names-5).
DNS panels differ in how they want the host written: Alidns and DNSPod want it relative to the
zone (``_dnsauth.shop``), GoDaddy and Namecheap append the zone themselves (a fully qualified
name typed there becomes ``_dnsauth.shop.example.com.example.com``), Cloudflare takes either.
So both forms are given.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from cname_flow.journal import BindingRecord
from cname_flow.manual.outputs import ManualOutputs
from cname_flow.model import txt_name

#: The TTL suggested to the customer, seconds (what cname-flow itself writes elsewhere).
SUGGESTED_TTL = 600


@dataclass(frozen=True, slots=True)
class Instructions:
    """One TXT record to add.

    Attributes:
        domain: the custom domain (A-label, lowercase).
        zone: the zone apex the record lives in.
        fqdn: ``_dnsauth.<domain>``, no trailing dot.
        host: the host relative to the zone (``_dnsauth.shop``; ``_dnsauth`` at the apex).
        type: always ``"TXT"``.
        value: the CNAME token, exactly (no quotes).
        ttl: a suggested TTL, seconds.
        expires_at: when the token expires (a new value is issued then), or None.
    """

    domain: str
    zone: str
    fqdn: str
    host: str
    type: str
    value: str
    ttl: int
    expires_at: datetime | None

    def as_json(self) -> dict[str, object]:
        """The instructions as JSON (``--json``, ``status --json``, the event's data)."""
        return {
            "domain": self.domain, "zone": self.zone, "type": self.type,
            "fqdn": self.fqdn, "fqdn_dotted": self.fqdn + ".", "host": self.host,
            "value": self.value, "ttl": self.ttl,
            "token_expires_at": self.expires_at.isoformat() if self.expires_at else None,
        }

    def text(self) -> str:
        """The instructions as a few lines a person can follow."""
        lines = [
            f"Add this DNS record in the zone {self.zone}:",
            f"  type   {self.type}",
            f"  host   {self.host}    (DNS panels that add the zone themselves: "
            "Alidns, DNSPod, GoDaddy, Namecheap)",
            f"         {self.fqdn}.    (panels that want the full name, e.g. BIND zone files)",
            f"  value  {self.value}",
            f"  TTL    {self.ttl} (or the panel's default)",
        ]
        if self.expires_at is not None:
            lines.append(f"The value is valid until {self.expires_at.isoformat()}; if the record "
                         "is not seen by then a new value is issued and reported.")
        lines.append("The record may be removed once the domain is bound.")
        return "\n".join(lines)


def relative_host(fqdn: str, zone: str) -> str:
    """``fqdn`` relative to ``zone`` (``"_dnsauth.shop"``), or ``"@"`` for the apex itself.

    Raises:
        ValueError: ``fqdn`` does not lie in ``zone``.
    """
    name, apex = fqdn.rstrip(".").lower(), zone.rstrip(".").lower()
    if name == apex:
        return "@"
    if not name.endswith("." + apex):
        raise ValueError(f"{fqdn} is not in zone {zone}")
    return name[: -len(apex) - 1]


def instructions_for(domain: str, zone: str, token: str,
                     expires_at: datetime | None = None) -> Instructions:
    """The record that proves ownership of ``domain`` with ``token``.

    Raises:
        ValueError: ``domain`` does not lie in ``zone``.
    """
    fqdn = txt_name(domain)
    return Instructions(domain=domain, zone=zone, fqdn=fqdn, host=relative_host(fqdn, zone),
                        type="TXT", value=token, ttl=SUGGESTED_TTL, expires_at=expires_at)


def from_record(record: BindingRecord) -> Instructions | None:
    """The instructions a manual binding's record holds, or None (not manual, or no token yet)."""
    zone, token = record.get("manual_zone"), record.token
    if not isinstance(zone, str) or token is None:
        return None
    return instructions_for(record.domain, zone, token, record.token_expires_at)


def outputs(instr: Instructions, since: datetime) -> ManualOutputs:
    """The journal outputs recording ``instr`` (``since``: when first given, kept if set)."""
    return ManualOutputs(dns_mode="manual", manual_zone=instr.zone, manual_host=instr.host,
                          manual_fqdn=instr.fqdn, manual_since=since.isoformat())

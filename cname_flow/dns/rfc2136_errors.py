"""Every failure of an RFC 2136 exchange (dnspython), mapped once to ``errors.py`` classes.

An UPDATE (RFC 2136 §2.2) answers with an RCODE; a TSIG-signed one (RFC 8945 §5.3) can fail
before that, with a TSIG error that dnspython raises as ``dns.tsig.PeerBadKey`` /
``PeerBadSignature`` / ``PeerBadTime`` / ``PeerBadTruncation``. The adapter raises
:class:`RcodeError` for any RCODE other than NOERROR, so one function maps both.

Measured against BIND 9.18 and Knot 3.2 (``tests/dnsservers.py``,
``shared/reference/next-wave.md`` §2.2):

========================================  ===================  =========================
case                                      BIND 9               Knot
========================================  ===================  =========================
wrong secret                              BADSIG (raised)      BADSIG (raised)
unknown key name, or wrong algorithm      BADKEY (raised)      BADKEY (raised)
name or type outside the update policy    REFUSED              BADKEY (raised): its ACL
zone not served                           NOTAUTH              NOTAUTH, unsigned answer
name outside the zone                     NOTZONE              NOTZONE
TXT added beside a CNAME (prerequisite)   YXRRSET              YXRRSET
CNAME added to a name in use (prereq.)    YXDOMAIN             YXDOMAIN
========================================  ===================  =========================

No message carries the TSIG secret: the texts come from rcodes and dnspython's exception
classes, and are scrubbed of the secret besides (:func:`~cname_flow.config.credentials.scrub`).
"""

from __future__ import annotations

import dns.exception
import dns.rcode
import dns.tsig

from cname_flow.config.credentials import scrub
from cname_flow.errors import DnsAuthError, DnsProviderError, Refused, ZoneNotFound

PROVIDER = "rfc2136"


class RcodeError(Exception):
    """The server answered with an RCODE other than NOERROR.

    Attributes:
        rcode: the answer's RCODE.
    """

    def __init__(self, rcode: dns.rcode.Rcode) -> None:
        super().__init__(dns.rcode.to_text(rcode))
        self.rcode = rcode


#: Exceptions the adapter catches at its boundary: dnspython's (TSIG, timeouts, malformed
#: answers, :class:`RcodeError`) and the socket's.
RFC2136_ERRORS: tuple[type[BaseException], ...] = (
    dns.exception.DNSException, OSError, RcodeError)

_KEY = "rfc2136.key_name, rfc2136.algorithm"
#: Remediation per code: an RCODE name, a TSIG error name, or one of the transport codes.
HINTS: dict[str, str] = {
    "BADKEY": (
        f"the server does not know this TSIG key ({_KEY} must match the server's key statement"
        " exactly); Knot also answers BADKEY when its ACL denies the update: check the ACL's"
        " update-type (TXT, CNAME) and update-owner for this name"
    ),
    "BADSIG": (
        "the TSIG signature does not verify: the secret (base64, in the environment variable"
        " rfc2136.secret names) or the algorithm differs from the server's key"
    ),
    "BADTIME": (
        "the TSIG time is outside the server's window (fudge 300 s): check this machine's clock"
        " (NTP) against the server's"
    ),
    "BADTRUNC": "the server refused a truncated TSIG MAC; use a full-length hmac-sha256 key",
    "REFUSED": (
        "the server's update policy does not let this key change this name and type, or the"
        " TXT ownership marker at _cname-flow.<name> written with it (BIND: update-policy {"
        " grant <key> zonesub TXT CNAME; }; Knot: an ACL with action update, update-type"
        " [TXT, CNAME]); or the zone accepts no updates at all"
    ),
    "NOTAUTH": (
        "the server is not authoritative for this zone: point rfc2136.host at the zone's"
        " primary (a secondary cannot apply updates)"
    ),
    "NOTZONE": "a name of the update is outside the zone, or below a delegation in it",
    "NOTIMP": "the server does not implement dynamic updates (RFC 2136) for this zone",
    "SERVFAIL": (
        "the server failed to apply the update (zone not loaded, journal not writable?): see"
        " its log"
    ),
    "FORMERR": "the server could not parse the update; report it as a cname-flow bug",
    "YXRRSET": (
        "the name holds a CNAME, and a CNAME cannot share its name with other records; remove"
        " or move it"
    ),
    "YXDOMAIN": (
        "the name already holds other records, and a CNAME must be alone at its name; remove"
        " them or choose another name"
    ),
    "NXRRSET": "the record changed while it was being updated; list the records again",
    "Timeout": "no answer in time: check rfc2136.host and rfc2136.port (TCP and UDP) and the"
               " firewall, or raise rfc2136.timeout_s",
    "NetworkError": "the server could not be reached: check rfc2136.host and rfc2136.port",
    "UnsignedAnswer": (
        "the server answered without a TSIG signature: it does not serve this zone (Knot"
        " answers NOTAUTH unsigned) or dropped the key"
    ),
}
#: Codes for which trying again later can succeed.
RETRYABLE = frozenset({"SERVFAIL", "Timeout", "NetworkError"})
AUTH_CODES = frozenset({"BADKEY", "BADSIG", "BADTIME", "BADTRUNC", "REFUSED"})
#: What each code of :data:`AUTH_CODES` refuses (:attr:`DnsAuthError.refused`), where not the
#: credentials: REFUSED is the server's update policy (RFC 2136 §3.3), BADTIME the TSIG clock
#: (RFC 8945 §5.2.3).
REFUSED: dict[str, Refused] = {"REFUSED": "permission", "BADTIME": "clock"}


def code_of(exc: BaseException) -> str:
    """The code an exception stands for: an RCODE or TSIG error name, ``Timeout``,
    ``NetworkError``, ``UnsignedAnswer`` or ``DnsError``."""
    if isinstance(exc, RcodeError):
        return dns.rcode.to_text(exc.rcode)
    if isinstance(exc, dns.tsig.PeerBadKey):
        return "BADKEY"
    if isinstance(exc, dns.tsig.PeerBadSignature | dns.tsig.BadSignature):
        return "BADSIG"
    if isinstance(exc, dns.tsig.PeerBadTime | dns.tsig.BadTime):
        return "BADTIME"
    if isinstance(exc, dns.tsig.PeerBadTruncation):
        return "BADTRUNC"
    if isinstance(exc, dns.exception.Timeout):
        return "Timeout"
    if isinstance(exc, OSError):
        return "NetworkError"
    if isinstance(exc, dns.exception.FormError) and "TSIG" in str(exc):
        return "UnsignedAnswer"
    return "DnsError"


def map_rfc2136_error(
    exc: BaseException, action: str, server: str, secrets: tuple[str, ...] = ()
) -> DnsProviderError:
    """Translate one failure into the ``errors.py`` class it means.

    Args:
        exc: what dnspython or the socket raised, or :class:`RcodeError`.
        action: what was being done (``"AddRecord"``, ``"Query"``); it leads the message.
        server: ``host:port`` of the primary, for the message.
        secrets: values scrubbed from the message (the TSIG secret).

    Returns:
        ``DnsAuthError`` for TSIG errors and REFUSED, ``ZoneNotFound`` for NOTAUTH, else
        ``DnsProviderError``, retryable for SERVFAIL, timeouts and network errors (a failed
        prerequisite, YXDOMAIN, YXRRSET or NXRRSET, is for the caller to judge).
    """
    code = code_of(exc)
    detail = type(exc).__name__ if code == "DnsError" else code
    text = str(exc) if not isinstance(exc, RcodeError) else ""
    message = f"RFC 2136 {action} at {server}: {detail}" + (f": {text}" if text else "")
    cls: type[DnsProviderError] = DnsProviderError
    if code in AUTH_CODES:
        cls = DnsAuthError
    elif code == "NOTAUTH":
        cls = ZoneNotFound
    mapped = cls(
        scrub(message, secrets),
        service=PROVIDER,
        code=code,
        hint=HINTS.get(code, ""),
        retryable=(code in RETRYABLE) if cls is DnsProviderError else None,
    )
    if isinstance(mapped, DnsAuthError):
        mapped.refused = REFUSED.get(code, "credentials")
    return mapped

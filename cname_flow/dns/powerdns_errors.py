"""Every failure of a PowerDNS HTTP API call (httpx), mapped once to ``errors.py`` classes.

The API (https://doc.powerdns.com/authoritative/http-api/) answers errors with an HTTP status
and, mostly, a JSON body ``{"error": "<text>"}``. The adapter raises :class:`StatusError` for
any status other than 2xx, so one function maps it and httpx's transport errors alike.

Measured against PowerDNS 4.7.3 with gsqlite3 (``tests/pdnsserver.py``):

==========================================  ======  ====================================
case                                        status  body
==========================================  ======  ====================================
wrong or missing API key                    401     ``Unauthorized`` (plain text)
unknown zone id, unknown server id          404     ``Not Found`` (plain text)
TXT content not quoted                      422     ``… Not in expected format …``
name outside the zone                       422     ``… Name is out of zone``
CNAME beside other records                  422     ``… Conflicts with pre-existing RRset``
nothing listening at the URL                —       ``httpx.ConnectError``
==========================================  ======  ====================================

No message carries the API key: it travels only in the ``X-API-Key`` header, which no httpx
error text holds, and every message is scrubbed of it besides
(:func:`~cname_flow.config.credentials.scrub`).
"""

from __future__ import annotations

import httpx

from cname_flow.config.credentials import scrub
from cname_flow.errors import DnsAuthError, DnsProviderError, DnsThrottled, ZoneNotFound

PROVIDER = "powerdns"


class StatusError(Exception):
    """The API answered with a status other than 2xx.

    Attributes:
        status: the HTTP status.
        text: the server's error text (the JSON body's ``error``, else the body), at most
            300 characters.
    """

    def __init__(self, status: int, text: str) -> None:
        super().__init__(f"HTTP {status}: {text}")
        self.status = status
        self.text = text

    @classmethod
    def of(cls, response: httpx.Response) -> StatusError:
        """The error an answer stands for (its body read as JSON ``{"error": …}`` if it is)."""
        text = response.text
        try:
            body = response.json()
        except ValueError:
            body = None
        if isinstance(body, dict) and isinstance(body.get("error"), str):
            text = body["error"]
        return cls(response.status_code, text.strip()[:300])


class BadAnswer(Exception):
    """A 2xx answer that is not the JSON the API documents (the URL is not PowerDNS's API)."""


#: Exceptions the adapter catches at its boundary.
POWERDNS_ERRORS: tuple[type[BaseException], ...] = (httpx.HTTPError, StatusError, BadAnswer)

_URL = "powerdns.api_url"
#: Remediation per code.
HINTS: dict[str, str] = {
    "Unauthorized": (
        "the API key was refused: the environment variable powerdns.api_key names must hold"
        " the server's api-key (pdns.conf), and the server needs api=yes"
    ),
    "Forbidden": (
        "the web server refused this client: add its address to webserver-allow-from in"
        " pdns.conf, and check the API key"
    ),
    "ZoneNotFound": (
        "the server hosts no such zone, or powerdns.server_id is wrong (a stand-alone server is"
        " 'localhost'): list the zones with pdnsutil list-all-zones"
    ),
    "Unprocessable": "the server refused the change as invalid; its message says why",
    "Conflict": (
        "the name holds a CNAME, or a CNAME was asked for beside other records: a CNAME must be"
        " alone at its name; remove or move the other records"
    ),
    "Throttled": "the server (or a proxy before it) asks to slow down; try again later",
    "ServerError": "the server failed (backend down, database locked?): see its log; retried",
    "ConnectionRefused": (
        f"nothing answers at {_URL}: check the URL and port, and that pdns.conf has"
        " webserver=yes, api=yes and a webserver-address this machine can reach"
    ),
    "Timeout": f"no answer in time: check {_URL} and the firewall, or raise"
               " powerdns.read_timeout_s",
    "NetworkError": f"the server could not be reached: check {_URL}",
    "BadAnswer": (
        f"the answer is not the PowerDNS API's JSON: {_URL} must be the web server's base"
        " URL (http://host:port, without /api/v1)"
    ),
}
#: Codes for which trying again later can succeed.
RETRYABLE = frozenset({"ServerError", "ConnectionRefused", "Timeout", "NetworkError"})


def code_of(exc: BaseException) -> str:
    """The code an exception stands for (a key of :data:`HINTS`, or ``HttpError``)."""
    if isinstance(exc, StatusError):
        return _status_code(exc)
    if isinstance(exc, httpx.ConnectError):
        return "ConnectionRefused"
    if isinstance(exc, httpx.TimeoutException):
        return "Timeout"
    if isinstance(exc, httpx.TransportError):
        return "NetworkError"
    if isinstance(exc, BadAnswer):
        return "BadAnswer"
    return "HttpError"


def _status_code(exc: StatusError) -> str:
    if exc.status == 401:
        return "Unauthorized"
    if exc.status == 403:
        return "Forbidden"
    if exc.status == 404 or (exc.status == 422 and "could not find domain" in exc.text.lower()):
        return "ZoneNotFound"
    if exc.status == 422:
        return "Conflict" if "conflicts with" in exc.text.lower() else "Unprocessable"
    if exc.status == 429:
        return "Throttled"
    if exc.status >= 500:
        return "ServerError"
    return f"HTTP{exc.status}"


def map_powerdns_error(
    exc: BaseException, action: str, api_url: str, secrets: tuple[str, ...] = ()
) -> DnsProviderError:
    """Translate one failure into the ``errors.py`` class it means.

    Args:
        exc: what httpx raised, or :class:`StatusError` / :class:`BadAnswer`.
        action: what was being done (``"ListZones"``, ``"PatchRRset"``); it leads the message.
        api_url: the web server's base URL, for the message.
        secrets: values scrubbed from the message (the API key).

    Returns:
        ``DnsAuthError`` for 401/403, ``ZoneNotFound`` for 404 (and a 422 "Could not find
        domain"), ``DnsThrottled`` for 429, else ``DnsProviderError``: retryable for 5xx,
        refused connections, timeouts and other network errors.
    """
    code = code_of(exc)
    status = exc.status if isinstance(exc, StatusError) else 0
    detail = exc.text if isinstance(exc, StatusError) else f"{type(exc).__name__}: {exc}"
    message = f"PowerDNS {action} at {api_url}: {code}" + (f" ({detail})" if detail else "")
    cls: type[DnsProviderError] = DnsProviderError
    if code in ("Unauthorized", "Forbidden"):
        cls = DnsAuthError
    elif code == "ZoneNotFound":
        cls = ZoneNotFound
    elif code == "Throttled":
        cls = DnsThrottled
    mapped = cls(
        scrub(message, secrets),
        service=PROVIDER,
        code=code,
        status=status,
        hint=HINTS.get(code, ""),
        retryable=(code in RETRYABLE) if cls is DnsProviderError else None,
    )
    if isinstance(mapped, DnsAuthError) and code == "Forbidden":
        mapped.refused = "permission"  # 403: the key is known, this server forbids the action
    return mapped

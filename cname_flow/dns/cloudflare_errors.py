"""Every failure of a Cloudflare API v4 call (the ``cloudflare`` SDK), mapped once to ``errors.py``.

The API (https://developers.cloudflare.com/api/) answers errors with an HTTP status and the v4
envelope ``{"success": false, "errors": [{"code": <int>, "message": "..."}], "messages": [],
"result": null}``; the SDK raises one ``cloudflare.APIStatusError`` subclass per status
(``AuthenticationError`` 401, ``PermissionDeniedError`` 403, ``NotFoundError`` 404,
``RateLimitError`` 429, ``InternalServerError`` 5xx, ...) with the envelope's ``errors`` parsed,
and ``APIConnectionError`` / ``APITimeoutError`` when no answer came
(https://github.com/cloudflare/cloudflare-python#handling-errors).

Body codes branched on, each where it is publicly shown (there is no official list):

=======  ======  ===========================================  ===========================
code     status  message                                      seen in
=======  ======  ===========================================  ===========================
81057    400     ``The record already exists.``               NewFuture/DDNS#21,
                                                              certbot/certbot#10725
81058    400     ``An identical record already exists.``      jeessy2/ddns-go#1378,
                                                              certbot/certbot#10725
81053/4  400     ``... record with that host already exists``  favonia/cloudflare-ddns#990
81044    404     ``Record does not exist.``                   zanjie1999/cloudflare-api-
                                                              v4-ddns#5
6003     400     ``Invalid request headers`` (chain 6111      Ultimate-Multisite/
                 ``Invalid format for Authorization header``) ultimate-multisite#73
10000    403     ``Authentication error`` (token lacks the    cloudflare/terraform-
                 permission)                                  provider-cloudflare#1533
=======  ======  ===========================================  ===========================

(issue numbers on https://github.com.) No message carries the API token: it travels only in the
``Authorization`` header, which no SDK error text holds, and every message is scrubbed of it
besides (:func:`~cname_flow.config.credentials.scrub`).
"""

from __future__ import annotations

import cloudflare

from cname_flow.config.credentials import scrub
from cname_flow.errors import DnsAuthError, DnsProviderError, DnsThrottled, ZoneNotFound
from cname_flow.retry import is_unreachable

PROVIDER = "cloudflare"

#: Exceptions the adapter catches at its boundary (every SDK API error derives from APIError).
CLOUDFLARE_ERRORS: tuple[type[BaseException], ...] = (cloudflare.APIError,)

#: Body codes: a create that found the same record already there (81057, 81058).
DUPLICATE_CODES = frozenset({81057, 81058})
#: Body codes: a CNAME beside other records at one name, or the reverse (81053, 81054).
CONFLICT_CODES = frozenset({81053, 81054})
#: Body code: the record id is unknown (81044).
RECORD_GONE_CODE = 81044
#: Body codes: the Authorization header is not a token at all (6003, chain 6111).
BAD_TOKEN_CODES = frozenset({6003, 6111})

_TOKEN = "the API token (cloudflare.api_token names its variable)"
#: Remediation per code.
HINTS: dict[str, str] = {
    "Unauthorized": (
        f"{_TOKEN} was refused: create an API token (My Profile > API Tokens) with Zone:Read"
        " and DNS:Edit on the zone, export it, and check it is not expired or revoked"
    ),
    "InvalidToken": (
        f"{_TOKEN} is not a token: export the token's value alone, without 'Bearer ' and"
        " without quotes or newlines"
    ),
    "Forbidden": (
        "the token is valid but lacks a permission: give it Zone:Read and DNS:Edit on this"
        " zone (Zone Resources must include the zone), or lift its client IP filter"
    ),
    "ZoneNotFound": (
        "no such zone for this token: add the zone to Cloudflare, or include it in the token's"
        " Zone Resources"
    ),
    "RecordNotFound": "the record is gone (deleted meanwhile): list the records again",
    "RecordExists": "the same record is already there",
    "Conflict": (
        "the name holds a CNAME, or a CNAME was asked for beside other records: a CNAME must be"
        " alone at its name; remove or move the other records"
    ),
    "BadRequest": "Cloudflare refused the request as invalid; its message says why",
    "Throttled": (
        "Cloudflare's rate limit (1200 requests per 5 minutes per user) was hit; retried,"
        " else lower batch.rate limits or wait"
    ),
    "ServerError": "Cloudflare failed; retried (see https://www.cloudflarestatus.com/)",
    "ConnectionRefused": (
        "nothing answers at the API's address: check cloudflare.base_url (leave it unset for"
        " api.cloudflare.com), the DNS resolution and the proxy settings"
    ),
    "Timeout": "no answer in time: check the network, or raise cloudflare.read_timeout_s",
    "NetworkError": "Cloudflare's API could not be reached: check the network and proxy",
    "BadAnswer": (
        "the answer is not Cloudflare's API v4 JSON: cloudflare.base_url must end in"
        " /client/v4 (leave it unset for the real API)"
    ),
}
#: Codes for which trying again later can succeed (throttling is retried by its class).
RETRYABLE = frozenset({"ServerError", "ConnectionRefused", "Timeout", "NetworkError"})


def body_codes(exc: BaseException) -> set[int]:
    """The numeric ``errors[].code`` (and their ``error_chain`` codes) of an SDK error."""
    codes: set[int] = set()
    body = getattr(exc, "body", None)
    entries = body.get("errors") if isinstance(body, dict) else None
    for entry in entries if isinstance(entries, list) else []:
        if not isinstance(entry, dict):
            continue
        for item in [entry, *(entry.get("error_chain") or [])]:
            if isinstance(item, dict) and isinstance(item.get("code"), int):
                codes.add(item["code"])
    return codes


def code_of(exc: BaseException) -> str:
    """The code an exception stands for: a key of :data:`HINTS`, or ``HTTP<status>``."""
    if isinstance(exc, cloudflare.APIStatusError):
        return _status_code(exc)
    if isinstance(exc, cloudflare.APITimeoutError):
        return "Timeout"
    if isinstance(exc, cloudflare.APIConnectionError):
        return "ConnectionRefused" if is_unreachable(exc) else "NetworkError"
    if isinstance(exc, cloudflare.APIResponseValidationError):
        return "BadAnswer"
    return "ApiError"


def _status_code(exc: cloudflare.APIStatusError) -> str:
    status, codes = exc.status_code, body_codes(exc)
    if status == 401:
        return "Unauthorized"
    if status == 403:
        return "Forbidden"
    if RECORD_GONE_CODE in codes:
        return "RecordNotFound"
    if status == 404:
        return "RecordNotFound" if "/dns_records/" in exc.request.url.path else "ZoneNotFound"
    if status == 429:
        return "Throttled"
    if status >= 500:
        return "ServerError"
    if codes & DUPLICATE_CODES:
        return "RecordExists"
    if codes & CONFLICT_CODES or status == 409:
        return "Conflict"
    if codes & BAD_TOKEN_CODES:
        return "InvalidToken"
    if status in (400, 422):
        return "BadRequest"
    return f"HTTP{status}"


def _detail(exc: BaseException) -> str:
    """The envelope's errors as ``code message; ...``, else the exception's own text."""
    body = getattr(exc, "body", None)
    entries = body.get("errors") if isinstance(body, dict) else None
    if isinstance(entries, list) and entries:
        parts = [f"{e.get('code', '?')} {e.get('message', '')}".strip()
                 for e in entries if isinstance(e, dict)]
        return "; ".join(parts)[:300]
    if isinstance(exc, cloudflare.APIStatusError):
        return ""
    cause = exc.__cause__
    inner = f" ({type(cause).__name__}: {cause})" if cause is not None else ""
    return f"{type(exc).__name__}: {exc}{inner}"[:300]


def map_cloudflare_error(
    exc: BaseException, action: str, secrets: tuple[str, ...] = ()
) -> DnsProviderError:
    """Translate one SDK failure into the ``errors.py`` class it means.

    Args:
        exc: what the SDK raised (a ``cloudflare.APIError``).
        action: what was being done (``"ListZones"``, ``"CreateRecord"``); it leads the message.
        secrets: values scrubbed from the message (the API token).

    Returns:
        ``DnsAuthError`` for 401, a malformed token (``refused="credentials"``) and 403
        (``refused="permission"``); ``ZoneNotFound`` for a 404 outside a record's path;
        ``DnsThrottled`` for 429; else ``DnsProviderError``: retryable for 5xx, timeouts and
        network errors, ``unreachable`` too when no connection could be made; codes
        ``RecordNotFound`` (404 on a record, 81044) and ``RecordExists`` (81057, 81058) for the
        adapter to branch on.
    """
    code = code_of(exc)
    status = exc.status_code if isinstance(exc, cloudflare.APIStatusError) else 0
    detail = _detail(exc)
    message = f"Cloudflare {action}: {code}" + (f" (HTTP {status})" if status else "")
    message += f": {detail}" if detail else ""
    cls: type[DnsProviderError] = DnsProviderError
    if code in ("Unauthorized", "InvalidToken", "Forbidden"):
        cls = DnsAuthError
    elif code == "ZoneNotFound":
        cls = ZoneNotFound
    elif code == "Throttled":
        cls = DnsThrottled
    request_id = ""
    if isinstance(exc, cloudflare.APIStatusError):
        request_id = exc.response.headers.get("cf-ray", "")
    mapped = cls(
        scrub(message, secrets),
        service=PROVIDER,
        code=code,
        status=status,
        request_id=request_id,
        hint=HINTS.get(code, ""),
        retryable=(code in RETRYABLE) if cls is DnsProviderError else None,
    )
    if isinstance(mapped, DnsAuthError) and code == "Forbidden":
        mapped.refused = "permission"  # the token is known; it may not do this
    if code == "ConnectionRefused":
        mapped.unreachable = True
    return mapped


def retry_after_s(exc: BaseException) -> float | None:
    """The server's ``Retry-After`` (seconds) behind a mapped throttling error, if it sent one."""
    response = getattr(exc.__cause__, "response", None)
    value = response.headers.get("retry-after", "") if response is not None else ""
    try:
        seconds = float(value)
    except ValueError:
        return None
    return seconds if seconds > 0 else None

"""Every exception the Alidns SDK stack raises, mapped once to ``errors.py`` classes.

The stack is alibabacloud-alidns20150109 over alibabacloud-tea-openapi, darabonba-core and Tea.
An error answer raises ``ClientException`` (4xx), ``ServerException`` (5xx) or
``ThrottlingException`` (any status with ``x-acs-retry-after``), all ``ResponseException``
subclasses carrying ``.code``, ``.status_code``, ``.request_id`` and the body in ``.data``.
Anything else (connection refused, a body that is not JSON) arrives as ``UnretryableException``
with the cause in ``.inner_exception``; argument checks raise ``ValidateException`` /
``RequiredArgumentException``.
"""

from __future__ import annotations

from alibabacloud_tea_openapi import exceptions as openapi_exc
from darabonba import exceptions as dara_exc
from Tea import exceptions as tea_exc

from cname_flow.config.credentials import scrub
from cname_flow.errors import DnsAuthError, DnsProviderError, DnsThrottled, ZoneNotFound
from cname_flow.retry import is_unreachable

PROVIDER = "alidns"

#: Exceptions the adapter catches at its boundary.
ALIDNS_SDK_ERRORS: tuple[type[BaseException], ...] = (
    tea_exc.TeaException,
    tea_exc.ValidateException,
    tea_exc.RetryError,
    dara_exc.ValidateException,
    dara_exc.RetryError,
)

AUTH_CODES = frozenset(
    {
        "InvalidAccessKeyId",
        "InvalidAccessKeyId.NotFound",
        "InvalidAccessKeyId.Inactive",
        "SignatureDoesNotMatch",
        "IncompleteSignature",
        "InvalidSecurityToken.Expired",
        "InvalidSecurityToken.Malformed",
        "InvalidSecurityToken.MismatchWithAccessKey",
        "Forbidden",
        "Forbidden.RAM",
        "Forbidden.AccessKeyDisabled",
        "NoPermission",
        "InvalidCredentials",
    }
)
#: Codes of :data:`AUTH_CODES` that refuse a permission, not the credentials
#: (:attr:`DnsAuthError.refused`).
PERMISSION_CODES = frozenset({"Forbidden", "Forbidden.RAM", "NoPermission"})
ZONE_CODES = frozenset({"InvalidDomainName.NoExist", "IncorrectDomainUser"})
#: Alidns codes that mean "slow down" (with HTTP 429 or a ``ThrottlingException``, the SDK's
#: name for an answer carrying ``x-acs-retry-after``): ``Throttling.User`` and ``Throttling``
#: per https://www.alibabacloud.com/en/notice/notice_on_api_throttling_of_alibaba_cloud_dns_444,
#: ``Throttling.Api`` the OpenAPI gateway's per-API flow control.
THROTTLE_CODES = frozenset({"Throttling", "Throttling.User", "Throttling.Api"})
#: Other codes worth trying again (5xx statuses are, whatever their code).
RETRYABLE_CODES = frozenset({"ServiceUnavailable", "InternalError", "LastOperationNotFinished"})

#: Remediation per Alidns error code: the Alidns error-code table
#: (https://help.aliyun.com/document_detail/2355841.html), the record conflict rules
#: (https://help.aliyun.com/en/dns/pubz-dns-record-conflict-rules), the TTL range per edition
#: (https://www.alibabacloud.com/help/doc-detail/29806.htm), the throttling notice above, and
#: aliyun/terraform-provider-alicloud ``alicloud/resource_alicloud_alidns_record.go`` (the codes
#: it retries or treats as gone).
HINTS: dict[str, str] = {
    "DomainRecordDuplicate": "an identical record (host, type, line, value) already exists",
    "DomainRecordConflict": (
        "another record type on the same host conflicts (e.g. a CNAME next to a TXT on a non-@"
        " host); remove or move it"
    ),
    "DomainRecordNotBelongToUser": "the record id is not (or no longer) in this account",
    "IncorrectDomainUser": "the zone is not hosted in this account; check credentials and zone",
    "InvalidDomainName.NoExist": "the zone is not hosted at Alidns in this account",
    "QuotaExceeded.TTL": "the TTL is below the zone edition's minimum (free edition: 600 s)",
    "QuotaExceeded.Record": "too many records with the same host, type and line",
    "DomainRecordLocked": "the record is locked in the Alidns console; unlock it",
    "LastOperationNotFinished": "a previous change to this record is still running; retry shortly",
    "Throttling.User": "the Alidns API rate limit was hit; lower the request rate",
    "Throttling": "the Alidns API rate limit was hit; lower the request rate",
    "RecordForbidden.DNSChange": "the zone is being migrated; records cannot change now",
    "RecordForbidden.BlackHole": "the zone is black-holed after an attack; wait until released",
    "DomainForbidden": "Alidns has banned changes to this domain; contact support",
    "SignatureDoesNotMatch": "the AccessKey secret does not match the id; check the secret",
    "InvalidAccessKeyId.NotFound": "the AccessKey id is unknown; check the configured key",
    "Forbidden.RAM": (
        "the RAM identity lacks permission: grant alidns:DescribeDomains, DescribeDomainInfo,"
        " DescribeSubDomainRecords, AddDomainRecord, UpdateDomainRecord,"
        " UpdateDomainRecordRemark, DeleteDomainRecord"
    ),
    "NetworkError": "Alidns could not be reached; check the endpoint, protocol and HTTP(S)_PROXY",
    "EndpointUnreachable": "no connection to the Alidns endpoint (refused, or its name does "
    "not resolve): check dns.alidns.endpoint, DNS and the network, then run the same command "
    "again",
    "InvalidResponse": "Alidns answered something that is not its JSON API (proxy or gateway?)",
}


def map_alidns_error(
    exc: BaseException, action: str, secrets: tuple[str, ...] = ()
) -> DnsProviderError:
    """Translate one Alidns SDK exception into the ``errors.py`` class it means.

    Args:
        exc: what the SDK raised.
        action: the Alidns API action (``"AddDomainRecord"``); it leads the message.
        secrets: values scrubbed from the message (AccessKey secret, STS token).

    Returns:
        ``DnsAuthError`` (refused credentials), ``ZoneNotFound`` (zone not in the account),
        ``DnsThrottled`` (:data:`THROTTLE_CODES`, HTTP 429, ``ThrottlingException``; retryable)
        or ``DnsProviderError``, retryable for 5xx, :data:`RETRYABLE_CODES` and network errors.
    """
    if isinstance(exc, tea_exc.UnretryableException) and not isinstance(
        exc, dara_exc.ResponseException
    ):
        return _from_transport(exc, action, secrets)
    if isinstance(exc, dara_exc.ResponseException):
        return _from_response(exc, action, secrets)
    if isinstance(exc, tea_exc.RetryError | dara_exc.RetryError):
        return _error(DnsProviderError, action, "NetworkError", str(exc.message), secrets, True)
    if isinstance(exc, tea_exc.ValidateException | dara_exc.ValidateException):
        return _error(DnsProviderError, action, "InvalidRequest", str(exc), secrets, False)
    if isinstance(exc, tea_exc.TeaException):  # DaraException included
        code, text = _field(exc.code) or "ClientError", _field(exc.message) or str(exc)
        return _error(DnsProviderError, action, code, text, secrets, False)
    return _error(DnsProviderError, action, "ClientError", str(exc), secrets, False)


def _from_response(
    exc: dara_exc.ResponseException, action: str, secrets: tuple[str, ...]
) -> DnsProviderError:
    data = exc.data if isinstance(exc.data, dict) else {}
    code = _field(exc.code) or _field(data.get("Code")) or "Unknown"
    status = int(exc.status_code or data.get("statusCode") or 0)
    text = _field(data.get("Message")) or _field(data.get("message")) or _field(exc.message)
    request_id = _field(getattr(exc, "request_id", None)) or _field(data.get("RequestId"))
    throttled = status == 429 or isinstance(exc, openapi_exc.ThrottlingException)
    cls = _class_for(code, throttled)
    by_code = code in RETRYABLE_CODES or status >= 500
    mapped = cls(
        scrub(f"Alidns {action}: {code} (HTTP {status}): {text}", secrets),
        service=PROVIDER,
        code=code,
        request_id=request_id,
        status=status,
        hint=HINTS.get(code, ""),
        retryable=by_code if cls is DnsProviderError else None,  # None: the class's own
    )
    if isinstance(mapped, DnsAuthError) and code in PERMISSION_CODES:
        mapped.refused = "permission"
    return mapped


def _from_transport(
    exc: tea_exc.UnretryableException, action: str, secrets: tuple[str, ...]
) -> DnsProviderError:
    inner = exc.inner_exception
    if isinstance(inner, dara_exc.ResponseException):
        return _from_response(inner, action, secrets)
    detail = f"{type(inner).__name__}: {getattr(inner, 'message', None) or inner}"
    if isinstance(inner, RuntimeError) and "json" in str(inner).lower():
        return _error(DnsProviderError, action, "InvalidResponse", detail, secrets, True)
    if is_unreachable(exc):
        error = _error(DnsProviderError, action, "EndpointUnreachable", detail, secrets, True)
        error.unreachable = True
        return error
    return _error(DnsProviderError, action, "NetworkError", detail, secrets, True)


def _error(
    cls: type[DnsProviderError],
    action: str,
    code: str,
    text: str,
    secrets: tuple[str, ...],
    retryable: bool,
) -> DnsProviderError:
    return cls(
        scrub(f"Alidns {action}: {code}: {text}", secrets),
        service=PROVIDER,
        code=code,
        hint=HINTS.get(code, ""),
        retryable=retryable,
    )


def _class_for(code: str, throttled: bool) -> type[DnsProviderError]:
    if code in AUTH_CODES or code.startswith(("InvalidAccessKeyId", "InvalidSecurityToken")):
        return DnsAuthError
    if code in ZONE_CODES:
        return ZoneNotFound
    if throttled or code in THROTTLE_CODES:
        return DnsThrottled
    return DnsProviderError


def _field(value: object) -> str:
    """A text field of an SDK error; the SDK turns missing values into the string ``'None'``."""
    if value is None:
        return ""
    text = str(value)
    return "" if text == "None" else text


def retry_after_s(exc: BaseException) -> float | None:
    """The server's minimum wait (``x-acs-retry-after``, ms) behind a mapped error, in seconds."""
    millis = getattr(exc.__cause__, "retry_after", None)
    if isinstance(millis, int | float) and millis > 0:
        return float(millis) / 1000.0
    return None

"""Every exception the OSS SDK (alibabacloud-oss-v2) raises, mapped once to ``errors.py`` classes.

The SDK wraps each failure of an operation in ``OperationError``; the cause is ``unwrap()``:
``ServiceError`` (the service answered an error), ``RequestError``/``ResponseError`` (transport),
``Credentials*Error``, ``Param*Error``/``BucketNameInvalidError`` (client-side validation),
``DeserializationError`` (an answer it could not read). Failures after the operation (parsing a
2xx body) arrive unwrapped, including ``xml.etree.ElementTree.ParseError``.

Messages are built from the error's fields, never from ``str(exc)`` alone, and scrubbed of the
caller's secrets.
"""

from __future__ import annotations

import re
from xml.etree.ElementTree import ParseError

from alibabacloud_oss_v2 import exceptions as oss_exc

from cname_flow.config.credentials import scrub
from cname_flow.errors import (
    BucketInOtherRegion,
    BucketNotFound,
    CnameAlreadyBound,
    CnameTaken,
    DomainOfOtherAccount,
    IcpFilingMissing,
    OssAuthError,
    OssCertificateConflict,
    OssError,
    OssThrottled,
    OwnershipPending,
    Refused,
)
from cname_flow.retry import is_unreachable

SERVICE = "oss"

#: Exceptions the adapter catches at its boundary.
OSS_SDK_ERRORS: tuple[type[BaseException], ...] = (oss_exc.BaseError, ParseError)

AUTH_CODES = frozenset(
    {
        "InvalidAccessKeyId",
        "SignatureDoesNotMatch",
        "AccessDenied",
        "InvalidSecurityToken",
        "SecurityTokenExpired",
        "InvalidCredentials",
        "RequestTimeTooSkewed",
    }
)
#: What each code of :data:`AUTH_CODES` says was refused (:attr:`OssAuthError.refused`); the
#: others refuse the credentials.
REFUSED: dict[str, Refused] = {"AccessDenied": "permission", "RequestTimeTooSkewed": "clock"}
#: OSS codes that mean "slow down" (with HTTP 429, whatever its code): the QPS limits of
#: https://www.alibabacloud.com/help/en/oss/user-guide/429-error and
#: https://www.alibabacloud.com/help/doc-detail/185813.htm (503 ``MetaOperationQpsLimitExceeded``
#: and ``TotalQpsLimitExceeded``, which the sandbox answers too), plus the S3-style ``SlowDown``
#: (kept, harmless, though OSS is not known to send it). ``RequestRateLimitExceeded`` /
#: ``RequestRateExceeded``, listed before, are in neither page and were dropped.
THROTTLE_CODES = frozenset(
    {
        "SlowDown",
        "Throttling",
        "TooManyRequests",
        "QpsLimitExceeded",
        "TotalQpsLimitExceeded",
        "MetaOperationQpsLimitExceeded",
        "ActiveRequestLimitExceeded",
    }
)
_RETRYABLE_STATUS = frozenset({408, 429})

#: OSS codes whose meaning has its own class (PutCname, CreateCnameToken error tables:
#: https://www.alibabacloud.com/help/en/oss/developer-reference/putcname,
#: https://www.alibabacloud.com/help/en/oss/developer-reference/createcnametoken).
CODE_CLASSES: dict[str, type[OssError]] = {
    "CnameAlreadyExists": CnameTaken,
    "CnameDenied": DomainOfOtherAccount,
    "NoNeedCreateCnameToken": CnameAlreadyBound,
    "NeedVerifyDomainOwnership": OwnershipPending,
    "NoSuchCnameInRecord": IcpFilingMissing,
    "CasRenewCertificateConflict": OssCertificateConflict,
    "NoSuchBucket": BucketNotFound,
}
#: OSS EC codes whose meaning has its own class, whatever the code beside them: a
#: PreviousCertId that no longer matches comes back as EC 0018-00000209.
EC_CLASSES: dict[str, type[OssError]] = {"0018-00000209": OssCertificateConflict}

#: Remediation per OSS error code: the error tables of the CNAME operations' references (the two
#: above, getcnametoken and deletecname beside them), the limits and the ICP filing rule of
#: https://www.alibabacloud.com/help/en/oss/user-guide/map-custom-domain-names-5, and
#: https://help.aliyun.com/en/oss/user-guide/overview-14 for the codes common to every call.
HINTS: dict[str, str] = {
    "NeedVerifyDomainOwnership": (
        "publish the CNAME token as TXT _dnsauth.<domain> and wait until every authoritative"
        " nameserver serves it before calling PutCname again"
    ),
    "CnameAlreadyExists": (
        "the domain is bound to another bucket of this account (or to legacy image processing);"
        " a domain maps to one bucket: DeleteCname it there first"
    ),
    "CnameDenied": (
        "the domain is bound to a bucket of another Alibaba Cloud account: only that account can"
        " release it (DeleteCname there); if the domain is yours, ask its owner or Alibaba Cloud"
        " support, or bind another domain"
    ),
    "CnameIsForbidden": "OSS reserves this domain; choose another custom domain",
    "CnameIsRisk": "OSS flags this domain as high-risk; contact Alibaba Cloud support",
    "NoSuchCnameInRecord": (
        "buckets in mainland China regions (cn-*, except cn-hongkong) need an ICP filing for the"
        " domain: file it (https://beian.aliyun.com) and run bind again once it is approved, or"
        " bind the domain to a bucket outside mainland China; retrying before that cannot help"
    ),
    "TooManyCnameToken": "the bucket holds 1000 CNAME tokens; wait for old ones to expire (72 h)",
    "TooManyCname": "a bucket takes at most 100 custom domains; unbind some or use another bucket",
    "CertificateInvalidCasId": (
        "the CAS certificate id is unknown or not the bucket owner's; a CertId needs its CAS"
        " region suffix, e.g. 4930000-cn-hangzhou"
    ),
    "NoNeedCreateCnameToken": "the domain is already bound; check it with ListCname",
    "CnameTokenNotFound": "no valid token: it was never created or expired (72 h); create one",
    "NoSuchCname": "the domain is not bound to this bucket",
    "NoSuchBucket": (
        "OSS has no bucket of that name: check --bucket, defaults.bucket or the manifest, and"
        " that the bucket belongs to the account of the configured AccessKey"
    ),
    "InvalidAccessKeyId": "the AccessKey id is unknown or disabled; check the configured key",
    "SignatureDoesNotMatch": "the AccessKey secret does not match the id; check the secret",
    "AccessDenied": (
        "the RAM identity lacks permission: grant oss:CreateCnameToken, oss:GetCnameToken,"
        " oss:PutCname, oss:ListCname, oss:DeleteCname (and yundun-cert:* to attach certificates)"
    ),
    "InvalidSecurityToken": "the STS token is invalid or expired; get fresh temporary credentials",
    "SecurityTokenExpired": "the STS token expired; obtain fresh temporary credentials",
    "RequestTimeTooSkewed": "the local clock is off by more than 15 minutes; synchronise it (NTP)",
    "InvalidArgument": (
        "OSS rejected the CNAME configuration; a CAS CertId needs its CAS region suffix,"
        " e.g. 4930000-cn-hangzhou"
    ),
    "MalformedXML": "DeleteCertificate cannot be combined with Force; send one of them",
    "CasRenewCertificateConflict": (
        "the bound certificate changed since it was read; re-read ListCname and retry, or Force"
    ),
    "NetworkError": "OSS could not be reached; check the endpoint, proxy settings and network",
    "EndpointUnreachable": "no connection to the OSS endpoint (refused, or its name does not "
    "resolve): check oss.endpoint / --endpoint / OSS_ENDPOINT, DNS and the network, then run "
    "the same command again",
}

#: Remediation per OSS EC code, for codes whose name alone is ambiguous.
EC_HINTS: dict[str, str] = {
    "0018-00000115": HINTS["NeedVerifyDomainOwnership"],
    "0018-00000204": (
        "the CAS certificate id is unknown or not the bucket owner's; a CertId needs its CAS"
        " region suffix, e.g. 4930000-cn-hangzhou"
    ),
    "0018-00000209": (
        "PreviousCertId no longer matches the bound certificate (changed out of band);"
        " re-read ListCname, or rotate with Force"
    ),
    "0018-00000302": HINTS["NoNeedCreateCnameToken"],
    # "Invalid signing region in Authorization header." (HTTP 400 InvalidArgument):
    # https://help.aliyun.com/zh/oss/support/0002-00000226
    "0002-00000226": (
        "the V4 signing region is not the region of the endpoint: oss.region must name the"
        " region of oss.endpoint"
    ),
}

#: An OSS endpoint host (``oss-cn-shanghai.aliyuncs.com``, ``<bucket>.oss-cn-shanghai-internal
#: .aliyuncs.com``) → its region id; the naming of
#: https://www.alibabacloud.com/help/en/oss/user-guide/regions-and-endpoints.
_ENDPOINT_REGION = re.compile(r"(?:^|\.)oss-([a-z0-9-]+?)(?:-internal)?\.aliyuncs\.com\.?$")


def endpoint_region(endpoint: str) -> str:
    """The region id an OSS endpoint names, or ``""`` when it names none.

    ``"oss-cn-shanghai.aliyuncs.com"`` → ``"cn-shanghai"``; a bucket's host or an internal
    endpoint too; a scheme and a port are ignored; anything else (``"127.0.0.1:9000"``) → ``""``.
    """
    host = endpoint.strip().lower().split("://", 1)[-1].split("/", 1)[0].rsplit(":", 1)[0]
    match = _ENDPOINT_REGION.search(host)
    return match.group(1) if match else ""


def hint_for(code: str, ec: str = "") -> str:
    """The remediation sentence for an OSS error code (or EC code), or ``""``."""
    return EC_HINTS.get(ec) or HINTS.get(code, "")


def map_oss_error(
    exc: BaseException, op: str, secrets: tuple[str, ...] = (), *, bucket: str = ""
) -> OssError:
    """Translate one OSS SDK exception into the ``errors.py`` class it means.

    Args:
        exc: what the SDK raised (``OperationError`` is unwrapped first).
        op: the OSS API action, e.g. ``"PutCname"``; it leads the message.
        secrets: values scrubbed from the message (AccessKey secret, STS token).
        bucket: the bucket the call addressed, named by the ``NoSuchBucket`` message.

    Returns:
        :class:`BucketInOtherRegion` for an ``AccessDenied`` that names the bucket's
        ``<Endpoint>`` (the answer of a region the bucket is not in: "must be addressed using
        the specified endpoint" on https://www.alibabacloud.com/help/en/oss/
        how-to-troubleshoot-403-status-code-when-you-access-oss), else the class
        :func:`oss_error_class` names (``OssAuthError``, ``OssThrottled``, ``BucketNotFound``,
        ``CnameTaken``, ``OwnershipPending``…), else ``OssError``. A specific class carries its
        own ``.retryable``; a plain ``OssError`` is retryable for 5xx, 408/429 and transport
        errors.
    """
    cause = _unwrap(exc)
    if isinstance(cause, oss_exc.ServiceError):
        return _from_service_error(cause, op, secrets, bucket)
    if isinstance(cause, oss_exc.CredentialsBaseError):
        return OssAuthError(
            f"OSS {op}: credentials unavailable ({type(cause).__name__})",
            service=SERVICE,
            code="InvalidCredentials",
            hint="configure an AccessKey id and secret (or STS credentials) for OSS",
        )
    code, retryable = _classify_client_side(cause)
    detail = scrub(str(cause), secrets)
    if is_unreachable(cause):
        error = OssError(f"OSS {op}: cannot reach the endpoint: {detail}", service=SERVICE,
                         code="EndpointUnreachable", hint=hint_for("EndpointUnreachable"),
                         retryable=True)
        error.unreachable = True
        return error
    return OssError(
        f"OSS {op}: {detail}",
        service=SERVICE,
        code=code,
        hint=hint_for(code),
        retryable=retryable,
    )


def _unwrap(exc: BaseException) -> BaseException:
    while isinstance(exc, oss_exc.OperationError):
        inner = exc.unwrap()
        if inner is None:
            break
        exc = inner
    return exc


def _classify_client_side(cause: BaseException) -> tuple[str, bool]:
    """(code, retryable) for a failure that is not a service answer."""
    if isinstance(cause, oss_exc.RequestError | oss_exc.ResponseError):
        return "NetworkError", True
    if isinstance(cause, oss_exc.InconsistentError):
        return "InconsistentResponse", True
    if isinstance(cause, oss_exc.DeserializationError | ParseError):
        return "InvalidResponse", False
    if isinstance(
        cause,
        oss_exc.ParamInvalidError
        | oss_exc.ParamNullError
        | oss_exc.ParamNullOrEmptyError
        | oss_exc.ParamRequiredError
        | oss_exc.BucketNameInvalidError
        | oss_exc.ObjectNameInvalidError
        | oss_exc.PresignExpirationError
        | oss_exc.SerializationError,
    ):
        return "InvalidRequest", False
    return "ClientError", False


def _from_service_error(
    err: oss_exc.ServiceError, op: str, secrets: tuple[str, ...], bucket: str
) -> OssError:
    code = str(err.code or "Unknown")
    status = int(err.status_code or 0)
    ec = str(err.ec or "")
    text = scrub(str(err.message or code), secrets)
    fields = err.error_fileds if isinstance(err.error_fileds, dict) else {}
    region = endpoint_region(str(fields.get("Endpoint") or "")) if code == "AccessDenied" else ""
    cls = BucketInOtherRegion if region else oss_error_class(code, status, ec)
    hint = hint_for(code, ec)
    if cls is BucketNotFound:
        name = bucket or str(fields.get("BucketName") or "")
        text = f"no bucket {name!r} in this account or region" if name else text
    elif region:
        hint = f"the bucket is in region {region}; address it there"
    message = f"OSS {op}: {code} (HTTP {status}): {text}" + (f" [EC {ec}]" if ec else "")
    by_status = status >= 500 or status in _RETRYABLE_STATUS
    mapped = cls(
        message,
        service=SERVICE,
        code=code,
        request_id=str(err.request_id or ""),
        status=status,
        hint=hint,
        retryable=by_status if cls is OssError else None,  # None: the class's own
        ec=ec,
    )
    if isinstance(mapped, BucketInOtherRegion):
        mapped.region = region
    elif isinstance(mapped, OssAuthError):
        mapped.refused = REFUSED.get(code, "credentials")
    return mapped


def oss_error_class(code: str, status: int, ec: str = "") -> type[OssError]:
    """The ``errors.py`` class an OSS error answer means.

    Args:
        code: the answer's ``Code`` (``"CnameAlreadyExists"``).
        status: its HTTP status.
        ec: its ``EC`` (``"0018-00000209"``), or ``""``.

    Returns:
        ``OssAuthError`` (:data:`AUTH_CODES`), ``OssThrottled`` (:data:`THROTTLE_CODES` or HTTP
        429), the class of :data:`EC_CLASSES` or :data:`CODE_CLASSES`, else ``OssError``.
    """
    if code in AUTH_CODES:
        return OssAuthError
    if code in THROTTLE_CODES or status == 429:
        return OssThrottled
    return EC_CLASSES.get(ec) or CODE_CLASSES.get(code, OssError)

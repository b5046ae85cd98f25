"""Every exception the two SDK stacks raise maps to the right errors.py class, once, secret-free.

The exceptions are the SDKs' own classes, built the way the SDKs build them (OSS:
``alibabacloud_oss_v2`` ``_client.py`` and ``exceptions.py``; Alidns: ``alibabacloud_tea_openapi``
``client.py``). A new exception class in alibabacloud_oss_v2 fails
``test_every_oss_exception_class_is_mapped_explicitly`` until it gets an expected mapping here.
"""

from __future__ import annotations

import ast
import inspect
import re
from pathlib import Path
from xml.etree.ElementTree import ParseError

import dns.rcode
import pytest
import requests
from alibabacloud_oss_v2 import exceptions as oss_exc
from alibabacloud_tea_openapi import exceptions as openapi_exc
from darabonba import exceptions as dara_exc
from darabonba.policy.retry import RetryPolicyContext
from Tea import exceptions as tea_exc

from cname_flow import errors
from cname_flow.dns import alidns_errors, rfc2136_errors
from cname_flow.dns.alidns_errors import map_alidns_error, retry_after_s
from cname_flow.errors import (
    BucketNotFound,
    CnameAlreadyBound,
    CnameFlowError,
    CnameTaken,
    ConfigError,
    DnsAuthError,
    DnsProviderError,
    DnsThrottled,
    IcpFilingMissing,
    OssAuthError,
    OssCertificateConflict,
    OssError,
    OssThrottled,
    OwnershipPending,
    Throttled,
    TokenExpired,
    ZoneNotFound,
)
from cname_flow.oss import errors as oss_errors
from cname_flow.oss.errors import hint_for, map_oss_error

SECRET = "SENTINEL-secret-7f3a"
TOKEN = "SENTINEL-sts-token-55c1"
SECRETS = (SECRET, TOKEN)

# ---------------------------------------------------------------------------------- root


@pytest.mark.parametrize(
    ("error", "code", "request_id", "retryable"),
    [
        (CnameFlowError("m"), "CnameFlowError", "", False),
        (TokenExpired("m"), "TokenExpired", "", True),
        (ConfigError(["a.yaml:1: oss: missing"]), "ConfigError", "", False),
        (OssError("m", service="oss", code="NoSuchBucket", request_id="R1"), "NoSuchBucket",
         "R1", False),
    ],
)
def test_every_error_should_carry_code_request_id_and_retryable(
    error: CnameFlowError, code: str, request_id: str, retryable: bool
) -> None:
    assert (error.code, error.request_id, error.retryable) == (code, request_id, retryable)


# ----------------------------------------------------------------------------------- OSS


def service_error(status: int, code: str, message: str = "msg", ec: str = "") -> BaseException:
    """A ServiceError wrapped in OperationError, as the client raises it."""
    err = oss_exc.ServiceError(
        status_code=status,
        code=code,
        message=message,
        request_id="5C3D8D2A0ACA54D87B43ABCD",
        ec=ec,
        timestamp=None,
        request_target="POST http://127.0.0.1/examplebucket/?cname=&comp=add",
    )
    wrapped: BaseException = oss_exc.OperationError(name="PutCname", error=err)
    return wrapped


@pytest.mark.parametrize(
    ("status", "code", "cls", "retryable"),
    [
        (403, "NeedVerifyDomainOwnership", OwnershipPending, True),
        (409, "CnameAlreadyExists", CnameTaken, False),
        (404, "NoSuchCnameInRecord", IcpFilingMissing, False),
        (403, "NoNeedCreateCnameToken", CnameAlreadyBound, False),
        (409, "CasRenewCertificateConflict", OssCertificateConflict, False),
        (400, "TooManyCnameToken", OssError, False),
        (404, "NoSuchBucket", BucketNotFound, False),
        (403, "InvalidAccessKeyId", OssAuthError, False),
        (403, "SignatureDoesNotMatch", OssAuthError, False),
        (403, "AccessDenied", OssAuthError, False),
        (403, "InvalidSecurityToken", OssAuthError, False),
        (403, "SecurityTokenExpired", OssAuthError, False),
        (401, "InvalidAccessKeyId", OssAuthError, False),
        (429, "TooManyRequests", OssThrottled, True),
        (503, "SlowDown", OssThrottled, True),
        (500, "InternalError", OssError, True),
        (503, "ServiceUnavailable", OssError, True),
        (408, "RequestTimeout", OssError, True),
    ],
)
def test_oss_service_error_should_map_to_class_code_and_retryability(
    status: int, code: str, cls: type[OssError], retryable: bool
) -> None:
    mapped = map_oss_error(service_error(status, code), "PutCname")
    assert type(mapped) is cls
    assert (mapped.code, mapped.status, mapped.retryable) == (code, status, retryable)
    assert mapped.request_id == "5C3D8D2A0ACA54D87B43ABCD"
    assert mapped.service == "oss"
    assert str(mapped).startswith(f"OSS PutCname: {code} (HTTP {status})")


@pytest.mark.parametrize(
    "code",
    [
        "TooManyCnameToken", "NoNeedCreateCnameToken", "CnameTokenNotFound", "InvalidArgument",
        "NeedVerifyDomainOwnership", "CnameDenied", "CnameIsForbidden", "CnameIsRisk",
        "NoSuchCnameInRecord", "CnameAlreadyExists", "NoSuchCname", "AccessDenied",
        "InvalidAccessKeyId", "SignatureDoesNotMatch", "NoSuchBucket", "RequestTimeTooSkewed",
        "TooManyCname", "CertificateInvalidCasId", "MalformedXML",
    ],
)
def test_every_documented_oss_code_should_carry_a_hint(code: str) -> None:
    mapped = map_oss_error(service_error(403, code), "PutCname")
    assert mapped.hint
    assert mapped.hint == hint_for(code)


def test_oss_hints_should_name_the_fix() -> None:
    assert "ICP" in hint_for("NoSuchCnameInRecord")
    assert "_dnsauth" in hint_for("NeedVerifyDomainOwnership")
    assert "region suffix" in hint_for("InvalidArgument")
    assert "100" in hint_for("TooManyCname")
    assert "one bucket" in hint_for("CnameAlreadyExists")
    assert "PreviousCertId" in hint_for("InvalidArgument", "0018-00000209")


def test_oss_ec_code_should_refine_the_hint() -> None:
    mapped = map_oss_error(service_error(400, "InvalidArgument", ec="0018-00000209"), "PutCname")
    assert "PreviousCertId" in mapped.hint
    assert "[EC 0018-00000209]" in str(mapped)


def _oss_instance(cls: type[oss_exc.BaseError]) -> oss_exc.BaseError:
    """Any OSS SDK exception, with every field its message format may name."""
    cause = requests.ConnectionError("connection refused")
    return cls(
        error=cause, name="PutCname", field="bucket", filepath="/x", client_crc=1,
        server_crc=2, status_code=500, code="InternalError", request_id="R", message="m",
        ec="", timestamp=None, request_target="POST /",
    )


#: What each OSS SDK exception class (raised directly or inside OperationError) maps to.
OSS_EXPECTED: dict[str, tuple[type[OssError], str, bool]] = {
    "BaseError": (OssError, "ClientError", False),
    "BucketNameInvalidError": (OssError, "InvalidRequest", False),
    "CredentialsBaseError": (OssAuthError, "InvalidCredentials", False),
    "CredentialsEmptyError": (OssAuthError, "InvalidCredentials", False),
    "CredentialsFetchError": (OssAuthError, "InvalidCredentials", False),
    "DeserializationError": (OssError, "InvalidResponse", False),
    "FileNotExist": (OssError, "ClientError", False),
    "FileNotReadable": (OssError, "ClientError", False),
    "InconsistentError": (OssError, "InconsistentResponse", True),
    "MD5UnavailableError": (OssError, "ClientError", False),
    "ObjectNameInvalidError": (OssError, "InvalidRequest", False),
    "OperationError": (OssError, "NetworkError", True),  # unwraps to its cause (a ConnectionError)
    "ParamInvalidError": (OssError, "InvalidRequest", False),
    "ParamNullError": (OssError, "InvalidRequest", False),
    "ParamNullOrEmptyError": (OssError, "InvalidRequest", False),
    "ParamRequiredError": (OssError, "InvalidRequest", False),
    "PresignExpirationError": (OssError, "InvalidRequest", False),
    "RequestError": (OssError, "NetworkError", True),
    "ResponseError": (OssError, "NetworkError", True),
    "ResponseNotReadError": (OssError, "ClientError", False),
    "SerializationError": (OssError, "InvalidRequest", False),
    "ServiceError": (OssError, "InternalError", True),
    "StreamClosedError": (OssError, "ClientError", False),
    "StreamConsumedError": (OssError, "ClientError", False),
}


def test_every_oss_exception_class_is_mapped_explicitly() -> None:
    found = {
        name for name, cls in inspect.getmembers(oss_exc, inspect.isclass)
        if issubclass(cls, oss_exc.BaseError)
    }
    assert found == set(OSS_EXPECTED)


@pytest.mark.parametrize("name", sorted(OSS_EXPECTED))
@pytest.mark.parametrize("wrapped", [False, True])
def test_oss_exception_class_should_map_bare_and_wrapped(name: str, wrapped: bool) -> None:
    exc: BaseException = _oss_instance(getattr(oss_exc, name))
    if name == "OperationError":
        exc = oss_exc.OperationError(name="PutCname", error=oss_exc.RequestError(error="refused"))
    if wrapped:
        exc = oss_exc.OperationError(name="PutCname", error=exc)
    cls, code, retryable = OSS_EXPECTED[name]
    mapped = map_oss_error(exc, "PutCname")
    assert (type(mapped), mapped.code, mapped.retryable) == (cls, code, retryable)


def test_oss_transport_error_should_be_network_error_with_hint() -> None:
    exc = oss_exc.OperationError(
        name="ListCname", error=oss_exc.RequestError(error=requests.ConnectionError("refused"))
    )
    mapped = map_oss_error(exc, "ListCname")
    assert (mapped.code, mapped.retryable, mapped.status) == ("NetworkError", True, 0)
    assert "endpoint" in mapped.hint


def test_oss_unparsable_2xx_body_should_be_invalid_response() -> None:
    mapped = map_oss_error(ParseError("no element found"), "ListCname")
    assert (type(mapped), mapped.code, mapped.retryable) == (OssError, "InvalidResponse", False)


def test_oss_mapped_message_should_never_carry_a_secret() -> None:
    leaky_service = service_error(403, "SignatureDoesNotMatch", f"string to sign used {SECRET}")
    leaky_transport = oss_exc.OperationError(
        name="PutCname",
        error=oss_exc.RequestError(error=f"proxy said {TOKEN} is bad for key {SECRET}"),
    )
    for exc in (leaky_service, leaky_transport):
        mapped = map_oss_error(exc, "PutCname", SECRETS)
        for text in (str(mapped), mapped.message, mapped.hint, repr(mapped.args)):
            assert SECRET not in text
            assert TOKEN not in text


# -------------------------------------------------------------------------------- Alidns


def client_exception(
    code: str, status: int = 400, cls: type = openapi_exc.ClientException, **extra: object
) -> BaseException:
    """An exception built exactly as tea-openapi's do_request builds it."""
    body = {"RequestId": "C43F-RID", "HostId": "alidns.aliyuncs.com", "Code": code,
            "Message": "The DNS record already exists.", "Recommend": "https://api.aliyun.com"}
    kwargs: dict[str, object] = {
        "status_code": status,
        "code": code,
        "message": f"code: {status}, {body['Message']} request id: {body['RequestId']}",
        "detail": "None",
        "description": "None",
        "data": body,
        "request_id": "C43F-RID",
    }
    kwargs.update(extra)
    built: BaseException = cls(**kwargs)
    return built


@pytest.mark.parametrize(
    ("code", "status", "cls", "retryable"),
    [
        ("DomainRecordDuplicate", 400, DnsProviderError, False),
        ("DomainRecordConflict", 400, DnsProviderError, False),
        ("DomainRecordNotBelongToUser", 400, DnsProviderError, False),
        ("QuotaExceeded.TTL", 400, DnsProviderError, False),
        ("DomainRecordLocked", 400, DnsProviderError, False),
        ("LastOperationNotFinished", 400, DnsProviderError, True),
        ("Throttling.User", 400, DnsThrottled, True),
        ("Throttling", 400, DnsThrottled, True),
        ("Throttling.Api", 400, DnsThrottled, True),
        ("AnyCode", 429, DnsThrottled, True),
        ("InternalError", 500, DnsProviderError, True),
        ("ServiceUnavailable", 503, DnsProviderError, True),
        ("SignatureDoesNotMatch", 400, DnsAuthError, False),
        ("InvalidAccessKeyId.NotFound", 404, DnsAuthError, False),
        ("InvalidSecurityToken.Expired", 400, DnsAuthError, False),
        ("Forbidden.RAM", 403, DnsAuthError, False),
        ("IncorrectDomainUser", 400, ZoneNotFound, False),
        ("InvalidDomainName.NoExist", 400, ZoneNotFound, False),
    ],
)
def test_alidns_client_exception_should_map_to_class_code_and_retryability(
    code: str, status: int, cls: type[DnsProviderError], retryable: bool
) -> None:
    sdk_cls = openapi_exc.ServerException if status >= 500 else openapi_exc.ClientException
    mapped = map_alidns_error(client_exception(code, status, sdk_cls), "AddDomainRecord")
    assert type(mapped) is cls
    assert (mapped.code, mapped.status, mapped.retryable) == (code, status, retryable)
    assert (mapped.request_id, mapped.provider) == ("C43F-RID", "alidns")
    assert str(mapped).startswith(f"Alidns AddDomainRecord: {code} (HTTP {status}): The DNS")


def test_alidns_throttling_exception_should_be_retryable_and_carry_retry_after() -> None:
    sdk = client_exception("Throttling.User", 429, openapi_exc.ThrottlingException,
                           retry_after=1500)
    try:
        try:
            raise sdk
        except openapi_exc.ThrottlingException as exc:
            raise map_alidns_error(exc, "AddDomainRecord") from exc
    except DnsProviderError as mapped:
        assert (mapped.code, mapped.retryable) == ("Throttling.User", True)
        assert retry_after_s(mapped) == 1.5
        assert "rate" in mapped.hint


# ------------------------------------------------------------------- one notion of throttling


@pytest.mark.parametrize(
    "mapped",
    [
        map_oss_error(service_error(503, "ServiceUnavailable"), "PutCname"),
        map_oss_error(service_error(400, "RequestRateLimitExceeded"), "PutCname"),
        map_alidns_error(client_exception("InternalError", 500, openapi_exc.ServerException),
                         "AddDomainRecord"),
        map_alidns_error(client_exception("DomainRecordDuplicate"), "AddDomainRecord"),
    ],
)
def test_other_answers_should_not_be_throttled(mapped: BaseException) -> None:
    assert not isinstance(mapped, Throttled)


def test_alidns_retry_after_should_be_none_without_server_hint() -> None:
    sdk = client_exception("Throttling.User")
    mapped = map_alidns_error(sdk, "AddDomainRecord")
    mapped.__cause__ = sdk
    assert retry_after_s(mapped) is None


def test_alidns_generic_alibaba_cloud_exception_should_map_by_status() -> None:
    sdk = openapi_exc.AlibabaCloudException(status_code=502, code="BadGateway", data={})
    mapped = map_alidns_error(sdk, "DescribeDomains")
    assert (mapped.code, mapped.status, mapped.retryable) == ("BadGateway", 502, True)


def test_alidns_missing_request_id_should_not_become_the_string_none() -> None:
    sdk = openapi_exc.ClientException(status_code=400, code="X", request_id="None", data={})
    assert map_alidns_error(sdk, "AddDomainRecord").request_id == ""


def _dara_unretryable(inner: BaseException) -> BaseException:
    ctx = RetryPolicyContext(retries_attempted=1, exception=inner)
    built: BaseException = dara_exc.UnretryableException(ctx)
    return built


@pytest.mark.parametrize(
    ("exc", "code", "retryable"),
    [
        (_dara_unretryable(dara_exc.RetryError("connection refused")), "NetworkError", True),
        (_dara_unretryable(requests.ConnectionError("refused")), "NetworkError", True),
        (_dara_unretryable(requests.ReadTimeout("read timed out")), "NetworkError", True),
        (_dara_unretryable(RuntimeError("Failed to parse the value as json format, Value: <h")),
         "InvalidResponse", True),
        (tea_exc.UnretryableException(None, tea_exc.RetryError("refused")), "NetworkError", True),
        (dara_exc.RetryError("retry exhausted"), "NetworkError", True),
        (tea_exc.RetryError("retry exhausted"), "NetworkError", True),
        (dara_exc.RequiredArgumentException("RR"), "InvalidRequest", False),
        (tea_exc.RequiredArgumentException("RR"), "InvalidRequest", False),
        (dara_exc.ValidateException("bad"), "InvalidRequest", False),
        (dara_exc.DaraException({"code": "SomethingOdd", "message": "m"}), "SomethingOdd", False),
        (tea_exc.TeaException({"message": "m"}), "ClientError", False),
    ],
)
def test_alidns_non_response_exceptions_should_map(
    exc: BaseException, code: str, retryable: bool
) -> None:
    mapped = map_alidns_error(exc, "DescribeDomains")
    assert (type(mapped), mapped.code, mapped.retryable) == (DnsProviderError, code, retryable)


def test_alidns_unretryable_wrapping_a_response_should_map_the_response() -> None:
    wrapped = tea_exc.UnretryableException(None, tea_exc.RetryError("x"))
    wrapped.inner_exception = client_exception("Forbidden.RAM", 403)
    assert type(map_alidns_error(wrapped, "AddDomainRecord")) is DnsAuthError


def test_alidns_mapped_message_should_never_carry_a_secret() -> None:
    leaky = client_exception("SignatureDoesNotMatch")
    assert isinstance(leaky, openapi_exc.ClientException)
    leaky.data["Message"] = f"server string to sign is: {SECRET}"
    transport = _dara_unretryable(requests.ConnectionError(f"proxy rejected {TOKEN}"))
    for exc in (leaky, transport):
        mapped = map_alidns_error(exc, "AddDomainRecord", SECRETS)
        for text in (str(mapped), mapped.message, mapped.hint):
            assert SECRET not in text
            assert TOKEN not in text


@pytest.mark.parametrize(
    ("code", "refused"),
    [("InvalidAccessKeyId", "credentials"), ("SignatureDoesNotMatch", "credentials"),
     ("SecurityTokenExpired", "credentials"), ("AccessDenied", "permission"),
     ("RequestTimeTooSkewed", "clock")],
)
def test_oss_auth_errors_should_say_what_was_refused(code: str, refused: str) -> None:
    mapped = map_oss_error(service_error(403, code), "GetBucketInfo")
    assert isinstance(mapped, OssAuthError)
    assert (mapped.refused, mapped.retryable) == (refused, False)


@pytest.mark.parametrize(
    ("code", "refused"),
    [("InvalidAccessKeyId.NotFound", "credentials"), ("SignatureDoesNotMatch", "credentials"),
     ("Forbidden.RAM", "permission"), ("NoPermission", "permission")],
)
def test_alidns_auth_errors_should_say_what_was_refused(code: str, refused: str) -> None:
    mapped = map_alidns_error(client_exception(code, 403), "DescribeDomains")
    assert isinstance(mapped, DnsAuthError)
    assert mapped.refused == refused


@pytest.mark.parametrize(
    ("rcode", "refused"),
    [(dns.rcode.REFUSED, "permission"), (dns.rcode.BADTIME, "clock"),
     (dns.rcode.BADKEY, "credentials")],
)
def test_rfc2136_auth_errors_should_say_what_was_refused(
    rcode: dns.rcode.Rcode, refused: str
) -> None:
    mapped = rfc2136_errors.map_rfc2136_error(rfc2136_errors.RcodeError(rcode), "update", "ns1")
    assert isinstance(mapped, DnsAuthError)
    assert mapped.refused == refused


# ------------------------------------------------------------------- the tree and its reach

PACKAGE = Path(errors.__file__).parent


def test_the_tree_in_the_errors_docstring_names_every_class_and_nothing_else() -> None:
    assert errors.__doc__ is not None
    tree = errors.__doc__.split("::", 1)[1].strip("\n").split("\n\n", 1)[0]
    drawn = {m.group(1) for line in tree.splitlines()
             if (m := re.match(r"[\s│]*(?:[├└]── )?([A-Z]\w+)", line))}
    classes = {name for name, cls in inspect.getmembers(errors, inspect.isclass)
               if issubclass(cls, errors.CnameFlowError)}
    assert drawn == classes


def _mapped_codes() -> frozenset[str]:
    """Every OSS, Alidns and RFC 2136 code (and OSS EC) the adapters' error modules give a
    meaning."""
    return frozenset().union(
        oss_errors.CODE_CLASSES, oss_errors.EC_CLASSES, oss_errors.AUTH_CODES,
        oss_errors.THROTTLE_CODES, oss_errors.HINTS, oss_errors.EC_HINTS,
        alidns_errors.AUTH_CODES, alidns_errors.ZONE_CODES, alidns_errors.THROTTLE_CODES,
        alidns_errors.RETRYABLE_CODES, alidns_errors.HINTS,
        # RCODE names (SERVFAIL…) are the DNS protocol's, which the propagation checker speaks too
        frozenset(rfc2136_errors.HINTS) - {rcode.name for rcode in dns.rcode.Rcode},
    )


def _adapter_or_sandbox(relative: str) -> bool:
    return relative.startswith(("oss/", "sandbox/", "dns/alidns", "dns/rfc2136", "dns/powerdns",
                                  "dns/cloudflare"))


def test_vendor_error_codes_appear_only_in_the_adapters_and_the_sandbox() -> None:
    codes = _mapped_codes()
    found: set[tuple[str, str]] = set()
    for path in sorted(PACKAGE.rglob("*.py")):
        relative = path.relative_to(PACKAGE).as_posix()
        if _adapter_or_sandbox(relative):
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Constant) and node.value in codes:
                found.add((relative, str(node.value)))
    assert found == set(), "map the code to a class in the adapter; branch on the class"

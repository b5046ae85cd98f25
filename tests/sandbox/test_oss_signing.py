"""Server-side OSS signature verification against requests signed by the SDK's own signers."""

from __future__ import annotations

import datetime as dt
from urllib.parse import urlsplit

import pytest
from alibabacloud_oss_v2.signer import SignerV1, SignerV4
from alibabacloud_oss_v2.types import Credentials, HttpRequest, SigningContext

from cname_flow.sandbox.oss.signing import (
    AuthFailure,
    SignedRequest,
    v1_canonical_resource,
    v4_canonical_request,
    verify,
)
from cname_flow.sandbox.state import Credential

AK, SK = "LTAI5tUnitKey", "unit-secret"
STS_AK, STS_SK, STS_TOKEN = "STS.unit", "sts-secret", "CAIS-unit-token"
CREDS = {
    AK: Credential(AK, SK, "111"),
    STS_AK: Credential(STS_AK, STS_SK, "111", STS_TOKEN),
}
NOW = dt.datetime(2026, 11, 21, 9, 52, 13, tzinfo=dt.UTC)
MAX_SKEW = 900.0

# (method, query as the SDK puts it on the wire, body MD5 header) for the five CNAME operations.
CNAME_REQUESTS = [
    ("POST", "cname=&comp=token", "rwp/HMWJ3kmN9Xy0SOfLvQ=="),
    ("GET", "comp=token&cname=img.example.com", "1B2M2Y8AsgTpgAmY7PhCfg=="),
    ("GET", "comp=token&cname=%2A.example.com&wildcard=true", "1B2M2Y8AsgTpgAmY7PhCfg=="),
    ("POST", "cname=&comp=add", "rwp/HMWJ3kmN9Xy0SOfLvQ=="),
    ("GET", "cname=", "1B2M2Y8AsgTpgAmY7PhCfg=="),
    ("POST", "cname=&comp=delete", "rwp/HMWJ3kmN9Xy0SOfLvQ=="),
]


def sdk_signed(
    method: str,
    query: str,
    md5: str,
    *,
    v1: bool = False,
    ak: str = AK,
    sk: str = SK,
    token: str | None = None,
    when: dt.datetime = NOW,
    bucket: str | None = "examplebucket",
    additional: set[str] | None = None,
) -> SignedRequest:
    """Sign with the SDK's signer and return what the server would see."""
    path = f"/{bucket}/" if bucket else "/"
    headers = {"Host": "127.0.0.1:9000", "Content-Type": "application/xml", "Content-MD5": md5}
    request = HttpRequest(method, f"http://127.0.0.1:9000{path}?{query}", headers=headers)
    ctx = SigningContext(
        product="oss",
        region="cn-hangzhou",
        bucket=bucket,
        request=request,
        credentials=Credentials(ak, sk, token),
        signing_time=when,
        additional_headers=additional,
    )
    ctx.sub_resource = ["cname", "comp"]
    (SignerV1() if v1 else SignerV4()).sign(ctx)
    lowered = {k.lower(): v for k, v in request.headers.items()}
    return SignedRequest(method, urlsplit(request.url).query, lowered, bucket)


def check(req: SignedRequest, now: dt.datetime = NOW) -> str:
    return verify(req, CREDS.get, now.timestamp(), MAX_SKEW).credential.account_id


def failure(req: SignedRequest, now: dt.datetime = NOW) -> tuple[int, str]:
    with pytest.raises(AuthFailure) as info:
        verify(req, CREDS.get, now.timestamp(), MAX_SKEW)
    return info.value.status, info.value.code


def with_header(req: SignedRequest, name: str, value: str | None) -> SignedRequest:
    headers = dict(req.headers)
    if value is None:
        headers.pop(name, None)
    else:
        headers[name] = value
    return SignedRequest(req.method, req.raw_query, headers, req.bucket)


@pytest.mark.parametrize(("method", "query", "md5"), CNAME_REQUESTS)
@pytest.mark.parametrize("v1", [False, True], ids=["v4", "v1"])
def test_verify_when_sdk_signed_should_accept(method: str, query: str, md5: str, v1: bool) -> None:
    assert check(sdk_signed(method, query, md5, v1=v1)) == "111"


@pytest.mark.parametrize("v1", [False, True], ids=["v4", "v1"])
def test_verify_when_service_level_request_should_sign_root(v1: bool) -> None:
    req = sdk_signed("GET", "max-keys=10&prefix=ex", "1B2M2Y8AsgTpgAmY7PhCfg==", v1=v1, bucket=None)
    assert check(req) == "111"


def test_v4_canonical_request_matches_the_captured_example() -> None:
    req = SignedRequest(
        "GET",
        "comp=token&cname=%2A.example.com&wildcard=true",
        {
            "content-md5": "1B2M2Y8AsgTpgAmY7PhCfg==",
            "content-type": "application/xml",
            "x-oss-content-sha256": "UNSIGNED-PAYLOAD",
            "x-oss-date": "20261121T095213Z",
            "host": "127.0.0.1:9000",
            "date": "Sat, 21 Nov 2026 09:52:13 GMT",
        },
        "examplebucket",
    )
    assert v4_canonical_request(req) == (
        "GET\n/examplebucket/\ncname=%2A.example.com&comp=token&wildcard=true\n"
        "content-md5:1B2M2Y8AsgTpgAmY7PhCfg==\ncontent-type:application/xml\n"
        "x-oss-content-sha256:UNSIGNED-PAYLOAD\nx-oss-date:20261121T095213Z\n\n\nUNSIGNED-PAYLOAD"
    )


def test_v1_canonical_resource_keeps_only_subresources_decoded() -> None:
    req = SignedRequest("GET", "comp=token&cname=%2A.example.com&wildcard=true", {}, "b")
    assert v1_canonical_resource(req) == "/b/?cname=*.example.com&comp=token"


def test_verify_v4_when_additional_headers_signed_should_check_them() -> None:
    req = sdk_signed("GET", "cname=", "1B2M2Y8AsgTpgAmY7PhCfg==", additional={"host"})
    assert "AdditionalHeaders=host" in req.headers["authorization"]
    assert check(req) == "111"
    assert failure(with_header(req, "host", "evil:1")) == (403, "SignatureDoesNotMatch")


@pytest.mark.parametrize("v1", [False, True], ids=["v4", "v1"])
@pytest.mark.parametrize(
    "tamper",
    [
        lambda r: SignedRequest("PUT", r.raw_query, r.headers, r.bucket),
        lambda r: SignedRequest(r.method, "cname=&comp=delete", r.headers, r.bucket),
        lambda r: SignedRequest(r.method, r.raw_query, r.headers, "otherbucket"),
        lambda r: with_header(r, "content-md5", "AAAAAAAAAAAAAAAAAAAAAA=="),
        lambda r: with_header(r, "x-oss-meta-extra", "1"),
    ],
    ids=["method", "query", "bucket", "md5", "extra-oss-header"],
)
def test_verify_when_request_altered_should_refuse(v1: bool, tamper: object) -> None:
    req = sdk_signed("POST", "cname=&comp=add", "rwp/HMWJ3kmN9Xy0SOfLvQ==", v1=v1)
    assert callable(tamper)
    assert failure(tamper(req)) == (403, "SignatureDoesNotMatch")


@pytest.mark.parametrize("v1", [False, True], ids=["v4", "v1"])
def test_verify_when_wrong_secret_should_refuse(v1: bool) -> None:
    req = sdk_signed("GET", "cname=", "1B2M2Y8AsgTpgAmY7PhCfg==", v1=v1, sk="not-the-secret")
    assert failure(req) == (403, "SignatureDoesNotMatch")


@pytest.mark.parametrize("v1", [False, True], ids=["v4", "v1"])
def test_verify_when_unknown_key_should_refuse_before_time_check(v1: bool) -> None:
    old = NOW - dt.timedelta(hours=2)
    req = sdk_signed("GET", "cname=", "1B2M2Y8AsgTpgAmY7PhCfg==", v1=v1, ak="nobody", when=old)
    assert failure(req) == (403, "InvalidAccessKeyId")


@pytest.mark.parametrize("v1", [False, True], ids=["v4", "v1"])
@pytest.mark.parametrize(("skew_s", "ok"), [(-16 * 60, False), (-14 * 60, True), (16 * 60, False)])
def test_verify_skew_limit(v1: bool, skew_s: int, ok: bool) -> None:
    when = NOW + dt.timedelta(seconds=skew_s)
    req = sdk_signed("GET", "cname=", "1B2M2Y8AsgTpgAmY7PhCfg==", v1=v1, when=when)
    if ok:
        assert check(req) == "111"
    else:
        assert failure(req) == (403, "RequestTimeTooSkewed")


@pytest.mark.parametrize("v1", [False, True], ids=["v4", "v1"])
def test_verify_sts_token_required_and_checked(v1: bool) -> None:
    def signed(token: str | None) -> SignedRequest:
        return sdk_signed(
            "GET", "cname=", "1B2M2Y8AsgTpgAmY7PhCfg==", v1=v1, ak=STS_AK, sk=STS_SK, token=token
        )

    assert check(signed(STS_TOKEN)) == "111"
    assert failure(signed(None)) == (403, "InvalidAccessKeyId")
    assert failure(signed("forged-token")) == (403, "InvalidAccessKeyId")


@pytest.mark.parametrize(
    ("authorization", "expected"),
    [
        (None, (403, "AccessDenied")),
        ("Bearer abc", (400, "InvalidArgument")),
        ("OSS4-HMAC-SHA256 Credential=AK/20261121/cn-hangzhou/oss", (400, "InvalidArgument")),
        ("OSS4-HMAC-SHA256 garbage", (400, "InvalidArgument")),
        ("OSS no-colon", (400, "InvalidArgument")),
    ],
)
def test_verify_when_authorization_malformed_should_refuse(
    authorization: str | None, expected: tuple[int, str]
) -> None:
    req = with_header(
        sdk_signed("GET", "cname=", "1B2M2Y8AsgTpgAmY7PhCfg=="), "authorization", authorization
    )
    assert failure(req) == expected


def test_verify_v4_when_date_missing_or_inconsistent_should_refuse() -> None:
    req = sdk_signed("GET", "cname=", "1B2M2Y8AsgTpgAmY7PhCfg==")
    assert failure(with_header(req, "x-oss-date", None)) == (403, "AccessDenied")
    shifted = with_header(req, "x-oss-date", "20261120T235959Z")
    assert failure(shifted, NOW - dt.timedelta(hours=9, minutes=52)) == (
        403,
        "SignatureDoesNotMatch",
    )


def test_signature_failure_never_reveals_secret_or_token() -> None:
    req = sdk_signed(
        "GET", "cname=", "1B2M2Y8AsgTpgAmY7PhCfg==", ak=STS_AK, sk="wrong", token=STS_TOKEN
    )
    with pytest.raises(AuthFailure) as info:
        verify(req, CREDS.get, NOW.timestamp(), MAX_SKEW)
    text = str(info.value) + repr(info.value.fields)
    assert STS_SK not in text and STS_TOKEN not in text and "wrong" not in text

"""OSS adapter pieces that need no server: dates, certificate configuration, the fake's rules."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest
from alibabacloud_oss_v2 import exceptions as oss_exc

from cname_flow.config.credentials import Credentials
from cname_flow.errors import (
    CnameAlreadyBound,
    CnameTaken,
    IcpFilingMissing,
    OssCertificateConflict,
    OssError,
    OssThrottled,
    OwnershipPending,
)
from cname_flow.model import CertificateRequest
from cname_flow.oss.adapter import (
    AlibabaOss,
    _certificate_config,
    _needs_path_style,
    parse_http_date,
)
from cname_flow.retry import RetryPolicy
from tests.fakes import FakeOss, oss_error


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("2021-09-15T02:35:07.000Z", datetime(2021, 9, 15, 2, 35, 7, tzinfo=UTC)),
        ("Wed, 23 Feb 2022 21:16:37 GMT", datetime(2022, 2, 23, 21, 16, 37, tzinfo=UTC)),
        ("Mon, 4 May 2048 10:14:51 GMT", datetime(2048, 5, 4, 10, 14, 51, tzinfo=UTC)),
        ("Wed, 23 Feb 2022 23:16:37 +0200", datetime(2022, 2, 23, 21, 16, 37, tzinfo=UTC)),
        ("2021-09-15T02:35:07", datetime(2021, 9, 15, 2, 35, 7, tzinfo=UTC)),
        ("", None),
        (None, None),
        ("not a date", None),
    ],
)
def test_parse_http_date_should_give_aware_utc_or_none(
    raw: str | None, expected: datetime | None
) -> None:
    parsed = parse_http_date(raw)
    assert parsed == expected
    if parsed is not None:
        assert parsed.utcoffset() == timedelta(0)


def test_certificate_config_should_leave_false_flags_out_of_the_xml() -> None:
    conf = _certificate_config(CertificateRequest(cert_id="493-cn-hangzhou"))
    assert (conf.cert_id, conf.force, conf.delete_certificate) == ("493-cn-hangzhou", None, None)
    forced = _certificate_config(CertificateRequest(cert_id="493-cn-hangzhou", force=True))
    assert forced.force is True
    unbind = _certificate_config(CertificateRequest(delete_certificate=True))
    assert (unbind.delete_certificate, unbind.force) == (True, None)


@pytest.mark.parametrize(
    ("endpoint", "path_style"),
    [
        ("http://127.0.0.1:9000", True),
        ("http://localhost:9000", True),
        ("oss-cn-hangzhou.aliyuncs.com", False),
        ("https://oss-cn-hangzhou.aliyuncs.com", False),
    ],
)
def test_path_style_only_off_alibaba_hosts(endpoint: str, path_style: bool) -> None:
    assert _needs_path_style(endpoint) is path_style


class Clock:
    def __init__(self) -> None:
        self.now = datetime(2026, 1, 1, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now


def test_fake_oss_token_should_be_stable_for_72h_then_renew() -> None:
    clock = Clock()
    oss = FakeOss(clock=clock)
    first = oss.create_token("examplebucket", "a.example.com")
    clock.now += timedelta(hours=71)
    assert oss.create_token("examplebucket", "a.example.com") == first
    clock.now += timedelta(hours=2)
    assert oss.get_token("examplebucket", "a.example.com") is None
    assert oss.create_token("examplebucket", "a.example.com").token != first.token
    assert oss.calls["CreateCnameToken"] == 3


def test_fake_oss_should_refuse_a_domain_bound_to_another_bucket() -> None:
    oss = FakeOss(buckets=["examplebucket", "otherbucket"])
    oss.bind("otherbucket", "taken.example.com")
    with pytest.raises(OssError) as info:
        oss.put_cname("examplebucket", "taken.example.com")
    assert (info.value.code, info.value.status) == ("CnameAlreadyExists", 409)


def test_fake_oss_scripted_error_should_fire_before_any_effect() -> None:
    oss = FakeOss()
    oss.fail("CreateCnameToken", oss_error("InternalError", 500), times=2)
    for _ in range(2):
        with pytest.raises(OssError) as info:
            oss.create_token("examplebucket", "a.example.com")
        assert info.value.retryable is True
    assert oss.get_token("examplebucket", "a.example.com") is None
    assert oss.create_token("examplebucket", "a.example.com").token


def test_fake_oss_rebind_on_same_bucket_should_keep_certificate_rules() -> None:
    oss = FakeOss()
    oss.create_token("examplebucket", "a.example.com")
    oss.put_cname("examplebucket", "a.example.com", CertificateRequest(cert_id="1-cn-hangzhou"))
    with pytest.raises(OssError) as info:
        oss.put_cname("examplebucket", "a.example.com",
                      CertificateRequest(cert_id="2-cn-hangzhou", previous_cert_id="9-cn-hangzhou"))
    assert info.value.code == "InvalidArgument"
    oss.put_cname("examplebucket", "a.example.com",
                  CertificateRequest(cert_id="2-cn-hangzhou", previous_cert_id="1-cn-hangzhou"))
    [entry] = oss.list_cnames("examplebucket")
    assert entry.certificate is not None and entry.certificate.cert_id == "2-cn-hangzhou"


# --- the adapter's boundary: SDK answers leave as the class they mean ---------------------------


def _adapter() -> AlibabaOss:
    """An adapter whose SDK client is never reached (each test replaces the one call it makes);
    one attempt, so a retryable answer is seen at once (the retry layer: tests/unit/dns)."""
    return AlibabaOss(region="cn-hangzhou", credentials=Credentials("AKID", "secret"),
                      endpoint="http://127.0.0.1:9", retry=RetryPolicy(attempts=1))


def _answering(status: int, code: str, ec: str = "") -> Callable[[object], object]:
    def call(_request: object) -> object:
        err = oss_exc.ServiceError(status_code=status, code=code, message="m", request_id="RID",
                                   ec=ec, timestamp=None, request_target="POST /")
        raise oss_exc.OperationError(name="op", error=err)

    return call


@pytest.mark.parametrize(
    ("status", "code", "ec", "cls"),
    [
        (403, "NoNeedCreateCnameToken", "0018-00000302", CnameAlreadyBound),
        (409, "CnameAlreadyExists", "", CnameTaken),
        (503, "SlowDown", "", OssThrottled),
    ],
)
def test_create_token_should_raise_the_class_of_the_oss_answer(
    monkeypatch: pytest.MonkeyPatch, status: int, code: str, ec: str, cls: type[OssError]
) -> None:
    oss_api = _adapter()
    monkeypatch.setattr(oss_api._client, "create_cname_token", _answering(status, code, ec))
    with pytest.raises(cls) as info:
        oss_api.create_token("examplebucket", "a.example.com")
    assert (info.value.code, info.value.status, info.value.request_id) == (code, status, "RID")
    assert isinstance(info.value.__cause__, oss_exc.OperationError)


@pytest.mark.parametrize(
    ("status", "code", "ec", "cls"),
    [
        (403, "NeedVerifyDomainOwnership", "0018-00000115", OwnershipPending),
        (409, "CnameAlreadyExists", "", CnameTaken),
        (404, "NoSuchCnameInRecord", "", IcpFilingMissing),
        (409, "CasRenewCertificateConflict", "", OssCertificateConflict),
        (400, "InvalidArgument", "0018-00000209", OssCertificateConflict),
    ],
)
def test_put_cname_should_raise_the_class_of_the_oss_answer(
    monkeypatch: pytest.MonkeyPatch, status: int, code: str, ec: str, cls: type[OssError]
) -> None:
    oss_api = _adapter()
    monkeypatch.setattr(oss_api._client, "put_cname", _answering(status, code, ec))
    with pytest.raises(cls) as info:
        oss_api.put_cname("examplebucket", "a.example.com")
    assert (info.value.code, info.value.ec, info.value.service) == (code, ec, "oss")

"""Product side of sandbox fidelity round 2 (issue 12): the real OSS codes mapped to their
classes, names OSS refuses caught up front, the ICP drift kind and plan warning, and the
certificate request never pairing DeleteCertificate with Force."""

from __future__ import annotations

import pytest

from cname_flow.errors import (
    DomainOfOtherAccount,
    IcpFilingMissing,
    InputError,
    OssCertificateConflict,
    OssThrottled,
)
from cname_flow.journal.records import ErrorInfo
from cname_flow.model import BindingOptions, CertificateRequest
from cname_flow.names import build_binding
from cname_flow.oss.adapter import CERT_ID_HEADER, _certificate_config, header
from cname_flow.oss.errors import map_oss_error
from cname_flow.reconcile.drift import Action, DesiredState, DriftKind, detect
from cname_flow.workflow.plan import mainland_region
from tests.unit.reconcile.test_reconcile import NOW, obs, record
from tests.unit.test_errors import service_error


@pytest.mark.parametrize(
    ("status", "code", "cls", "retryable", "hint_word"),
    [
        (403, "CnameDenied", DomainOfOtherAccount, False, "another Alibaba Cloud account"),
        (404, "NoSuchCnameInRecord", IcpFilingMissing, False, "ICP filing"),
        (503, "MetaOperationQpsLimitExceeded", OssThrottled, True, ""),
        (503, "TotalQpsLimitExceeded", OssThrottled, True, ""),
        (409, "CasRenewCertificateConflict", OssCertificateConflict, False, "Force"),
    ],
)
def test_real_oss_codes_map_to_their_class(
    status: int, code: str, cls: type, retryable: bool, hint_word: str
) -> None:
    mapped = map_oss_error(service_error(status, code), "PutCname")
    assert type(mapped) is cls and mapped.retryable is retryable
    assert hint_word in mapped.hint


@pytest.mark.parametrize("domain", ["x.aliyuncs.com", "aliyun.com", "a.taobaocdn.com", "w.c"])
def test_names_oss_refuses_are_input_errors_before_any_call(domain: str) -> None:
    with pytest.raises(InputError):
        build_binding(domain, bucket="examplebucket")


def test_names_near_the_reserved_ones_and_routes_to_oss_stay_allowed() -> None:
    assert build_binding("ab.c", bucket="examplebucket").domain == "ab.c"
    assert build_binding("myaliyuncs.com", bucket="examplebucket").domain == "myaliyuncs.com"
    opts = BindingOptions(route=True, route_target="examplebucket.oss-cn-hangzhou.aliyuncs.com")
    assert build_binding("img.example.com", bucket="examplebucket", options=opts).options.route


def test_icp_refusal_in_the_journal_is_its_own_drift_kind_not_rebound() -> None:
    b = build_binding("img.example.com", bucket="examplebucket")
    rec = record("img.example.com", "FAILED")
    rec.last_error = ErrorInfo("NoSuchCnameInRecord", "no filing", False)
    [found] = detect(DesiredState({b.key: b}, {}), [obs("img.example.com", rec=rec)], NOW)
    assert (found.kind, found.action) == (DriftKind.ICP_FILING_MISSING, Action.NONE)
    assert "ICP filing" in found.detail
    rec.last_error = ErrorInfo("InternalError", "boom", True)
    [found] = detect(DesiredState({b.key: b}, {}), [obs("img.example.com", rec=rec)], NOW)
    assert (found.kind, found.action) == (DriftKind.BINDING_MISSING, Action.BIND)


@pytest.mark.parametrize(
    ("region", "mainland"),
    [("cn-hangzhou", True), ("cn-beijing", True), ("cn-hongkong", False),
     ("ap-southeast-1", False), ("us-west-1", False)],
)
def test_mainland_regions_are_cn_except_hong_kong(region: str, mainland: bool) -> None:
    assert mainland_region(region) is mainland


def test_delete_certificate_is_never_sent_with_force() -> None:
    conf = _certificate_config(CertificateRequest(delete_certificate=True, force=True))
    assert conf.delete_certificate is True and conf.force is None
    assert _certificate_config(CertificateRequest(cert_id="1-cn-hangzhou", force=True)).force


def test_cert_id_header_is_read_in_any_case() -> None:
    assert header({"X-Oss-Yundun-Certificate-Id": "7-cn-hangzhou"}, CERT_ID_HEADER) == (
        "7-cn-hangzhou")
    assert header(None, CERT_ID_HEADER) == ""

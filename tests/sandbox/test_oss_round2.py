"""Sandbox fidelity round 2 (issue 12): ICP filing, another account's domain, reserved and short
names, idempotent DeleteCname, CAS certificates from uploads, the rotation conflict.

The real ``alibabacloud_oss_v2`` client drives the sandbox's OSS app over a socket; the expected
answers are those of ``/work/shared/reference/fidelity-round2.md`` (rows O10, O17, O20-O22, O25,
O26, §4.1), as ``docs/sandbox-oss.md`` cites them.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import alibabacloud_oss_v2 as oss
import pytest

from cname_flow.sandbox.config import BucketConfig, IcpConfig
from tests.sandbox.test_oss import (
    BUCKET,
    DOMAIN,
    Sandbox,
    _config,
    bind,
    cname_config,
    list_cnames,
    make_cert,
    make_sandbox,
    oss_sandbox,
    put_cname,
    server,
    service_error,
)

__all__ = ["make_sandbox", "oss_sandbox", "server"]  # fixtures shared with test_oss


def _with(**update: Any) -> Any:
    return _config().model_copy(update=update)


def _create(client: oss.Client, domain: str, bucket: str = BUCKET) -> Any:
    return client.create_cname_token(
        oss.CreateCnameTokenRequest(bucket=bucket, bucket_cname_configuration=cname_config(domain))
    )


# -- ICP filing -------------------------------------------------------------------------------


def test_icp_off_by_default_binds_an_unfiled_domain_on_a_mainland_bucket(
    oss_sandbox: Sandbox,
) -> None:
    bind(oss_sandbox, oss_sandbox.client())
    assert [e.domain for e in list_cnames(oss_sandbox.client())] == [DOMAIN]


def test_icp_enforced_refuses_unfiled_domains_with_no_such_cname_in_record(
    make_sandbox: Callable[..., Sandbox],
) -> None:
    box = make_sandbox(_with(icp=IcpConfig(enforce=True, filed=["filed.example.com"])))
    client = box.client()
    err = service_error(lambda: bind(box, client, DOMAIN))
    assert (err.status_code, err.code) == (404, "NoSuchCnameInRecord")
    assert list_cnames(client) == []
    bind(box, client, "www.filed.example.com")  # a filing covers the names under it
    assert [e.domain for e in list_cnames(client)] == ["www.filed.example.com"]


def test_icp_is_not_required_outside_the_mainland_nor_in_unlisted_regions(
    make_sandbox: Callable[..., Sandbox],
) -> None:
    buckets = [BucketConfig(name=BUCKET, region="cn-hongkong")]
    box = make_sandbox(_with(region="cn-hongkong", buckets=buckets, icp=IcpConfig(enforce=True)))
    cfg = box.config()
    cfg.region = "cn-hongkong"
    bind(box, oss.Client(cfg), DOMAIN)
    listed = IcpConfig(enforce=True, regions=["cn-shanghai"])
    box = make_sandbox(_with(icp=listed))
    bind(box, box.client(), DOMAIN)  # the bucket is in cn-hangzhou, not listed


# -- another account's domain, another bucket of ours ------------------------------------------


def test_another_accounts_domain_is_cname_denied_on_create_put_and_delete(
    oss_sandbox: Sandbox,
) -> None:
    client = oss_sandbox.client()
    for call in (
        lambda: _create(client, "taken.example.com"),
        lambda: put_cname(client, "taken.example.com"),
        lambda: client.delete_cname(oss.DeleteCnameRequest(
            bucket=BUCKET, bucket_cname_configuration=cname_config("taken.example.com"))),
    ):
        err = service_error(call)
        assert (err.status_code, err.code, err.message) == (
            403, "CnameDenied", "The cname belongs to another user.")
    assert "taken.example.com" in oss_sandbox.state.buckets["otherbucket"].cnames


def test_another_bucket_of_the_same_account_stays_cname_already_exists(
    make_sandbox: Callable[..., Sandbox],
) -> None:
    base = _config()
    box = make_sandbox(_with(buckets=[*base.buckets, BucketConfig(
        name="secondbucket", cnames=["mine.example.com"])]))
    err = service_error(lambda: _create(box.client(), "mine.example.com"))
    assert (err.status_code, err.code) == (409, "CnameAlreadyExists")
    assert err.error_fileds.get("CnameType") == "CNAME_OSS"


# -- DeleteCname is idempotent ------------------------------------------------------------------


def test_delete_cname_of_an_unmapped_domain_answers_200(oss_sandbox: Sandbox) -> None:
    client = oss_sandbox.client()
    req = oss.DeleteCnameRequest(bucket=BUCKET, bucket_cname_configuration=cname_config())
    assert client.delete_cname(req).status_code == 200
    bind(oss_sandbox, client)
    assert client.delete_cname(req).status_code == 200
    assert client.delete_cname(req).status_code == 200
    assert list_cnames(client) == []


# -- names OSS refuses --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "domain", ["xyz.aliyuncs.com", "aliyuncs.com", "a.b.aliyun.com", "cdn.taobaocdn.com",
               "x.aliyun-inc.com", "shop.taobao.com"],
)
def test_reserved_domains_are_cname_is_forbidden(oss_sandbox: Sandbox, domain: str) -> None:
    client = oss_sandbox.client()
    for call in (lambda: _create(client, domain), lambda: put_cname(client, domain)):
        err = service_error(call)
        assert (err.status_code, err.code, err.ec) == (403, "CnameIsForbidden", "0018-00000401")


def test_hostnames_of_three_characters_or_fewer_are_refused(oss_sandbox: Sandbox) -> None:
    client = oss_sandbox.client()
    err = service_error(lambda: _create(client, "w.c"))
    assert (err.status_code, err.code, err.ec) == (400, "InvalidArgument", "0017-00000249")
    assert err.message == "Entire hostname must be longer than 3 ASCII characters."
    assert _create(client, "ab.c").cname_token.token  # four characters pass this rule


# -- certificates -------------------------------------------------------------------------------


def test_inline_certificate_becomes_a_reusable_cas_certificate(oss_sandbox: Sandbox) -> None:
    client = oss_sandbox.client()
    pem, key, _ = make_cert()
    upload = oss.CertificateConfiguration(certificate=pem, private_key=key)
    token = _create(client, DOMAIN).cname_token.token
    oss_sandbox.publish_txt(DOMAIN, token)
    result = put_cname(client, cert=upload)
    cert_id = result.headers.get("x-oss-yundun-certificate-id")
    [entry] = list_cnames(client)
    assert (entry.certificate.type, entry.certificate.cert_id) == ("CAS", cert_id)
    assert cert_id.endswith("-cn-hangzhou")
    bind(oss_sandbox, client, "two.example.com", oss.CertificateConfiguration(cert_id=cert_id))
    two = next(e for e in list_cnames(client) if e.domain == "two.example.com").certificate
    assert (two.type, two.cert_id, two.fingerprint) == ("CAS", cert_id,
                                                        entry.certificate.fingerprint)
    assert "x-oss-yundun-certificate-id" not in put_cname(client, "two.example.com").headers


def test_replacing_a_certificate_without_previous_id_or_force_is_a_renew_conflict(
    oss_sandbox: Sandbox,
) -> None:
    client = oss_sandbox.client()
    pem, key, _ = make_cert()
    bind(oss_sandbox, client, cert=oss.CertificateConfiguration(certificate=pem, private_key=key))
    pem2, key2, _ = make_cert()
    err = service_error(lambda: put_cname(client, cert=oss.CertificateConfiguration(
        certificate=pem2, private_key=key2)))
    assert err.code == "CasRenewCertificateConflict"
    forced = oss.CertificateConfiguration(certificate=pem2, private_key=key2, force=True)
    assert put_cname(client, cert=forced).status_code == 200


@pytest.mark.parametrize("force", [True, False])
def test_delete_certificate_with_any_force_value_is_malformed_xml(
    oss_sandbox: Sandbox, force: bool
) -> None:
    client = oss_sandbox.client()
    pem, key, _ = make_cert()
    bind(oss_sandbox, client, cert=oss.CertificateConfiguration(certificate=pem, private_key=key))
    both = oss.CertificateConfiguration(delete_certificate=True, force=force)
    err = service_error(lambda: put_cname(client, cert=both))
    assert (err.status_code, err.code) == (400, "MalformedXML")
    assert list_cnames(client)[0].certificate is not None

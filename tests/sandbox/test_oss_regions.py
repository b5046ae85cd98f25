"""The sandbox OSS API in two regions, driven by the real ``alibabacloud_oss_v2`` client.

GetBucketInfo answers the fields the SDK parses; a request that reaches a region the bucket is
not in (V4: the signing scope, or a host naming a region) is refused as OSS refuses it, 403
AccessDenied naming the bucket's ``Endpoint``; a V4 scope that contradicts the host's region is
400 InvalidArgument, EC 0002-00000226; a V1 request to a host naming no region is accepted
(``docs/sandbox-oss.md``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from functools import partial

import alibabacloud_oss_v2 as oss
import pytest
import requests
from alibabacloud_oss_v2.signer import SignerV1, SignerV4
from alibabacloud_oss_v2.types import Credentials, HttpRequest, SigningContext

from cname_flow.sandbox.app import Sandbox
from cname_flow.sandbox.config import BucketConfig, SandboxConfig
from cname_flow.sandbox.oss.api import host_region_of

pytestmark = pytest.mark.e2e

HZ, SH = "cn-hangzhou", "cn-shanghai"
HZ_BUCKET, SH_BUCKET = "examplebucket", "shanghaibucket"
DOMAIN = "img.example.com"


@pytest.fixture(scope="module")
def regions_sandbox(no_proxy: None) -> Iterator[Sandbox]:
    """The default world plus ``shanghaibucket`` in cn-shanghai."""
    base = SandboxConfig()
    config = base.model_copy(
        update={"buckets": [*base.buckets, BucketConfig(name=SH_BUCKET, region=SH)]})
    with Sandbox(config) as box:
        yield box


def client(box: Sandbox, region: str, *, v1: bool = False) -> oss.Client:
    """The SDK client signing for ``region`` against the sandbox's one endpoint."""
    cfg = oss.config.load_default()
    cfg.region = region
    cfg.endpoint = box.info.oss_endpoint
    cfg.retry_max_attempts = 1
    cfg.credentials_provider = oss.credentials.StaticCredentialsProvider(
        box.info.access_key_id, box.info.access_key_secret)
    if v1:
        cfg.signature_version = "v1"
    return oss.Client(cfg)


def service_error(call: Callable[[], object]) -> oss.exceptions.ServiceError:
    with pytest.raises(oss.exceptions.OperationError) as info:
        call()
    err = info.value.unwrap()
    assert isinstance(err, oss.exceptions.ServiceError), repr(err)
    return err


def info_of(box: Sandbox, region: str, bucket: str) -> oss.models.BucketInfo:
    result = client(box, region).get_bucket_info(oss.GetBucketInfoRequest(bucket=bucket))
    return result.bucket_info


def test_get_bucket_info_gives_each_bucket_its_own_region(regions_sandbox: Sandbox) -> None:
    for region, bucket in ((HZ, HZ_BUCKET), (SH, SH_BUCKET)):
        info = info_of(regions_sandbox, region, bucket)
        assert (info.name, info.location) == (bucket, f"oss-{region}")
        assert info.extranet_endpoint == f"oss-{region}.aliyuncs.com"
        assert info.intranet_endpoint == f"oss-{region}-internal.aliyuncs.com"
        assert info.creation_date is not None and info.creation_date.tzinfo is not None


@pytest.mark.parametrize(
    "call",
    [
        lambda c: c.get_bucket_info(oss.GetBucketInfoRequest(bucket=SH_BUCKET)),
        lambda c: c.list_cname(oss.ListCnameRequest(bucket=SH_BUCKET)),
        lambda c: c.create_cname_token(oss.CreateCnameTokenRequest(
            bucket=SH_BUCKET, bucket_cname_configuration=oss.BucketCnameConfiguration(
                cname=oss.Cname(domain=DOMAIN)))),
    ],
    ids=["GetBucketInfo", "ListCname", "CreateCnameToken"],
)
def test_a_request_signed_for_another_region_is_refused_naming_the_right_endpoint(
    regions_sandbox: Sandbox, call: Callable[[oss.Client], object],
) -> None:
    before = regions_sandbox.state.mutations
    err = service_error(lambda: call(client(regions_sandbox, HZ)))
    assert (err.status_code, err.code, err.ec) == (403, "AccessDenied", "0003-00001403")
    assert "must be addressed using the specified endpoint" in err.message
    assert err.error_fileds["Endpoint"] == f"oss-{SH}.aliyuncs.com"
    assert err.error_fileds["Bucket"] == SH_BUCKET
    assert regions_sandbox.state.buckets[SH_BUCKET].tokens == {}
    assert regions_sandbox.state.mutations == before


def test_a_missing_bucket_is_404_whatever_the_region(regions_sandbox: Sandbox) -> None:
    request = oss.GetBucketInfoRequest(bucket="nosuchbucket")
    for c in (client(regions_sandbox, HZ), client(regions_sandbox, SH)):
        err = service_error(partial(c.get_bucket_info, request))
        assert (err.status_code, err.code) == (404, "NoSuchBucket")


def test_v1_to_a_host_naming_no_region_is_accepted_in_any_region(
    regions_sandbox: Sandbox,
) -> None:
    v1 = client(regions_sandbox, HZ, v1=True)
    info = v1.get_bucket_info(oss.GetBucketInfoRequest(bucket=SH_BUCKET)).bucket_info
    assert info.location == f"oss-{SH}"


def raw_get_info(box: Sandbox, bucket: str, host: str, *, scope: str | None) -> requests.Response:
    """GetBucketInfo path-style, signed V4 for ``scope`` (V1 when None), sent with ``host``."""
    url = f"{box.info.oss_endpoint}/{bucket}/?bucketInfo"
    request = HttpRequest("GET", url, headers={})
    creds = Credentials(box.info.access_key_id, box.info.access_key_secret)
    signer = SignerV4() if scope else SignerV1()
    signer.sign(SigningContext(product="oss", region=scope or HZ, bucket=bucket,
                               request=request, credentials=creds))
    headers = dict(request.headers) | {"Host": host}
    return requests.get(request.url, headers=headers, timeout=10)


def test_a_host_naming_another_region_is_refused_v1_and_v4(regions_sandbox: Sandbox) -> None:
    for scope in (None, HZ):
        resp = raw_get_info(regions_sandbox, SH_BUCKET, f"oss-{HZ}.aliyuncs.com", scope=scope)
        assert resp.status_code == 403, resp.content
        assert b"<Endpoint>oss-cn-shanghai.aliyuncs.com</Endpoint>" in resp.content
        assert resp.headers["x-oss-ec"] == "0003-00001403"
    ok = raw_get_info(regions_sandbox, SH_BUCKET, f"oss-{SH}.aliyuncs.com", scope=SH)
    assert ok.status_code == 200 and b"<Location>oss-cn-shanghai</Location>" in ok.content


def test_a_v4_scope_other_than_the_hosts_region_is_an_invalid_signing_region(
    regions_sandbox: Sandbox,
) -> None:
    resp = raw_get_info(regions_sandbox, SH_BUCKET, f"oss-{SH}.aliyuncs.com", scope=HZ)
    assert resp.status_code == 400, resp.content
    assert b"<Code>InvalidArgument</Code>" in resp.content
    assert b"Invalid signing region in Authorization header." in resp.content
    assert resp.headers["x-oss-ec"] == "0002-00000226"


@pytest.mark.parametrize(
    ("host", "region"),
    [
        ("oss-cn-shanghai.aliyuncs.com", SH),
        ("shanghaibucket.oss-cn-shanghai.aliyuncs.com:80", SH),
        ("oss-ap-southeast-1-internal.aliyuncs.com", "ap-southeast-1"),
        ("127.0.0.1:9000", None),
        ("localhost", None),
        ("oss.example.com", None),
    ],
)
def test_host_region_of_reads_the_oss_endpoint_naming(host: str, region: str | None) -> None:
    assert host_region_of(host) == region

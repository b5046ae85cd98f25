"""Region per bucket: the mapping of OSS's region answers, the router and its cache, the pre-flight.

The router (:class:`~cname_flow.oss.regions.RegionalOss`) is driven over per-region stubs that
behave as OSS does (``BucketInOtherRegion`` outside the bucket's region, ``BucketNotFound`` for
an unknown bucket); the pre-flight (:func:`cname_flow.service.preflight_region`) and the CLI
over the in-memory fakes.
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import cast

import pytest
import structlog
from alibabacloud_oss_v2 import exceptions as oss_exc

from cname_flow import service
from cname_flow.cli.common import Outcome, outcome_of
from cname_flow.config import Settings
from cname_flow.errors import (
    BucketInOtherRegion,
    BucketNotFound,
    InputError,
    OssAuthError,
    OssError,
    RegionMismatch,
)
from cname_flow.model import Binding, CertificateRequest, CnameEntry, CnameToken
from cname_flow.oss.errors import endpoint_region, hint_for, map_oss_error
from cname_flow.oss.regions import RegionalOss
from cname_flow.propagation.checker import PropagationChecker
from tests.fakes import FakeDnsProvider, FakeOss
from tests.unit.cli.clikit import CliWorld

WORLD = {"hzbucket": "cn-hangzhou", "shbucket": "cn-shanghai"}


@pytest.fixture(autouse=True)
def _reset_logging() -> Iterator[None]:
    """The commands invoked here configure structlog onto CliRunner's streams; undo that."""
    yield
    structlog.reset_defaults()


def sdk_error(status: int, code: str, **fields: str) -> BaseException:
    """A ServiceError with ``<Error>`` children, wrapped as the SDK raises it."""
    err = oss_exc.ServiceError(
        status_code=status, code=code, message="msg", request_id="5C3D8D2A0ACA54D87B43ABCD",
        ec=fields.pop("EC", ""), timestamp=None, request_target="GET http://127.0.0.1/b/",
        error_fileds={"Code": code, "Message": "msg", **fields},
    )
    wrapped: BaseException = oss_exc.OperationError(name="GetBucketInfo", error=err)
    return wrapped


# -- mapping ----------------------------------------------------------------------------------


def test_access_denied_naming_an_endpoint_should_be_bucket_in_other_region() -> None:
    sdk = sdk_error(403, "AccessDenied", Endpoint="oss-cn-shanghai.aliyuncs.com",
                    Bucket="shbucket", EC="0003-00001403")
    mapped = map_oss_error(sdk, "GetBucketInfo", bucket="shbucket")
    assert type(mapped) is BucketInOtherRegion
    assert (mapped.region, mapped.status, mapped.retryable) == ("cn-shanghai", 403, False)
    assert "cn-shanghai" in mapped.hint


def test_access_denied_without_an_endpoint_should_stay_an_auth_error() -> None:
    mapped = map_oss_error(sdk_error(403, "AccessDenied"), "GetBucketInfo")
    assert type(mapped) is OssAuthError


def test_no_such_bucket_should_name_the_bucket_and_exit_2() -> None:
    mapped = map_oss_error(sdk_error(404, "NoSuchBucket"), "GetBucketInfo", bucket="typo")
    assert type(mapped) is BucketNotFound
    assert isinstance(mapped, InputError) and isinstance(mapped, OssError)
    assert (mapped.code, mapped.status, mapped.retryable) == ("NoSuchBucket", 404, False)
    assert "no bucket 'typo' in this account or region" in str(mapped)
    assert mapped.hint and outcome_of(mapped) is Outcome.USAGE


def test_region_mismatch_should_name_both_regions_and_exit_2() -> None:
    err = RegionMismatch("shbucket", "cn-hangzhou", "cn-shanghai")
    assert "cn-hangzhou" in str(err) and "cn-shanghai" in str(err) and "shbucket" in str(err)
    assert outcome_of(err) is Outcome.USAGE


def test_the_invalid_signing_region_ec_should_carry_a_hint() -> None:
    assert "oss.region" in hint_for("InvalidArgument", "0002-00000226")


@pytest.mark.parametrize(
    ("endpoint", "region"),
    [
        ("oss-cn-shanghai.aliyuncs.com", "cn-shanghai"),
        ("shbucket.oss-ap-southeast-1.aliyuncs.com", "ap-southeast-1"),
        ("https://oss-cn-beijing-internal.aliyuncs.com:443/", "cn-beijing"),
        ("http://127.0.0.1:9000", ""),
        ("oss.example.com", ""),
        ("", ""),
    ],
)
def test_endpoint_region_should_read_the_oss_endpoint_naming(endpoint: str, region: str) -> None:
    assert endpoint_region(endpoint) == region


# -- router -------------------------------------------------------------------------------------


class RegionStub:
    """One region of OSS: answers only for buckets of ``region``, counts GetBucketInfo."""

    def __init__(self, region: str, calls: Counter[str]) -> None:
        self.region = region
        self.calls = calls

    def _check(self, bucket: str) -> None:
        home = WORLD.get(bucket)
        if home is None:
            raise BucketNotFound("no bucket", service="oss", code="NoSuchBucket", status=404)
        if home != self.region:
            err = BucketInOtherRegion("elsewhere", service="oss", code="AccessDenied", status=403)
            err.region = home
            raise err

    def bucket_region(self, bucket: str) -> str:
        self.calls[f"GetBucketInfo@{self.region}"] += 1
        self._check(bucket)
        return self.region

    def create_token(self, bucket: str, domain: str) -> CnameToken:
        raise NotImplementedError

    def get_token(self, bucket: str, domain: str) -> CnameToken | None:
        raise NotImplementedError

    def put_cname(self, bucket: str, domain: str,
                  certificate: CertificateRequest | None = None) -> str:
        raise NotImplementedError

    def list_cnames(self, bucket: str) -> list[CnameEntry]:
        self.calls[f"ListCname@{self.region}"] += 1
        self._check(bucket)
        return []

    def delete_cname(self, bucket: str, domain: str) -> None:
        raise NotImplementedError


@pytest.fixture
def calls() -> Counter[str]:
    return Counter()


@pytest.fixture
def built() -> list[str]:
    return []


@pytest.fixture
def router(calls: Counter[str], built: list[str]) -> RegionalOss:
    def factory(region: str) -> RegionStub:
        built.append(region)
        return RegionStub(region, calls)

    return RegionalOss(factory, "cn-hangzhou")


def test_router_should_send_each_bucket_to_its_region(router: RegionalOss,
                                                      calls: Counter[str]) -> None:
    assert router.list_cnames("hzbucket") == router.list_cnames("shbucket") == []
    assert calls["ListCname@cn-hangzhou"] == calls["ListCname@cn-shanghai"] == 1
    assert router.regions == WORLD


def test_router_should_learn_a_region_once_following_the_redirect(
    router: RegionalOss, calls: Counter[str], built: list[str],
) -> None:
    for _ in range(3):
        assert router.bucket_region("shbucket") == "cn-shanghai"
        router.list_cnames("shbucket")
    assert calls["GetBucketInfo@cn-hangzhou"] == 1  # asked at home, pointed elsewhere
    assert calls["GetBucketInfo@cn-shanghai"] == 1  # confirmed there, then cached
    assert built == ["cn-hangzhou", "cn-shanghai"]  # home at once, each region once


def test_router_should_ask_once_however_many_threads_want_the_region(
    router: RegionalOss, calls: Counter[str],
) -> None:
    start = threading.Barrier(8)

    def ask() -> None:
        start.wait()
        router.bucket_region("hzbucket")

    threads = [threading.Thread(target=ask) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert calls["GetBucketInfo@cn-hangzhou"] == 1


def test_router_should_not_cache_a_missing_bucket(router: RegionalOss,
                                                  calls: Counter[str]) -> None:
    for _ in range(2):
        with pytest.raises(BucketNotFound):
            router.bucket_region("nosuch")
    assert calls["GetBucketInfo@cn-hangzhou"] == 2 and router.regions == {}


def test_router_should_give_up_when_the_pointed_region_disowns_the_bucket(
    calls: Counter[str],
) -> None:
    class Liar(RegionStub):
        def bucket_region(self, bucket: str) -> str:
            self.calls[f"GetBucketInfo@{self.region}"] += 1
            err = BucketInOtherRegion("elsewhere", service="oss", code="AccessDenied")
            err.region = "cn-beijing" if self.region == "cn-hangzhou" else "cn-hangzhou"
            raise err

    router = RegionalOss(lambda region: Liar(region, calls), "cn-hangzhou")
    with pytest.raises(BucketInOtherRegion):
        router.bucket_region("hzbucket")
    assert sum(calls.values()) == 2  # home, then the region it named: no loop


# -- pre-flight -----------------------------------------------------------------------------


def clients(oss: FakeOss) -> service.Clients:
    return service.Clients(Settings(), oss, FakeDnsProvider(),
                           cast("PropagationChecker", None))


def test_preflight_should_fill_in_the_buckets_region_when_none_was_given() -> None:
    oss = FakeOss(["shbucket"], regions=WORLD)
    binding = Binding(domain="a.example.com", bucket="shbucket", region="")
    resolved = service.preflight_region(clients(oss), binding)
    assert resolved.region == "cn-shanghai"
    assert resolved.route_target == "shbucket.oss-cn-shanghai.aliyuncs.com"


def test_preflight_should_refuse_a_region_the_bucket_is_not_in() -> None:
    oss = FakeOss(["shbucket"], regions=WORLD)
    binding = Binding(domain="a.example.com", bucket="shbucket", region="cn-hangzhou")
    with pytest.raises(RegionMismatch) as refused:
        service.preflight_region(clients(oss), binding)
    assert (refused.value.given, refused.value.actual) == ("cn-hangzhou", "cn-shanghai")


def test_route_target_should_refuse_an_unknown_region() -> None:
    with pytest.raises(ValueError, match="region is not known"):
        _ = Binding(domain="a.example.com", bucket="b", region="").route_target


def test_cli_bind_with_a_wrong_region_should_exit_2_before_any_call(tmp_path: Path) -> None:
    cli = CliWorld(tmp_path, FakeOss(regions={"examplebucket": "cn-shanghai"}))
    result = cli.invoke("bind", "www.example.com", "--region", "cn-hangzhou")
    assert result.exit_code == 2, result.output
    assert "cn-shanghai" in result.output and "cn-hangzhou" in result.output
    assert dict(cli.oss.calls) == {"GetBucketInfo": 1}
    assert cli.dns.records == {}


def test_cli_batch_with_a_wrong_region_should_exit_2_before_the_job(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    cli = CliWorld(tmp_path, FakeOss(regions={"examplebucket": "cn-shanghai"}))
    cli.batch(monkeypatch)
    manifest = cli.manifest("a.example.com", "b.example.com")
    result = cli.invoke("batch", "run", "-f", str(manifest), "--region", "cn-hangzhou")
    assert result.exit_code == 2, result.output
    assert result.output.count("not cn-hangzhou") == 2  # each binding, with its line
    assert set(cli.oss.calls) == {"GetBucketInfo"}  # (the fake does not cache; the router does)
    assert not (tmp_path / "journal" / "jobs").exists()


def test_learn_regions_should_ask_each_bucket_once_and_return_the_missing_ones() -> None:
    oss = FakeOss(["hzbucket", "shbucket"], regions=WORLD)
    missing = service.learn_regions(clients(oss), ["shbucket", "nosuch", "hzbucket", "nosuch"])
    assert list(missing) == ["nosuch"] and isinstance(missing["nosuch"], BucketNotFound)
    assert oss.calls["GetBucketInfo"] == 3


def test_learn_regions_should_raise_a_failure_that_is_not_bad_input() -> None:
    oss = FakeOss(["hzbucket"], regions=WORLD)
    oss.fail("GetBucketInfo", OssError("down", service="oss", code="NetworkError",
                                       retryable=True))
    with pytest.raises(OssError) as failed:
        service.learn_regions(clients(oss), ["hzbucket"])
    assert failed.value.retryable and not isinstance(failed.value, InputError)


def test_cli_batch_of_a_missing_bucket_should_exit_2_naming_every_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    cli = CliWorld(tmp_path, FakeOss(buckets=()))
    cli.batch(monkeypatch)
    manifest = cli.manifest("a.example.com", "b.example.com")
    result = cli.invoke("batch", "run", "-f", str(manifest))
    assert result.exit_code == 2, result.output
    assert result.output.count("NoSuchBucket") == 2
    assert f"{manifest}:4: " in result.output and f"{manifest}:5: " in result.output
    assert dict(cli.oss.calls) == {"GetBucketInfo": 1}  # once for the bucket, not per line

"""Region per binding, end to end: the real CLI and the real OSS SDK against a two-region sandbox.

The sandbox world holds ``examplebucket`` in cn-hangzhou (the config's ``oss.region``) and
``shanghaibucket`` in cn-shanghai; the sandbox refuses a request signed for a region other than
the bucket's (``docs/sandbox-oss.md``), so a call sent through the wrong region's client fails.

* a manifest mixing both regions binds in one ``batch run``; each bucket's ListCname, asked
  in its own region, lists exactly its domains; the routing CNAME names the bucket's region;
* ``bind --region <wrong>`` exits 2 naming both regions, before any token or DNS write;
* ``bind`` of a bucket that does not exist exits 2 the same way, touching nothing;
* the router asks GetBucketInfo once per bucket and routes each bucket's calls to its region.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from cname_flow.config import Credentials
from cname_flow.errors import BucketInOtherRegion, BucketNotFound
from cname_flow.oss.adapter import AlibabaOss
from cname_flow.oss.regions import RegionalOss
from cname_flow.sandbox.app import Sandbox
from cname_flow.sandbox.config import BucketConfig
from tests.e2e.bindkit import SandboxEnv, count_calls, sandbox_env, world

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(120)]

HOME, OTHER = "cn-hangzhou", "cn-shanghai"
SH_BUCKET = "shanghaibucket"


def two_regions() -> list[BucketConfig]:
    """The default buckets plus one in cn-shanghai."""
    return [*world().buckets, BucketConfig(name=SH_BUCKET, region=OTHER)]


def oss_in(sb: SandboxEnv, region: str) -> AlibabaOss:
    """A single-region OSS client of the sandbox, signing for ``region``."""
    info = sb.sandbox.info
    return AlibabaOss(region=region, credentials=Credentials(info.access_key_id,
                                                             info.access_key_secret),
                      endpoint=info.oss_endpoint)


def touched(sb: SandboxEnv) -> int:
    """The sandbox's count of state mutations (tokens, bindings, records) so far."""
    with sb.sandbox.state.lock:
        return sb.sandbox.state.mutations


def test_a_manifest_mixing_two_regions_binds_in_one_batch_run(tmp_path: Path) -> None:
    manifest = tmp_path / "two-regions.yaml"
    manifest.write_text(
        "bindings:\n"
        "  - {domain: hz.example.com, bucket: examplebucket, region: cn-hangzhou}\n"
        f"  - {{domain: sh.example.com, bucket: {SH_BUCKET}, region: {OTHER}}}\n"
        f"  - {{domain: sh-route.example.com, bucket: {SH_BUCKET}, route: true}}\n",
        encoding="utf-8")
    with sandbox_env(tmp_path, world(buckets=two_regions())) as sb:
        infos = count_calls(sb.sandbox, ["GetBucketInfo"])["GetBucketInfo"]
        done = sb.cli("batch", "run", "-f", str(manifest), "--job", "regions", "--json")
        assert done.returncode == 0, done.stderr
        assert json.loads(done.stdout)["counts"]["bound"] == 3
        listed = {bucket: {e.domain: e.status for e in oss_in(sb, region).list_cnames(bucket)}
                  for bucket, region in (("examplebucket", HOME), (SH_BUCKET, OTHER))}
        assert listed == {"examplebucket": {"hz.example.com": "Enabled"},
                          SH_BUCKET: {"sh.example.com": "Enabled",
                                      "sh-route.example.com": "Enabled"}}
        # no region given: the bucket's real one, in the routing CNAME too
        [route] = sb.records("sh-route.example.com", "CNAME")
        assert route.value == f"{SH_BUCKET}.oss-{OTHER}.aliyuncs.com"
        # one GetBucketInfo per bucket (plus one redirect for the bucket outside oss.region)
        assert len(infos) == 3


def test_bind_with_a_wrong_region_is_refused_before_any_write(tmp_path: Path) -> None:
    with sandbox_env(tmp_path, world(buckets=two_regions())) as sb:
        before = touched(sb)
        done = sb.cli("bind", "wrong.example.com", "--bucket", SH_BUCKET, "--region", HOME)
        assert done.returncode == 2, done.stderr
        assert OTHER in done.stderr and HOME in done.stderr and SH_BUCKET in done.stderr
        assert sb.token(SH_BUCKET, "wrong.example.com") is None
        assert sb.records("_dnsauth.wrong.example.com") == []
        assert touched(sb) == before
        assert sb.phase(f"{SH_BUCKET}/wrong.example.com") is None


def test_bind_without_region_takes_the_buckets_own(tmp_path: Path) -> None:
    with sandbox_env(tmp_path, world(buckets=two_regions())) as sb:
        done = sb.cli("bind", "own.example.com", "--bucket", SH_BUCKET, "--route")
        assert done.returncode == 0, done.stderr
        assert "own.example.com" in sb.sandbox.state.buckets[SH_BUCKET].cnames
        [route] = sb.records("own.example.com", "CNAME")
        assert route.value == f"{SH_BUCKET}.oss-{OTHER}.aliyuncs.com"


def test_bind_of_a_bucket_that_does_not_exist_exits_2_touching_nothing(tmp_path: Path) -> None:
    with sandbox_env(tmp_path) as sb:
        before = touched(sb)
        done = sb.cli("bind", "typo.example.com", "--bucket", "nosuchbucket")
        assert done.returncode == 2, done.stderr
        assert "no bucket 'nosuchbucket'" in done.stderr
        assert "nosuchbucket" not in sb.sandbox.state.buckets
        assert sb.records("_dnsauth.typo.example.com") == []
        assert touched(sb) == before


def test_router_learns_each_region_once_and_routes_there(sandbox: Sandbox) -> None:
    info = sandbox.info
    creds = Credentials(info.access_key_id, info.access_key_secret)
    built: list[str] = []

    def factory(region: str) -> AlibabaOss:
        built.append(region)
        return AlibabaOss(region=region, credentials=creds, endpoint=info.oss_endpoint)

    router = RegionalOss(factory, OTHER)  # home is not the bucket's region
    infos = count_calls(sandbox, ["GetBucketInfo"])["GetBucketInfo"]
    assert router.bucket_region("examplebucket") == HOME
    assert router.list_cnames("examplebucket") == router.list_cnames("examplebucket")
    assert router.bucket_region("examplebucket") == HOME
    assert (built, len(infos)) == ([OTHER, HOME], 2)  # asked at home, then where OSS pointed
    with pytest.raises(BucketNotFound) as missing:
        router.bucket_region("nosuchbucket")
    assert "no bucket 'nosuchbucket'" in str(missing.value)


def test_a_single_region_client_learns_where_the_bucket_lives(sandbox: Sandbox) -> None:
    info = sandbox.info
    creds = Credentials(info.access_key_id, info.access_key_secret)
    elsewhere = AlibabaOss(region=OTHER, credentials=creds, endpoint=info.oss_endpoint)
    with pytest.raises(BucketInOtherRegion) as wrong:
        elsewhere.list_cnames("examplebucket")
    assert (wrong.value.region, wrong.value.status, wrong.value.retryable) == (HOME, 403, False)
    assert HOME in wrong.value.hint

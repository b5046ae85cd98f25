"""End to end: wildcard CNAMEs exist on Agentic Buckets only, selected by ``wildcard=true`` /
``<IsWildCard>``, the domain written without ``*.`` (OSS Create/Get/Delete/PutCname/ListCname
references); ``cname-flow bind '*.example.com'`` goes through those parameters."""

from __future__ import annotations

from pathlib import Path

import alibabacloud_oss_v2 as oss
import pytest

from cname_flow.sandbox.config import BucketConfig, SandboxConfig
from tests.e2e.bindkit import sandbox_env, world
from tests.e2e.test_reconcile_sandbox import oss_client

pytestmark = pytest.mark.e2e


def _agentic() -> SandboxConfig:
    return world().model_copy(update={"buckets": [
        BucketConfig(name="examplebucket", kind="agentic"), BucketConfig(name="plainbucket")]})


def test_wildcard_bind_list_unbind_on_an_agentic_bucket(tmp_path: Path) -> None:
    with sandbox_env(tmp_path, _agentic()) as sb:
        done = sb.cli("bind", "*.w.example.com")
        assert done.returncode == 0, done.stderr
        bucket = sb.sandbox.state.buckets["examplebucket"]
        assert set(bucket.cnames) == {"*.w.example.com"}
        assert [r.value for r in sb.records("_dnsauth.w.example.com")] == [
            bucket.tokens["*.w.example.com"].token]
        listed = oss_client(sb).list_cname(oss.ListCnameRequest(bucket="examplebucket")).cnames
        assert [(c.domain, c.is_wild_card) for c in listed or []] == [("w.example.com", True)]
        done = sb.cli("unbind", "*.w.example.com", "--yes")
        assert done.returncode == 0, done.stderr
        assert bucket.cnames == {}


def test_standard_bucket_refuses_wildcards_and_exact_entries_omit_the_flag(
    tmp_path: Path,
) -> None:
    with sandbox_env(tmp_path, _agentic()) as sb:
        client = oss_client(sb)
        with pytest.raises(oss.exceptions.OperationError) as err:
            client.get_cname_token(oss.GetCnameTokenRequest(
                bucket="plainbucket", cname="w.example.com", wildcard=True))
        assert err.value.unwrap().code == "InvalidArgument"
        with pytest.raises(oss.exceptions.OperationError) as err:
            client.create_cname_token(oss.CreateCnameTokenRequest(
                bucket="plainbucket", bucket_cname_configuration=oss.BucketCnameConfiguration(
                    cname=oss.Cname(domain="*.w.example.com"))))
        assert err.value.unwrap().code == "InvalidArgument"   # never `*.` on the wire
        done = sb.cli("bind", "*.w.example.com", "--bucket", "plainbucket")
        assert done.returncode != 0 and "InvalidArgument" in done.stderr, done.stderr
        done = sb.cli("bind", "exact.example.com")
        assert done.returncode == 0, done.stderr
        resp = client.list_cname(oss.ListCnameRequest(bucket="examplebucket"))
        assert [(c.domain, c.is_wild_card) for c in resp.cnames or []] == [
            ("exact.example.com", None)]

"""The product's reaction to OSS's real answers, end to end (the CLI and the real SDKs against the
sandbox over sockets): a domain without an ICP filing on a mainland bucket is a terminal failure
with the filing's guidance, and OSS's real throttle code is retried until the binding is made."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from cname_flow.sandbox.config import FaultsConfig, IcpConfig, OpFaults
from tests.e2e.bindkit import count_calls, sandbox_env, world

pytestmark = [pytest.mark.e2e, pytest.mark.usefixtures("no_proxy"), pytest.mark.timeout(300)]


def test_bind_without_an_icp_filing_fails_for_good_with_guidance(tmp_path: Path) -> None:
    icp = IcpConfig(enforce=True, filed=["filed.example.com"])
    with sandbox_env(tmp_path, world(icp=icp)) as sb:
        done = sb.cli("bind", "shop.example.com")
        assert done.returncode == 1, done.stderr           # terminal, not 75
        assert "NoSuchCnameInRecord" in done.stderr or "ICP" in done.stderr
        assert "beian" in done.stderr                       # the filing's guidance
        assert sb.phase("examplebucket/shop.example.com") == "FAILED"
        assert "shop.example.com" not in sb.sandbox.state.buckets["examplebucket"].cnames
        filed = sb.cli("bind", "www.filed.example.com", "--json")
        assert filed.returncode == 0, filed.stderr
        assert json.loads(filed.stdout)["phase"] == "BOUND"


def test_bind_through_oss_throttling_is_retried_to_bound(tmp_path: Path) -> None:
    faults = FaultsConfig(seed=7, ops={"PutCname": OpFaults(throttle_rate=0.5),
                                       "CreateCnameToken": OpFaults(throttle_rate=0.5)})
    with sandbox_env(tmp_path, world(faults=faults)) as sb:
        calls = count_calls(sb.sandbox, ["PutCname", "CreateCnameToken"])
        done = sb.cli("bind", "busy.example.com", "--json", timeout=120)
        assert done.returncode == 0, done.stderr
        assert json.loads(done.stdout)["phase"] == "BOUND"
        assert len(calls["PutCname"]) + len(calls["CreateCnameToken"]) > 2  # some were retried
        assert sb.sandbox.state.buckets["examplebucket"].cnames["busy.example.com"]

"""`cname-flow doctor` end to end: real processes, the real SDK clients and dnspython over
sockets, against the sandbox (and a second sandbox playing the parent zone ``com``).

* everything in order: exit 0, every probe ok, the ICP note for the mainland bucket, the policy;
* a wrong AccessKey secret: exit 1, "credentials accepted" fails, the secret is never printed;
* a skewed clock (sandbox ``clock_offset_s``): 6 min warns (exit 0), 20 min fails (exit 1, and
  OSS's RequestTimeTooSkewed is named instead of a credentials verdict);
* a bucket outside the mainland has no ICP note;
* a parent zone delegating to other nameservers: the delegation check fails naming both sets.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from cname_flow.sandbox.app import Sandbox
from cname_flow.sandbox.config import BucketConfig, RecordConfig, SandboxConfig, ZoneConfig
from tests.e2e.bindkit import SandboxEnv, sandbox_env, world

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(180), pytest.mark.usefixtures("no_proxy")]

DOMAIN = "img.example.com"
SANDBOX_NS = ("ns1.sandbox.cname-flow.test", "ns2.sandbox.cname-flow.test")


def parent(ns: tuple[str, ...]) -> SandboxConfig:
    """A sandbox hosting ``com`` only, delegating ``example.com`` to ``ns``."""
    records = [RecordConfig(rr="example", type="NS", value=f"{n}.") for n in ns]
    return SandboxConfig(zones=[ZoneConfig(name="com", records=records)], buckets=[])


@pytest.fixture(scope="module")
def good_parent(no_proxy: None) -> Iterator[list[str]]:
    """Addresses of a ``com`` server delegating example.com to the sandbox's nameservers."""
    with Sandbox(parent(SANDBOX_NS)) as box:
        yield [a for addresses in box.info.nameservers.values() for a in addresses]


def doctor(sb: SandboxEnv, *args: str) -> tuple[int, dict[str, Any], str]:
    done = sb.cli("doctor", "--json", *args, timeout=90)
    assert done.stdout, done.stderr
    report: dict[str, Any] = json.loads(done.stdout)
    return done.returncode, report, done.stdout + done.stderr


def rows(report: dict[str, Any]) -> dict[str, dict[str, str]]:
    return {c["name"]: c for c in report["checks"]}


def test_all_ok_shows_every_probe_the_icp_note_and_the_policy(
        tmp_path: Path, good_parent: list[str]) -> None:
    with sandbox_env(tmp_path) as sb:
        code, report, _ = doctor(sb, "--domain", DOMAIN, "--parent-server", good_parent[0])
    checks = rows(report)
    assert code == 0, report
    assert report["schema"] == "cname-flow/doctor/v1" and report["ok"] is True
    for name in ("clock", "credentials", "credentials accepted", "oss:GetBucketInfo",
                 "oss:ListCname", "oss:GetCnameToken", "alidns:DescribeDomains",
                 "alidns:DescribeSubDomainRecords", "delegation", "bucket region"):
        assert checks[name]["status"] == "ok", checks[name]
    assert checks["ICP"]["status"] == "note" and "cn-hangzhou" in checks["ICP"]["detail"]
    assert checks["write permissions"]["status"] == "note"
    assert "oss:PutCname" in checks["write permissions"]["detail"]
    policy = report["policy"]
    assert policy["Version"] == "1"
    actions = {a for s in policy["Statement"] for a in s["Action"]}
    assert {"oss:CreateCnameToken", "oss:PutCname", "oss:ListCname", "alidns:AddDomainRecord",
            "alidns:UpdateDomainRecordRemark"} <= actions


def test_the_table_exits_0_and_prints_the_policy(tmp_path: Path, good_parent: list[str]) -> None:
    with sandbox_env(tmp_path) as sb:
        done = sb.cli("doctor", "--domain", DOMAIN, "--parent-server", good_parent[0])
    assert done.returncode == 0, done.stderr
    assert "credentials accepted" in done.stdout and '"Version": "1"' in done.stdout
    assert "all checks passed" in done.stderr


def test_a_wrong_secret_fails_and_is_never_printed(tmp_path: Path) -> None:
    sentinel = "SENTINEL-wrong-secret-7f3a9c"
    with sandbox_env(tmp_path) as sb:
        sb.env["OSS_ACCESS_KEY_SECRET"] = sentinel
        code, report, printed = doctor(sb, "--domain", DOMAIN)
    checks = rows(report)
    assert code == 1 and report["ok"] is False
    assert checks["credentials"]["status"] == "ok"  # found...
    assert checks["credentials accepted"]["status"] == "fail"  # ...but refused
    assert "SignatureDoesNotMatch" in checks["credentials accepted"]["detail"]
    assert sentinel not in printed


@pytest.mark.parametrize(("offset_s", "status", "code"), [(6 * 60, "warn", 0),
                                                          (20 * 60, "fail", 1)])
def test_a_skewed_clock_warns_then_fails(tmp_path: Path, offset_s: float, status: str,
                                         code: int) -> None:
    with sandbox_env(tmp_path, world(clock_offset_s=offset_s)) as sb:
        got, report, _ = doctor(sb)
    checks = rows(report)
    assert got == code, report
    assert checks["clock"]["status"] == status
    assert "behind OSS" in checks["clock"]["detail"]
    if status == "fail":
        assert "RequestTimeTooSkewed" in checks["credentials accepted"]["detail"]
    else:
        assert checks["credentials accepted"]["status"] == "ok"


def test_a_bucket_outside_the_mainland_has_no_icp_note(tmp_path: Path) -> None:
    buckets = [*world().buckets, BucketConfig(name="sgbucket", region="ap-southeast-1")]
    with sandbox_env(tmp_path, world(buckets=buckets)) as sb:
        code, report, _ = doctor(sb, "--bucket", "sgbucket")
    checks = rows(report)
    assert code == 0, report
    assert checks["bucket region"]["detail"] == "sgbucket is in ap-southeast-1"
    assert "ICP" not in checks


def test_a_delegation_to_other_nameservers_fails(tmp_path: Path) -> None:
    elsewhere = ("ns1.registrar-parking.test", "ns2.registrar-parking.test")
    with Sandbox(parent(elsewhere)) as wrong, sandbox_env(tmp_path) as sb:
        address = next(iter(wrong.info.nameservers.values()))[0]
        code, report, _ = doctor(sb, "--domain", DOMAIN, "--parent-server", address)
    row = rows(report)["delegation"]
    assert code == 1
    assert row["status"] == "fail"
    assert "ns1.registrar-parking.test" in row["detail"] and SANDBOX_NS[0] in row["detail"]


def test_policy_only_needs_no_credentials(tmp_path: Path) -> None:
    with sandbox_env(tmp_path) as sb:
        for var in ("OSS_ACCESS_KEY_ID", "OSS_ACCESS_KEY_SECRET"):
            sb.env.pop(var)
        done = sb.cli("doctor", "--policy-only", "--cas")
    assert done.returncode == 0, done.stderr
    policy = json.loads(done.stdout)
    assert policy["Version"] == "1"
    assert ["yundun-cert:GetUserCertificateDetail"] in [s["Action"] for s in policy["Statement"]]


def test_mainland_regions_and_server_addresses() -> None:
    from cname_flow.doctor.checks import is_mainland
    from cname_flow.doctor.clock import endpoint_url
    from cname_flow.doctor.delegation import parse_server

    assert is_mainland("cn-hangzhou") and is_mainland("cn-beijing")
    assert not is_mainland("cn-hongkong") and not is_mainland("ap-southeast-1")
    assert parse_server("192.0.2.1") == ("192.0.2.1", 53)
    assert parse_server("127.0.0.1:5353") == ("127.0.0.1", 5353)
    assert parse_server("[::1]:5353") == ("::1", 5353)
    assert endpoint_url(None, "cn-shanghai") == "https://oss-cn-shanghai.aliyuncs.com/"
    assert endpoint_url("oss-cn-hangzhou.aliyuncs.com", "x") == "https://oss-cn-hangzhou.aliyuncs.com/"
    assert endpoint_url("http://127.0.0.1:9000", "x") == "http://127.0.0.1:9000/"


def test_an_unreachable_oss_endpoint_fails_the_clock_check(tmp_path: Path) -> None:
    with sandbox_env(tmp_path) as sb:
        port = sb.sandbox.info.oss_endpoint.rsplit(":", 1)[1]
    # the sandbox is stopped: its port answers nothing now
    config = sb.config.read_text(encoding="utf-8")
    assert port in config
    done = sb.cli("doctor", "--json", timeout=120)
    report = json.loads(done.stdout)
    assert done.returncode == 1
    assert rows(report)["clock"]["status"] == "fail"
    assert "could not read OSS's Date" in rows(report)["clock"]["detail"]
    assert rows(report)["credentials accepted"]["status"] == "skip"  # no retries against it

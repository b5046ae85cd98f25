"""``reconcile`` learns every bucket's region before it observes anything, as ``batch`` does."""

from __future__ import annotations

from pathlib import Path

from tests.fakes import FakeOss
from tests.unit.cli.clikit import CliWorld


def test_reconcile_with_a_bucket_in_another_region_should_route_there(tmp_path: Path) -> None:
    cli = CliWorld(tmp_path, FakeOss(regions={"examplebucket": "cn-shanghai"}))
    manifest = cli.manifest("a.example.com")
    manifest.write_text(manifest.read_text() + "    route: true\n")
    result = cli.invoke("reconcile", "-f", str(manifest), "--apply")
    assert result.exit_code == 0, result.output
    routed = cli.dns.values("a.example.com", "CNAME")
    assert routed == ["examplebucket.oss-cn-shanghai.aliyuncs.com"]


def test_reconcile_with_a_wrong_region_should_exit_2_naming_the_line(tmp_path: Path) -> None:
    cli = CliWorld(tmp_path, FakeOss(regions={"examplebucket": "cn-shanghai"}))
    manifest = cli.manifest("a.example.com")
    manifest.write_text(manifest.read_text().replace("bucket: examplebucket",
                                                     "bucket: examplebucket\n  region: cn-beijing"))
    result = cli.invoke("reconcile", "-f", str(manifest), "--apply")
    assert result.exit_code == 2, result.output
    assert f"{manifest}:5: " in result.output and "cn-beijing" in result.output
    assert set(cli.oss.calls) == {"GetBucketInfo"}  # nothing listed, nothing written
    assert cli.dns.records == {}


def test_reconcile_of_a_missing_bucket_should_exit_2_before_any_other_call(tmp_path: Path) -> None:
    cli = CliWorld(tmp_path, FakeOss(buckets=()))
    manifest = cli.manifest("a.example.com", "b.example.com")
    result = cli.invoke("reconcile", "-f", str(manifest), "--apply")
    assert result.exit_code == 2, result.output
    assert result.output.count("NoSuchBucket") == 2
    assert dict(cli.oss.calls) == {"GetBucketInfo": 1}

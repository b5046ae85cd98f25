"""End to end: the sandbox as wired together (OSS + Alidns + DNS), in-process and as a process."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import alibabacloud_oss_v2 as oss
import pytest
import yaml

from cname_flow.sandbox.app import Sandbox, write_cname_flow_config
from cname_flow.sandbox.config import SandboxConfig, StsConfig, ZoneConfig
from tests.e2e.bindkit import world

pytestmark = pytest.mark.e2e


def _client(info_endpoint: str, ak: str, sk: str) -> oss.Client:
    cfg = oss.config.load_default()
    cfg.region, cfg.endpoint = "cn-hangzhou", info_endpoint
    cfg.credentials_provider = oss.credentials.StaticCredentialsProvider(ak, sk)
    return oss.Client(cfg)


def _put(client: oss.Client, domain: str) -> str:
    """PutCname; the OSS error code, or "ok"."""
    try:
        client.put_cname(oss.PutCnameRequest(
            bucket="examplebucket",
            bucket_cname_configuration=oss.BucketCnameConfiguration(cname=oss.Cname(domain=domain))))
    except oss.exceptions.OperationError as exc:
        return str(exc.unwrap().code)
    return "ok"


def test_premature_putcname_costs_the_negative_ttl_of_the_verifiers_cache() -> None:
    neg_ttl = 2
    cfg = world().model_copy(update={"zones": [
        ZoneConfig(name="example.com", soa_ttl=neg_ttl, soa_minimum=neg_ttl)]})
    with Sandbox(cfg) as sb:
        info = sb.info
        client = _client(info.oss_endpoint, info.access_key_id, info.access_key_secret)
        domain = "early.example.com"
        token = client.create_cname_token(oss.CreateCnameTokenRequest(
            bucket="examplebucket",
            bucket_cname_configuration=oss.BucketCnameConfiguration(
                cname=oss.Cname(domain=domain)))).cname_token.token
        assert _put(client, domain) == "NeedVerifyDomainOwnership"   # asked too early: cached
        zone = sb.state.zone_for(domain)
        assert zone is not None
        sb.state.add_record(zone, "_dnsauth.early", "TXT", token, 600)
        published = time.monotonic()
        # every authoritative server serves it now, yet the verifier's resolver still holds NXDOMAIN
        assert _put(client, domain) == "NeedVerifyDomainOwnership"
        while _put(client, domain) != "ok":
            assert time.monotonic() - published < neg_ttl + 2, "negative cache never expired"
            time.sleep(0.1)
        assert time.monotonic() - published >= neg_ttl - 1.0   # not before (most of) the TTL


def _serve(tmp: Path, *args: str) -> tuple[subprocess.Popen[str], dict[str, object]]:
    info_file = tmp / "info.json"
    info_file.unlink(missing_ok=True)
    env = {k: v for k, v in os.environ.items() if "PROXY" not in k.upper()}
    proc = subprocess.Popen(
        [sys.executable, "-m", "cname_flow", "sandbox", "serve", "--info-file", str(info_file),
         *args], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 30
    while not info_file.exists():
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline
        time.sleep(0.05)
    time.sleep(0.1)
    return proc, json.loads(info_file.read_text())


def test_sandbox_serve_as_a_process_writes_info_and_config_and_survives_restart(
    tmp_path: Path,
) -> None:
    state, config_out = tmp_path / "state.json", tmp_path / "cname-flow.yaml"
    sandbox_cfg = tmp_path / "sandbox.yaml"
    sandbox_cfg.write_text(yaml.safe_dump(SandboxConfig().model_dump(mode="json")))
    proc, info = _serve(tmp_path, "--config", str(sandbox_cfg), "--state", str(state),
                        "--write-config", str(config_out))
    try:
        assert oct(os.stat(tmp_path / "info.json").st_mode & 0o777) == "0o600"
        written = yaml.safe_load(config_out.read_text())
        assert written["oss"]["endpoint"] == info["oss_endpoint"]
        assert str(info["access_key_secret"]) not in config_out.read_text()   # secrets stay in env
        client = _client(str(info["oss_endpoint"]), str(info["access_key_id"]),
                         str(info["access_key_secret"]))
        client.put_bucket(oss.PutBucketRequest(bucket="survivor"))
    finally:
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=20)
    assert proc.returncode == 0, err
    assert "stopping" in out
    assert "survivor" in state.read_text()
    proc, info = _serve(tmp_path, "--state", str(state))
    try:
        client = _client(str(info["oss_endpoint"]), str(info["access_key_id"]),
                         str(info["access_key_secret"]))
        names = [b.name for b in client.list_buckets(oss.ListBucketsRequest()).buckets]
        assert "survivor" in names
    finally:
        proc.send_signal(signal.SIGINT)
        proc.communicate(timeout=20)
    assert proc.returncode == 0


def test_written_config_lets_the_sandbox_sts_credentials_bind(tmp_path: Path) -> None:
    """--write-config reads OSS_SESSION_TOKEN when the sandbox has STS credentials, so the CLI
    signs with the token (no MissingSecurityToken), and still works without one."""
    sts = StsConfig(access_key_id="STS.SandboxTemp", access_key_secret="sts-secret",
                    security_token="sts-token-value")
    base = SandboxConfig()
    accounts = [base.accounts[0].model_copy(update={"sts": [sts]}), *base.accounts[1:]]
    with Sandbox(base.model_copy(update={"accounts": accounts})) as sb:
        config = tmp_path / "cname-flow.yaml"
        write_cname_flow_config(sb.info, config)
        assert "OSS_SESSION_TOKEN" in config.read_text()
        assert sts.security_token not in config.read_text()
        env = {k: v for k, v in os.environ.items()
               if not k.upper().endswith("_PROXY") and not k.startswith(("OSS_", "ALIBABA_"))}
        env["PYTHONPATH"] = str(Path(__file__).resolve().parents[2])
        runs = {
            "sts": {"OSS_ACCESS_KEY_ID": sts.access_key_id,
                    "OSS_ACCESS_KEY_SECRET": sts.access_key_secret,
                    "OSS_SESSION_TOKEN": sts.security_token},
            "long-term key": {"OSS_ACCESS_KEY_ID": sb.info.access_key_id,
                              "OSS_ACCESS_KEY_SECRET": sb.info.access_key_secret},
        }
        for i, (label, creds) in enumerate(runs.items()):
            done = subprocess.run(
                [sys.executable, "-m", "cname_flow", "--config", str(config), "bind",
                 f"sts{i}.example.com", "--bucket", "examplebucket", "--json"],
                env=env | creds, capture_output=True, text=True, timeout=120, check=False,
                cwd=tmp_path)
            assert done.returncode == 0, (label, done.stderr[-2000:])
            assert json.loads(done.stdout)["phase"] == "BOUND", label


def test_written_config_names_no_token_without_sts_credentials(tmp_path: Path) -> None:
    with Sandbox() as sb:
        config = tmp_path / "cname-flow.yaml"
        write_cname_flow_config(sb.info, config)
    assert "security_token" not in yaml.safe_load(config.read_text())["credentials"]

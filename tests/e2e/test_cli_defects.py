"""The newcomer's defects of issue 16 (High and Medium), each driven through the real command
line against the sandbox: in-process with click's ``CliRunner`` (off a terminal, the real SDK
clients) or as a ``cname-flow`` process where a signal or a fresh checkout matters."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
import structlog
import yaml
from click.testing import CliRunner, Result

from cname_flow.cli import main
from cname_flow.cli.common import CliState
from cname_flow.cli.output import RESUME_HINT
from cname_flow.sandbox.app import Sandbox
from cname_flow.sandbox.records import BoundCertificate, CnameRecord
from tests.e2e.bindkit import SandboxEnv, sandbox_env, world

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]
BUCKET = "examplebucket"
#: A SHA-1 fingerprint holding ``:CD:`` and ``:AB:``, which rich would read as emoji codes.
FINGERPRINT = "F0:CD:A7:4A:12:AB:34:56:78:9A:BC:DE:F0:11:22:33:44:55:66:77"


@pytest.fixture(scope="module")
def sb(tmp_path_factory: pytest.TempPathFactory, no_proxy: None) -> Iterator[SandboxEnv]:
    """One default-world sandbox for the module, with its config and credentials."""
    with sandbox_env(tmp_path_factory.mktemp("defects")) as env:
        yield env


@pytest.fixture(autouse=True)
def _reset_logging() -> Iterator[None]:
    yield
    structlog.reset_defaults()


def cli(sb: SandboxEnv, *args: str, config: Path | None = None) -> Result:
    """``cname-flow --config <config> ARGS`` in-process, off a terminal, real SDK clients."""
    env = {k: sb.env[k] for k in ("OSS_ACCESS_KEY_ID", "OSS_ACCESS_KEY_SECRET")}
    return CliRunner().invoke(main, ["--config", str(config or sb.config), *args],
                              obj=CliState(), env=env)


def bound_cert(sb: SandboxEnv, domain: str, fingerprint: str) -> None:
    """Bind ``domain`` in the sandbox with a CAS certificate of that fingerprint."""
    now = time.time()
    cert = BoundCertificate(type="CAS", cert_id="4930000-cn-hangzhou", status="Enabled",
                            creation_date=now, fingerprint=fingerprint, valid_start=now,
                            valid_end=now + 90 * 86400)
    sb.sandbox.state.buckets[BUCKET].cnames[domain] = CnameRecord(
        domain=domain, status="Enabled", last_modified=now, certificate=cert)


# -- High --------------------------------------------------------------------------------------

def test_fingerprints_print_exactly_and_on_one_line(sb: SandboxEnv) -> None:
    bound_cert(sb, "fp.example.com", FINGERPRINT)
    shown = cli(sb, "cert", "status")
    assert shown.exit_code == 0, shown.output
    [row] = [line for line in shown.stdout.splitlines() if "fp.example.com" in line]
    assert FINGERPRINT in row                       # not "F0:A7💿4A…", not cut across lines
    assert "4930000-cn-hangzhou" in row
    assert "\N{OPTICAL DISC}" not in shown.stdout


def test_a_fingerprint_in_a_narrow_terminal_table_stays_whole() -> None:
    from io import StringIO

    from rich.console import Console

    from cname_flow.certificates import CertificateRow
    from cname_flow.cli import render

    row = CertificateRow(BUCKET, "a-rather-long-name.example.com", "Enabled", "CAS",
                         "4930000-cn-hangzhou", FINGERPRINT, datetime(2030, 1, 1, tzinfo=UTC),
                         100.0)
    out = StringIO()
    Console(file=out, width=100, force_terminal=True, emoji=False, color_system=None).print(
        render.certificate_table([row]))
    assert FINGERPRINT in out.getvalue()


def test_the_written_sandbox_config_binds_without_bucket(tmp_path: Path, no_proxy: None,
                                                         ) -> None:
    from cname_flow.sandbox.app import write_cname_flow_config

    with Sandbox(world()) as box:
        config = tmp_path / "cname-flow.yaml"
        write_cname_flow_config(box.info, config)
        assert yaml.safe_load(config.read_text())["defaults"] == {"bucket": BUCKET}
        env = SandboxEnv(box, config, {"OSS_ACCESS_KEY_ID": box.info.access_key_id,
                                       "OSS_ACCESS_KEY_SECRET": box.info.access_key_secret},
                         tmp_path / ".cname-flow" / "bindings.jsonl")
        cwd = os.getcwd()
        os.chdir(tmp_path)  # the written config's journal.dir is relative
        try:
            done = cli(env, "bind", "qs.example.com")
        finally:
            os.chdir(cwd)
        assert done.exit_code == 0, done.output
        assert "qs.example.com" in box.state.buckets[BUCKET].cnames


def test_the_readme_quick_start_names_python3_and_the_path() -> None:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    section = text[text.index("## The sandbox"):]
    block = section[section.index("```sh"):]
    block = block[:block.index("```\n", 5)]
    assert "python -c" not in block and "python3 -c" in block
    assert "source .venv/bin/activate" in block


def test_unbind_asks_has_a_dry_run_and_leaves_a_never_bound_domain_alone(
        sb: SandboxEnv) -> None:
    assert cli(sb, "bind", "ub.example.com").exit_code == 0
    planned = cli(sb, "unbind", "ub.example.com", "--dry-run")
    assert planned.exit_code == 0, planned.output
    assert "would DeleteCname ub.example.com" in planned.stdout
    assert "ub.example.com" in sb.sandbox.state.buckets[BUCKET].cnames      # nothing changed
    refused = cli(sb, "unbind", "ub.example.com")                           # no terminal
    assert refused.exit_code == 2 and "--yes" in refused.stderr
    assert "ub.example.com" in sb.sandbox.state.buckets[BUCKET].cnames
    done = cli(sb, "unbind", "ub.example.com", "--yes")
    assert done.exit_code == 0 and "DeleteCname ub.example.com" in done.stdout
    assert "ub.example.com" not in sb.sandbox.state.buckets[BUCKET].cnames
    never = cli(sb, "unbind", "never.example.com")                           # asks nothing
    assert never.exit_code == 0, never.output
    assert "not bound" in never.stdout and "DeleteCname" not in never.stdout


def test_cert_remove_asks_and_has_a_dry_run(sb: SandboxEnv) -> None:
    bound = cli(sb, "bind", "cr.example.com", "--cert-id", "4930000-cn-hangzhou")
    assert bound.exit_code == 0, bound.output   # the default world knows the examples' CAS id
    planned = cli(sb, "cert", "remove", "cr.example.com", "--dry-run")
    assert planned.exit_code == 0 and "would remove certificate" in planned.stdout
    refused = cli(sb, "cert", "remove", "cr.example.com")
    assert refused.exit_code == 2 and "--yes" in refused.stderr
    assert sb.sandbox.state.buckets[BUCKET].cnames["cr.example.com"].certificate is not None
    done = cli(sb, "cert", "remove", "cr.example.com", "--yes")
    assert done.exit_code == 0, done.output
    assert sb.sandbox.state.buckets[BUCKET].cnames["cr.example.com"].certificate is None


def test_status_on_a_fresh_machine_says_so_and_exits_0(tmp_path: Path) -> None:
    with sandbox_env(tmp_path) as fresh:
        shown = cli(fresh, "status")
        assert shown.exit_code == 0 and shown.stdout.strip() == "no bindings yet"
        assert not fresh.journal.exists()


# -- Medium ------------------------------------------------------------------------------------

def test_a_failing_json_command_prints_the_error_object(sb: SandboxEnv) -> None:
    done = cli(sb, "bind", "taken.example.com", "--json")   # bound to otherbucket
    assert done.exit_code == 1, done.output
    error = json.loads(done.stdout)
    assert error["schema"] == "cname-flow/error/v1"
    assert set(error["error"]) >= {"code", "message", "hint", "retryable", "step"}
    assert error["error"]["retryable"] is False and error["error"]["message"]


def test_a_self_signed_ca_certificate_from_openssl_req_is_accepted(
        sb: SandboxEnv, tmp_path: Path) -> None:
    cert, key = tmp_path / "self.pem", tmp_path / "self.key"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                    "ec_paramgen_curve:P-256", "-nodes", "-days", "30", "-subj",
                    "/CN=ss.example.com", "-addext", "subjectAltName=DNS:ss.example.com",
                    "-keyout", str(key), "-out", str(cert)], check=True, capture_output=True)
    assert "CA:TRUE" in subprocess.run(["openssl", "x509", "-in", str(cert), "-noout", "-text"],
                                       check=True, capture_output=True, text=True).stdout
    done = cli(sb, "bind", "ss.example.com", "--cert-file", str(cert), "--key-file", str(key))
    assert done.exit_code == 0, done.output
    assert "leaf first" not in done.output
    assert sb.sandbox.state.buckets[BUCKET].cnames["ss.example.com"].certificate is not None


def test_input_mistakes_exit_2(sb: SandboxEnv, tmp_path: Path) -> None:
    no_bucket = tmp_path / "no-bucket.yaml"
    cfg = yaml.safe_load(sb.config.read_text())
    cfg.pop("defaults")
    no_bucket.write_text(yaml.safe_dump(cfg))
    missing = cli(sb, "bind", "nb.example.com", config=no_bucket)
    assert missing.exit_code == 2 and "no bucket" in missing.stderr
    zone = cli(sb, "bind", "www.not-hosted.org")
    assert zone.exit_code == 2 and "no zone" in zone.stderr and "hint:" in zone.stderr
    denied = cli(sb, "bind", "ad.example.com", "--bucket", "otherbucket")  # another account's
    assert denied.exit_code == 2 and "AccessDenied" in denied.stderr and "hint:" in denied.stderr


def test_conflicting_or_ignored_flags_are_refused(sb: SandboxEnv, tmp_path: Path) -> None:
    pem = tmp_path / "x.pem"
    pem.write_text("x")
    for args in (["--cert-file", str(pem), "--key-file", str(pem), "--cert-id",
                  "4930000-cn-hangzhou"], ["--route-target", "cdn.example.net"],
                 ["--force-cert"]):
        done = cli(sb, "bind", "cf.example.com", *args)
        assert done.exit_code == 2, (args, done.output)
    assert "cf.example.com" not in sb.sandbox.state.buckets[BUCKET].tokens


def test_bind_prints_its_own_result_and_the_routing_cname(sb: SandboxEnv) -> None:
    assert cli(sb, "bind", "other.example.com").exit_code == 0
    done = cli(sb, "bind", "rt.example.com", "--route")
    assert done.exit_code == 0, done.output
    assert "routing CNAME  rt.example.com → examplebucket.oss-cn-hangzhou.aliyuncs.com" \
        in done.stdout
    assert "other.example.com" not in done.stdout and "ListCname" not in done.stdout
    as_json = json.loads(cli(sb, "bind", "rt.example.com", "--route", "--json").stdout)
    assert as_json["route_cname"] == {"name": "rt.example.com",
                                      "target": "examplebucket.oss-cn-hangzhou.aliyuncs.com"}


def test_the_shipped_examples_run_on_the_shipped_sandbox(tmp_path: Path) -> None:
    workflows = shutil.copytree(ROOT / "workflows", tmp_path / "workflows")
    with sandbox_env(tmp_path) as fresh:
        for manifest in ("batch-example.yaml", "batch-example.csv"):
            done = cli(fresh, "batch", "run", "-f", str(workflows / manifest))
            assert done.exit_code == 0, (manifest, done.output)
        static = fresh.sandbox.state.buckets[BUCKET].cnames["static.example.com"]
        assert static.certificate is not None
        assert static.certificate.cert_id == "4930000-cn-hangzhou"
        applied = cli(fresh, "reconcile", "-f", str(workflows / "reconcile-example.yaml"),
                      "--apply", "--force")
        assert applied.exit_code in (0, 1), applied.output    # ran: no error, no refusal
        assert "error" not in applied.stderr.lower(), applied.stderr
        # config.example.yaml, pointed at the sandbox as `sandbox serve` prints it
        example = yaml.safe_load((ROOT / "config.example.yaml").read_text())
        info = fresh.sandbox.info
        example["oss"]["endpoint"] = info.oss_endpoint
        example["alidns"] |= {"endpoint": info.alidns_endpoint, "protocol": "http"}
        example["propagation"]["nameserver_addresses"] = info.nameservers
        pointed = tmp_path / "config.yaml"
        pointed.write_text(yaml.safe_dump(example), encoding="utf-8")
        done = cli(fresh, "bind", "cfg.example.com", config=pointed)
        assert done.exit_code == 0, done.output


@pytest.fixture
def lagging(tmp_path: Path) -> Iterator[SandboxEnv]:
    """A sandbox whose second nameserver never serves anything, and a 2 s propagation
    deadline: every bind stops in the propagation wait."""
    with sandbox_env(tmp_path, world(0.0, None), propagation={"deadline_s": 2}) as env:
        yield env


def test_exit_75_says_to_run_again_and_logs_no_escaped_table(lagging: SandboxEnv) -> None:
    done = lagging.cli("--console-logs", "bind", "lag.example.com")
    assert done.returncode == 75, done.stderr[-2000:]
    assert done.stderr.rstrip().endswith(RESUME_HINT)
    assert "\\n" not in done.stderr                      # no table as one line of literal \n
    assert done.stderr.count("ADDRESS") == 1             # the table, printed once


def test_ctrl_c_during_bind_exits_130_and_says_rerunning_resumes(lagging: SandboxEnv) -> None:
    slow = dict(lagging.env)
    proc = subprocess.Popen(
        [sys.executable, "-m", "cname_flow", "--config", str(lagging.config), "bind",
         "cc.example.com"], env=slow, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 30
    while not lagging.journal.exists() or \
            lagging.phase(f"{BUCKET}/cc.example.com") != "TXT_WRITTEN":
        assert time.monotonic() < deadline and proc.poll() is None
        time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 130, err[-2000:]
    assert err.rstrip().endswith(RESUME_HINT)


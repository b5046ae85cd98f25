"""What the commands delegate and how they are set up: the bucket choice of ``cert status``,
logging configured once, no console built at import, the ``cname-flow`` entry point."""

from __future__ import annotations

import json
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from cname_flow import certificates, service
from cname_flow.cli import log
from cname_flow.cli import main as exported_main
from cname_flow.cli.main import main
from cname_flow.config.settings import load_settings
from cname_flow.errors import InputError
from cname_flow.journal import Journal
from tests.unit.cli.clikit import BUCKET, CliWorld

ROOT = Path(__file__).resolve().parents[3]


def _no_bucket_anywhere(world: CliWorld) -> None:
    """A config without defaults.bucket over an empty bind journal."""
    empty = world.tmp / "empty"
    with Journal(empty / service.BIND_JOURNAL):
        pass
    world.config.write_text(f"journal:\n  dir: {empty}\n", encoding="utf-8")


def test_certificate_buckets_are_the_requested_ones_else_journal_and_default(
    world: CliWorld,
) -> None:
    world.oss.bind("other", "www.example.com")
    assert world.invoke("bind", "www.example.com", "--bucket", "other").exit_code == 0
    settings = load_settings(world.config)
    assert certificates.certificate_buckets(settings) == [BUCKET, "other"]   # default + journal
    assert certificates.certificate_buckets(settings, ["z", "a", "z"]) == ["a", "z"]
    _no_bucket_anywhere(world)
    with pytest.raises(InputError, match="no bucket to list"):
        certificates.certificate_buckets(load_settings(world.config))


def test_cert_status_lists_the_chosen_buckets_and_exits_2_without_one(world: CliWorld) -> None:
    world.oss.bind(BUCKET, "www.example.com")
    assert world.invoke("bind", "www.example.com").exit_code == 0
    calls = world.oss.calls["ListCname"]
    shown = world.invoke("cert", "status", "--json")
    assert shown.exit_code == 0, shown.output
    assert '"domain": "www.example.com"' in shown.stdout
    assert world.oss.calls["ListCname"] == calls + 1                  # one bucket, one call
    _no_bucket_anywhere(world)
    refused = world.invoke("cert", "status")
    assert refused.exit_code == 2 and "no bucket to list" in refused.stderr


def test_bucket_listing_is_one_list_cname(world: CliWorld) -> None:
    world.oss.bind(BUCKET, "a.example.com")
    clients = world.clients(load_settings(world.config))
    assert [e.domain for e in service.bucket_listing(clients, BUCKET)] == ["a.example.com"]
    assert world.oss.calls["ListCname"] == 1


def test_demo_configures_logging_once(world: CliWorld, monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[dict[str, object]] = []
    monkeypatch.setattr(log, "configure", lambda **kw: calls.append(kw))
    monkeypatch.setattr("cname_flow.cli.demo.run_demo", lambda *a, **kw: None)
    assert world.invoke("demo").exit_code == 0
    assert calls == [{"json_logs": False, "level": "warning"}]
    calls.clear()
    assert world.invoke("status").exit_code == 0     # other commands: the group's set-up
    assert calls == [{"json_logs": None, "verbose": False}]


def test_importing_the_cli_builds_no_console() -> None:
    probe = ("import rich.console\n"
             "def refuse(*a, **k): raise AssertionError('Console built at import')\n"
             "rich.console.Console.__init__ = refuse\n"
             "import cname_flow.cli.main, cname_flow.cli.render, cname_flow.cli.batch_report\n")
    done = subprocess.run([sys.executable, "-c", probe], cwd=ROOT, capture_output=True,
                          text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr


def test_the_console_script_is_cname_flow_cli_main() -> None:
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    assert scripts == {"cname-flow": "cname_flow.cli:main"}
    assert exported_main is main
    done = subprocess.run([sys.executable, "-m", "cname_flow", "--help"], cwd=ROOT,
                          capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0 and "batch" in done.stdout and "reconcile" in done.stdout


def test_unbind_of_a_never_bound_domain_writes_nothing_and_says_so(world: CliWorld) -> None:
    done = world.invoke("unbind", "never.example.com")
    assert done.exit_code == 0 and "nothing to unbind" in done.stdout
    assert json.loads(world.invoke("status", "--json").stdout)["bindings"] == []
    assert world.oss.calls["DeleteCname"] == 0


def test_after_a_real_unbind_status_shows_unbound(world: CliWorld) -> None:
    assert world.invoke("bind", "u.example.com").exit_code == 0
    assert world.invoke("unbind", "u.example.com", "--yes").exit_code == 0
    settings = load_settings(world.config)
    [record] = service.read_bindings(settings).values()
    assert record.phase == "UNBOUND" and record.token is None and record.txt_record_id is None


def test_forget_refuses_while_the_binding_is_driven_and_needs_one_target(
        world: CliWorld) -> None:
    assert world.invoke("bind", "f.example.com").exit_code == 0
    settings = load_settings(world.config)
    with service.open_store(settings) as store, store.lock(f"{BUCKET}/f.example.com"):
        busy = world.invoke("forget", "f.example.com")
    assert busy.exit_code == 75 and "is in use by" in busy.stderr
    assert world.invoke("forget").exit_code == 2
    assert world.invoke("forget", "f.example.com", "--unbound").exit_code == 2
    assert world.invoke("forget", "f.example.com").exit_code == 0
    assert service.read_bindings(settings) == {}


def test_cert_status_reports_a_missing_bucket_on_its_row(world: CliWorld) -> None:
    world.oss.bind(BUCKET, "www.example.com")
    shown = world.invoke("cert", "status", "--bucket", "nosuchbucket", "--bucket", BUCKET,
                         "--json")
    assert shown.exit_code == 0, shown.output
    rows = {r["bucket"]: r for r in json.loads(shown.stdout)["certificates"]}
    assert rows["nosuchbucket"]["error"].startswith("NoSuchBucket")
    assert rows[BUCKET]["domain"] == "www.example.com" and rows[BUCKET]["error"] is None


def test_status_on_a_fresh_machine_lists_nothing_and_creates_nothing(world: CliWorld) -> None:
    done = world.invoke("status")
    assert done.exit_code == 0
    assert not (world.tmp / "journal").exists()

"""The manual-mode commands over the in-memory fakes: refusals and the check-now rate limit."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from cname_flow import service
from cname_flow.config import load_settings
from cname_flow.journal import JournalEvent
from cname_flow.manual.outputs import ManualOutputs, to_journal
from cname_flow.model import AuxStep, Phase
from tests.unit.cli.clikit import BUCKET, CliWorld

DOMAIN = "shop.example.com"


def test_dns_manual_is_refused_with_workers_before_anything_is_asked(tmp_path: Path) -> None:
    world = CliWorld(tmp_path)
    with world.config.open("a", encoding="utf-8") as f:
        f.write("store:\n  url: postgresql://cname@127.0.0.1:1/cname\n")
    done = world.invoke("bind", DOMAIN, "--dns", "manual")
    assert done.exit_code == 2, done.output
    assert "dns: {zones: {<zone>: manual}}" in done.output
    assert sum(world.oss.calls.values()) == 0


def test_check_of_an_unknown_binding_is_bad_input(tmp_path: Path) -> None:
    done = CliWorld(tmp_path).invoke("check", DOMAIN)
    assert done.exit_code == 2 and "no binding" in done.output


def test_check_of_a_binding_cname_flow_writes_is_refused(tmp_path: Path) -> None:
    world = CliWorld(tmp_path)
    assert world.invoke("bind", DOMAIN).exit_code == 0
    done = world.invoke("check", DOMAIN)
    assert done.exit_code == 2 and "not a manual binding" in done.output


def test_check_now_is_rate_limited_per_domain(tmp_path: Path) -> None:
    world = CliWorld(tmp_path)
    settings = load_settings(world.config, env={})
    now = datetime.now(UTC).isoformat()
    with service.open_store(settings) as store:
        store.record(JournalEvent(f"{BUCKET}/{DOMAIN}", AuxStep.DNS_CHECK, "done",
                                  Phase.TXT_WRITTEN, to_journal(ManualOutputs(
                                      dns_mode="manual", manual_zone="example.com",
                                      check_now_at=now))))
    done = world.invoke("check", DOMAIN)
    assert done.exit_code == 75, done.output
    assert "next check now is allowed from" in done.output
    assert sum(world.oss.calls.values()) == 0

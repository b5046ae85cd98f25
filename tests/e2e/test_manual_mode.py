"""End to end: manual mode on the sandbox, real SDK clients over sockets.

The sandbox's Alidns zone ``example.com`` plays the customer's DNS: the test writes the customer's
record straight into the sandbox state (as a person would in their DNS panel), and cname-flow,
configured with ``dns.zones: {example.com: manual}``, writes nothing there. The sandbox's CNAME
tokens live a few seconds (``oss.token_validity_s``), so a token expires during the wait.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import yaml

from cname_flow import service
from cname_flow.config import load_settings
from cname_flow.events import Event
from cname_flow.manifest import load_manifest
from cname_flow.manual.check import check_now
from cname_flow.manual.detect import decode
from cname_flow.manual.errors import AwaitingCustomerDns, CheckTooSoon
from cname_flow.reconcile.run import ReconcileOptions, reconcile
from cname_flow.sandbox.config import OssLimits
from tests.e2e.bindkit import SandboxEnv, sandbox_env, world, write_config

pytestmark = [pytest.mark.e2e, pytest.mark.usefixtures("no_proxy")]

DOMAIN = "shop.example.com"
KEY = f"examplebucket/{DOMAIN}"
#: Seconds a CNAME token lives in this sandbox (OSS: 72 h).
TOKEN_S = 8
MANUAL = {"first_check_s": 0.2, "fast_period_s": 0.3, "fast_for_s": 2.0, "factor": 1.5,
          "check_cap_s": 1.0, "renew_before_s": 2.0, "check_now_interval_s": 1.0,
          "bind_wait_s": 1.5}


class ListSink:
    """Collects published events (thread-safe enough: list.append is atomic)."""

    def __init__(self) -> None:
        self.events: list[Event] = []

    def publish(self, event: Event) -> None:
        self.events.append(event)

    def of(self, kind: str) -> list[Event]:
        return [e for e in self.events if e.type == kind]


@pytest.fixture
def sb(tmp_path: Path) -> Iterator[SandboxEnv]:
    cfg = world(oss=OssLimits(token_validity_s=TOKEN_S))
    with sandbox_env(tmp_path, cfg) as env:
        write_config(env.config, env.sandbox, extra={
            "dns": {"provider": "alidns", "zones": {"example.com": "manual"}},
            "manual": MANUAL})
        yield env


def clients(sb: SandboxEnv, sink: ListSink) -> service.Clients:
    settings = load_settings(sb.config, env={})
    made = service.Clients.from_settings(settings, env=sb.env)
    made.events = sink
    return made


def findings(sb: SandboxEnv) -> list[str]:
    with service.open_store(load_settings(sb.config, env={})) as store:
        record = store.get(KEY)
    assert record is not None
    return [f["code"] for f in decode(record.get("dns_findings"))]


def customer_adds(sb: SandboxEnv, rr: str, value: str) -> None:
    state = sb.sandbox.state
    state.add_record(state.zones["example.com"], rr, "TXT", value, 600)


def customer_removes(sb: SandboxEnv, rr: str) -> None:
    state = sb.sandbox.state
    zone = state.zones["example.com"]
    for rec in [r for r in zone.records.values() if r.rr == rr]:
        state.delete_record(zone, rec)


def check(sb: SandboxEnv, sink: ListSink) -> Any:
    """`check now`, waiting out its rate limit."""
    made = clients(sb, sink)
    binding = service.make_binding(made.settings, DOMAIN)
    with service.open_store(made.settings) as store:
        for _ in range(20):
            try:
                return check_now(made, binding, store)
            except CheckTooSoon:
                time.sleep(0.3)
    raise AssertionError("check now stayed rate-limited")


def test_manual_binding_from_instructions_to_bound(sb: SandboxEnv, tmp_path: Path) -> None:
    sink = ListSink()
    made = clients(sb, sink)
    binding = service.make_binding(made.settings, DOMAIN)
    with service.open_store(made.settings) as store, pytest.raises(AwaitingCustomerDns) as waited:
        service.bind(made, binding, store)
    assert "cname-flow check" in str(waited.value)
    # instructions given: exact record, relative and full host; nothing written by cname-flow
    first = sb.token("examplebucket", DOMAIN)
    assert first is not None
    [instr] = sink.of("binding.instructions")
    assert instr.data["fqdn"] == f"_dnsauth.{DOMAIN}" and instr.data["host"] == "_dnsauth.shop"
    assert instr.data["type"] == "TXT" and instr.data["value"] == first
    assert sb.records(f"_dnsauth.{DOMAIN}") == []
    assert sb.phase(KEY) == "TXT_WRITTEN"
    assert "dns_txt_missing" in findings(sb)

    # the customer types the full name into a panel that appends the zone
    customer_adds(sb, f"_dnsauth.{DOMAIN}", first)
    with pytest.raises(AwaitingCustomerDns) as wrong:
        check(sb, sink)
    assert "dns_txt_doubled_suffix" in findings(sb)
    assert f"_dnsauth.{DOMAIN}.example.com" in str(wrong.value)

    # the token expires meanwhile: the next check re-mints it and reports the new value
    with service.open_store(made.settings) as store:
        record = store.get(KEY)
    assert record is not None and record.token_expires_at is not None
    # (+1.2 s: ExpireTime is given to the second, RFC 1123)
    time.sleep(max(0.0, (record.token_expires_at - datetime.now(UTC)).total_seconds()) + 1.2)
    with pytest.raises(AwaitingCustomerDns):
        check(sb, sink)
    [renewed] = sink.of("binding.token_renewed")
    second = sb.token("examplebucket", DOMAIN)
    assert second is not None and second != first
    assert renewed.data["old_value"] == first and renewed.data["new_value"] == second
    assert sink.of("binding.instructions")[-1].data["value"] == second
    status = sb.cli("status", DOMAIN, "--json")
    assert status.returncode == 0, status.stderr
    [row] = json.loads(status.stdout)["bindings"]
    assert row["manual"]["instructions"]["value"] == second
    assert row["manual"]["token"]["renewals"] == 1 and row["phase"] == "TXT_WRITTEN"

    # moved to the right name, but with the old value
    customer_removes(sb, f"_dnsauth.{DOMAIN}")
    customer_adds(sb, "_dnsauth.shop", first)
    with pytest.raises(AwaitingCustomerDns):
        check(sb, sink)
    assert "dns_txt_old_token" in findings(sb)

    # right name, right value: a later reconcile run (cron) binds it
    customer_removes(sb, "_dnsauth.shop")
    customer_adds(sb, "_dnsauth.shop", second)
    manifest = tmp_path / "bindings.yaml"
    manifest.write_text(yaml.safe_dump({
        "defaults": {"bucket": "examplebucket", "region": "cn-hangzhou"},
        "bindings": [{"domain": DOMAIN}]}), encoding="utf-8")
    time.sleep(MANUAL["check_cap_s"])  # the scheduled check is due by now
    report = reconcile(clients(sb, sink), load_manifest(manifest), ReconcileOptions(apply=True))
    assert report.outcome() == "clean", report.to_json()
    assert sb.phase(KEY) == "BOUND"
    assert DOMAIN in sb.sandbox.state.buckets["examplebucket"].cnames
    assert len(sink.of("binding.instructions")) == 2
    # no secret reaches the store or an event
    secret = sb.env["OSS_ACCESS_KEY_SECRET"]
    assert secret not in sb.journal.read_text(encoding="utf-8")
    assert all(secret not in json.dumps(e.as_json()) for e in sink.events)


def test_lagging_nameserver_is_named(tmp_path: Path) -> None:
    with sandbox_env(tmp_path, world(0.0, 60.0)) as sb:  # ns2 sees changes 60 s late
        write_config(sb.config, sb.sandbox, extra={
            "dns": {"provider": "alidns", "zones": {"example.com": "manual"}},
            "manual": MANUAL})
        sink = ListSink()
        made = clients(sb, sink)
        binding = service.make_binding(made.settings, DOMAIN)
        with service.open_store(made.settings) as store, pytest.raises(AwaitingCustomerDns):
            service.bind(made, binding, store)
        token = sb.token("examplebucket", DOMAIN)
        assert token is not None
        customer_adds(sb, "_dnsauth.shop", token)
        with pytest.raises(AwaitingCustomerDns) as lagging:
            check(sb, sink)
        assert findings(sb) == ["dns_txt_lagging"]
        assert "not yet by ns2.sandbox.cname-flow.test" in str(lagging.value)
        assert sb.phase(KEY) == "TXT_WRITTEN"


def test_cli_bind_dns_manual_prints_instructions_exits_75_and_check_binds(
        tmp_path: Path) -> None:
    with sandbox_env(tmp_path) as sb:  # no dns.zones entry: --dns manual alone
        write_config(sb.config, sb.sandbox, extra={"manual": MANUAL})
        domain, key = "cdn.example.com", "examplebucket/cdn.example.com"
        done = sb.cli("bind", domain, "--dns", "manual", "--json")
        assert done.returncode == 75, done.stderr
        data = json.loads(done.stdout)
        token = sb.token("examplebucket", domain)
        assert data["schema"] == "cname-flow/manual-waiting/v1"
        assert data["waiting"] is True and data["phase"] == "TXT_WRITTEN"
        instr = data["manual"]["instructions"]
        assert (instr["host"], instr["fqdn"], instr["value"]) == (
            "_dnsauth.cdn", f"_dnsauth.{domain}", token)
        assert "reconcile" in data["hint"] and "check" in data["hint"]
        assert sb.records(f"_dnsauth.{domain}") == []  # cname-flow wrote nothing

        text = sb.cli("status", domain)
        assert "_dnsauth.cdn" in text.stdout and "dns_txt_missing" in text.stdout, text.stdout

        assert token is not None
        customer_adds(sb, "_dnsauth.cdn", token)
        time.sleep(MANUAL["check_now_interval_s"])
        bound = sb.cli("check", domain, "--json")
        assert bound.returncode == 0, bound.stderr
        checked = json.loads(bound.stdout)
        assert (checked["schema"], checked["phase"]) == ("cname-flow/check/v1", "BOUND")
        assert sb.phase(key) == "BOUND"
        again = sb.cli("check", domain)  # already bound: nothing to ask
        assert again.returncode == 0 and "bound" in again.stdout

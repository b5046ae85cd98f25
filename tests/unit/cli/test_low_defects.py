"""The Low defects of issue 16, each pinned by a test that failed before its fix."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import click
import pytest

from cname_flow import certificates, service
from cname_flow.cli import main
from cname_flow.cli.demo import nameserver_text
from cname_flow.cli.examples import EXAMPLES
from cname_flow.config import load_settings
from cname_flow.config.credentials import scrub
from cname_flow.errors import ConfigError, InputError
from cname_flow.manifest import load_manifest
from cname_flow.model import display_domain, normalize_domain
from cname_flow.sandbox.app import Sandbox
from cname_flow.sandbox.config import SandboxConfig
from tests.unit.cli.clikit import BUCKET, CliWorld

# -- plan: several domains, --detailed-exitcode ---------------------------------------------


def test_plan_takes_several_domains(world: CliWorld) -> None:
    done = world.invoke("plan", "a.example.com", "b.example.com")
    assert done.exit_code == 0, done.output
    assert "a.example.com" in done.stdout and "b.example.com" in done.stdout
    doc = json.loads(world.invoke("plan", "a.example.com", "b.example.com", "--json").stdout)
    assert doc["schema"] == "cname-flow/plans/v1"
    assert [d["binding"] for d in doc["plans"]] == [
        f"{BUCKET}/a.example.com", f"{BUCKET}/b.example.com"]


def test_detailed_exitcode_is_2_with_changes_0_without_1_on_error(world: CliWorld) -> None:
    assert world.invoke("plan", "a.example.com", "--detailed-exitcode").exit_code == 2
    assert world.invoke("bind", "a.example.com").exit_code == 0
    assert world.invoke("plan", "a.example.com", "--detailed-exitcode").exit_code == 0
    assert world.invoke("plan", "a.example.com", "bad..name", "--detailed-exitcode"
                        ).exit_code == 1
    assert world.invoke("plan", "bad..name").exit_code == 2  # without it: the usual table


# -- help ---------------------------------------------------------------------------------


def _all_commands(group: click.Group, ctx: click.Context, path: tuple[str, ...] = ()
                  ) -> list[tuple[str, ...]]:
    found: list[tuple[str, ...]] = []
    for name in group.list_commands(ctx):
        cmd = group.get_command(ctx, name)
        assert cmd is not None
        found.append((*path, name))
        if isinstance(cmd, click.Group):
            found += _all_commands(cmd, click.Context(cmd, parent=ctx, info_name=name),
                                   (*path, name))
    return found


COMMANDS = _all_commands(main, click.Context(main, info_name="cname-flow"))


@pytest.mark.parametrize("path", [(), *COMMANDS], ids=lambda p: " ".join(p) or "root")
def test_dash_h_is_help_everywhere_and_each_command_shows_an_example(
        world: CliWorld, path: tuple[str, ...]) -> None:
    done = world.invoke(*path, "-h")
    assert done.exit_code == 0, done.output
    assert "Usage:" in done.stdout
    if path:
        examples = done.stdout.partition("Examples:")[2]
        assert examples.strip().startswith("cname-flow") or "cname-flow" in examples
        assert " ".join(path) in EXAMPLES


def test_the_command_list_does_not_cut_descriptions(world: CliWorld) -> None:
    out = world.invoke("--help").stdout
    assert "..." not in out.partition("Commands:")[2]
    assert "PostgreSQL store." in " ".join(out.split())


# -- input ---------------------------------------------------------------------------------


def test_a_url_is_refused_naming_the_host_to_give(world: CliWorld) -> None:
    done = world.invoke("bind", "https://www.example.com/index.html")
    assert done.exit_code == 2
    assert "give the host name, not a URL: www.example.com" in done.stderr
    assert "IDNA" not in done.stderr


@pytest.mark.parametrize("raw", ["www.*.example.com", "*example.com", "*"])
def test_a_misplaced_wildcard_is_refused_in_plain_words(world: CliWorld, raw: str) -> None:
    done = world.invoke("bind", raw)
    assert done.exit_code == 2
    assert "'*' may only be the whole first label" in done.stderr
    assert "IDNA" not in done.stderr and "codepoint" not in done.stderr


def test_a_wildcard_where_none_is_taken_says_so() -> None:
    with pytest.raises(InputError, match=r"a wildcard is not taken here.*\*\.example\.com"):
        normalize_domain("*.example.com")


def test_idns_are_shown_as_u_label_with_the_a_label(world: CliWorld) -> None:
    assert display_domain(normalize_domain("例子.example.com")) == (
        "例子.example.com (xn--fsqu00a.example.com)")
    assert display_domain("www.example.com") == "www.example.com"
    assert world.invoke("bind", "例子.example.com").exit_code == 0
    out = world.invoke("status").stdout
    assert "例子.example.com" in out and "xn--fsqu00a.example.com" in out


def test_manifest_schema_errors_are_plain_and_suggest_the_key(tmp_path: Path) -> None:
    path = tmp_path / "m.yaml"
    path.write_text("defualts:\n  bucket: examplebucket\nbindings:\n"
                    "  - domian: www.example.com\n  - domain: b.example.com\n    route: maybe\n",
                    encoding="utf-8")
    with pytest.raises(ConfigError) as info:
        load_manifest(path)
    text = str(info.value)
    assert "unknown key 'domian' (did you mean 'domain'?)" in text
    assert "unknown key 'defualts' (did you mean 'defaults'?)" in text
    assert "bindings[1].route: must be true or false" in text
    assert "Extra inputs are not permitted" not in text


def test_csv_header_suggests_the_column(tmp_path: Path) -> None:
    path = tmp_path / "m.csv"
    path.write_text("domain,buckte\nwww.example.com,examplebucket\n", encoding="utf-8")
    with pytest.raises(ConfigError, match=r"'buckte' \(did you mean 'bucket'\?\)"):
        load_manifest(path)


# -- output --------------------------------------------------------------------------------


def test_a_successful_batch_prints_no_empty_results_table(
        world: CliWorld, monkeypatch: pytest.MonkeyPatch) -> None:
    world.oss.bind(BUCKET, "a.example.com")  # the fast path: no propagation wait to fake
    world.batch(monkeypatch)
    done = world.invoke("batch", "run", "-f", str(world.manifest("a.example.com")))
    assert done.exit_code == 0, done.output
    assert "1 bound" in done.stdout
    assert "manifest line" not in done.stdout and "┃" not in done.stdout


def test_a_short_secret_does_not_mangle_messages() -> None:
    assert scrub("Max retries exceeded", ["x", "e"]) == "Max retries exceeded"
    assert scrub("token ab refused", ["ab"]) == "token *** refused"
    long_secret = "SENTINEL0123456789"
    assert scrub(f"k={long_secret}&x", [long_secret]) == "k=***&x"


def test_cert_remove_on_an_unbound_domain_says_it_is_not_bound(world: CliWorld) -> None:
    settings = load_settings(world.config)
    binding = service.make_binding(settings, "never.example.com", destructive=True)
    with service.open_store(settings) as store:
        said = certificates.remove_certificate(world.clients(settings), binding, store)
    assert "is not bound to examplebucket" in said
    assert "has no certificate" not in said


def test_the_demo_prints_nameservers_as_text() -> None:
    text = nameserver_text({"ns1.sandbox.test": ["127.0.0.1:5301"],
                            "ns2.sandbox.test": ["127.0.0.1:5302", "[::1]:5302"]})
    assert text == ("ns1.sandbox.test (127.0.0.1:5301), "
                    "ns2.sandbox.test (127.0.0.1:5302, [::1]:5302)")
    assert "{" not in text and "[" not in text.replace("[::1]", "")


# -- sandbox serve stops promptly ----------------------------------------------------------


def _open_connections(oss_endpoint: str, nameserver: str) -> list[socket.socket]:
    host, port = oss_endpoint.removeprefix("http://").rsplit(":", 1)
    half_sent = socket.create_connection((host, int(port)))
    half_sent.sendall(b"GET / HTTP/1.1\r\nHost: sandbox\r\n")  # headers never finished
    ns_host, ns_port = nameserver.rsplit(":", 1)
    idle_tcp = socket.create_connection((ns_host, int(ns_port)))
    return [half_sent, idle_tcp]


def test_sandbox_stop_with_open_connections_is_under_a_second() -> None:
    sandbox = Sandbox(SandboxConfig())
    info = sandbox.start()
    conns = _open_connections(info.oss_endpoint, next(iter(info.nameservers.values()))[0])
    try:
        started = time.monotonic()
        sandbox.stop()
        assert time.monotonic() - started < 1.0
    finally:
        for conn in conns:
            conn.close()


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_sandbox_serve_stops_cleanly_on_a_signal(tmp_path: Path, signum: int) -> None:
    info_file = tmp_path / "info.json"
    proc = subprocess.Popen(
        [sys.executable, "-m", "cname_flow", "sandbox", "serve", "--info-file", str(info_file)],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=dict(os.environ))
    assert proc.stdout is not None
    for line in proc.stdout:
        if "serving" in line:
            break
    info = json.loads(info_file.read_text(encoding="utf-8"))
    conns = _open_connections(info["oss_endpoint"], next(iter(info["nameservers"].values()))[0])
    try:
        proc.send_signal(signum)
        rest = proc.stdout.read()
        assert proc.wait(timeout=30) == 0
    finally:
        for conn in conns:
            conn.close()
    assert "Traceback" not in rest and "CancelledError" not in rest
    assert "stopping" in rest

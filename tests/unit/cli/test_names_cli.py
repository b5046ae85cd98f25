"""Names and options refused at the command line before anything is sent or journaled (issue 13).

Every refusal is exit 2 with one ``error:`` line, no traceback, no call to OSS or DNS, and no
key in the store of record.
"""

from __future__ import annotations

import pytest
from click.testing import Result

from cname_flow import service
from cname_flow.config import load_settings
from tests.unit.cli.clikit import CliWorld


def assert_refused(world: CliWorld, done: Result, *needles: str) -> None:
    """Exit 2, the reason on stderr, nothing remote, nothing journaled."""
    assert done.exit_code == 2, done.output
    assert "Traceback" not in done.output and done.exception is not None
    assert isinstance(done.exception, SystemExit)
    for needle in needles:
        assert needle in done.stderr, done.stderr
    assert sum(world.oss.calls.values()) == 0, world.oss.calls
    assert sum(world.dns.calls.values()) == 0, world.dns.calls
    assert world.oss.minted == 0
    assert dict(service.read_bindings(load_settings(world.config))) == {}


def bound(world: CliWorld, domain: str) -> None:
    """Bind ``domain`` (exit 0), then forget the calls it made."""
    done = world.invoke("bind", domain)
    assert done.exit_code == 0, done.output
    world.oss.calls.clear()
    world.dns.calls.clear()


# -- domains -------------------------------------------------------------------------------------

@pytest.mark.parametrize("domain", ["1.2.3.4", "::1", "example.123"])
def test_bind_refuses_ip_shaped_names(world: CliWorld, domain: str) -> None:
    assert_refused(world, world.invoke("bind", domain), "error:", repr(domain))


# -- buckets, regions, route targets, certificates -----------------------------------------------

@pytest.mark.parametrize("bucket", ["a/b", "Bad_Bucket", "ab", "b" * 64])
def test_bind_refuses_bucket_names_oss_forbids(world: CliWorld, bucket: str) -> None:
    done = world.invoke("bind", "www.example.com", "--bucket", bucket)
    assert_refused(world, done, f"bucket {bucket!r}")


@pytest.mark.parametrize("command", ["unbind", "forget", "cert"])
def test_commands_on_a_bound_name_refuse_a_forbidden_bucket(world: CliWorld,
                                                            command: str) -> None:
    args = ["cert", "remove"] if command == "cert" else [command]
    done = world.invoke(*args, "www.example.com", "--bucket", "a/b")
    assert_refused(world, done, "bucket 'a/b'")


@pytest.mark.parametrize("region", ["x y", "CN-HANGZHOU", "hangzhou"])
def test_bind_and_plan_refuse_a_malformed_region(world: CliWorld, region: str) -> None:
    for command in ("bind", "plan"):
        done = world.invoke(command, "www.example.com", "--region", region)
        assert_refused(world, done, f"region {region!r}: not an OSS region id")


def test_batch_refuses_a_manifest_region_before_the_job(world: CliWorld,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    world.batch(monkeypatch)
    path = world.tmp / "m.yaml"
    path.write_text("defaults:\n  bucket: examplebucket\nbindings:\n"
                    "  - domain: a.example.com\n    region: x y\n", encoding="utf-8")
    done = world.invoke("batch", "run", "-f", str(path))
    assert_refused(world, done, "m.yaml:4: region 'x y'")


@pytest.mark.parametrize(("target", "needle"), [
    ("evil", "at least two labels"),
    ("http://evil/", "not a URL"),
    ("cdn.example.net:8080", "no port"),
    ("10.0.0.1", "IP address"),
])
def test_bind_refuses_a_route_target_that_is_not_a_host(world: CliWorld, target: str,
                                                        needle: str) -> None:
    done = world.invoke("bind", "www.example.com", "--route", "--route-target", target)
    assert_refused(world, done, f"route target {target!r}", needle)


def test_bind_refuses_a_cas_id_with_files_before_minting(world: CliWorld) -> None:
    done = world.invoke("bind", "www.example.com", "--cert-id", "4930000-cn-hangzhou",
                        "--cert-file", "a.pem", "--key-file", "a.key")
    assert_refused(world, done, "--cert-id or --cert-file with --key-file, not both")


# -- destructive commands act only on the name the user can see ----------------------------------

DESTRUCTIVE = [("unbind",), ("forget",), ("cert", "remove")]


def assert_untouched(world: CliWorld, done: Result, *needles: str) -> None:
    """Exit 2, the reason on stderr, nothing remote, the bound entry still in the store."""
    assert done.exit_code == 2, done.output
    assert "Traceback" not in done.output and isinstance(done.exception, SystemExit)
    for needle in needles:
        assert needle in done.stderr, done.stderr
    assert sum(world.oss.calls.values()) == 0 and sum(world.dns.calls.values()) == 0
    records = service.read_bindings(load_settings(world.config))
    assert records["examplebucket/example.com"].phase == "BOUND"


@pytest.mark.parametrize("command", DESTRUCTIVE)
def test_a_zero_width_space_does_not_redirect_a_destructive_command(world: CliWorld,
                                                                   command: tuple[str]) -> None:
    bound(world, "example.com")
    done = world.invoke(*command, "example\u200b.com")
    assert_untouched(world, done, "U+200B ZERO WIDTH SPACE at position 8",
                     "it would act on example.com")


@pytest.mark.parametrize("command", DESTRUCTIVE)
def test_mapped_characters_do_not_redirect_a_destructive_command(world: CliWorld,
                                                                command: tuple[str]) -> None:
    bound(world, "example.com")
    done = world.invoke(*command, "ｅxample\u3002com")
    assert_untouched(world, done, "U+FF45 FULLWIDTH LATIN SMALL LETTER E at position 1",
                     "U+3002 IDEOGRAPHIC FULL STOP at position 8")


@pytest.mark.parametrize("command", DESTRUCTIVE)
def test_a_mixed_script_label_needs_its_a_label_form(world: CliWorld,
                                                    command: tuple[str]) -> None:
    bound(world, "example.com")
    done = world.invoke(*command, "ex\u0430mple.com")       # Cyrillic а
    assert done.exit_code == 2, done.output
    assert "mixes LATIN and CYRILLIC" in done.stderr and "xn--exmple-4nf.com" in done.stderr
    assert sum(world.oss.calls.values()) == 0 and sum(world.dns.calls.values()) == 0


def test_the_a_label_form_reaches_the_command(world: CliWorld) -> None:
    done = world.invoke("forget", "xn--exmple-4nf.com")
    assert done.exit_code == 2, done.output
    assert "no entry examplebucket/xn--exmple-4nf.com in the store" in done.stderr


def test_a_visible_name_still_unbinds(world: CliWorld) -> None:
    bound(world, "example.com")
    done = world.invoke("unbind", " Example.COM.", "--yes")
    assert done.exit_code == 0, done.output
    assert world.oss.calls["DeleteCname"] == 1


def test_bind_warns_about_a_mixed_script_name_and_goes_on(world: CliWorld) -> None:
    done = world.invoke("bind", "p\u0430ypal.example.com")
    assert "domain.suspicious" in done.stderr
    assert "mixes LATIN and CYRILLIC" in done.stderr
    assert world.oss.calls["CreateCnameToken"] == 1

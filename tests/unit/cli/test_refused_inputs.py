"""Bad inputs the commands refuse up front with exit 2 and a message naming what to fix, never a
traceback or an empty answer (issue 13's follow-ups)."""

from __future__ import annotations

import pytest
from click.testing import Result

from cname_flow.cli.common import Outcome
from tests.unit.cli.clikit import CliWorld

DOMAIN = "www.example.com"


def _refused(result: Result, *says: str) -> None:
    assert isinstance(result.exception, SystemExit), result.exc_info
    assert "Traceback" not in result.output
    assert result.exit_code == Outcome.USAGE, result.output
    for text in says:
        assert text in result.output, (text, result.output)


def _untouched(world: CliWorld) -> None:
    assert not world.oss.calls and not world.dns.calls, (world.oss.calls, world.dns.calls)


# -- status: a journal.dir that is a file is the same ConfigError the other commands give -----

def test_status_with_a_journal_dir_that_is_a_file_exits_2(world: CliWorld) -> None:
    journal = world.tmp / "journal"
    journal.write_text("not a directory", encoding="utf-8")
    _refused(world.invoke("status"), "journal.dir", str(journal))
    bind = world.invoke("bind", DOMAIN)  # the message status gives is bind's
    assert bind.exit_code == Outcome.USAGE and "journal.dir" in bind.output


def test_status_with_a_journal_dir_under_a_file_exits_2(world: CliWorld) -> None:
    (world.tmp / "blocker").write_text("a file", encoding="utf-8")
    world.config.write_text(f"journal:\n  dir: {world.tmp / 'blocker' / 'journal'}\n",
                            encoding="utf-8")
    _refused(world.invoke("status"), "journal.dir", str(world.tmp / "blocker"))


def test_status_on_a_fresh_machine_is_still_empty_and_creates_nothing(world: CliWorld) -> None:
    result = world.invoke("status")
    assert result.exit_code == Outcome.OK, result.output
    assert not (world.tmp / "journal").exists()


# -- reconcile's output files: a directory that does not exist is refused before anything -----

@pytest.mark.parametrize("option", ["--metrics-file", "--plan-out"])
def test_an_output_file_in_a_missing_directory_exits_2_before_anything(
        world: CliWorld, option: str) -> None:
    target = world.tmp / "no-such-dir" / "out"
    result = world.invoke("reconcile", "-f", str(world.manifest(DOMAIN)), option, str(target))
    _refused(result, option, str(target.parent))
    _untouched(world)
    assert not (world.tmp / "journal").exists()  # nothing read or written: not even the lock
    assert not target.parent.exists()


@pytest.mark.parametrize("option", ["--metrics-file", "--plan-out"])
def test_an_empty_output_file_name_exits_2_before_anything(world: CliWorld, option: str) -> None:
    result = world.invoke("reconcile", "-f", str(world.manifest(DOMAIN)), option, "")
    _refused(result, option, "not a file name")
    _untouched(world)


def test_metrics_file_under_a_file_exits_2(world: CliWorld) -> None:
    (world.tmp / "blocker").write_text("a file", encoding="utf-8")
    target = world.tmp / "blocker" / "cname_flow.prom"
    result = world.invoke("reconcile", "-f", str(world.manifest(DOMAIN)),
                          "--metrics-file", str(target))
    _refused(result, "--metrics-file", str(target.parent))
    _untouched(world)


def test_metrics_file_in_an_existing_directory_is_written(world: CliWorld) -> None:
    target = world.tmp / "cname_flow.prom"
    result = world.invoke("reconcile", "-f", str(world.manifest(DOMAIN)),
                          "--metrics-file", str(target))
    assert result.exit_code == Outcome.FAILED, result.output  # drift left: not applied
    assert "cnameflow_" in target.read_text(encoding="utf-8")

"""The state's edges through real commands: what a bad job id, a journal location that cannot
be used, or a tampered journal does to a command is a message and an exit code, never a
traceback (issue 13)."""

from __future__ import annotations

import errno
import os
from pathlib import Path
from typing import Any

import pytest
from click.testing import Result

from cname_flow.cli.common import Outcome, outcome_of
from cname_flow.errors import JournalCorrupt
from cname_flow.store import JsonStore
from tests.unit.cli.clikit import BUCKET, CliWorld

DOMAIN = "www.example.com"


def _no_traceback(result: Result) -> None:
    """The command ended through ``sys.exit`` (a message), not an exception escaping it."""
    assert isinstance(result.exception, SystemExit) or result.exception is None, result.exc_info
    assert "Traceback" not in result.output


@pytest.mark.parametrize("command", ["resume", "status"])
def test_a_job_id_too_long_for_a_file_name_exits_2(world: CliWorld, command: str) -> None:
    with JsonStore(world.tmp / "journal", fsync=False) as store, store.open_job("j1"):
        pass  # jobs/ exists: the long name reaches the file system unless refused first
    result = world.invoke("batch", command, "a" * 300)
    _no_traceback(result)
    assert result.exit_code == Outcome.USAGE
    assert "too long" in result.output


# -- a journal location that cannot be used: exit 2, naming journal.dir -----------------------
# Tests run as root in CI, where permission bits stop nothing: a file in the way stands for a
# location that cannot be created, and a failing os.open for a read-only one.

def _journal_dir(world: CliWorld, directory: Path) -> None:
    world.config.write_text(
        f"journal:\n  dir: {directory}\n"
        f"defaults:\n  bucket: {BUCKET}\n  region: cn-hangzhou\n", encoding="utf-8")


def _refused_location(result: Result, where: Path) -> None:
    _no_traceback(result)
    assert result.exit_code == Outcome.USAGE, result.output
    assert "journal.dir" in result.output and str(where) in result.output


def test_a_journal_dir_that_is_a_file_exits_2(world: CliWorld) -> None:
    (world.tmp / "journal").write_text("not a directory", encoding="utf-8")
    _refused_location(world.invoke("bind", DOMAIN), world.tmp / "journal")


def test_a_journal_dir_under_a_file_exits_2_for_bind_and_reconcile(world: CliWorld) -> None:
    (world.tmp / "blocker").write_text("a file", encoding="utf-8")
    _journal_dir(world, world.tmp / "blocker" / "journal")
    _refused_location(world.invoke("bind", DOMAIN), world.tmp / "blocker")
    manifest = str(world.manifest(DOMAIN))
    _refused_location(world.invoke("reconcile", "-f", manifest), world.tmp / "blocker")


def test_a_store_file_that_cannot_be_read_exits_2(world: CliWorld) -> None:
    (world.tmp / "journal" / "bindings.jsonl").mkdir(parents=True)  # a directory in the way
    _refused_location(world.invoke("bind", DOMAIN), world.tmp / "journal")
    _refused_location(world.invoke("status"), world.tmp / "journal")


@pytest.mark.parametrize("code", [errno.EROFS, errno.EACCES])
def test_a_read_only_journal_dir_exits_2(world: CliWorld, monkeypatch: pytest.MonkeyPatch,
                                         code: int) -> None:
    journal = world.tmp / "journal"
    journal.mkdir()
    real_open = os.open

    def read_only(path: Any, flags: int, *args: Any, **kwargs: Any) -> int:
        if str(path).startswith(str(journal)) and flags & (os.O_WRONLY | os.O_RDWR):
            raise OSError(code, os.strerror(code), str(path))
        return real_open(path, flags, *args, **kwargs)

    monkeypatch.setattr(os, "open", read_only)
    _refused_location(world.invoke("bind", DOMAIN), journal)


# -- a tampered journal: refused at read, naming file:line, exit 2 -----------------------------

def test_an_unknown_phase_in_the_store_is_refused_at_read_with_exit_2(world: CliWorld) -> None:
    assert world.invoke("bind", DOMAIN).exit_code == Outcome.OK
    store = world.tmp / "journal" / "bindings.jsonl"
    lines = store.read_text(encoding="utf-8").splitlines(keepends=True)
    lines[-1] = lines[-1].replace('"phase": "BOUND"', '"phase": "WEIRD"')
    store.write_text("".join(lines) + lines[-2], encoding="utf-8")  # tampered, then one more
    for command in (("bind", DOMAIN), ("status",), ("unbind", DOMAIN)):
        result = world.invoke(*command)
        _no_traceback(result)
        assert result.exit_code == Outcome.USAGE, (command, result.output)
        assert f"{store}:{len(lines)}: field 'phase': 'WEIRD' is not a known phase" \
            in result.output
    assert outcome_of(JournalCorrupt("x.jsonl:3: bad")) == Outcome.USAGE  # the table's row

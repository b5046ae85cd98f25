"""A full disk or quota while journaling (ENOSPC / EDQUOT on ``write`` or ``fsync``) is a
temporary error, exit 75: nothing half-written stays, and the same command run again once space
is freed resumes. Other I/O errors stay failures (exit 1). No tmpfs is mounted here: the system
calls are made to fail."""

from __future__ import annotations

import errno
import os
from collections.abc import Callable
from pathlib import Path

import pytest
from click.testing import Result

from cname_flow.cli.common import Outcome, outcome_of
from cname_flow.errors import JournalError
from cname_flow.journal import Journal, JournalEvent
from cname_flow.model import AuxStep, Phase, Step
from cname_flow.store import JsonStore
from tests.unit.cli.clikit import CliWorld

KEY = "media/static.example.com"


def _start(key: str = KEY) -> JournalEvent:
    return JournalEvent(key, AuxStep.START, "done", Phase.PENDING, {"domain": key})


def _failing(code: int) -> Callable[..., None]:
    def fail(*args: object) -> None:
        raise OSError(code, os.strerror(code))
    return fail


def _is_disk_full(exc: JournalError, where: Path) -> None:
    assert exc.retryable and outcome_of(exc) == Outcome.RETRYABLE
    assert "disk full" in str(exc) and str(where) in str(exc)
    assert "re-run" in exc.hint


@pytest.mark.parametrize("code", [errno.ENOSPC, errno.EDQUOT])
@pytest.mark.parametrize("call", ["write", "fsync"])
def test_a_full_disk_under_a_journal_is_retryable(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                  call: str, code: int) -> None:
    path = tmp_path / "job.jsonl"
    with Journal(path) as journal:
        journal.record(_start())
        before = path.read_bytes()
        with monkeypatch.context() as patch:
            patch.setattr(os, call, _failing(code))
            with pytest.raises(JournalError) as caught:
                journal.record(JournalEvent(KEY, Step.CREATE_TOKEN, "running", Phase.PENDING))
        _is_disk_full(caught.value, path)
        assert path.read_bytes() == before  # nothing half-written kept
        journal.record(JournalEvent(KEY, Step.CREATE_TOKEN, "running", Phase.PENDING))
    assert Journal.read_only(path).get(KEY).last_step == Step.CREATE_TOKEN  # type: ignore[union-attr]


@pytest.mark.parametrize("call", ["write", "fsync"])
def test_a_full_disk_under_the_store_is_retryable(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                  call: str) -> None:
    with JsonStore(tmp_path) as store:
        store.record(_start())
        with monkeypatch.context() as patch:
            patch.setattr(os, call, _failing(errno.ENOSPC))
            with pytest.raises(JournalError) as caught:
                store.record(JournalEvent(KEY, Step.CREATE_TOKEN, "running", Phase.PENDING))
        _is_disk_full(caught.value, tmp_path / "bindings.jsonl")
        store.record(JournalEvent(KEY, Step.CREATE_TOKEN, "done", Phase.TOKEN_READY))
    with JsonStore(tmp_path) as store:
        assert store.get(KEY).phase == Phase.TOKEN_READY  # type: ignore[union-attr]


def test_a_full_disk_when_the_store_is_created_is_retryable(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(os, "fsync", _failing(errno.ENOSPC))
    with pytest.raises(JournalError) as caught:
        JsonStore(tmp_path).open()
    _is_disk_full(caught.value, tmp_path / "bindings.jsonl")


def test_another_io_error_stays_a_failure(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with JsonStore(tmp_path) as store:
        monkeypatch.setattr(os, "write", _failing(errno.EIO))
        with pytest.raises(JournalError) as caught:
            store.record(_start())
    assert not caught.value.retryable and outcome_of(caught.value) == Outcome.FAILED
    assert "disk full" not in str(caught.value)


def test_bind_on_a_full_disk_exits_75_and_the_rerun_resumes(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    world = CliWorld(tmp_path)
    with monkeypatch.context() as patch:
        patch.setattr(os, "fsync", _failing(errno.ENOSPC))
        full: Result = world.invoke("bind", "www.example.com")
    assert isinstance(full.exception, SystemExit), full.exc_info
    assert full.exit_code == Outcome.RETRYABLE, full.output
    assert "disk full" in full.output and str(tmp_path / "journal") in full.output
    again = world.invoke("bind", "www.example.com")
    assert again.exit_code == Outcome.OK, again.output

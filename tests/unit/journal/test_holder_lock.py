"""The holder-naming lock (a journal's, and the reconcile run lock): its files are 0600 whatever
the umask, and the side file naming the holder goes with the holder, only when still its own."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest

from cname_flow.journal.files import HolderLock
from cname_flow.reconcile.run import LOCK_NAME, run_lock

FOREIGN = json.dumps({"pid": 1, "host": "elsewhere", "since": "2025-01-01T00:00:00.000000Z"})


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.mark.usefixtures("open_umask")
def test_the_run_lock_files_are_0600_and_the_holder_goes_after_the_run(tmp_path: Path) -> None:
    holder = tmp_path / "state" / "reconcile.holder"
    with run_lock(tmp_path / "state") as lock:
        assert lock == tmp_path / "state" / LOCK_NAME
        assert _mode(lock) == 0o600 and _mode(holder) == 0o600
        assert json.loads(holder.read_text())["pid"] == os.getpid()
        assert _mode(tmp_path / "state") == 0o700
    assert not holder.exists()


def test_a_holder_file_that_is_no_longer_ours_is_left(tmp_path: Path) -> None:
    holder = tmp_path / "reconcile.holder"
    with run_lock(tmp_path):
        holder.write_text(FOREIGN)  # another process named itself (the lock file was removed)
    assert holder.read_text() == FOREIGN


def test_a_journal_lock_removes_only_its_own_holder(tmp_path: Path) -> None:
    journal = tmp_path / "job.jsonl"
    holder = tmp_path / "job.jsonl.holder"
    lock = HolderLock.for_journal(journal)
    with lock:
        assert holder.exists()
    assert not holder.exists()
    with lock:
        holder.unlink()  # removed by hand while held: releasing is still fine
    with lock:
        holder.write_text(FOREIGN)
    assert holder.read_text() == FOREIGN
    with lock:  # a stale side file is overwritten by the next holder, then removed
        pass
    assert not holder.exists()

"""Job ids become file names (``jobs/<id>.jsonl`` and its ``.lock``, ``.holder`` and temp files):
an id whose names could not exist is refused as bad input (exit 2), never an ``OSError``."""

from __future__ import annotations

from pathlib import Path

import pytest

from cname_flow.cli.common import Outcome, outcome_of
from cname_flow.errors import InputError
from cname_flow.store import JsonStore
from cname_flow.store.jobs import MAX_JOB_ID_BYTES, job_file

NAME_MAX = 255  # bytes of one path component on Linux file systems


def test_the_longest_accepted_id_leaves_room_for_every_file_derived_from_it() -> None:
    # the longest derived name: a temp file of replace_file, ".<id>.jsonl.<8 chars>.tmp"
    assert len(f".{'j' * MAX_JOB_ID_BYTES}.jsonl.abcdefgh.tmp") <= NAME_MAX


@pytest.mark.parametrize("job_id", ["a" * (MAX_JOB_ID_BYTES + 1), "a" * 300, "é" * 150])
def test_an_id_too_long_for_a_file_name_is_bad_input(tmp_path: Path, job_id: str) -> None:
    with pytest.raises(InputError, match="too long") as caught:
        job_file(tmp_path, job_id)
    assert outcome_of(caught.value) == Outcome.USAGE
    assert job_id not in str(caught.value)  # the message shows a prefix, not 300 bytes


def test_the_longest_id_is_a_working_job(tmp_path: Path) -> None:
    job_id = "j" * MAX_JOB_ID_BYTES
    with JsonStore(tmp_path, fsync=False) as store:
        with store.open_job(job_id) as job:
            job.set_meta(manifest="m.yaml")
        state = store.job(job_id)
    assert state is not None and state.meta == {"manifest": "m.yaml"}


def test_a_long_id_is_refused_by_the_store_once_jobs_exist(tmp_path: Path) -> None:
    with JsonStore(tmp_path, fsync=False) as store:
        with store.open_job("j1"):
            pass
        with pytest.raises(InputError):
            store.job("a" * 300)
        with pytest.raises(InputError):
            store.open_job("a" * 300)

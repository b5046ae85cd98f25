"""Folding format-1 journals (``bindings.jsonl`` and ``jobs/*.jsonl`` of the previous version)
into the store: nothing lost, idempotent, crash-safe."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from cname_flow.errors import JournalError
from cname_flow.journal import Journal
from cname_flow.journal.files import HolderLock
from cname_flow.model import Phase
from cname_flow.store import JsonStore, legacy

V1_BINDINGS = Path(__file__).resolve().parents[1] / "journal" / "journal_v1.jsonl"
HEADER_V1 = {"journal": "cname-flow", "version": 1, "created_at": "2025-01-01T00:00:00.000000Z"}


def line(**fields: object) -> str:
    return json.dumps(fields) + "\n"


def v1_job(path: Path, *, newer_www: bool = False) -> None:
    """A job journal as version 1 wrote it: meta plus the full state of its bindings."""
    path.parent.mkdir(parents=True, exist_ok=True)
    www_ts = "2025-02-01T00:00:00.000000Z" if newer_www else "2024-12-01T00:00:00.000000Z"
    path.write_text(
        line(**HEADER_V1)
        + line(ts="2025-01-01T00:00:00Z", meta={"manifest": "/srv/m.yaml", "concurrency": 8})
        + line(ts="2025-01-01T00:00:01Z", key="examplebucket/j1.example.com", step="start",
               status="done", phase="PENDING", outputs={"domain": "j1.example.com"})
        + line(ts="2025-01-01T00:00:02Z", key="examplebucket/j1.example.com", step="finish",
               status="done", phase="BOUND", outputs={"put_request_id": "RID-J1",
                                                     "txt_record_id": "7"})
        + line(ts=www_ts, key="examplebucket/www.example.com", step="finish", status="done",
               phase="FAILED", outputs={"token": "tok-job"})
        + '{"ts": "2025-01-01T00:00:03Z", "key": "examplebucket/j2.exam'  # torn tail
    )


def old_layout(directory: Path, *, newer_www: bool = False) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    shutil.copy(V1_BINDINGS, directory / "bindings.jsonl")
    job = directory / "jobs" / "20250101-000000-abcd.jsonl"
    v1_job(job, newer_www=newer_www)
    return job


def test_the_previous_layout_is_folded_in_on_first_use(tmp_path: Path) -> None:
    before = Journal.read_only(V1_BINDINGS).bindings()
    job = old_layout(tmp_path)
    with JsonStore(tmp_path) as store:
        records = store.bindings()
        state = store.job(job.stem)
    header = json.loads((tmp_path / "bindings.jsonl").read_text().splitlines()[0])
    assert header["version"] == 2 and header["created_at"] == HEADER_V1["created_at"]
    for key, record in before.items():  # every one-shot binding, unchanged
        assert records[key].phase == record.phase and records[key].outputs == record.outputs
        assert records[key].attempts == record.attempts
    j1 = records["examplebucket/j1.example.com"]  # and the job's bindings
    assert j1.phase == Phase.BOUND and j1.put_request_id == "RID-J1"
    assert records["examplebucket/www.example.com"].token == "tok-2"  # the newer one wins
    assert state is not None and state.meta["manifest"] == "/srv/m.yaml"
    assert state.members == ("examplebucket/j1.example.com", "examplebucket/www.example.com")
    job_lines = [json.loads(x) for x in job.read_text().splitlines()]
    assert job_lines[0]["version"] == 2 and not any("key" in x for x in job_lines)


def test_history_of_the_one_shot_journal_is_kept(tmp_path: Path) -> None:
    old_layout(tmp_path)
    with JsonStore(tmp_path) as store:
        steps = [e.step for e in store.events("examplebucket/www.example.com")]
    assert steps == [e.step for e in Journal.read_only(V1_BINDINGS).events(
        "examplebucket/www.example.com")]


def test_a_newer_job_record_replaces_the_store_record_whole(tmp_path: Path) -> None:
    old_layout(tmp_path, newer_www=True)
    with JsonStore(tmp_path) as store:
        www = store.get("examplebucket/www.example.com")
    assert www is not None and www.phase == Phase.FAILED and www.token == "tok-job"
    assert www.put_request_id is None  # nothing of the older record survives


def test_folding_twice_changes_nothing(tmp_path: Path) -> None:
    old_layout(tmp_path)
    with JsonStore(tmp_path):
        pass
    text = (tmp_path / "bindings.jsonl").read_bytes()
    jobs = {p: p.read_bytes() for p in (tmp_path / "jobs").iterdir()}
    with JsonStore(tmp_path):
        pass
    assert (tmp_path / "bindings.jsonl").read_bytes() == text
    assert {p: p.read_bytes() for p in (tmp_path / "jobs").iterdir()} == jobs


def test_a_crash_between_the_store_append_and_the_job_rewrite_is_finished_later(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    job = old_layout(tmp_path)
    real = legacy.replace_file  # type: ignore[attr-defined]

    def crash(path: Path, data: bytes, *, durable: bool) -> None:
        if path == job:
            raise OSError("killed")
        real(path, data, durable=durable)

    monkeypatch.setattr(legacy, "replace_file", crash)
    with pytest.raises(JournalError, match="killed"):  # the OSError, reported (exit 1)
        JsonStore(tmp_path).open()
    assert json.loads(job.read_text().splitlines()[0])["version"] == 1  # old layout readable
    size = (tmp_path / "bindings.jsonl").stat().st_size
    monkeypatch.setattr(legacy, "replace_file", real)
    with JsonStore(tmp_path) as store:
        assert store.get("examplebucket/j1.example.com") is not None
    assert (tmp_path / "bindings.jsonl").stat().st_size == size  # nothing appended twice
    assert json.loads(job.read_text().splitlines()[0])["version"] == 2


def test_a_crash_while_upgrading_the_store_file_leaves_the_old_one(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    old_layout(tmp_path)
    original = (tmp_path / "bindings.jsonl").read_bytes()

    def crash(path: Path, data: bytes, *, durable: bool) -> None:
        raise OSError("killed")

    monkeypatch.setattr(legacy, "replace_file", crash)
    with pytest.raises(JournalError, match="killed"):
        JsonStore(tmp_path).open()
    assert (tmp_path / "bindings.jsonl").read_bytes() == original
    assert not list(tmp_path.glob(".bindings.jsonl.*.tmp"))


def test_a_job_still_driven_by_the_previous_version_is_left_for_later(tmp_path: Path) -> None:
    job = old_layout(tmp_path)
    with HolderLock.for_journal(job), JsonStore(tmp_path) as store:
        assert store.get("examplebucket/j1.example.com") is None
    assert json.loads(job.read_text().splitlines()[0])["version"] == 1
    with JsonStore(tmp_path) as store:  # its process is gone: folded now
        assert store.get("examplebucket/j1.example.com") is not None

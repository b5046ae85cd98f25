"""The journal: replay, torn tails, corruption, locking, group commit, compaction, secrets."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import textwrap
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import cast

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cname_flow.cli.common import Outcome, outcome_of
from cname_flow.errors import JournalCorrupt, JournalError, Locked
from cname_flow.journal import BindingOutputs, BindingRecord, ErrorInfo, Journal, JournalEvent
from cname_flow.journal.reader import read_events
from cname_flow.model import Phase, Step

KEY = "media/static.example.com"
T0 = datetime(2025, 1, 1, tzinfo=UTC)


def event(step: str, status: str, phase: str, key: str = KEY, **outputs: object) -> JournalEvent:
    return JournalEvent(key=key, step=step, status=status, phase=phase, outputs=outputs)  # type: ignore[arg-type]


def lines(path: Path) -> list[dict[str, object]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


@pytest.fixture
def path(tmp_path: Path) -> Path:
    return tmp_path / "state" / "job.jsonl"


@pytest.fixture
def fsyncs(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[int]]:
    calls: list[int] = []
    real = os.fsync

    def counting(fd: int) -> None:
        calls.append(fd)
        real(fd)

    monkeypatch.setattr(os, "fsync", counting)
    yield calls


def flow(journal: Journal) -> None:
    journal.record(event(Step.CREATE_TOKEN, "running", Phase.PENDING))
    journal.record(
        event(
            Step.CREATE_TOKEN,
            "done",
            Phase.TOKEN_READY,
            token="tok-1",
            token_expires_at="2025-01-04T00:00:00Z",
        )
    )
    journal.record(event(Step.WRITE_TXT, "running", Phase.TOKEN_READY))
    failure = ErrorInfo("Throttling.User", "slow down", retryable=True, request_id="RID-1")
    journal.record(JournalEvent(KEY, Step.WRITE_TXT, "failed", Phase.TOKEN_READY, error=failure))
    journal.record(
        event("backoff", "done", Phase.TOKEN_READY, next_attempt_at="2025-01-01T00:01:00Z")
    )
    journal.record(event(Step.WRITE_TXT, "failed", Phase.TOKEN_READY))


# --- replay -----------------------------------------------------------------------------------


def test_replay_rebuilds_each_binding(path: Path) -> None:
    with Journal(path) as journal:
        flow(journal)
        journal.record(
            event(Step.CREATE_TOKEN, "running", Phase.PENDING, key="media/b.example.com")
        )
        live = dict(journal.bindings())

    replayed = Journal.read_only(path).bindings()
    assert replayed == live
    record = replayed[KEY]
    assert (record.bucket, record.domain) == ("media", "static.example.com")
    assert record.phase == Phase.TOKEN_READY
    assert record.token == "tok-1"
    assert record.token_expires_at == datetime(2025, 1, 4, tzinfo=UTC)
    assert record.next_attempt_at == datetime(2025, 1, 1, 0, 1, tzinfo=UTC)
    assert (record.last_step, record.last_status) == (Step.WRITE_TXT, "failed")
    # the backoff 'done' is not a step: it does not reset the count of failures
    assert record.attempts == 2
    assert record.last_error == ErrorInfo("Throttling.User", "slow down", True, "RID-1")
    assert record.started_at <= record.updated_at
    assert list(replayed) == [KEY, "media/b.example.com"]


def test_done_step_resets_attempts_and_error_and_none_deletes_outputs(path: Path) -> None:
    with Journal(path) as journal:
        flow(journal)
        record = journal.record(
            event(
                Step.WRITE_TXT, "done", Phase.TXT_WRITTEN, next_attempt_at=None, txt_record_id="r-9"
            )
        )
    assert record.attempts == 0
    assert record.last_error is None
    assert "next_attempt_at" not in record.outputs
    assert record.txt_record_id == "r-9"
    assert Journal.read_only(path).get(KEY) == record


def test_events_streams_history_by_key(path: Path) -> None:
    with Journal(path) as journal:
        flow(journal)
        journal.record(
            event(Step.CREATE_TOKEN, "running", Phase.PENDING, key="other/x.example.com")
        )
        mine = list(journal.events(KEY))
        every = list(journal.events())
    assert [e.status for e in mine] == ["running", "done", "running", "failed", "done", "failed"]
    assert mine[3].error is not None and mine[3].error.request_id == "RID-1"
    assert len(every) == 7 and every[-1].key == "other/x.example.com"


def test_file_is_json_lines_with_header_and_utc_timestamps(path: Path) -> None:
    with Journal(path) as journal:
        journal.record(JournalEvent(KEY, Step.CREATE_TOKEN, "running", Phase.PENDING, ts=T0))
    header, first = lines(path)
    assert header["journal"] == "cname-flow" and header["version"] == 2  # the shared store's
    assert first == {
        "ts": "2025-01-01T00:00:00.000000Z",
        "key": KEY,
        "step": "create_token",
        "status": "running",
        "phase": "PENDING",
    }


def test_meta_is_merged_and_replayed(path: Path) -> None:
    with Journal(path) as journal:
        journal.set_meta(job="nightly", bindings=3)
        journal.set_meta(bindings=None, manifest="m.yaml")
        assert dict(journal.meta) == {"job": "nightly", "manifest": "m.yaml"}
    assert dict(Journal.read_only(path).meta) == {"job": "nightly", "manifest": "m.yaml"}
    assert list(Journal.read_only(path).events()) == []


# --- torn tails and corruption ----------------------------------------------------------------


@pytest.mark.parametrize("tail", [b'{"ts": "2025-01-01T00:0', b"\x00\x00\x00\x00", b'{"broken\n'])
def test_torn_last_line_is_dropped_and_truncated_before_next_append(
    path: Path, tail: bytes
) -> None:
    with Journal(path) as journal:
        flow(journal)
        before = dict(journal.bindings())
    with path.open("ab") as handle:
        handle.write(tail)

    assert Journal.read_only(path).bindings() == before  # read-only load drops it too
    with Journal(path) as journal:
        assert dict(journal.bindings()) == before
        journal.record(event(Step.WRITE_TXT, "done", Phase.TXT_WRITTEN))

    assert tail not in path.read_bytes()
    assert len(lines(path)) == 1 + 6 + 1  # every line is valid JSON again
    assert Journal.read_only(path).get(KEY).phase == Phase.TXT_WRITTEN  # type: ignore[union-attr]


def test_torn_header_alone_starts_a_fresh_journal(path: Path) -> None:
    path.parent.mkdir(parents=True)
    path.write_bytes(b'{"journal": "cname-fl')
    with Journal(path) as journal:
        assert journal.bindings() == {}
        journal.record(event(Step.CREATE_TOKEN, "running", Phase.PENDING))
    assert [line.get("journal") for line in lines(path)] == ["cname-flow", None]


def test_invalid_json_in_the_middle_names_the_line(path: Path) -> None:
    with Journal(path) as journal:
        flow(journal)
    content = path.read_text().splitlines(keepends=True)
    content[2] = '{"ts": oops\n'
    path.write_text("".join(content))
    with pytest.raises(JournalCorrupt, match=r"job\.jsonl:3: invalid JSON"):
        Journal(path).open()
    with pytest.raises(JournalCorrupt, match=r":3:"):
        Journal.read_only(path)


def test_header_must_be_the_first_line(path: Path) -> None:
    with Journal(path) as journal:
        flow(journal)
    path.write_text("\n" + path.read_text())
    with pytest.raises(JournalCorrupt, match=r":2: the header must be line 1"):
        Journal.read_only(path)
    with pytest.raises(JournalCorrupt, match=r":2: the header must be line 1"):
        list(read_events(path))


def test_valid_json_with_bad_fields_names_the_line(path: Path) -> None:
    with Journal(path) as journal:
        flow(journal)
    with path.open("a") as handle:
        handle.write(json.dumps({"ts": "2025-01-01T00:00:00Z", "key": KEY, "step": "x"}) + "\n")
    with pytest.raises(JournalCorrupt, match=r":8: field 'status' must be a string"):
        Journal.read_only(path)


@pytest.mark.parametrize(
    ("header", "message"),
    [
        (
            {"journal": "cname-flow", "version": 3, "created_at": "2025-01-01T00:00:00Z"},
            "version 3",
        ),
        ({"journal": "other-tool", "version": 1}, "not a cname-flow journal header"),
    ],
)
def test_unknown_version_or_foreign_file_is_refused(
    path: Path, header: dict[str, object], message: str
) -> None:
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps(header) + "\n")
    with pytest.raises(JournalCorrupt, match=message):
        Journal(path).open()
    assert json.loads(path.read_text()) == header  # left untouched


# --- locking ----------------------------------------------------------------------------------

HOLDER = textwrap.dedent(
    """
    import sys
    from pathlib import Path
    from cname_flow.journal import Journal
    with Journal(Path(sys.argv[1])):
        print("ready", flush=True)
        sys.stdin.readline()
    """
)


def test_second_process_gets_locked_naming_the_holder(path: Path) -> None:
    child = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(path)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert child.stdout is not None and child.stdout.readline().strip() == "ready"
        with pytest.raises(Locked) as caught:
            Journal(path).open()
        assert f"pid {child.pid} on host " in caught.value.holder
        assert f"is in use by pid {child.pid}" in str(caught.value)
        assert Journal.read_only(path).bindings() == {}  # status still works
    finally:
        child.communicate("\n", timeout=30)
    assert child.returncode == 0
    with Journal(path) as journal:  # released: usable again
        journal.record(event(Step.CREATE_TOKEN, "running", Phase.PENDING))


def test_same_process_second_journal_object_is_refused_too(path: Path) -> None:
    with Journal(path), pytest.raises(Locked, match=f"pid {os.getpid()}"):
        Journal(path).open()


def test_journal_lock_refusal_is_locked_retryable_and_exits_75(path: Path) -> None:
    with Journal(path), pytest.raises(Locked) as caught:
        Journal(path).open()
    assert caught.value.retryable and caught.value.code == "Locked"
    assert outcome_of(caught.value) is Outcome.RETRYABLE
    assert f"journal {path} is in use by pid {os.getpid()} on host " in str(caught.value)


def test_using_a_closed_journal_is_an_error(path: Path) -> None:
    journal = Journal(path)
    with pytest.raises(JournalError, match="not open"):
        journal.record(event(Step.CREATE_TOKEN, "running", Phase.PENDING))
    with journal, pytest.raises(JournalError, match="already open"):
        journal.open()


# --- durability -------------------------------------------------------------------------------


def test_each_record_is_fsynced_before_it_returns(path: Path, fsyncs: list[int]) -> None:
    with Journal(path) as journal:
        fsyncs.clear()
        flow(journal)
        assert len(fsyncs) == 6


def test_group_commit_fsyncs_once(path: Path, fsyncs: list[int]) -> None:
    keys = [f"media/d{i}.example.com" for i in range(50)]
    with Journal(path) as journal:
        fsyncs.clear()
        with journal.group():
            for key in keys:
                record = journal.record(event(Step.CREATE_TOKEN, "running", Phase.PENDING, key=key))
                assert record.phase == Phase.PENDING  # state is visible at once
            with journal.group():  # nested blocks flush with the outermost
                journal.set_meta(batch=1)
            assert fsyncs == [] and len(lines(path)) == 1
        assert len(fsyncs) == 1
        assert len(lines(path)) == 1 + 51

        fsyncs.clear()
        journal.record_many(
            [event(Step.CREATE_TOKEN, "done", Phase.TOKEN_READY, key=k) for k in keys]
        )
        assert len(fsyncs) == 1
    assert all(r.phase == Phase.TOKEN_READY for r in Journal.read_only(path).bindings().values())


def test_group_flushes_when_the_block_raises(path: Path) -> None:
    with Journal(path) as journal:
        with pytest.raises(RuntimeError), journal.group():
            journal.record(event(Step.CREATE_TOKEN, "running", Phase.PENDING))
            raise RuntimeError("boom")
        assert len(lines(path)) == 2


def test_failed_fsync_records_nothing_and_leaves_a_valid_file(
    path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with Journal(path) as journal:
        flow(journal)
        before = dict(journal.bindings())

        def failing(fd: int) -> None:
            raise OSError(5, "Input/output error")

        monkeypatch.setattr(os, "fsync", failing)
        with pytest.raises(JournalError, match="Input/output error"):
            journal.record(event(Step.WRITE_TXT, "done", Phase.TXT_WRITTEN))
        with pytest.raises(JournalError), journal.group():
            journal.record(event(Step.WRITE_TXT, "done", Phase.TXT_WRITTEN))
        assert dict(journal.bindings()) == before  # the failed group was forgotten
        monkeypatch.undo()
        journal.record(event(Step.WRITE_TXT, "done", Phase.TXT_WRITTEN))
    assert len(lines(path)) == 1 + 6 + 1
    assert Journal.read_only(path).get(KEY).phase == Phase.TXT_WRITTEN  # type: ignore[union-attr]


# --- compaction -------------------------------------------------------------------------------


def test_compaction_keeps_state_and_leaves_one_line_per_binding(
    path: Path, fsyncs: list[int]
) -> None:
    with Journal(path) as journal:
        flow(journal)
        journal.record(
            event(Step.CREATE_TOKEN, "running", Phase.PENDING, key="media/b.example.com")
        )
        journal.set_meta(job="nightly")
        before = dict(journal.bindings())
        fsyncs.clear()
        journal.compact()
        assert len(fsyncs) == 2  # the temp file, then the directory after the rename
        assert dict(journal.bindings()) == before
        journal.record(event(Step.WRITE_TXT, "done", Phase.TXT_WRITTEN))  # appends still work
    header, meta, *events = lines(path)
    assert "compacted_at" in header and meta["meta"] == {"job": "nightly"}
    assert [e["key"] for e in events] == [KEY, "media/b.example.com", KEY]
    reloaded = Journal.read_only(path)
    assert reloaded.get("media/b.example.com") == before["media/b.example.com"]
    record = reloaded.get(KEY)
    assert record is not None and record.phase == Phase.TXT_WRITTEN
    assert record.started_at == before[KEY].started_at
    assert not [p for p in path.parent.iterdir() if p.name.endswith(".tmp")]


def test_compaction_keeps_attempts_and_error(path: Path) -> None:
    with Journal(path) as journal:
        flow(journal)
        before = journal.get(KEY)
        journal.compact()
    after = Journal.read_only(path).get(KEY)
    assert after == before
    assert after is not None and after.attempts == 2 and after.last_error is not None


def test_crash_during_compaction_keeps_the_old_file_and_cleans_up(
    path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with Journal(path) as journal:
        flow(journal)
        before = dict(journal.bindings())

        def crash(src: str, dst: str) -> None:
            raise KeyboardInterrupt  # dies between the temp file and the rename

        monkeypatch.setattr(os, "replace", crash)
        with pytest.raises(KeyboardInterrupt):
            journal.compact()
        monkeypatch.undo()
    leftover = path.parent / f".{path.name}.crash.tmp"
    leftover.write_text("half a compaction")  # as a power cut would leave it
    with Journal(path) as journal:
        assert dict(journal.bindings()) == before
    assert not leftover.exists()
    assert len(lines(path)) == 1 + 6


def test_compaction_inside_a_group_is_refused(path: Path) -> None:
    with Journal(path) as journal, journal.group(), pytest.raises(JournalError):
        journal.compact()


# --- files, modes, secrets --------------------------------------------------------------------


def test_files_are_0600_and_new_directory_0700(path: Path) -> None:
    old = os.umask(0)  # prove the modes do not depend on the caller's umask
    try:
        with Journal(path) as journal:
            journal.record(event(Step.CREATE_TOKEN, "running", Phase.PENDING))
            assert (path.parent / "job.jsonl.holder").stat().st_mode & 0o777 == 0o600
            journal.compact()
    finally:
        os.umask(old)
    assert path.stat().st_mode & 0o777 == 0o600
    assert (path.parent / "job.jsonl.lock").stat().st_mode & 0o777 == 0o600
    assert path.parent.stat().st_mode & 0o777 == 0o700
    assert not (path.parent / "job.jsonl.holder").exists()  # removed on release


SENTINEL = "SENTINEL-s3cr3t-7f1d"
PEM = f"-----BEGIN PRIVATE KEY-----\n{SENTINEL}\n-----END PRIVATE KEY-----\n"


@pytest.mark.parametrize(
    "outputs",
    [
        {"access_key_secret": SENTINEL},
        {"AccessKeySecret": SENTINEL},
        {"private_key": SENTINEL},
        {"PrivateKey": SENTINEL},
        {"security_token": SENTINEL},
        {"password": SENTINEL},
        {"certificate": PEM},
    ],
)
def test_secret_guard_refuses_and_writes_nothing(path: Path, outputs: dict[str, str]) -> None:
    with Journal(path) as journal:
        with pytest.raises(ValueError, match="never written") as caught:
            journal.record(JournalEvent(KEY, Step.PUT_CNAME, "done", Phase.CNAME_PUT,
                                        cast(BindingOutputs, outputs)))
        assert SENTINEL not in str(caught.value)
        with pytest.raises(ValueError):
            journal.set_meta(**outputs)
        with pytest.raises(ValueError):
            journal.record_many(
                [
                    event(Step.CREATE_TOKEN, "running", Phase.PENDING),
                    JournalEvent(KEY, Step.PUT_CNAME, "done", Phase.CNAME_PUT,
                                 cast(BindingOutputs, outputs)),
                ]
            )
        assert journal.get(KEY) is None
    assert SENTINEL not in path.read_text()
    assert len(lines(path)) == 1


def test_pem_in_an_error_message_is_refused(path: Path) -> None:
    failure = ErrorInfo("InvalidCertificate", f"bad cert {PEM}", retryable=False)
    with Journal(path) as journal, pytest.raises(ValueError, match="PEM"):
        journal.record(JournalEvent(KEY, Step.PUT_CNAME, "failed", Phase.FAILED, error=failure))
    assert SENTINEL not in path.read_text()


@pytest.mark.parametrize(
    "bad",
    [
        JournalEvent("no-slash", Step.CREATE_TOKEN, "running", Phase.PENDING),
        JournalEvent(KEY, Step.CREATE_TOKEN, "paused", Phase.PENDING),  # type: ignore[arg-type]
        JournalEvent(KEY, Step.CREATE_TOKEN, "running", Phase.PENDING, ts=datetime(2025, 1, 1)),
        JournalEvent(KEY, Step.CREATE_TOKEN, "done", Phase.PENDING,
                     cast(BindingOutputs, {"n": float("nan")})),
        JournalEvent(KEY, Step.CREATE_TOKEN, "done", Phase.PENDING,
                     cast(BindingOutputs, {"at": T0})),
    ],
)
def test_malformed_events_are_programming_errors(path: Path, bad: JournalEvent) -> None:
    with Journal(path) as journal, pytest.raises(ValueError):
        journal.record(bad)


def test_read_only_of_a_missing_journal_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(JournalError, match="no journal at"):
        Journal.read_only(tmp_path / "missing.jsonl")


# --- scale and properties ---------------------------------------------------------------------


def test_100k_events_load_and_replay(path: Path) -> None:
    keys = [f"media/d{i}.example.com" for i in range(10_000)]
    steps = [(Step.CREATE_TOKEN, Phase.PENDING), (Step.CREATE_TOKEN, Phase.TOKEN_READY)] * 5
    with Journal(path, fsync=False) as journal:
        for n, (step, phase) in enumerate(steps):
            status = "running" if n % 2 == 0 else "done"
            journal.record_many([event(step, status, phase, key=k, n=n) for k in keys])
    assert len(path.read_bytes().splitlines()) == 100_001
    with Journal(path, fsync=False) as journal:
        bindings = journal.bindings()
        assert len(bindings) == 10_000
        assert all(r.phase == Phase.TOKEN_READY and r.get("n") == 9 for r in bindings.values())
        record = journal.record(event(Step.WRITE_TXT, "running", Phase.TOKEN_READY, key=keys[-1]))
        assert record.get("n") == 9


statuses = st.sampled_from(["running", "done", "failed"])
steps_st = st.sampled_from([*(s.value for s in Step), "backoff"])
values = st.one_of(st.none(), st.text(max_size=8), st.integers(), st.booleans())
events_st = st.lists(
    st.builds(
        lambda k, step, status, phase, outs, sec: JournalEvent(
            f"b/d{k}.example.com", step, status, phase, outs, ts=T0 + timedelta(seconds=sec)
        ),
        st.integers(0, 3),
        steps_st,
        statuses,
        st.sampled_from([p.value for p in Phase]),
        st.dictionaries(st.sampled_from(["token", "txt_record_id", "n"]), values, max_size=3),
        st.integers(0, 10**6),
    ),
    max_size=30,
)


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(events=events_st)
def test_replay_and_compaction_reproduce_live_state(
    tmp_path: Path, events: list[JournalEvent]
) -> None:
    path = Path(tempfile.mkdtemp(dir=tmp_path)) / "job.jsonl"
    with Journal(path, fsync=False) as journal:
        live: dict[str, BindingRecord] = {}
        for item in events:
            live[item.key] = journal.record(item)
        assert dict(journal.bindings()) == live
        assert dict(Journal.read_only(path).bindings()) == live
        journal.compact()
        assert dict(Journal.read_only(path).bindings()) == live

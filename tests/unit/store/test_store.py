"""The JSON store: many writers on one file, catch-up by offset, torn tails, per-binding locks,
forget and prune. Writers are real processes where the point is sharing between processes."""

from __future__ import annotations

import itertools
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from cname_flow.cli.common import Outcome, outcome_of
from cname_flow.errors import Locked
from cname_flow.journal import BindingOutputs, Journal, JournalEvent
from cname_flow.journal.files import HolderLock
from cname_flow.model import AuxStep, Phase, Step
from cname_flow.store import BindingStore, JsonStore, prunable
from cname_flow.store.locks import command_of, offset_of

ROOT = Path(__file__).resolve().parents[3]

WRITER = textwrap.dedent(
    """
    import sys
    from pathlib import Path
    from cname_flow.journal import JournalEvent
    from cname_flow.model import Phase, Step
    from cname_flow.store import JsonStore
    directory, key, count = Path(sys.argv[1]), sys.argv[2], int(sys.argv[3])
    with JsonStore(directory, fsync=False) as store:
        print("ready", flush=True)
        sys.stdin.readline()
        for n in range(count):
            store.record(JournalEvent(key, Step.CREATE_TOKEN, "done", Phase.TOKEN_READY,
                                      {"nameserver_addresses": n}))
    """
)

HOLDER = textwrap.dedent(
    """
    import sys, time
    from pathlib import Path
    from cname_flow.journal import JournalEvent
    from cname_flow.model import AuxStep, Phase
    from cname_flow.store import JsonStore
    directory, key, hold_s = Path(sys.argv[1]), sys.argv[2], float(sys.argv[3])
    with JsonStore(directory) as store, store.lock(key):
        print("ready", flush=True)
        time.sleep(hold_s)
        store.record(JournalEvent(key, AuxStep.START, "done", Phase.PENDING, {"zone": "held"}))
    """
)


def event(key: str, step: str = AuxStep.START, phase: Phase = Phase.PENDING,
          **outputs: object) -> JournalEvent:
    return JournalEvent(key, step, "done", phase, outputs)  # type: ignore[arg-type]


def spawn(script: str, *args: str) -> subprocess.Popen[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen([sys.executable, "-c", script, *args], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, text=True, env=env)
    assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
    return proc


@pytest.fixture
def store(tmp_path: Path) -> Iterator[JsonStore]:
    with JsonStore(tmp_path, fsync=False, lock_wait_s=0.2) as opened:
        yield opened


def test_the_json_store_implements_the_port(tmp_path: Path) -> None:
    port: BindingStore = JsonStore(tmp_path)  # mypy checks the Protocol; this checks it runs
    assert port.location == str(tmp_path / "bindings.jsonl")


# --- many writers ---------------------------------------------------------------------------


def test_processes_appending_at_once_interleave_and_lose_nothing(tmp_path: Path) -> None:
    keys = [f"bk/w{i}.example.com" for i in range(4)]
    writers = [spawn(WRITER, str(tmp_path), key, "300") for key in keys]
    for proc in writers:  # all open at once (shared lock), then all go
        assert proc.stdin is not None
        proc.stdin.write("go\n")
        proc.stdin.flush()
    for proc in writers:
        assert proc.wait(60) == 0
    order = [json.loads(line).get("key") for line in (tmp_path / "bindings.jsonl").open()][1:]
    assert sorted(set(order)) == keys and len(order) == 4 * 300
    switches = sum(1 for a, b in itertools.pairwise(order) if a != b)
    assert switches > 3  # the writers' lines interleave, each line whole
    with JsonStore(tmp_path) as store:
        for key in keys:
            seen = [e.outputs.get("nameserver_addresses") for e in store.events(key)]
            assert seen == list(range(300))  # each writer's events, complete and in order


def test_catch_up_reads_only_what_others_appended(tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    with JsonStore(tmp_path, fsync=False) as reader, JsonStore(tmp_path, fsync=False) as writer:
        for n in range(2000):  # a big file
            writer.record(event(f"bk/d{n}.example.com"))
        reader.refresh()
        before = (tmp_path / "bindings.jsonl").stat().st_size
        writer.record(event("bk/new.example.com", zone="example.com"))
        added = (tmp_path / "bindings.jsonl").stat().st_size - before
        reads: list[int] = []
        real = os.pread

        def counting(fd: int, n: int, at: int) -> bytes:
            reads.append(n)
            return real(fd, n, at)

        monkeypatch.setattr(os, "pread", counting)
        reader.refresh()
        assert reads == [added]  # the new bytes only, not the file
        record = reader.get("bk/new.example.com")
        assert record is not None and record.zone == "example.com"
        assert len(reader.bindings()) == 2001


def test_a_write_catches_up_first_so_state_follows_file_order(store: JsonStore,
                                                              tmp_path: Path) -> None:
    with JsonStore(tmp_path, fsync=False) as other:
        other.record(event("bk/a.example.com", zone="first"))
        store.record(event("bk/b.example.com"))
        assert store.get("bk/a.example.com") is not None  # learnt while appending


def test_a_torn_tail_left_by_a_dead_writer_is_cut_by_the_next_append(store: JsonStore,
                                                                     tmp_path: Path) -> None:
    store.record(event("bk/a.example.com"))
    with (tmp_path / "bindings.jsonl").open("ab") as handle:  # a writer died mid-line
        handle.write(b'{"ts": "2025-01-01T00:00:00Z", "key": "bk/x.exa')
    store.refresh()  # a reader leaves the incomplete line alone
    assert store.get("bk/x.example.com") is None
    store.record(event("bk/b.example.com"))
    text = (tmp_path / "bindings.jsonl").read_text()
    assert "bk/x.exa" not in text and text.endswith("\n")
    with JsonStore(tmp_path) as again:
        assert sorted(again.bindings()) == ["bk/a.example.com", "bk/b.example.com"]


def test_a_torn_tail_is_truncated_at_open_by_a_process_alone(tmp_path: Path) -> None:
    with JsonStore(tmp_path, fsync=False) as store:
        store.record(event("bk/a.example.com"))
    path = tmp_path / "bindings.jsonl"
    good = path.stat().st_size
    with path.open("ab") as handle:
        handle.write(b'{"ts": "2025')
    with JsonStore(tmp_path) as store:
        assert path.stat().st_size == good
        assert list(store.bindings()) == ["bk/a.example.com"]


def test_status_style_readers_see_a_fresh_machine_as_empty(tmp_path: Path) -> None:
    with JsonStore(tmp_path / "new") as store:
        assert store.bindings() == {}
    assert oct((tmp_path / "new" / "bindings.jsonl").stat().st_mode & 0o777) == "0o600"


# --- per-binding locks ------------------------------------------------------------------------


def test_a_busy_binding_waits_then_is_locked_naming_the_holder_and_what_to_do(
        store: JsonStore, tmp_path: Path) -> None:
    key = "bk/busy.example.com"
    child = spawn(HOLDER, str(tmp_path), key, "30")
    try:
        started = time.monotonic()
        with pytest.raises(Locked) as caught:
            store.lock(key, wait_s=0.3)
        assert time.monotonic() - started >= 0.3
        message = str(caught.value)
        assert f"binding {key} is in use by pid {child.pid} on host " in message
        assert "python -c" in message  # the holder's command line
        assert "re-run the same command" in message
        assert outcome_of(caught.value) is Outcome.RETRYABLE
        with store.lock("bk/other.example.com", wait_s=0):  # other bindings are free
            pass
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait(10)
    with store.lock(key, wait_s=2):  # the OS released the dead holder's lock
        pass


def test_a_waiting_process_gets_the_lock_and_sees_the_holders_events(store: JsonStore,
                                                                      tmp_path: Path) -> None:
    key = "bk/handover.example.com"
    child = spawn(HOLDER, str(tmp_path), key, "0.5")
    with store.lock(key, wait_s=20):
        record = store.get(key)
        assert record is not None and record.zone == "held"  # caught up on locking
    assert child.wait(10) == 0


def test_a_second_holder_in_the_same_process_is_refused(store: JsonStore,
                                                        tmp_path: Path) -> None:
    with JsonStore(tmp_path, lock_wait_s=0) as other, store.lock("bk/a.example.com"):
        with pytest.raises(Locked, match=f"pid {os.getpid()}"):
            other.lock("bk/a.example.com")
        with pytest.raises(Locked):
            store.lock("bk/a.example.com", wait_s=0)


def test_ten_thousand_bindings_in_flight_hold_one_descriptor(store: JsonStore) -> None:
    before = len(os.listdir("/proc/self/fd"))
    leases = [store.lock(f"bk/d{n}.example.com", wait_s=0) for n in range(10_000)]
    assert len(os.listdir("/proc/self/fd")) - before <= 1
    for lease in leases:
        lease.release()
    with store.lock("bk/d1.example.com", wait_s=0):
        pass


def test_closing_the_store_releases_its_locks(tmp_path: Path) -> None:
    first = JsonStore(tmp_path, lock_wait_s=0).open()
    first.lock("bk/a.example.com")
    first.close()
    with JsonStore(tmp_path, lock_wait_s=0) as second, second.lock("bk/a.example.com"):
        pass


def test_key_offsets_are_spread_and_never_the_append_byte() -> None:
    offsets = {offset_of(f"bk/d{n}.example.com") for n in range(50_000)}
    assert len(offsets) == 50_000 and 0 not in offsets


def test_command_of_names_a_cname_flow_command_without_its_config() -> None:
    assert command_of(os.getpid()).startswith(("python", "pytest"))
    assert command_of(999_999_999) == ""


def test_a_process_of_the_previous_version_keeps_the_store_busy(tmp_path: Path) -> None:
    old = HolderLock.for_journal(tmp_path / "bindings.jsonl")  # the exclusive lock of version 1
    with old, pytest.raises(Locked, match=f"in use by pid {os.getpid()} on host"):
        JsonStore(tmp_path, lock_wait_s=0.1).open()


# --- forget and prune -------------------------------------------------------------------------


def test_forget_drops_an_entry_for_every_process(store: JsonStore, tmp_path: Path) -> None:
    store.record(event("bk/a.example.com"))
    with store.lock("bk/a.example.com"):
        assert store.forget("bk/a.example.com")
    size = (tmp_path / "bindings.jsonl").stat().st_size
    assert not store.forget("bk/a.example.com")  # nothing to forget: nothing written
    assert (tmp_path / "bindings.jsonl").stat().st_size == size
    with JsonStore(tmp_path) as again:
        assert again.get("bk/a.example.com") is None


def test_prune_forgets_unbound_and_never_started_entries_but_not_locked_ones(
        store: JsonStore) -> None:
    store.record(event("bk/unbound.example.com", AuxStep.UNBIND, Phase.UNBOUND))
    store.record(event("bk/typo.example.com"))
    store.record(JournalEvent("bk/typo.example.com", Step.CREATE_TOKEN, "failed", Phase.FAILED))
    store.record(event("bk/bound.example.com", Step.FINISH, Phase.BOUND,
                       token="t", put_request_id="RID"))
    store.record(event("bk/half.example.com", Step.CREATE_TOKEN, Phase.TOKEN_READY, token="t"))
    store.record(event("bk/held.example.com"))
    with JsonStore(store.directory) as other, other.lock("bk/held.example.com"):
        gone = store.prune(prunable)
    assert gone == ["bk/unbound.example.com", "bk/typo.example.com"]
    assert sorted(store.bindings()) == ["bk/bound.example.com", "bk/half.example.com",
                                        "bk/held.example.com"]


# --- jobs -------------------------------------------------------------------------------------


def test_a_job_keeps_meta_members_and_events_only(store: JsonStore) -> None:
    with store.open_job("j1") as job:
        job.set_meta(manifest="/m.yaml", concurrency=4)
        job.add_members(["bk/a.example.com", "bk/b.example.com"])
        job.add_members(["bk/a.example.com", "bk/c.example.com"])
        job.note("started", pid=42)
        with pytest.raises(Locked), store.open_job("j1"):
            pass
    state = store.job("j1")
    assert state is not None
    assert state.members == ("bk/a.example.com", "bk/b.example.com", "bk/c.example.com")
    assert state.meta["manifest"] == "/m.yaml" and [e.name for e in state.events] == ["started"]
    assert store.job("nope") is None and store.job_ids() == ["j1"]
    assert store.bindings() == {}  # a job is not a copy of binding state


def test_unbind_outputs_schema_still_guards_secrets(store: JsonStore) -> None:
    with pytest.raises(ValueError, match="secret"):
        store.record(JournalEvent("bk/a.example.com", AuxStep.START, "done", Phase.PENDING,
                                  BindingOutputs(access_key_secret="x")))  # type: ignore[typeddict-unknown-key]
    assert not Journal.read_only(store.path).bindings()


def test_compaction_needs_the_file_alone_and_keeps_every_record(tmp_path: Path) -> None:
    with JsonStore(tmp_path, fsync=False, lock_wait_s=0.1) as store:
        for n in range(3):
            store.record(event("bk/a.example.com", Step.CREATE_TOKEN, Phase.TOKEN_READY,
                               nameserver_addresses=n))
        with JsonStore(tmp_path), pytest.raises(Locked, match="still open in"):
            store.compact()  # another process may be appending: never rewrite under it
        store.compact()
        assert len((tmp_path / "bindings.jsonl").read_text().splitlines()) == 2
        store.record(event("bk/b.example.com"))  # appends go on after the rewrite
    with JsonStore(tmp_path) as again:
        record = again.get("bk/a.example.com")
        assert record is not None and record.nameserver_addresses == 2
        assert sorted(again.bindings()) == ["bk/a.example.com", "bk/b.example.com"]

"""The store port's contract, run over BOTH stores: the JSON store and the PostgreSQL store (a
real server, a fresh database per test). What the workflow relies on (cname_flow.store.base):
records durable and returned, groups all-or-nothing, a fresh read after locking, locks naming
their holder, forget, prune, jobs, history, many threads at once."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from cname_flow.errors import Locked
from cname_flow.journal import BindingOutputs, JournalEvent
from cname_flow.model import AuxStep, Phase, Step
from cname_flow.store import BindingStore, open_store, prunable

Opener = Callable[[], BindingStore]


def event(key: str, step: str = AuxStep.START, phase: Phase = Phase.PENDING,
          status: str = "done", **outputs: object) -> JournalEvent:
    return JournalEvent(key, step, status, phase, outputs)  # type: ignore[arg-type]


@pytest.fixture(params=["json", "postgresql"])
def opener(request: pytest.FixtureRequest, tmp_path: Path) -> Opener:
    """Opens (unopened) stores over one shared location: a directory, or a fresh database."""
    url = request.getfixturevalue("pg_url") if request.param == "postgresql" else None
    return lambda: open_store(tmp_path / "journal", url=url, lock_wait_s=0.2)


@pytest.fixture
def store(opener: Opener) -> Iterator[BindingStore]:
    with opener() as opened:
        yield opened


def test_a_record_is_returned_and_seen_by_another_store_after_locking(
        store: BindingStore, opener: Opener) -> None:
    key = "bk/a.example.com"
    first = store.record(event(key, zone="example.com"))
    assert (first.key, first.zone, first.phase) == (key, "example.com", Phase.PENDING)
    after = store.record(event(key, Step.CREATE_TOKEN, Phase.TOKEN_READY, "failed"))
    assert after.attempts == 1 and after.zone == "example.com"  # the journal's own fold
    with opener() as other, other.lock(key):
        seen = other.get(key)
        assert seen is not None and (seen.phase, seen.attempts) == (Phase.TOKEN_READY, 1)
        assert seen.started_at == first.started_at and seen.updated_at == after.updated_at
    assert store.get("bk/none.example.com") is None


def test_record_many_is_all_or_nothing(store: BindingStore, opener: Opener) -> None:
    good = event("bk/a.example.com")
    bad = event("bk/b.example.com", password="hunter2")
    with pytest.raises(ValueError, match="secret"):
        store.record_many([good, bad])
    with opener() as other:
        assert other.bindings() == {}
    store.record_many([good, event("bk/a.example.com", Step.CREATE_TOKEN, Phase.TOKEN_READY,
                                   token="t"), event("bk/b.example.com")])
    with opener() as other:
        record = other.get("bk/a.example.com")
        assert record is not None and record.token == "t"
        assert list(other.bindings()) == ["bk/a.example.com", "bk/b.example.com"]


def test_a_secret_is_refused_and_nothing_written(store: BindingStore, opener: Opener) -> None:
    with pytest.raises(ValueError, match="secret"):
        store.record(JournalEvent("bk/a.example.com", AuxStep.START, "done", Phase.PENDING,
                                  BindingOutputs(access_key_secret="x")))  # type: ignore[typeddict-unknown-key]
    with opener() as other:
        assert other.bindings() == {} and list(other.events()) == []


def test_a_group_is_durable_when_it_exits(store: BindingStore, opener: Opener) -> None:
    with opener() as other:
        with store.group():
            inside = store.record(event("bk/g.example.com", zone="z"))
            assert inside.zone == "z" and store.get("bk/g.example.com") == inside
            other.refresh()
            assert other.get("bk/g.example.com") is None  # not durable yet
        other.refresh()
        assert other.get("bk/g.example.com") == inside


def test_a_busy_binding_waits_then_is_locked_naming_this_process(
        store: BindingStore, opener: Opener) -> None:
    key = "bk/busy.example.com"
    with opener() as other, store.lock(key):
        started = time.monotonic()
        with pytest.raises(Locked) as caught:
            other.lock(key, wait_s=0.3)
        assert time.monotonic() - started >= 0.3
        assert f"binding {key} is in use by pid {os.getpid()} on host " in str(caught.value)
        assert "re-run the same command" in str(caught.value)
        with pytest.raises(Locked):
            store.lock(key, wait_s=0)  # the same store: a second holder waits too
        with other.lock("bk/other.example.com", wait_s=0):  # other bindings are free
            pass
    with opener() as other, other.lock(key, wait_s=0):  # released
        pass


def test_closing_a_store_releases_its_locks(opener: Opener) -> None:
    first = opener().__enter__()
    first.lock("bk/a.example.com")
    first.__exit__(None, None, None)
    with opener() as second, second.lock("bk/a.example.com", wait_s=0):
        pass


def test_forget_drops_an_entry_for_every_store(store: BindingStore, opener: Opener) -> None:
    store.record(event("bk/a.example.com"))
    with store.lock("bk/a.example.com"):
        assert store.forget("bk/a.example.com")
    assert not store.forget("bk/a.example.com")
    with opener() as again:
        assert again.get("bk/a.example.com") is None and again.bindings() == {}
    again_record = store.record(event("bk/a.example.com", zone="new"))
    assert again_record.zone == "new" and again_record.attempts == 0  # starts afresh


def test_prune_forgets_unbound_and_never_started_entries_but_not_locked_ones(
        store: BindingStore, opener: Opener) -> None:
    store.record(event("bk/unbound.example.com", AuxStep.UNBIND, Phase.UNBOUND))
    store.record(event("bk/typo.example.com"))
    store.record(event("bk/typo.example.com", Step.CREATE_TOKEN, Phase.FAILED, "failed"))
    store.record(event("bk/bound.example.com", Step.FINISH, Phase.BOUND, token="t",
                       put_request_id="RID"))
    store.record(event("bk/held.example.com"))
    with opener() as other, other.lock("bk/held.example.com"):
        gone = store.prune(prunable)
    assert gone == ["bk/unbound.example.com", "bk/typo.example.com"]
    assert sorted(store.bindings()) == ["bk/bound.example.com", "bk/held.example.com"]


def test_history_is_kept_oldest_first_per_binding(store: BindingStore) -> None:
    for n in range(3):
        store.record(event("bk/a.example.com", Step.CREATE_TOKEN, Phase.TOKEN_READY,
                           nameserver_addresses=n))
        store.record(event("bk/b.example.com", nameserver_addresses=10 + n))
    seen = [e.outputs.get("nameserver_addresses") for e in store.events("bk/a.example.com")]
    assert seen == [0, 1, 2]
    assert [e.key for e in store.events()][:2] == ["bk/a.example.com", "bk/b.example.com"]


def test_a_job_keeps_meta_members_and_events_only(store: BindingStore, opener: Opener) -> None:
    with store.open_job("j1") as job:
        job.set_meta(manifest="/m.yaml", concurrency=4)
        job.set_meta(concurrency=None, region="cn-hangzhou")
        job.add_members(["bk/a.example.com", "bk/b.example.com"])
        job.add_members(["bk/a.example.com", "bk/c.example.com"])
        job.note("started", pid=42)
        with pytest.raises(ValueError, match="secret"):
            job.note("stopped", password="x")
        with opener() as other, pytest.raises(Locked), other.open_job("j1"):
            pass
    with store.open_job("j0"):
        pass
    state = store.job("j1")
    assert state is not None
    assert state.members == ("bk/a.example.com", "bk/b.example.com", "bk/c.example.com")
    assert dict(state.meta) == {"manifest": "/m.yaml", "region": "cn-hangzhou"}
    assert [(e.name, e.values) for e in state.events] == [("started", {"pid": 42})]
    assert store.job("nope") is None and store.job_ids() == ["j1", "j0"]
    assert store.bindings() == {}  # a job is not a copy of binding state


def test_many_threads_record_at_once_and_lose_nothing(store: BindingStore) -> None:
    threads, each = 8, 40
    errors: list[BaseException] = []

    def work(n: int) -> None:
        try:
            for i in range(each):
                store.record(event(f"bk/t{n % 4}.example.com", Step.CREATE_TOKEN,
                                   Phase.TOKEN_READY, nameserver_addresses=n * 1000 + i))
        except BaseException as exc:
            errors.append(exc)

    workers = [threading.Thread(target=work, args=(n,)) for n in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(120)
    assert errors == []
    for k in range(4):
        history = [e.outputs.get("nameserver_addresses")
                   for e in store.events(f"bk/t{k}.example.com")]
        assert len(history) == 2 * each  # two threads per key, every event kept
        for n in (k, k + 4):  # each thread's events in its own order
            mine = [v for v in history if isinstance(v, int) and v // 1000 == n]
            assert mine == [n * 1000 + i for i in range(each)]
        record = store.get(f"bk/t{k}.example.com")
        assert record is not None and record.nameserver_addresses == history[-1]

"""Submitting a job to DBOS workers (one workflow per binding, idempotent) and following it
through the store of record (the local batch's outcomes and exit codes), on a real PostgreSQL."""

from __future__ import annotations

import signal
import threading
from pathlib import Path
from typing import Any

import cname_flow
from cname_flow import service
from cname_flow.batch.jobs import JobResult
from cname_flow.cli.common import Outcome, outcome_of
from cname_flow.model import Binding, Phase
from cname_flow.scaleout import spec
from cname_flow.scaleout.submit import follow, submit
from tests.unit.cli.clikit import BUCKET
from tests.unit.scaleout.submitkit import WorkerWorld, bound, failed, key, write

DOMAINS = ["a.example.com", "b.example.com", "c.example.com"]


def _bindings() -> list[Binding]:
    return [Binding(d, BUCKET, "cn-hangzhou") for d in DOMAINS]


def test_submitting_twice_enqueues_one_workflow_per_binding(tmp_path: Path, pg_url: str) -> None:
    world = WorkerWorld(tmp_path, pg_url)
    settings = world.settings
    with service.open_store(settings) as store:
        first = submit(settings, store, "job-1", _bindings(), meta={"manifest": "m.yaml"})
        again = submit(settings, store, "job-1", _bindings(), meta={"manifest": "m.yaml"})
        state = store.job("job-1")
    assert (first.enqueued, first.existing) == (3, 0)
    assert (again.enqueued, again.existing) == (0, 3)
    rows = world.workflows("job-1")
    assert sorted(r.workflow_id for r in rows) == sorted(
        spec.workflow_id("job-1", key(d)) for d in DOMAINS)
    assert {(r.name, r.queue_name, r.app_version, r.status) for r in rows} == {
        (spec.BIND_WORKFLOW, spec.BIND_QUEUE, cname_flow.__version__, "ENQUEUED")}
    inputs = {r.workflow_id: r.input["args"][0] for r in rows}
    assert inputs[spec.workflow_id("job-1", key(DOMAINS[0]))] == spec.encode(_bindings()[0],
                                                                              "job-1")
    assert state is not None
    assert state.members == tuple(key(d) for d in DOMAINS)      # manifest order
    assert state.meta["mode"] == "workers" and state.meta["manifest"] == "m.yaml"
    assert [e.name for e in state.events] == ["submitted", "submitted"]


def test_bindings_a_batch_would_skip_are_not_submitted(tmp_path: Path, pg_url: str) -> None:
    from cname_flow.batch.jobs import needs_run

    world = WorkerWorld(tmp_path, pg_url)
    settings = world.settings
    write(settings, bound(key(DOMAINS[0])), failed(key(DOMAINS[1])))
    with service.open_store(settings) as store:
        submitted = submit(settings, store, "job-2", _bindings(), needs_run=needs_run)
    assert submitted.skipped == (key(DOMAINS[0]), key(DOMAINS[1]))
    assert [r.workflow_id for r in world.workflows("job-2")] == [
        spec.workflow_id("job-2", key(DOMAINS[2]))]


def _follow(world: WorkerWorld, job_id: str, **kw: Any) -> JobResult:
    kw.setdefault("deadline_s", 10.0)
    with service.open_store(world.settings) as store:
        return follow(store, job_id, poll_s=0.02, **kw)


def _submitted(world: WorkerWorld, job_id: str) -> None:
    with service.open_store(world.settings) as store:
        submit(world.settings, store, job_id, _bindings())


def test_follow_waits_for_the_workers_and_reports_every_change(tmp_path: Path,
                                                                pg_url: str) -> None:
    world = WorkerWorld(tmp_path, pg_url)
    _submitted(world, "job-3")
    changes: list[tuple[str, str]] = []
    starts: list[JobResult] = []

    def workers() -> None:
        for d in DOMAINS:
            threading.Event().wait(0.1)
            write(world.settings, bound(key(d)))

    thread = threading.Thread(target=workers)
    thread.start()
    result = _follow(world, "job-3", on_start=starts.append,
                     on_change=lambda k, p: changes.append((k, p)))
    thread.join()
    assert [len(s.keys) for s in starts] == [3]
    assert changes == [(key(d), Phase.BOUND) for d in DOMAINS]
    assert result.exit_status == "ok" and outcome_of(result) is Outcome.OK
    assert result.counts["bound"] == 3


def test_follow_exit_codes_are_the_local_batch_codes(tmp_path: Path, pg_url: str) -> None:
    world = WorkerWorld(tmp_path, pg_url)
    _submitted(world, "job-4")
    write(world.settings, bound(key(DOMAINS[0])), failed(key(DOMAINS[1])),
          bound(key(DOMAINS[2])))
    result = _follow(world, "job-4")
    assert (result.counts["bound"], result.counts["failed"]) == (2, 1)
    assert outcome_of(result) is Outcome.FAILED


def test_a_retryable_binding_whose_workflow_ended_makes_the_job_retryable(
    tmp_path: Path, pg_url: str,
) -> None:
    world = WorkerWorld(tmp_path, pg_url)
    _submitted(world, "job-5")
    write(world.settings, bound(key(DOMAINS[0])), bound(key(DOMAINS[1])),
          failed(key(DOMAINS[2]), "Throttling", retryable=True))
    # the records alone never end the wait for a retryable binding: the deadline does
    waited = _follow(world, "job-5", deadline_s=0.3)
    assert outcome_of(waited) is Outcome.RETRYABLE
    # a workflow DBOS reports finished ends it at once, with the same exit status
    finished = _follow(world, "job-5", deadline_s=None,
                       workflows=lambda: {key(DOMAINS[2]): "ERROR"})
    assert finished.counts["retryable"] == 1 and outcome_of(finished) is Outcome.RETRYABLE


def test_a_binding_bound_before_the_submission_waits_for_its_new_run(
    tmp_path: Path, pg_url: str,
) -> None:
    world = WorkerWorld(tmp_path, pg_url)
    write(world.settings, *(bound(key(d)) for d in DOMAINS))
    with service.open_store(world.settings) as store:
        submitted = submit(world.settings, store, "job-6", _bindings())
    assert set(submitted.baseline) == {key(d) for d in DOMAINS}
    stale = _follow(world, "job-6", deadline_s=0.3, baseline=submitted.baseline)
    assert stale.elapsed_s >= 0.3          # the old BOUND records did not end it
    write(world.settings, *(bound(key(d)) for d in DOMAINS))
    fresh = _follow(world, "job-6", deadline_s=5.0, baseline=submitted.baseline)
    assert fresh.elapsed_s < 5.0 and outcome_of(fresh) is Outcome.OK


def test_ctrl_c_stops_following_only(tmp_path: Path, pg_url: str) -> None:
    world = WorkerWorld(tmp_path, pg_url)
    _submitted(world, "job-7")

    def interrupt(seconds: float) -> None:
        raise KeyboardInterrupt

    with service.open_store(world.settings) as store:
        result = follow(store, "job-7", sleep=interrupt)
    assert result.interrupted == signal.SIGINT
    assert outcome_of(result) is Outcome.SIGINT
    assert {r.status for r in world.workflows("job-7")} == {"ENQUEUED"}   # the job goes on

"""Reconcile on a DBOS schedule: one pass per slot across hosts (three processes on a real
PostgreSQL), and a scheduled pass keeps local mode's change budget and reviewed-plan rule."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg
import pytest
from dbos import DBOS

from cname_flow.errors import InputError
from cname_flow.scaleout import schedule
from cname_flow.scaleout.schedule import run_pass, schedule_context, slot_job_id
from tests.unit.scaleout.submitkit import WorkerWorld

ROOT = Path(__file__).resolve().parents[3]
DOMAINS = [f"s{i}.example.com" for i in range(4)]
SLOT = datetime(2026, 12, 1, 9, 0, 5, tzinfo=UTC)


def test_every_slot_runs_once_across_three_hosts(tmp_path: Path, pg_url: str) -> None:
    world = WorkerWorld(tmp_path, pg_url)
    manifest = world.manifest(*DOMAINS)
    DBOS.migrate(pg_url)
    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute("create table fired(slot text, executor text, manifest text)")
        conn.execute("create table ready(executor text)")
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    hosts = [subprocess.Popen(
        [sys.executable, "-m", "tests.unit.scaleout.schedule_host", pg_url, f"w{i}",
         str(world.config), str(manifest), "* * * * * *", "6"],
        cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for i in range(3)]
    outputs = [h.communicate(timeout=120) for h in hosts]
    assert [h.returncode for h in hosts] == [0, 0, 0], [err[-2000:] for _, err in outputs]
    assert all("registered" in out for out, _ in outputs)   # a second register is harmless
    with psycopg.connect(pg_url) as conn:
        fired = conn.execute("select slot, executor, manifest from fired").fetchall()
        status: dict[str, str] = dict(conn.execute(
            "select workflow_uuid, status from dbos.workflow_status where name = %s",
            (schedule.RECONCILE_WORKFLOW,)).fetchall())
        schedules = conn.execute("select schedule_name from dbos.workflow_schedules").fetchall()
    assert schedules == [(schedule.SCHEDULE_NAME,)]
    slots = [datetime.fromisoformat(slot) for slot, _, _ in fired]
    assert len(slots) == len(set(slots))                    # no slot ran twice
    assert len(slots) >= 3
    first, last = min(slots), max(slots)
    every = {first + timedelta(seconds=s) for s in range(int((last - first).total_seconds()) + 1)}
    assert set(slots) == every                              # and none was skipped
    prefix = f"sched-{schedule.SCHEDULE_NAME}-"
    ids = {f"{prefix}{s.isoformat()}" for s in slots}
    assert ids <= set(status)                               # one workflow per fired slot
    # the hosts stop after a fixed time: only workflows in flight as they stop may be unfinished,
    # and one that had not yet recorded its slot has no row; either comes at the end of the run
    unfinished = {i for i, state in status.items() if state != "SUCCESS"}
    assert set(status) - ids <= unfinished
    assert all(datetime.fromisoformat(i.removeprefix(prefix)) >= last for i in unfinished)
    assert {m for _, _, m in fired} == {str(manifest.resolve())}


def test_register_refuses_a_bad_cron_expression(tmp_path: Path, pg_url: str) -> None:
    world = WorkerWorld(tmp_path, pg_url)
    with pytest.raises(InputError, match="not a cron expression"):
        schedule.register(world.settings, manifest=world.manifest("a.example.com"),
                          cron="every minute")


def _pass(world: WorkerWorld, **options: object) -> dict[str, object]:
    context = schedule_context(world.manifest(*DOMAINS), **options)  # type: ignore[arg-type]
    return run_pass(world.settings, context, SLOT, clients=world.clients(world.settings))


def test_a_scheduled_apply_enqueues_no_more_than_the_change_budget(
    tmp_path: Path, pg_url: str,
) -> None:
    world = WorkerWorld(tmp_path, pg_url)
    refused = _pass(world, apply=True, max_changes=len(DOMAINS) - 1)
    assert refused["outcome"] == "refused" and refused["code"] == "UnsafePlan"
    assert world.workflows(slot_job_id(SLOT)) == []
    applied = _pass(world, apply=True, max_changes=len(DOMAINS))
    assert applied["submitted"] == len(DOMAINS) and applied["job_id"] == slot_job_id(SLOT)
    rows = world.workflows(slot_job_id(SLOT))
    assert sorted(r.input["args"][0]["domain"] for r in rows) == DOMAINS
    again = _pass(world, apply=True, max_changes=len(DOMAINS))   # the slot's step run again
    assert again["submitted"] == len(DOMAINS)
    assert len(world.workflows(slot_job_id(SLOT))) == len(DOMAINS)   # nothing doubled


def test_a_schedule_requiring_a_reviewed_plan_only_reports(tmp_path: Path, pg_url: str) -> None:
    world = WorkerWorld(tmp_path, pg_url)
    report = _pass(world, apply=True, require_review=True, max_changes=len(DOMAINS))
    assert report["applied"] is False
    assert report["outcome"] == "drift" and report["drift"] == len(DOMAINS)
    assert world.workflows(slot_job_id(SLOT)) == []
    assert world.oss.calls["PutCname"] == 0

"""`cname-flow store migrate`: a JSON journal (history, forgets, compacted lines, jobs) copied
into the PostgreSQL store, the same records and history after; a second run copies nothing; a
binding PostgreSQL knows from elsewhere is left alone; no store.url is refused clearly."""

from __future__ import annotations

import json
from pathlib import Path

import yaml
from click.testing import CliRunner

from cname_flow.cli import main
from cname_flow.cli.common import CliState
from cname_flow.journal import ErrorInfo, JournalEvent
from cname_flow.model import AuxStep, Phase, Step
from cname_flow.store import JsonStore
from cname_flow.store.migrate import migrate
from cname_flow.store.postgres import PgStore


def fill(directory: Path) -> None:
    """A journal with history, a failure, a forget, a compaction and a job."""
    with JsonStore(directory, fsync=False) as store:
        for n in range(3):
            store.record(JournalEvent("bk/a.example.com", Step.CREATE_TOKEN, "done",
                                      Phase.TOKEN_READY, {"nameserver_addresses": n}))
        store.record(JournalEvent("bk/gone.example.com", AuxStep.START, "done", Phase.PENDING))
        store.compact()  # a.example.com is one compacted line from here
        store.record(JournalEvent("bk/a.example.com", Step.WRITE_TXT, "failed", Phase.FAILED,
                                  error=ErrorInfo("Throttling", "slow down", True, "RID-1")))
        store.record(JournalEvent("bk/b.example.com", AuxStep.START, "done", Phase.PENDING,
                                  {"zone": "example.com", "token_expires_at":
                                   "2030-01-01T00:00:00.000000Z"}))
        with store.lock("bk/gone.example.com"):
            assert store.forget("bk/gone.example.com")
        with store.open_job("j1") as job:
            job.set_meta(manifest="/m.yaml", concurrency=2)
            job.add_members(["bk/a.example.com", "bk/b.example.com"])
            job.note("started", pid=7)


def test_a_journal_is_copied_with_its_history_and_jobs_once(tmp_path: Path, pg_url: str) -> None:
    fill(tmp_path)
    with PgStore(pg_url) as target:
        report = migrate(tmp_path, target)
        assert (report.events, report.forgets, report.conflicts) == (4, 1, [])
        assert (report.jobs, report.job_members, report.job_events) == (1, 2, 1)
        with JsonStore(tmp_path) as source:
            assert dict(target.bindings()) == dict(source.bindings())
            for key in ("bk/a.example.com", "bk/b.example.com"):
                assert list(target.events(key)) == list(source.events(key))
            assert target.job("j1") is not None and source.job("j1") is not None
            pg_job, json_job = target.job("j1"), source.job("j1")
            assert pg_job is not None and json_job is not None
            assert (dict(pg_job.meta), pg_job.members, pg_job.events) == \
                (dict(json_job.meta), json_job.members, json_job.events)
        record = target.get("bk/a.example.com")
        assert record is not None and record.attempts == 1 and record.last_error is not None
        assert record.last_error.request_id == "RID-1" and record.nameserver_addresses == 2
        assert target.get("bk/gone.example.com") is None

        again = migrate(tmp_path, target)
        assert again.copied == 0 and again.already == 5  # 2 compacted + 2 events + 1 forget
        with JsonStore(tmp_path, fsync=False) as source:
            source.record(JournalEvent("bk/b.example.com", Step.CREATE_TOKEN, "done",
                                       Phase.TOKEN_READY, {"token": "tok"}))
        third = migrate(tmp_path, target)
        assert (third.events, third.copied, third.already) == (1, 1, 5)
        record = target.get("bk/b.example.com")
        assert record is not None and record.token == "tok" and record.zone == "example.com"
        assert len(list(target.events("bk/b.example.com"))) == 2


def test_a_binding_postgresql_knows_from_elsewhere_is_left_alone(tmp_path: Path,
                                                                 pg_url: str) -> None:
    fill(tmp_path)
    with PgStore(pg_url) as target:
        mine = target.record(JournalEvent("bk/b.example.com", AuxStep.START, "done",
                                          Phase.PENDING, {"zone": "worker"}))
        report = migrate(tmp_path, target)
        assert report.conflicts == ["bk/b.example.com"]
        assert target.get("bk/b.example.com") == mine
        assert target.get("bk/a.example.com") is not None  # the others are copied


def write_config(tmp_path: Path) -> Path:
    config = tmp_path / "cname-flow.yaml"
    config.write_text(yaml.safe_dump({"journal": {"dir": str(tmp_path / "journal")}}))
    return config


def test_the_cli_refuses_without_a_store_url_and_says_what_it_copied(tmp_path: Path,
                                                                     pg_url: str) -> None:
    config = write_config(tmp_path)
    fill(tmp_path / "journal")
    runner = CliRunner()
    refused = runner.invoke(main, ["--config", str(config), "store", "migrate"],
                            obj=CliState(), env={"CNAME_FLOW_STORE_URL": ""})
    assert refused.exit_code == 2 and "store.url" in refused.output
    env = {"CNAME_FLOW_STORE_URL": pg_url}
    first = runner.invoke(main, ["--config", str(config), "store", "migrate"], obj=CliState(),
                          env=env)
    assert first.exit_code == 0, first.output
    assert "4 events and 1 forgets (2 bindings), 1 new jobs" in " ".join(first.output.split())
    second = runner.invoke(main, ["--config", str(config), "store", "migrate", "--json"],
                           obj=CliState(), env=env)
    assert second.exit_code == 0 and json.loads(second.output)["copied"] == 0
    assert json.loads(second.output)["schema"] == "cname-flow/store-migrate/v1"
    info = runner.invoke(main, ["--config", str(config), "store", "info", "--json"],
                         obj=CliState(), env=env)
    assert json.loads(info.output) == {"schema": "cname-flow/store-info/v1",
                                       "kind": "postgresql", "location": pg_url,
                                       "bindings": 2, "jobs": 1}
    local = runner.invoke(main, ["--config", str(config), "store", "info", "--json"],
                          obj=CliState(), env={"CNAME_FLOW_STORE_URL": ""})
    assert json.loads(local.output) == {
        "schema": "cname-flow/store-info/v1", "kind": "json",
        "location": str(tmp_path / "journal" / "bindings.jsonl"),
        "bindings": 2, "jobs": 1}
    missing = runner.invoke(main, ["--config", str(config), "store", "migrate", "--from",
                                   str(tmp_path / "nowhere")], obj=CliState(), env=env)
    assert missing.exit_code == 2 and "no JSON journal at" in missing.output

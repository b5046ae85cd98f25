"""The stepper (one machine step per call) and the binding workflow under DBOS, against the
sandbox (real SDK clients over loopback) and a real PostgreSQL; the store is the JSON store."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

import cname_flow
from cname_flow import service
from cname_flow.config import Settings, load_settings
from cname_flow.model import Binding, Phase, Step
from cname_flow.sandbox.app import Sandbox
from cname_flow.scaleout import spec as specs
from cname_flow.scaleout import workflows
from cname_flow.scaleout.app import Worker, WorkerOptions, dbos_config
from cname_flow.scaleout.limits import SharedRateLimiter
from cname_flow.scaleout.stepper import Status, StepOutcome, Stepper
from cname_flow.store import BindingStore, JsonStore, open_store
from cname_flow.store.pg_conn import mask_url
from cname_flow.workflow import driver
from cname_flow.workflow.driver import BackoffPolicy
from tests.e2e.bindkit import count_calls, write_config


def settings_for(tmp_path: Path, sandbox: Sandbox, pg_url: str | None = None) -> Settings:
    cfg = tmp_path / "cname-flow.yaml"
    write_config(cfg, sandbox, extra={"store": {"url": pg_url}} if pg_url else None)
    return load_settings(cfg, env=env_of(sandbox))


def env_of(sandbox: Sandbox) -> dict[str, str]:
    return {"OSS_ACCESS_KEY_ID": sandbox.info.access_key_id,
            "OSS_ACCESS_KEY_SECRET": sandbox.info.access_key_secret}


@pytest.fixture(params=["json", "postgres"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[BindingStore]:
    """The store of record the stepper journals to: the JSON store, or PostgreSQL's."""
    if request.param == "json":
        with JsonStore(tmp_path / "journal", fsync=False) as opened:
            yield opened
        return
    url = request.getfixturevalue("pg_url")
    with open_store(tmp_path / "unused", url=url) as pg:
        yield pg


def kind(store: BindingStore) -> str:
    """A name part per store kind: the sandbox is shared by the module's tests, so each kind
    binds domains of its own."""
    return "json" if isinstance(store, JsonStore) else "pg"


def stepper_for(settings: Settings, sandbox: Sandbox, store: BindingStore) -> Stepper:
    clients = service.Clients.from_settings(settings, env_of(sandbox))
    return Stepper(clients, store)


def spec_of(settings: Settings, domain: str) -> specs.BindingSpec:
    return specs.encode(service.make_binding(settings, domain), "job-1")


def test_each_advance_runs_one_step_until_bound(
    tmp_path: Path, sandbox: Sandbox, store: BindingStore,
) -> None:
    settings = settings_for(tmp_path, sandbox)
    stepper = stepper_for(settings, sandbox, store)
    spec = spec_of(settings, f"one-{kind(store)}.example.com")
    outcomes: list[StepOutcome] = []
    while not outcomes or outcomes[-1]["phase"] != "BOUND":
        outcomes.append(stepper.advance(spec))
        assert len(outcomes) < 10
    assert [o["step"] for o in outcomes] == ["create_token", "write_txt", "wait_propagation",
                                             "put_cname", "verify", "finish"]
    assert all(o["status"] == "done" for o in outcomes)
    events = list(store.events(f"examplebucket/one-{kind(store)}.example.com"))
    assert [e.status for e in events].count("running") == 6  # each journaled before its step
    assert [e.status for e in events].count("failed") == 0


def test_a_bound_binding_enqueued_again_ends_at_once_without_an_api_call(
    tmp_path: Path, sandbox: Sandbox, store: BindingStore,
) -> None:
    settings = settings_for(tmp_path, sandbox)
    stepper = stepper_for(settings, sandbox, store)
    spec = spec_of(settings, f"again-{kind(store)}.example.com")
    while stepper.advance(spec)["phase"] != "BOUND":
        pass
    calls = count_calls(sandbox, ["CreateCnameToken", "ListCname", "AddDomainRecord",
                                  "DescribeSubDomainRecords", "PutCname"])
    again = stepper.advance(spec)
    assert again["status"] == "ended" and again["phase"] == "BOUND"
    assert all(not times for times in calls.values())


def test_a_step_run_twice_writes_one_txt_record(
    tmp_path: Path, sandbox: Sandbox, store: BindingStore,
) -> None:
    """A worker killed after write_txt acted but before its ``done`` was journaled: the next
    runner runs write_txt again, which observes the record and does not add another."""
    settings = settings_for(tmp_path, sandbox)
    first = stepper_for(settings, sandbox, store)
    spec = spec_of(settings, f"twice-{kind(store)}.example.com")
    assert first.advance(spec)["phase"] == "TOKEN_READY"
    assert first.advance(spec)["phase"] == "TXT_WRITTEN"
    # replay: the done as if lost, write_txt running again
    store.record(driver.running_event(f"examplebucket/twice-{kind(store)}.example.com",
                                      Step.WRITE_TXT,
                                      Phase.TOKEN_READY))
    second = stepper_for(settings, sandbox, store)  # another process: no memo
    while second.advance(spec)["phase"] != "BOUND":
        pass
    zone = sandbox.state.zone_for(f"_dnsauth.twice-{kind(store)}.example.com")
    assert zone is not None
    txt = [r for r in zone.records.values()
           if r.fqdn == f"_dnsauth.twice-{kind(store)}.example.com" and r.type == "TXT"]
    assert len(txt) == 1


def test_a_permanent_failure_ends_failed_and_is_not_retryable(
    tmp_path: Path, sandbox: Sandbox, store: BindingStore,
) -> None:
    settings = settings_for(tmp_path, sandbox)
    stepper = stepper_for(settings, sandbox, store)
    outcome = stepper.advance(spec_of(settings, "www.not-hosted.org"))
    assert outcome["status"] == "failed"
    assert outcome["phase"] == "FAILED" and not outcome["retryable"]
    assert outcome["error"] is not None
    record = store.get("examplebucket/www.not-hosted.org")
    assert record is not None and record.phase == Phase.FAILED


def test_a_binding_locked_elsewhere_is_left_for_a_later_round(
    tmp_path: Path, sandbox: Sandbox, store: BindingStore,
) -> None:
    settings = settings_for(tmp_path, sandbox)
    stepper = stepper_for(settings, sandbox, store)
    calls = count_calls(sandbox, ["CreateCnameToken"])
    with store.lock(f"examplebucket/held-{kind(store)}.example.com"):
        outcome = stepper.advance(spec_of(settings, f"held-{kind(store)}.example.com"))
    assert outcome["status"] == "locked" and outcome["retryable"]
    assert calls["CreateCnameToken"] == []


def test_workflows_bind_under_dbos_and_persist_no_secret(
    tmp_path: Path, sandbox: Sandbox, store: BindingStore, pg_url: str,
) -> None:
    from dbos import DBOSClient, WorkflowHandle

    settings = settings_for(tmp_path, sandbox, pg_url)
    worker = Worker(settings, WorkerOptions(executor_id="unit-1", concurrency=4,
                                            heartbeat_s=0.5, lapse_s=5, polling_s=0.1),
                    env=env_of(sandbox), store=store)
    domains = [f"wf{i}-{kind(store)}.example.com" for i in range(4)]
    worker.start()
    client = DBOSClient(system_database_url=pg_url)
    try:
        handles: list[WorkflowHandle[str]] = [client.enqueue(
            {"queue_name": specs.BIND_QUEUE, "workflow_name": specs.BIND_WORKFLOW,
             "workflow_id": specs.workflow_id("job-wf", d), "app_version": cname_flow.__version__},
            spec_of(settings, d)) for d in domains]
        results = [h.get_result() for h in handles]
    finally:
        client.destroy()
        worker.stop()
    assert results == ["BOUND"] * 4
    for d in domains:
        record = store.get(f"examplebucket/{d}")
        assert record is not None and record.phase == Phase.BOUND
    with psycopg.connect(pg_url) as conn:
        tables = [r[0] for r in conn.execute(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = 'dbos'")]
        dumped = "".join(str(r[0]) for t in tables
                         for r in conn.execute(f'SELECT t::text FROM dbos."{t}" AS t'))
        steps = conn.execute("SELECT count(*) FROM dbos.operation_outputs").fetchone()
    assert f"wf0-{kind(store)}.example.com" in dumped  # the inputs are there...
    assert sandbox.info.access_key_secret not in dumped  # ...and no secret
    assert steps is not None and steps[0] >= 4 * 6  # one checkpoint per machine step at least
    assert worker.stats.calls["AddDomainRecord"] == 4


def test_the_worker_shows_the_store_url_without_its_password() -> None:
    assert mask_url("postgresql://cname:hunter2@db:5432/cf") == "postgresql://cname:***@db:5432/cf"
    assert mask_url("postgresql://cname@db/cf") == "postgresql://cname@db/cf"


def test_the_worker_limiter_is_shared_through_the_database(pg_url: str) -> None:
    a = SharedRateLimiter(pg_url, {"PutCname": 3})
    b = SharedRateLimiter(pg_url, {"PutCname": 3})
    started = time.monotonic()
    for limiter in (a, b, a, b):
        limiter("PutCname")
        limiter.done("PutCname")
    assert time.monotonic() - started >= 0.9  # the 4th call waited for the window
    a.close()
    b.close()


class Scripted:
    """An :class:`~cname_flow.scaleout.workflows.Advancer` answering scripted outcomes per
    domain (the last one repeats), recording each call's ``renewals``."""

    def __init__(self, scripts: dict[str, list[StepOutcome]], max_attempts: int) -> None:
        self.scripts = scripts
        self.backoff = BackoffPolicy(max_attempts=max_attempts)
        self.calls: dict[str, list[int]] = {d: [] for d in scripts}
        self.ended: list[str] = []

    def advance(self, spec: specs.BindingSpec, renewals: int = 0) -> StepOutcome:
        domain = spec["domain"]
        self.calls[domain].append(renewals)
        script = self.scripts[domain]
        return script[min(len(self.calls[domain]), len(script)) - 1]

    def finished(self, spec: specs.BindingSpec) -> None:
        self.ended.append(spec["domain"])


def outcome(status: Status, phase: str, *, retryable: bool = False,
            delay_s: float = 0.0) -> StepOutcome:
    return StepOutcome(status=status, phase=phase, step=None, retryable=retryable,
                       delay_s=delay_s, error=None if status != "failed" else "Boom")


def test_the_workflow_retries_with_durable_sleeps_renews_and_gives_up_as_scripted(
    pg_url: str,
) -> None:
    from dbos import DBOS, DBOSClient, WorkflowHandle

    settings = Settings.model_validate({"store": {"url": pg_url}})
    retry = outcome("failed", "TXT_WRITTEN", retryable=True, delay_s=0.3)
    scripted = Scripted({
        "retry.example.com": [retry, retry, outcome("done", "BOUND")],
        "perm.example.com": [outcome("failed", "FAILED")],
        "exhaust.example.com": [retry],
        "renew.example.com": [outcome("renewed", "PENDING"), outcome("done", "BOUND")],
        "ended.example.com": [outcome("ended", "BOUND")],
        "locked.example.com": [outcome("locked", "PENDING", retryable=True, delay_s=0.1),
                               outcome("done", "BOUND")],
    }, max_attempts=3)
    workflows.install(scripted)
    DBOS(config=dbos_config(settings, WorkerOptions(executor_id="scripted", concurrency=8)))
    DBOS.launch()
    DBOS.register_queue(specs.BIND_QUEUE, worker_concurrency=8, polling_interval_sec=0.1,
                        on_conflict="always_update")
    client = DBOSClient(system_database_url=pg_url)
    started = time.monotonic()
    try:
        results = {}
        for domain in scripted.scripts:
            binding = Binding(domain=domain, bucket="b", region="cn-hangzhou")
            handle: WorkflowHandle[str] = client.enqueue(
                {"queue_name": specs.BIND_QUEUE, "workflow_name": specs.BIND_WORKFLOW,
                 "workflow_id": specs.workflow_id("job-s", binding.key),
                 "app_version": cname_flow.__version__}, specs.encode(binding, "job-s"))
            results[domain] = handle
        got = {d: h.get_result() for d, h in results.items()}
    finally:
        client.destroy()
        DBOS.destroy()
    assert got == {"retry.example.com": "BOUND", "perm.example.com": "FAILED",
                   "exhaust.example.com": "TXT_WRITTEN", "renew.example.com": "BOUND",
                   "ended.example.com": "BOUND", "locked.example.com": "BOUND"}
    assert len(scripted.calls["retry.example.com"]) == 3
    assert len(scripted.calls["perm.example.com"]) == 1
    assert len(scripted.calls["exhaust.example.com"]) == 3  # max_attempts failures, then left
    assert scripted.calls["renew.example.com"] == [0, 1]  # the renewal is carried
    assert len(scripted.calls["ended.example.com"]) == 1
    assert len(scripted.calls["locked.example.com"]) == 2
    assert time.monotonic() - started >= 0.6  # the two durable sleeps of "retry" were slept
    assert sorted(scripted.ended) == sorted(scripted.scripts)


def test_a_failed_binding_enqueued_again_starts_a_fresh_pass(
    tmp_path: Path, sandbox: Sandbox, store: BindingStore,
) -> None:
    settings = settings_for(tmp_path, sandbox)
    stepper = stepper_for(settings, sandbox, store)
    spec = spec_of(settings, "www.not-hosted.org")
    assert stepper.advance(spec)["phase"] == "FAILED"
    calls = count_calls(sandbox, ["DescribeDomains", "DescribeDomainInfo", "ListCname"])
    again = stepper.advance(spec)
    assert again["status"] == "failed" and again["step"] == "create_token"
    assert any(calls.values())  # it looked again

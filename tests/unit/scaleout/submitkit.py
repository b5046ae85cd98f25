"""A worker-mode world for the submit tests: the CLI over the fakes, ``store.url`` on the test's
PostgreSQL database (DBOS's queue), and a stand-in for the workers' effects on the store.

The workers themselves are another module's (``cname_flow.scaleout.workflows``); here a
"worker" is what a worker leaves behind: records in the store of record, written through the
same store port (``service.open_store``) the CLI reads.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from dbos import DBOS, DBOSClient

from cname_flow import service
from cname_flow.config import Settings, load_settings
from cname_flow.journal import ErrorInfo, JournalEvent
from cname_flow.model import CnameEntry, Phase, Step
from cname_flow.scaleout import spec
from tests.unit.cli.clikit import BUCKET, CliWorld


class WorkerWorld(CliWorld):
    """:class:`CliWorld` whose config sets ``store.url`` to ``pg_url``."""

    def __init__(self, tmp: Path, pg_url: str) -> None:
        super().__init__(tmp)
        self.pg_url = pg_url
        with self.config.open("a", encoding="utf-8") as out:
            out.write(f"store:\n  url: {pg_url}\n")

    @property
    def settings(self) -> Settings:
        """The settings the commands load from the config file."""
        return load_settings(self.config, env={})

    @contextmanager
    def client(self) -> Iterator[DBOSClient]:
        """A DBOS client on the test database (DBOS's tables created if no submit did yet)."""
        DBOS.migrate(self.pg_url)
        client = DBOSClient(system_database_url=self.pg_url)
        try:
            yield client
        finally:
            client.destroy()

    def workflows(self, job_id: str) -> list[Any]:
        """Job ``job_id``'s workflows as DBOS lists them (inputs loaded)."""
        with self.client() as client:
            return list(client.list_workflows(workflow_id_prefix=spec.workflow_id(job_id, "")))


def bound(key: str) -> JournalEvent:
    """The last event a worker writes for a binding it bound."""
    return JournalEvent(key=key, step=Step.VERIFY, status="done", phase=Phase.BOUND)


def failed(key: str, code: str = "CnameTaken", *, retryable: bool = False) -> JournalEvent:
    """A step failure a worker journals (phase FAILED unless retryable)."""
    return JournalEvent(key=key, step=Step.PUT_CNAME, status="failed",
                        phase=Phase.TXT_VISIBLE if retryable else Phase.FAILED,
                        error=ErrorInfo(code, f"PutCname refused: {code}", retryable))


def bind_at_oss(world: WorkerWorld, key: str) -> None:
    """What a worker's PutCname leaves at OSS: ``key``'s domain listed, Enabled."""
    bucket, _, domain = key.partition("/")
    world.oss.buckets[bucket].cnames[domain] = CnameEntry(domain, "Enabled", datetime.now(UTC))


def write(settings: Settings, *events: JournalEvent) -> None:
    """Record ``events`` in the store of record, as a worker's steps would."""
    with service.open_store(settings) as store:
        for event in events:
            store.record(event)


def key(domain: str) -> str:
    """The binding key of ``domain`` on the test bucket."""
    return f"{BUCKET}/{domain}"


@contextmanager
def fake_worker(world: WorkerWorld, effects: Callable[[str], list[JournalEvent]], *,
                timeout_s: float = 20.0) -> Iterator[list[str]]:
    """A thread that waits for binding workflows to be enqueued (any job), then writes
    ``effects(binding key)`` for each into the store, as a worker driving it would.

    Yields:
        The keys it handled (filled as it goes).
    """
    handled: list[str] = []
    stop = threading.Event()

    def run() -> None:
        deadline = time.monotonic() + timeout_s
        with world.client() as client:
            while not stop.is_set() and time.monotonic() < deadline:
                for row in client.list_workflows(name=spec.BIND_WORKFLOW):
                    k = _key_of(row.input)
                    if k not in handled:
                        time.sleep(0.2)  # the follower sees the binding in flight first
                        write(world.settings, *effects(k))
                        handled.append(k)
                stop.wait(0.05)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    try:
        yield handled
    finally:
        stop.set()
        thread.join()


def _key_of(inputs: Any) -> str:
    """The binding key of a workflow's inputs (``{"args": (BindingSpec,), "kwargs": {}}``)."""
    first = inputs["args"][0]
    return f"{first['bucket']}/{first['domain']}"


def dbos_text(pg_url: str) -> str:
    """Every row of every table of DBOS's ``dbos`` schema, as text (what DBOS persisted)."""
    import psycopg

    out: list[str] = []
    with psycopg.connect(pg_url) as conn:
        tables = [r[0] for r in conn.execute(
            "select table_name from information_schema.tables where table_schema = 'dbos'")]
        for table in tables:
            rows = conn.execute(f'select t::text from dbos."{table}" t').fetchall()
            out.extend(r[0] for r in rows)
    return "\n".join(out)

"""The PostgreSQL store beyond the shared contract (tests/unit/store/test_contract.py): locks
held by other processes and freed when they die, lock waits that block no writer, PostgreSQL
restarting under the store, the schema made once by many openers, and a password in the URL
never shown. Against a real server (tests/postgres.py)."""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import psycopg
import pytest

from cname_flow.cli.common import Outcome, outcome_of
from cname_flow.errors import JournalError, Locked
from cname_flow.journal import JournalEvent
from cname_flow.model import AuxStep, Phase, Step
from cname_flow.store.pg_conn import SCHEMA, mask_url
from cname_flow.store.postgres import PgStore
from tests.postgres import free_port, postgres

ROOT = Path(__file__).resolve().parents[3]
SENTINEL = "Sent1nel-pw-7f3a9"

HOLDER = textwrap.dedent(
    """
    import sys, time
    from cname_flow.journal import JournalEvent
    from cname_flow.model import AuxStep, Phase
    from cname_flow.store.postgres import PgStore
    url, key, hold_s = sys.argv[1], sys.argv[2], float(sys.argv[3])
    with PgStore(url) as store, store.lock(key):
        print("ready", flush=True)
        time.sleep(hold_s)
        store.record(JournalEvent(key, AuxStep.START, "done", Phase.PENDING, {"zone": "held"}))
    """
)


def event(key: str, n: int = 0) -> JournalEvent:
    return JournalEvent(key, Step.CREATE_TOKEN, "done", Phase.TOKEN_READY,
                        {"nameserver_addresses": n})


def spawn(*args: str) -> subprocess.Popen[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen([sys.executable, "-c", HOLDER, *args], stdout=subprocess.PIPE,
                            text=True, env=env)
    assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
    return proc


def test_a_lock_held_by_another_process_names_it_and_dies_with_it(pg_url: str) -> None:
    key = "bk/busy.example.com"
    child = spawn(pg_url, key, "60")
    try:
        with PgStore(pg_url) as store:
            with pytest.raises(Locked) as caught:
                store.lock(key, wait_s=0.3)
            message = str(caught.value)
            assert f"binding {key} is in use by pid {child.pid} on host " in message
            assert "python -c" in message  # the holder's command line
            assert outcome_of(caught.value) is Outcome.RETRYABLE
            child.send_signal(signal.SIGKILL)
            child.wait(10)
            with store.lock(key, wait_s=10):  # PostgreSQL ended the dead holder's session
                store.record(event(key))
    finally:
        child.kill()
        child.wait(10)


def test_a_waiter_gets_the_lock_and_sees_the_holders_events(pg_url: str) -> None:
    key = "bk/handover.example.com"
    child = spawn(pg_url, key, "0.5")
    with PgStore(pg_url) as store, store.lock(key, wait_s=20):
        record = store.get(key)
        assert record is not None and record.zone == "held"
    assert child.wait(10) == 0


def test_waiting_for_a_lock_blocks_no_other_thread(pg_url: str) -> None:
    with PgStore(pg_url, pool_size=2) as store, PgStore(pg_url) as other:
        other_lease = other.lock("bk/held.example.com")
        outcome: list[BaseException] = []

        def wait() -> None:
            try:
                store.lock("bk/held.example.com", wait_s=3)
            except BaseException as exc:
                outcome.append(exc)

        waiters = [threading.Thread(target=wait) for _ in range(4)]
        for waiter in waiters:
            waiter.start()
        started = time.monotonic()
        for n in range(30):  # meanwhile, records and locks of other bindings go on
            store.record(event("bk/free.example.com", n))
            with store.lock(f"bk/f{n}.example.com", wait_s=0):
                pass
        assert time.monotonic() - started < 2.5
        for waiter in waiters:
            waiter.join(10)
        other_lease.release()
        assert len(outcome) == 4 and all(isinstance(e, Locked) for e in outcome)


def test_after_a_restart_the_store_works_again_and_keeps_its_locks() -> None:
    with postgres() as server:  # a dedicated server: the session one is not disturbed
        url = server.create_database()
        with PgStore(url, lock_wait_s=0) as store, PgStore(url, lock_wait_s=0) as other:
            lease = store.lock("bk/a.example.com")
            store.record(event("bk/a.example.com", 1))
            server.restart()
            failures = 0
            for n in range(2, 6):  # the first calls may meet dead connections: retryable
                try:
                    store.record(event("bk/a.example.com", n))
                except JournalError as exc:
                    assert exc.retryable and "PostgreSQL store postgresql://" in str(exc)
                    failures += 1
            assert failures <= 1
            record = other.get("bk/a.example.com")
            assert record is not None and record.nameserver_addresses == 5
            with pytest.raises(Locked, match=f"pid {os.getpid()}"):
                other.lock("bk/a.example.com")  # taken again on reconnecting
            lease.release()
            with other.lock("bk/a.example.com"):
                pass


def test_a_lock_lost_in_a_restart_and_taken_by_another_refuses_the_record() -> None:
    with postgres() as server:
        url = server.create_database()
        with PgStore(url, lock_wait_s=0) as store, PgStore(url, lock_wait_s=0) as other:
            store.lock("bk/a.example.com")
            store.record(event("bk/a.example.com", 1))
            server.restart()
            for _ in range(2):
                try:
                    other_lease = other.lock("bk/a.example.com")
                    break
                except JournalError:
                    continue  # its dead idle connection, then a fresh one
            with pytest.raises(JournalError, match=r"lock on binding bk/a\.example\.com was lost"):
                for _ in range(2):
                    try:
                        store.record(event("bk/a.example.com", 2))
                    except JournalError as exc:
                        if "was lost" in str(exc):
                            raise
            other_lease.release()
            record = other.get("bk/a.example.com")
            assert record is not None and record.nameserver_addresses == 1  # nothing recorded


def test_many_openers_at_once_make_the_schema_once(pg_url: str) -> None:
    errors: list[BaseException] = []

    def opening() -> None:
        try:
            with PgStore(pg_url):
                pass
        except BaseException as exc:
            errors.append(exc)

    openers = [threading.Thread(target=opening) for _ in range(6)]
    for thread in openers:
        thread.start()
    for thread in openers:
        thread.join(60)
    assert errors == []
    with psycopg.connect(pg_url) as conn:
        rows = conn.execute(f"SELECT name, value FROM {SCHEMA}.meta").fetchall()
        assert rows == [("schema_version", "1")]
        conn.execute(f"UPDATE {SCHEMA}.meta SET value = '99'")
    with pytest.raises(JournalError, match="layout version 99"):
        PgStore(pg_url).open()


def test_a_password_in_the_url_is_never_shown(pg_url: str,
                                              caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    with_password = pg_url.replace("postgres@", f"postgres:{SENTINEL}@") + \
        f"?password={SENTINEL}&application_name=x"
    with PgStore(with_password) as store:  # trust authentication: the password is not checked
        store.record(event("bk/a.example.com"))
        shown = [store.location, repr(store), str(list(store.events()))]
        assert "***" in store.location
    unreachable = f"postgresql://postgres:{SENTINEL}@127.0.0.1:{free_port()}/db" \
                  f"?password={SENTINEL}&connect_timeout=2"
    with pytest.raises(JournalError) as caught:
        PgStore(unreachable).open()
    assert caught.value.retryable and outcome_of(caught.value) is Outcome.RETRYABLE
    shown += [str(caught.value), repr(caught.value), caplog.text]
    assert all(SENTINEL not in text for text in shown)
    assert "127.0.0.1" in str(caught.value)  # the message still says where


def test_mask_url_hides_every_password_form() -> None:
    assert mask_url("postgresql://u:pw@h:5432/db") == "postgresql://u:***@h:5432/db"
    assert mask_url("postgresql://h/db?password=pw&sslmode=require") == \
        "postgresql://h/db?password=***&sslmode=require"
    assert mask_url("postgresql://u@h/db") == "postgresql://u@h/db"
    assert mask_url("postgresql://u:p@[::1/db") == "postgresql://***"


def test_forgotten_bindings_keep_their_history(pg_url: str) -> None:
    with PgStore(pg_url) as store:
        store.record(JournalEvent("bk/a.example.com", AuxStep.START, "done", Phase.PENDING))
        with store.lock("bk/a.example.com"):
            assert store.forget("bk/a.example.com")
        assert store.get("bk/a.example.com") is None
        assert [e.step for e in store.events("bk/a.example.com")] == [AuxStep.START]


def test_records_reads_many_bindings_in_one_query(pg_url: str) -> None:
    with PgStore(pg_url) as store:
        for n in range(3):
            store.record(event(f"bk/r{n}.example.com", n))
        found = store.records(["bk/r2.example.com", "bk/none.example.com", "bk/r0.example.com"])
        assert list(found) == ["bk/r2.example.com", "bk/r0.example.com"]
        assert found["bk/r2.example.com"] == store.get("bk/r2.example.com")


def test_a_restart_under_load_wedges_no_thread() -> None:
    with postgres() as server:
        url = server.create_database()
        with PgStore(url, pool_size=3) as store:
            stop = threading.Event()
            restarted = threading.Event()
            done = [0] * 4
            failed = [0] * 4
            after = [0] * 4

            def work(n: int) -> None:
                i = 0
                while not stop.is_set():
                    i += 1
                    try:
                        store.record(event(f"bk/l{n}.example.com", i))
                    except JournalError as exc:
                        assert exc.retryable, exc
                        failed[n] += 1
                        time.sleep(0.05)
                        continue
                    done[n] += 1
                    after[n] += restarted.is_set()

            threads = [threading.Thread(target=work, args=(n,)) for n in range(4)]
            for thread in threads:
                thread.start()
            time.sleep(0.5)
            server.restart()
            restarted.set()
            time.sleep(1.0)
            stop.set()
            for thread in threads:
                thread.join(30)
            assert all(n > 0 for n in after), after  # every thread records again
            kept = len(list(store.events()))
            assert sum(done) <= kept <= sum(done) + sum(failed)

"""Heartbeats and the one-survivor claim of a lapsed executor, against a real PostgreSQL."""

from __future__ import annotations

import threading
from collections.abc import Sequence

import psycopg
import pytest

from cname_flow.scaleout.recovery import Heartbeat, beat, claim_lapsed, connect, mark_stopped
from tests.postgres import free_port


def age(url: str, executor_id: str, seconds: float) -> None:
    """Pretend ``executor_id`` last beat ``seconds`` ago."""
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("UPDATE cname_flow.executors SET last_seen = clock_timestamp() - "
                     "make_interval(secs => %s) WHERE executor_id = %s", (seconds, executor_id))


def row(url: str, executor_id: str) -> tuple[object, ...]:
    with psycopg.connect(url, autocommit=True) as conn:
        found = conn.execute("SELECT recovered_by, stopped_at FROM cname_flow.executors "
                             "WHERE executor_id = %s", (executor_id,)).fetchone()
    assert found is not None
    return tuple(found)


def test_a_lapsed_executor_is_claimed_by_exactly_one_of_many_survivors(pg_url: str) -> None:
    conns = {name: connect(pg_url) for name in ("dead", "w1", "w2", "w3", "w4")}
    for name, conn in conns.items():
        beat(conn, name, "0.1.0")
    age(pg_url, "dead", 60)
    claims: dict[str, list[str]] = {}
    barrier = threading.Barrier(4)

    def survivor(name: str) -> None:
        barrier.wait()
        claims[name] = claim_lapsed(conns[name], name, 30)

    threads = [threading.Thread(target=survivor, args=(n,)) for n in ("w1", "w2", "w3", "w4")]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    winners = [name for name, got in claims.items() if got == ["dead"]]
    assert len(winners) == 1
    assert sum(len(got) for got in claims.values()) == 1
    assert row(pg_url, "dead")[0] == winners[0]
    for conn in conns.values():
        conn.close()


def test_a_live_executor_is_not_claimed_and_a_returning_one_clears_its_claim(
    pg_url: str,
) -> None:
    with connect(pg_url) as a, connect(pg_url) as b:
        beat(a, "a", "0.1.0")
        beat(b, "b", "0.1.0")
        assert claim_lapsed(b, "b", 30) == []
        age(pg_url, "a", 60)
        assert claim_lapsed(b, "b", 30) == ["a"]
        assert claim_lapsed(b, "b", 30) == []  # claimed once, by a live claimer
        beat(a, "a", "0.1.0")  # it came back
        assert row(pg_url, "a")[0] is None
        age(pg_url, "a", 60)
        assert claim_lapsed(b, "b", 30) == ["a"]  # and can lapse again


def test_a_claim_whose_claimer_lapsed_is_taken_over(pg_url: str) -> None:
    with connect(pg_url) as conn:
        for name in ("dead", "claimer", "heir"):
            beat(conn, name, "0.1.0")
        age(pg_url, "dead", 60)
        assert claim_lapsed(conn, "claimer", 30) == ["dead"]
        age(pg_url, "claimer", 60)  # the claimer died before it finished recovering
        assert claim_lapsed(conn, "heir", 30) == ["claimer", "dead"]


def test_a_stopped_executor_is_claimable_at_once(pg_url: str) -> None:
    with connect(pg_url) as conn:
        beat(conn, "leaving", "0.1.0")
        beat(conn, "staying", "0.1.0")
        mark_stopped(conn, "leaving")
        assert row(pg_url, "leaving")[1] is not None
        assert claim_lapsed(conn, "staying", 30) == ["leaving"]


def test_heartbeat_recovers_what_it_claims_through_the_hook(pg_url: str) -> None:
    recovered: list[list[str]] = []

    def hook(ids: Sequence[str]) -> int:
        recovered.append(list(ids))
        return 3

    with connect(pg_url) as conn:
        beat(conn, "gone", "0.1.0")
    age(pg_url, "gone", 10)
    heart = Heartbeat(pg_url, "alive", "0.1.0", heartbeat_s=0.2, lapse_s=1.0, recover=hook)
    heart.start()
    heart.stop(graceful=True)
    assert recovered == [["gone"]]
    assert heart.recovered == ["gone"]
    assert row(pg_url, "alive")[1] is not None  # marked stopped


def test_heartbeat_refuses_a_lapse_not_longer_than_the_beat() -> None:
    with pytest.raises(ValueError, match="lapse_s"):
        Heartbeat("postgresql://x@127.0.0.1/none", "a", "0.1.0", heartbeat_s=5, lapse_s=5)


def test_heartbeat_start_fails_on_an_unreachable_database_and_never_shows_the_password() -> None:
    url = f"postgresql://cname:s3cret-sentinel@127.0.0.1:{free_port()}/none"
    heart = Heartbeat(url, "a", "0.1.0", heartbeat_s=0.1, lapse_s=1.0)
    with pytest.raises(psycopg.OperationalError) as caught:
        heart.start()
    assert "s3cret-sentinel" not in str(caught.value)


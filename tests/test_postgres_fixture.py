"""The PostgreSQL fixture itself: a real server, reachable on loopback, one database per test."""

from __future__ import annotations

import psycopg

from tests.postgres import PostgresServer


def test_pg_url_is_a_fresh_database_on_a_real_server(pg_url: str,
                                                     postgres_server: PostgresServer) -> None:
    with psycopg.connect(pg_url) as conn:
        version = conn.execute("SHOW server_version").fetchone()
        tables = conn.execute("SELECT count(*) FROM pg_tables WHERE schemaname = 'public'"
                              ).fetchone()
        address = conn.execute("SELECT inet_server_addr()::text").fetchone()
    assert version is not None and int(version[0].split(".")[0]) >= 13
    assert tables == (0,)
    assert address is not None and address[0].startswith("127.0.0.1")
    assert postgres_server.port > 0

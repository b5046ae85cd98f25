"""``cname-flow worker`` as a real process: refusals, the startup line, signals and exit codes,
and no password in anything it prints."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import psycopg
import pytest
import yaml

from cname_flow.config import Settings
from cname_flow.errors import ConfigError
from cname_flow.scaleout.app import (
    EXECUTOR_ID_ENV,
    WorkerOptions,
    executor_id,
    register_schedule,
)
from tests.e2e.bindkit import SandboxEnv, sandbox_env
from tests.postgres import free_port

SENTINEL = "pw-sentinel-7f3a"


def with_password(url: str) -> str:
    """``url`` with the sentinel as password (the fixture's server trusts loopback, so the
    password is ignored by the server but travels through every layer of the worker)."""
    parts = urlsplit(url)
    netloc = f"{parts.username}:{SENTINEL}@{parts.hostname}:{parts.port}"
    return urlunsplit(parts._replace(netloc=netloc))


def set_store(sb: SandboxEnv, url: str | None) -> None:
    cfg = yaml.safe_load(sb.config.read_text(encoding="utf-8"))
    cfg["store"] = {"url": url}
    sb.config.write_text(yaml.safe_dump(cfg), encoding="utf-8")


def worker(sb: SandboxEnv, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "cname_flow", "--config", str(sb.config), "worker", *args],
        env=sb.env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def test_worker_without_a_postgres_store_refuses_with_exit_2(tmp_path: Path) -> None:
    with sandbox_env(tmp_path) as sb:
        done = sb.cli("worker", "--executor-id", "w1")
    assert done.returncode == 2
    assert "store.url" in done.stderr and "CNAME_FLOW_STORE_URL" in done.stderr


def test_worker_with_an_unreachable_database_exits_75_without_the_password(
    tmp_path: Path,
) -> None:
    with sandbox_env(tmp_path) as sb:
        set_store(sb, f"postgresql://cname:{SENTINEL}@127.0.0.1:{free_port()}/cf")
        done = sb.cli("worker", "--executor-id", "w1", timeout=60)
    assert done.returncode == 75, done.stderr
    assert "unreachable" in done.stderr and "cname:***@127.0.0.1" in done.stderr
    assert SENTINEL not in done.stdout + done.stderr


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_worker_starts_logs_without_the_password_and_exits_on_a_signal(
    tmp_path: Path, pg_url: str, signum: signal.Signals,
) -> None:
    with sandbox_env(tmp_path) as sb:
        set_store(sb, with_password(pg_url))
        proc = worker(sb, "--executor-id", "cli-w1", "--concurrency", "3",
                      "--heartbeat-s", "0.2", "--lapse-s", "2")
        assert proc.stdout is not None
        lines: list[str] = []
        end = time.monotonic() + 60
        while not any("worker cli-w1: queue" in line for line in lines):
            line = proc.stdout.readline()
            assert line or proc.poll() is None, "".join(lines)
            assert time.monotonic() < end, "".join(lines)
            lines.append(line)
        with psycopg.connect(pg_url) as conn:
            row = conn.execute("SELECT pid FROM cname_flow.executors "
                               "WHERE executor_id = 'cli-w1'").fetchone()
        proc.send_signal(signum)
        out, _ = proc.communicate(timeout=60)
        with psycopg.connect(pg_url) as conn:
            stopped = conn.execute("SELECT stopped_at FROM cname_flow.executors "
                                   "WHERE executor_id = 'cli-w1'").fetchone()
    text = "".join(lines) + out
    assert proc.returncode == 128 + signum
    started = next(line for line in lines if "worker cli-w1: queue" in line)
    assert "cname-flow-bindings" in started and "concurrency 3" in started
    assert ":***@127.0.0.1" in started
    assert SENTINEL not in text
    assert row is not None and row[0] == proc.pid  # it beat
    assert stopped is not None and stopped[0] is not None  # a graceful stop is recorded


def test_executor_id_comes_from_the_option_then_the_environment_then_the_host() -> None:
    assert executor_id("given", {EXECUTOR_ID_ENV: "env"}) == "given"
    assert executor_id(None, {EXECUTOR_ID_ENV: "env-1"}) == "env-1"
    assert executor_id(None, {})  # the host name
    with pytest.raises(ConfigError, match="executor id"):
        executor_id("bad id/with slash", {})


@pytest.mark.parametrize(("args", "message"), [
    (["--reconcile-apply"], "--reconcile-apply: only with --reconcile-schedule"),
    (["--reconcile-schedule", "0 * * * * *"], "needs --reconcile-manifest"),
])
def test_worker_refuses_inconsistent_schedule_options_with_exit_2(
    tmp_path: Path, args: list[str], message: str,
) -> None:
    with sandbox_env(tmp_path) as sb:
        set_store(sb, f"postgresql://cname@127.0.0.1:{free_port()}/cf")
        done = sb.cli("worker", "--executor-id", "w1", *args)
    assert done.returncode == 2
    assert message in done.stderr


def test_register_schedule_passes_the_cron_and_the_options_to_the_module(
    tmp_path: Path,
) -> None:
    calls: list[tuple[Settings, dict[str, Any]]] = []

    class Module:
        @staticmethod
        def register(settings: Settings, **kwargs: Any) -> None:
            calls.append((settings, kwargs))

    settings = Settings()
    manifest = tmp_path / "m.yaml"
    options = WorkerOptions(executor_id="w1", reconcile_schedule="0 */5 * * * *",
                            reconcile={"manifest": manifest, "apply": True})
    assert register_schedule(settings, options, Module()) is True
    assert calls == [(settings, {"cron": "0 */5 * * * *", "manifest": manifest, "apply": True})]
    assert register_schedule(settings, options, None) is False  # no schedule module: no-op
    assert register_schedule(settings, WorkerOptions(executor_id="w1"), Module()) is False
    assert len(calls) == 1

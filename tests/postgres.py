"""A real PostgreSQL server for the tests: a throwaway cluster in a temporary directory, on a
loopback port, run by an unprivileged user.

``initdb`` refuses to run as root, so when the tests run as root (CI does) the cluster is made
and started by the ``postgres`` user Debian's package creates (``nobody`` when there is none)
through ``runuser``; otherwise by the current user. Trust authentication is acceptable only
because the server listens on 127.0.0.1 alone and is removed at the end of the session.

The binaries are found with ``pg_config --bindir``, then under ``/usr/lib/postgresql/*/bin``
(Debian's layout), then on ``PATH``. ``.ci/run`` installs Debian's ``postgresql`` package when
``initdb`` is absent, so a missing server is an error here, never a skip.

Fixtures (registered in ``tests/conftest.py``): ``postgres_server`` (one per session) and
``pg_url`` (a fresh, empty database per test).
"""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

#: How long the server is given to start or stop, seconds.
START_TIMEOUT_S = 60.0


def bindir() -> Path:
    """The directory of ``initdb`` and ``pg_ctl``.

    Raises:
        RuntimeError: no PostgreSQL server binaries on this machine (install Debian's
            ``postgresql`` package; ``.ci/run`` does).
    """
    pg_config = shutil.which("pg_config")
    if pg_config:
        found = subprocess.run([pg_config, "--bindir"], capture_output=True, text=True,
                               check=False).stdout.strip()
        if found and (Path(found) / "initdb").exists():
            return Path(found)
    for candidate in sorted(glob.glob("/usr/lib/postgresql/*/bin"), reverse=True):
        if (Path(candidate) / "initdb").exists():
            return Path(candidate)
    initdb = shutil.which("initdb")
    if initdb:
        return Path(initdb).resolve().parent
    raise RuntimeError("PostgreSQL server binaries (initdb, pg_ctl) not found: install Debian's "
                       "'postgresql' package (.ci/run does)")


def free_port() -> int:
    """A TCP port free on 127.0.0.1 now (the server binds it a moment later)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def server_user() -> str | None:
    """Who runs the server: None for the current user, or the unprivileged account used when
    the tests run as root."""
    if os.geteuid() != 0:
        return None
    for name in ("postgres", "nobody"):
        with contextlib.suppress(KeyError):
            pwd.getpwnam(name)
            return name
    raise RuntimeError("running as root and no unprivileged 'postgres' or 'nobody' user exists")


@dataclass
class PostgresServer:
    """A running throwaway cluster.

    Attributes:
        directory: the temporary directory holding the data directory, the socket and the log.
        port: the loopback TCP port it listens on.
        user: the OS user running it (None: the current user).
        settings: extra ``name=value`` server settings (``-c``), e.g.
            ``shared_preload_libraries=pg_stat_statements`` for a bench.
    """

    directory: Path
    port: int
    user: str | None
    settings: tuple[str, ...] = ()

    @property
    def base_url(self) -> str:
        """``postgresql://postgres@127.0.0.1:<port>`` (append ``/<database>``)."""
        return f"postgresql://postgres@127.0.0.1:{self.port}"

    def url(self, database: str = "postgres") -> str:
        """The URL of ``database`` on this server."""
        return f"{self.base_url}/{database}"

    def _run(self, *argv: str) -> subprocess.CompletedProcess[str]:
        command = [str(bindir() / argv[0]), *argv[1:]]
        if self.user is not None:
            command = ["runuser", "-u", self.user, "--", *command]
        done = subprocess.run(command, capture_output=True, text=True, timeout=START_TIMEOUT_S,
                              cwd=self.directory, check=False)
        if done.returncode != 0:
            log = self.directory / "pg.log"
            tail = log.read_text(errors="replace")[-2000:] if log.exists() else ""
            raise RuntimeError(f"{argv[0]} failed ({done.returncode}): {done.stderr[-2000:]}\n"
                               f"{tail}")
        return done

    def init(self) -> None:
        """``initdb`` (trust authentication, superuser ``postgres``, UTF-8)."""
        self._run("initdb", "-D", str(self.directory / "data"), "-A", "trust", "-U", "postgres",
                  "-E", "UTF8", "--no-sync")

    def start(self) -> None:
        """``pg_ctl start`` on 127.0.0.1:``port``, socket in the temporary directory; waits
        until it accepts connections."""
        options = (f"-p {self.port} -k {self.directory} -c listen_addresses=127.0.0.1 "
                   "-c fsync=off -c max_connections=300 -c shared_buffers=64MB"
                   + "".join(f" -c {setting}" for setting in self.settings))
        self._run("pg_ctl", "-D", str(self.directory / "data"), "-o", options,
                  "-l", str(self.directory / "pg.log"), "-w", "-t", str(int(START_TIMEOUT_S)),
                  "start")

    def stop(self, mode: str = "fast") -> None:
        """``pg_ctl stop -m <mode>`` (``fast``, ``immediate``: a crash)."""
        self._run("pg_ctl", "-D", str(self.directory / "data"), "-m", mode, "-w", "stop")

    def restart(self, mode: str = "fast") -> None:
        """Stop, then start again on the same port (clients see their connections drop)."""
        self.stop(mode)
        self.start()

    def create_database(self) -> str:
        """A new empty database; returns its URL."""
        import psycopg

        name = "t_" + uuid.uuid4().hex[:12]
        with psycopg.connect(self.url(), autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)


@contextlib.contextmanager
def postgres(*settings: str) -> Iterator[PostgresServer]:
    """A throwaway cluster, started (with extra ``name=value`` server ``settings``); stopped and
    removed on exit.

    Raises:
        RuntimeError: no server binaries, or the server did not start (with its log's tail).
    """
    user = server_user()
    directory = Path(tempfile.mkdtemp(prefix="cname-flow-pg-"))
    if user is not None:
        entry = pwd.getpwnam(user)
        os.chown(directory, entry.pw_uid, entry.pw_gid)
    directory.chmod(0o700)
    server = PostgresServer(directory, free_port(), user, settings)
    try:
        server.init()
        for attempt in range(3):
            try:
                server.start()
                break
            except RuntimeError:
                if attempt == 2:
                    raise
                server.port = free_port()
                time.sleep(0.2)
        yield server
    finally:
        with contextlib.suppress(Exception):
            server.stop("immediate")
        shutil.rmtree(directory, ignore_errors=True)

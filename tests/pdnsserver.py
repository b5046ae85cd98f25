"""A real PowerDNS Authoritative Server for the tests: ``pdns_server`` with the gsqlite3 backend
and its HTTP API, a throwaway instance in a temporary directory, on free loopback ports (DNS and
API), run by an unprivileged user.

It hosts :data:`ZONES` (the contract suite's world: ``example.com`` and ``example.com.cn``),
created through the API itself (``POST /api/v1/servers/localhost/zones``, kind ``Native``: no
NOTIFY, nothing leaves the machine), each with one NS ``ns1.<zone>``.

When the tests run as root (CI does) the daemon runs as Debian's ``pdns`` user (``nobody`` when
there is none) through ``setpriv``, which execs it, so the PID held is the daemon's own (see
:mod:`tests.dnsservers`). ``security-poll-suffix=`` (empty) keeps the start-up security poll off
the network. A missing binary or schema is an error naming the package, never a skip.

Configuration as measured in ``shared/reference/next-wave.md`` §2.3 and Appendix A.4
(Debian 12: pdns-server 4.7.3, pdns-backend-sqlite3 4.7.3).
"""

from __future__ import annotations

import contextlib
import os
import pwd
import secrets
import shutil
import sqlite3
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from tests.dnsservers import (
    START_TIMEOUT_S,
    ZONES,
    binary,
    free_port,
    server_user,
    spawn,
)

#: Where Debian's pdns-backend-sqlite3 puts the schema (the /usr/share/doc path links to it).
SCHEMAS = (Path("/usr/share/pdns-backend-sqlite3/schema/schema.sqlite3.sql"),
           Path("/usr/share/doc/pdns-backend-sqlite3/schema.sqlite3.sql"))
#: The server id of a stand-alone server in the API's paths.
SERVER_ID = "localhost"


@dataclass
class PdnsServer:
    """A running throwaway PowerDNS server.

    Attributes:
        directory: the temporary directory holding ``pdns.conf``, the sqlite database, the
            control socket and the log.
        dns_port: the loopback port it answers DNS on, UDP and TCP.
        api_port: the loopback port of its web server (the HTTP API).
        api_key: the API key (``X-API-Key``).
        zones: the zones it hosts.
        process: the daemon itself.
    """

    directory: Path
    dns_port: int
    api_port: int
    api_key: str = field(repr=False)
    zones: tuple[str, ...]
    process: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    @property
    def host(self) -> str:
        return "127.0.0.1"

    @property
    def api_url(self) -> str:
        """The web server's base URL, e.g. ``http://127.0.0.1:18081``."""
        return f"http://127.0.0.1:{self.api_port}"

    @property
    def server_id(self) -> str:
        return SERVER_ID

    def client(self) -> httpx.Client:
        """An httpx client for ``/api/v1/servers/localhost`` with the API key (the caller
        closes it)."""
        return httpx.Client(base_url=f"{self.api_url}/api/v1/servers/{SERVER_ID}",
                            headers={"X-API-Key": self.api_key}, timeout=5.0,
                            trust_env=False)

    def log_tail(self, size: int = 3000) -> str:
        """The end of the daemon's log (stdout and stderr)."""
        log = self.directory / "server.log"
        return log.read_text(errors="replace")[-size:] if log.exists() else ""

    def stop(self) -> None:
        """SIGTERM the daemon, SIGKILL it after 10 s."""
        proc = self.process
        if proc is None or proc.poll() is not None:
            return
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)


def schema() -> Path:
    """The packaged gsqlite3 schema.

    Raises:
        RuntimeError: not installed; the message names the Debian package.
    """
    for path in SCHEMAS:
        if path.exists():
            return path
    raise RuntimeError("the gsqlite3 schema is missing: install Debian's "
                       "'pdns-backend-sqlite3' package (.ci/run does)")


def pdns_config(server: PdnsServer) -> str:
    """``pdns.conf``: gsqlite3, loopback only, API on, no daemonizing, no security poll."""
    root = server.directory
    return "\n".join([
        "launch=gsqlite3",
        f"gsqlite3-database={root}/pdns.sqlite3",
        "local-address=127.0.0.1",
        f"local-port={server.dns_port}",
        f"socket-dir={root}",
        "daemon=no",
        "guardian=no",
        "disable-syslog=yes",
        "loglevel=4",
        "security-poll-suffix=",
        "api=yes",
        f"api-key={server.api_key}",
        "webserver=yes",
        "webserver-address=127.0.0.1",
        f"webserver-port={server.api_port}",
        "webserver-allow-from=127.0.0.1",
        "",
    ])


def _write(server: PdnsServer, user: pwd.struct_passwd | None) -> None:
    root = server.directory
    (root / "pdns.conf").write_text(pdns_config(server))
    database = root / "pdns.sqlite3"
    if not database.exists():
        with contextlib.closing(sqlite3.connect(database)) as db:
            db.executescript(schema().read_text())
    for path in (root, *root.rglob("*")):
        path.chmod(0o700 if path.is_dir() else 0o600)
        if user is not None:
            os.chown(path, user.pw_uid, user.pw_gid)


def _api_up(server: PdnsServer) -> bool:
    try:
        with server.client() as api:
            return api.get(f"{server.api_url}/api/v1/servers/{SERVER_ID}").status_code == 200
    except httpx.HTTPError:
        return False


def _wait_api(server: PdnsServer) -> bool:
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if server.process is not None and server.process.poll() is not None:
            return False
        if _api_up(server):
            return True
        time.sleep(0.1)
    return False


def create_zones(server: PdnsServer) -> None:
    """Create each of ``server.zones`` through the API (kind Native, NS ``ns1.<zone>``)."""
    with server.client() as api:
        for zone in server.zones:
            answer = api.post("/zones", json={
                "name": f"{zone}.", "kind": "Native", "nameservers": [f"ns1.{zone}."],
                "soa_edit_api": "INCEPTION-INCREMENT"})
            if answer.status_code != 201:
                raise RuntimeError(f"creating zone {zone}: {answer.status_code} {answer.text}")


@contextlib.contextmanager
def pdns(zones: tuple[str, ...] = ZONES) -> Iterator[PdnsServer]:
    """A real PowerDNS server (``pdns_server``, gsqlite3, API on) hosting ``zones``.

    Tries three port pairs: a port taken between the probe and the bind shows as never up.
    Stops the daemon and removes the directory on exit.
    """
    daemon = binary("pdns_server", "pdns-server")
    user = server_user("pdns")
    directory = Path(tempfile.mkdtemp(prefix="cname-flow-pdns-"))
    server = PdnsServer(directory, 0, 0, secrets.token_urlsafe(24), zones)
    try:
        for attempt in range(3):
            server.dns_port, server.api_port = free_port(), free_port()
            _write(server, user)
            argv = [daemon, f"--config-dir={directory}"]
            server.process = spawn(argv, directory, user)
            if _wait_api(server):
                break
            server.stop()
            if attempt == 2:
                raise RuntimeError(f"pdns_server did not start (API on 127.0.0.1:"
                                   f"{server.api_port}):\n{server.log_tail()}")
        create_zones(server)
        yield server
    finally:
        server.stop()
        shutil.rmtree(directory, ignore_errors=True)

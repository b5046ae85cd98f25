"""Real authoritative DNS servers for the tests: BIND 9 (``named``) and Knot (``knotd``), each a
throwaway instance in a temporary directory, on a free loopback port, run by an unprivileged
user, accepting RFC 2136 updates signed with a TSIG key (hmac-sha256).

Both serve :data:`ZONES` (the contract suite's world: ``example.com`` and ``example.com.cn``),
each with a zone cut at ``delegated.<zone>`` (:data:`DELEGATED_LABEL`).
The update policy lets the key change TXT and CNAME records anywhere in a zone except under
``locked.<zone>`` (:data:`LOCKED_LABEL`), which it denies, so a test can hit a real policy
refusal. How each server says "no" differs, and is what the adapter must map:

* BIND 9 (``update-policy { deny …; grant … zonesub TXT CNAME; }``) answers REFUSED;
* Knot (an ACL with ``deny: on`` and ``update-owner``) answers NOTAUTH with TSIG error BADKEY.

When the tests run as root (CI does) the daemon runs as the package's own ``bind`` / ``knot``
user (``nobody`` when there is none), through ``setpriv``, which execs the daemon: the PID the
test holds is the daemon's own, so stopping it never leaves an orphan behind (``runuser``
would fork and keep a PAM session in between). Otherwise it runs as the current user. No
system service is used or needed: ``.ci/run`` installs Debian's ``bind9`` and ``knot`` and
makes sure none of their services runs. A missing binary is an error naming the package to
install, never a skip.

Configurations follow ``shared/reference/next-wave.md`` §2.3 and Appendix A (measured on
Debian 12: bind9 9.18, knot 3.2).
"""

from __future__ import annotations

import base64
import contextlib
import os
import pwd
import secrets
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import dns.flags
import dns.message
import dns.query
import dns.rcode
import dns.rdatatype

#: The zones every test server hosts: the contract suite's world.
ZONES = ("example.com", "example.com.cn")
#: Names under ``<LOCKED_LABEL>.<zone>`` are outside the update policy.
LOCKED_LABEL = "locked"
#: ``<DELEGATED_LABEL>.<zone>`` is a zone cut: delegated to other servers.
DELEGATED_LABEL = "delegated"
#: The TSIG key's name and algorithm (RFC 8945).
KEY_NAME = "cname-flow-upd"
ALGORITHM = "hmac-sha256"
#: How long a server is given to start answering, seconds.
START_TIMEOUT_S = 30.0


@dataclass
class DnsServer:
    """A running throwaway authoritative server.

    Attributes:
        kind: ``"bind9"`` or ``"knot"``.
        directory: the temporary directory holding configuration, zones, journals and the log.
        port: the loopback port it answers on, UDP and TCP.
        key_name / algorithm / secret: the TSIG key allowed to update (secret in base64).
        zones: the zones it serves.
        process: the daemon itself.
    """

    kind: str
    directory: Path
    port: int
    key_name: str
    algorithm: str
    secret: str = field(repr=False)
    zones: tuple[str, ...]
    process: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    @property
    def host(self) -> str:
        return "127.0.0.1"

    def log_tail(self, size: int = 3000) -> str:
        """The end of the daemon's log (stdout and stderr)."""
        log = self.directory / "server.log"
        return log.read_text(errors="replace")[-size:] if log.exists() else ""

    def stop(self) -> None:
        """SIGTERM the daemon, SIGKILL it after 10 s."""
        proc = self.process
        if proc is None or proc.poll() is not None:
            return
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)


def binary(name: str, package: str) -> str:
    """The path of ``name`` (also looked for in ``/usr/sbin``).

    Raises:
        RuntimeError: not installed; the message names the Debian package (``.ci/run``
            installs it).
    """
    found = shutil.which(name) or shutil.which(name, path="/usr/sbin:/usr/local/sbin")
    if found is None:
        raise RuntimeError(f"{name} not found: install Debian's {package!r} package "
                           f"(apt-get install -y {package}; .ci/run does)")
    return found


def spawn(argv: list[str], directory: Path, user: pwd.struct_passwd | None,
          ) -> subprocess.Popen[bytes]:
    """Start a server daemon in ``directory`` (as ``user`` through setpriv when given), its
    output appended to ``directory/server.log``."""
    if user is not None:
        argv = ["setpriv", f"--reuid={user.pw_uid}", f"--regid={user.pw_gid}",
                "--clear-groups", "--", *argv]
    with open(directory / "server.log", "ab") as log:
        return subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, cwd=directory)


def free_port() -> int:
    """A port free on 127.0.0.1 for both UDP and TCP now (the server binds it a moment later)."""
    for _ in range(50):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as tcp:
            tcp.bind(("127.0.0.1", 0))
            port: int = tcp.getsockname()[1]
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
                try:
                    udp.bind(("127.0.0.1", port))
                except OSError:
                    continue
            return port
    raise RuntimeError("no free loopback port for both UDP and TCP")


def server_user(preferred: str) -> pwd.struct_passwd | None:
    """Who runs the daemon: ``None`` (the current user) unless root, else ``preferred`` (the
    package's user) or ``nobody``."""
    if os.geteuid() != 0:
        return None
    for name in (preferred, "nobody"):
        with contextlib.suppress(KeyError):
            return pwd.getpwnam(name)
    raise RuntimeError(f"running as root and no unprivileged {preferred!r} or 'nobody' user")


def zone_text(zone: str) -> str:
    """A minimal zone: SOA, one NS at ``ns1.<zone>`` (127.0.0.1), and ``<DELEGATED_LABEL>``
    delegated to a server elsewhere."""
    return (f"$TTL 600\n"
            f"@ IN SOA ns1.{zone}. hostmaster.{zone}. 1 3600 600 86400 60\n"
            f"@ IN NS ns1.{zone}.\n"
            f"ns1 IN A 127.0.0.1\n"
            f"{DELEGATED_LABEL} IN NS ns1.example.net.\n")


def bind9_config(root: Path, port: int, secret: str, zones: tuple[str, ...]) -> str:
    """``named.conf``: loopback only, no rndc, no recursion, no NOTIFY; each zone updatable by
    the key for TXT/CNAME except under ``locked.<zone>`` (first matching rule wins)."""
    zone_blocks = "".join(
        f'zone "{z}" {{\n  type primary;\n  file "{z}.db";\n  update-policy {{\n'
        f"    deny {KEY_NAME} subdomain {LOCKED_LABEL}.{z}. ANY;\n"
        f"    grant {KEY_NAME} zonesub TXT CNAME;\n  }};\n}};\n"
        for z in zones)
    return (f'options {{\n  directory "{root}";\n  pid-file "{root}/named.pid";\n'
            f'  session-keyfile "{root}/session.key";\n'
            f'  managed-keys-directory "{root}";\n'
            f"  listen-on port {port} {{ 127.0.0.1; }};\n  listen-on-v6 {{ none; }};\n"
            f"  recursion no;\n  dnssec-validation no;\n  notify no;\n}};\n"
            f"controls {{ }};\n"
            f'key "{KEY_NAME}" {{ algorithm {ALGORITHM}; secret "{secret}"; }};\n'
            f"{zone_blocks}")


def knot_config(root: Path, port: int, secret: str, zones: tuple[str, ...]) -> str:
    """``knot.conf``: loopback only; an ACL denying the key under ``locked`` (owner names are
    relative to the zone), then one allowing TXT/CNAME updates (Knot 3.2 keywords)."""
    zone_list = "".join(f"  - domain: {z}\n    acl: [locked, ddns]\n" for z in zones)
    return (f'server:\n  rundir: "{root}"\n  listen: 127.0.0.1@{port}\n'
            f"log:\n  - target: stderr\n    any: info\n"
            f'database:\n  storage: "{root}/db"\n'
            f"key:\n  - id: {KEY_NAME}\n    algorithm: {ALGORITHM}\n    secret: {secret}\n"
            f"acl:\n  - id: locked\n    key: {KEY_NAME}\n    action: update\n"
            f"    update-owner: name\n    update-owner-match: sub-or-equal\n"
            f"    update-owner-name: [{LOCKED_LABEL}]\n    deny: on\n"
            f"  - id: ddns\n    key: {KEY_NAME}\n    action: update\n"
            f"    update-type: [TXT, CNAME]\n"
            f'template:\n  - id: default\n    storage: "{root}"\n    file: "%s.db"\n'
            f"    zonefile-sync: -1\n    journal-content: changes\n"
            f"zone:\n{zone_list}")


def serving(port: int, zones: tuple[str, ...]) -> bool:
    """True when every zone's SOA comes back authoritative from 127.0.0.1:``port``."""
    for zone in zones:
        query = dns.message.make_query(f"{zone}.", dns.rdatatype.SOA)
        query.flags &= ~dns.flags.RD
        try:
            answer = dns.query.udp(query, "127.0.0.1", port=port, timeout=0.5)
        except (OSError, dns.exception.DNSException):
            return False
        if answer.rcode() != dns.rcode.NOERROR or not answer.flags & dns.flags.AA:
            return False
    return True


@contextlib.contextmanager
def _server(kind: str, package: str, user_name: str, zones: tuple[str, ...]) -> Iterator[DnsServer]:
    """Write the configuration of ``kind`` into a fresh temporary directory, start the daemon
    as the unprivileged user, wait until it serves every zone; stop it and remove all on exit.
    Tries three ports: a port taken between the probe and the bind shows as never serving."""
    daemon = binary("named" if kind == "bind9" else "knotd", package)
    user = server_user(user_name)
    directory = Path(tempfile.mkdtemp(prefix=f"cname-flow-{kind}-"))
    secret = base64.b64encode(secrets.token_bytes(32)).decode()
    server = DnsServer(kind, directory, 0, KEY_NAME, ALGORITHM, secret, zones)
    try:
        for attempt in range(3):
            server.port = free_port()
            _write(server, user)
            argv = ([daemon, "-g", "-c", str(directory / "named.conf")] if kind == "bind9"
                    else [daemon, "-c", str(directory / "knot.conf")])
            server.process = spawn(argv, directory, user)
            if _wait_serving(server):
                break
            server.stop()
            if attempt == 2:
                raise RuntimeError(f"{kind} did not start on 127.0.0.1:{server.port}:\n"
                                   f"{server.log_tail()}")
        yield server
    finally:
        server.stop()
        shutil.rmtree(directory, ignore_errors=True)


def _write(server: DnsServer, user: pwd.struct_passwd | None) -> None:
    root = server.directory
    (root / "db").mkdir(exist_ok=True)
    for zone in server.zones:
        (root / f"{zone}.db").write_text(zone_text(zone))
    if server.kind == "bind9":
        (root / "named.conf").write_text(
            bind9_config(root, server.port, server.secret, server.zones))
    else:
        (root / "knot.conf").write_text(
            knot_config(root, server.port, server.secret, server.zones))
    for path in (root, *root.rglob("*")):
        path.chmod(0o700 if path.is_dir() else 0o600)
        if user is not None:
            os.chown(path, user.pw_uid, user.pw_gid)


def _wait_serving(server: DnsServer) -> bool:
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if server.process is not None and server.process.poll() is not None:
            return False
        if serving(server.port, server.zones):
            return True
        time.sleep(0.1)
    return False


@contextlib.contextmanager
def bind9(zones: tuple[str, ...] = ZONES) -> Iterator[DnsServer]:
    """A real BIND 9 primary (``named -g``) serving ``zones``, updatable with the TSIG key."""
    with _server("bind9", "bind9", "bind", zones) as server:
        yield server


@contextlib.contextmanager
def knot(zones: tuple[str, ...] = ZONES) -> Iterator[DnsServer]:
    """A real Knot primary (``knotd``) serving ``zones``, updatable with the TSIG key."""
    with _server("knot", "knot", "knot", zones) as server:
        yield server

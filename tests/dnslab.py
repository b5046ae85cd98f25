"""The propagation lab: a real BIND 9 primary and a real BIND 9 secondary that lags by seconds.

The primary takes RFC 2136 updates signed with the TSIG key of :mod:`tests.dnsservers` and never
NOTIFYs anyone (``notify no``), so the secondary learns of a change only when its SOA refresh
timer fires (RFC 1034 §4.3.5: SOA query, then a zone transfer signed with a second TSIG key).
The zone's SOA REFRESH is a few seconds and the secondary's ``min-refresh-time`` is lowered to
it (BIND's default floor is 300 s), so a change reaches the secondary a few seconds after the
primary serves it: a real, timer-driven lag, as measured in ``shared/reference/next-wave.md``
§2.3 ("visible at the BIND secondary without NOTIFY") and Appendix A.1.

Both daemons run on free loopback ports, in their own temporary directories, as an unprivileged
user when the tests run as root (``setpriv``, as :mod:`tests.dnsservers` does; its helpers are
reused). :meth:`Lab.align` lines a test up with the secondary's refresh cycle, so a write made
right after it waits most of a REFRESH period; tests still measure the lag
(:class:`FirstServed`) rather than assume it.

Zone :data:`LAB_ZONE`: apex NS ``ns1.<zone>`` (the primary) and ``ns2.<zone>`` (the secondary);
:meth:`Lab.nameserver_addresses` maps those host names to the loopback ports, which is what
``propagation.nameserver_addresses`` and the sandbox's ``resolver.upstreams`` take.
"""

from __future__ import annotations

import base64
import contextlib
import os
import secrets
import shutil
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import dns.exception
import dns.flags
import dns.message
import dns.query
import dns.rcode
import dns.rdatatype
import dns.tsig
import dns.tsigkeyring
import dns.update

from tests.dnsservers import (
    ALGORITHM,
    KEY_NAME,
    DnsServer,
    _wait_serving,
    binary,
    free_port,
    server_user,
    spawn,
)

#: The lab's zone (not one of the sandbox's default zones, so nothing else answers for it).
LAB_ZONE = "example.org"
#: SOA REFRESH of the lab zone and the secondary's ``min-refresh-time``, seconds.
REFRESH_S = 4
#: SOA RETRY, seconds (the secondary's ``min-retry-time``).
RETRY_S = 1
#: SOA MINIMUM: the negative-caching TTL (RFC 2308), seconds.
NEGATIVE_TTL_S = 5
#: The TSIG key the secondary signs its zone transfers with.
XFR_KEY_NAME = "cname-flow-xfr"
#: How often :class:`FirstServed` asks, seconds (next-wave.md §2.3 polled every 20 ms).
POLL_INTERVAL_S = 0.02

#: Writes a role's configuration: (directory, port) → (named.conf text, zone file text or None).
_Writer = Callable[[Path, int], tuple[str, str | None]]


def zone_text(zone: str = LAB_ZONE, refresh_s: int = REFRESH_S) -> str:
    """The lab zone: SOA (REFRESH ``refresh_s``), NS ``ns1``/``ns2``, both at 127.0.0.1."""
    return (f"$TTL 60\n"
            f"@ IN SOA ns1.{zone}. hostmaster.{zone}. 1 {refresh_s} {RETRY_S} 3600 "
            f"{NEGATIVE_TTL_S}\n"
            f"@ IN NS ns1.{zone}.\n@ IN NS ns2.{zone}.\n"
            f"ns1 IN A 127.0.0.1\nns2 IN A 127.0.0.1\n")


def _options(root: Path, port: int, extra: str) -> str:
    return (f'options {{\n  directory "{root}";\n  pid-file "{root}/named.pid";\n'
            f'  session-keyfile "{root}/session.key";\n'
            f'  managed-keys-directory "{root}";\n'
            f"  listen-on port {port} {{ 127.0.0.1; }};\n  listen-on-v6 {{ none; }};\n"
            f"  recursion no;\n  dnssec-validation no;\n  notify no;\n{extra}}};\n"
            f"controls {{ }};\n")


def primary_config(root: Path, port: int, upd_secret: str, xfr_secret: str,
                   zone: str = LAB_ZONE) -> str:
    """``named.conf`` of the primary: updatable by the TSIG key (TXT, CNAME), transfers only to
    the transfer key, NOTIFY off (the secondary must find changes by its refresh timer)."""
    return (_options(root, port, "  allow-transfer { key " + XFR_KEY_NAME + "; };\n")
            + f'key "{KEY_NAME}" {{ algorithm {ALGORITHM}; secret "{upd_secret}"; }};\n'
            + f'key "{XFR_KEY_NAME}" {{ algorithm {ALGORITHM}; secret "{xfr_secret}"; }};\n'
            + f'zone "{zone}" {{\n  type primary;\n  file "{zone}.db";\n'
            + f"  update-policy {{ grant {KEY_NAME} zonesub TXT CNAME; }};\n}};\n")


def secondary_config(root: Path, port: int, primary_port: int, xfr_secret: str,
                     zone: str = LAB_ZONE, refresh_s: int = REFRESH_S) -> str:
    """``named.conf`` of the secondary: transfers from the primary with the transfer key; the
    refresh and retry floors lowered so BIND honours the zone's short SOA timers."""
    timers = (f"  min-refresh-time {refresh_s};\n  max-refresh-time {refresh_s};\n"
              f"  min-retry-time {RETRY_S};\n  max-retry-time {RETRY_S};\n")
    return (_options(root, port, timers)
            + f'key "{XFR_KEY_NAME}" {{ algorithm {ALGORITHM}; secret "{xfr_secret}"; }};\n'
            + f'zone "{zone}" {{\n  type secondary;\n  file "{zone}.bk";\n'
            + f"  primaries {{ 127.0.0.1 port {primary_port} key {XFR_KEY_NAME}; }};\n}};\n")


@dataclass
class Lab:
    """A running lab: the primary, the lagging secondary, and how to reach and update them.

    Attributes:
        primary: the BIND primary (``kind`` ``"bind9"``), holding the update key.
        secondary: the BIND secondary; its ``secret`` is the transfer key's, not the update key.
        zone: the lab zone.
        refresh_s: the zone's SOA REFRESH, seconds.
    """

    primary: DnsServer
    secondary: DnsServer
    zone: str = LAB_ZONE
    refresh_s: int = REFRESH_S

    @property
    def hosts(self) -> tuple[str, str]:
        """The NS host names of the primary and of the secondary."""
        return f"ns1.{self.zone}", f"ns2.{self.zone}"

    def nameserver_addresses(self) -> dict[str, list[str]]:
        """NS host → ``["127.0.0.1:PORT"]``, as ``propagation.nameserver_addresses`` takes."""
        ns1, ns2 = self.hosts
        return {ns1: [f"127.0.0.1:{self.primary.port}"],
                ns2: [f"127.0.0.1:{self.secondary.port}"]}

    def update_txt(self, rr: str, value: str, ttl: int = 60) -> None:
        """Add TXT ``value`` at ``rr`` (relative to the zone) at the primary, TSIG-signed.

        Raises:
            AssertionError: the primary did not answer NOERROR.
        """
        keyring = dns.tsigkeyring.from_text({KEY_NAME: (ALGORITHM, self.primary.secret)})
        update = dns.update.Update(f"{self.zone}.", keyring=keyring,
                                   keyalgorithm=dns.tsig.HMAC_SHA256)
        update.add(rr, ttl, "TXT", value)
        answer = dns.query.tcp(update, "127.0.0.1", port=self.primary.port, timeout=5)
        assert answer.rcode() == dns.rcode.NOERROR, dns.rcode.to_text(answer.rcode())

    def align(self, timeout_s: float = 60.0) -> float:
        """Write a throwaway TXT record and wait until the secondary serves it: its refresh
        timer has just fired, so the next change waits most of a REFRESH period.

        Returns:
            ``time.monotonic()`` when the secondary was first seen serving it.

        Raises:
            AssertionError: not served within ``timeout_s``.
        """
        value = f"align-{secrets.token_hex(4)}"
        self.update_txt("_align", value)
        with FirstServed(self.secondary.port, f"_align.{self.zone}", value) as seen:
            return seen.wait(timeout_s)


def txt_values(port: int, name: str, timeout_s: float = 1.0) -> frozenset[str] | None:
    """The TXT values an authoritative answer (RD=0, UDP) at 127.0.0.1:``port`` gives for
    ``name`` (character-strings joined); None when there was no authoritative answer."""
    query = dns.message.make_query(f"{name.rstrip('.')}.", dns.rdatatype.TXT)
    query.flags &= ~dns.flags.RD
    try:
        answer = dns.query.udp(query, "127.0.0.1", port=port, timeout=timeout_s)
    except (OSError, dns.exception.DNSException):
        return None
    if not answer.flags & dns.flags.AA:
        return None
    return frozenset(b"".join(rd.strings).decode() for rrset in answer.answer
                     if rrset.rdtype == dns.rdatatype.TXT for rd in rrset)


@dataclass
class FirstServed:
    """Polls one server (RD=0, every :data:`POLL_INTERVAL_S`) in a thread until it serves
    ``value`` at ``name``; times are ``time.monotonic()`` readings, seconds.

    Use as a context manager (the thread stops on exit).

    Attributes:
        last_miss: when the last query answered without the value was sent.
        first_hit: when the first query answered with it was sent (the server started serving
            between ``last_miss`` and ``first_hit``).
        polls: queries sent.
    """

    port: int
    name: str
    value: str
    last_miss: float | None = None
    first_hit: float | None = None
    polls: int = 0
    _stop: threading.Event = field(default_factory=threading.Event, repr=False)
    _done: threading.Event = field(default_factory=threading.Event, repr=False)
    _thread: threading.Thread | None = field(default=None, repr=False)

    def __enter__(self) -> FirstServed:
        self._thread = threading.Thread(target=self._run, name="lab-poller", daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def _run(self) -> None:
        while not self._stop.is_set():
            sent = time.monotonic()
            values = txt_values(self.port, self.name)
            self.polls += 1
            if values is not None and self.value in values:
                self.first_hit = sent
                self._done.set()
                return
            self.last_miss = sent
            self._stop.wait(POLL_INTERVAL_S)

    @property
    def served(self) -> bool:
        """True once the server was seen serving the value."""
        return self._done.is_set()

    def wait(self, timeout_s: float) -> float:
        """Block until the value is served; return :attr:`first_hit`.

        Raises:
            AssertionError: not served within ``timeout_s``.
        """
        assert self._done.wait(timeout_s), f"{self.name} {self.value!r} not served on " \
                                           f"127.0.0.1:{self.port} within {timeout_s} s"
        assert self.first_hit is not None
        return self.first_hit


@contextlib.contextmanager
def lab(refresh_s: int = REFRESH_S) -> Iterator[Lab]:
    """Start the primary, then the secondary (which transfers the zone at start); stop both and
    remove their directories on exit.

    Raises:
        RuntimeError: ``named`` is missing (naming the package), or a daemon did not serve the
            zone within ``tests.dnsservers.START_TIMEOUT_S`` (its log tail attached).
    """
    upd = base64.b64encode(secrets.token_bytes(32)).decode()
    xfr = base64.b64encode(secrets.token_bytes(32)).decode()
    with _named("primary", upd, lambda root, port: (
            primary_config(root, port, upd, xfr), zone_text(refresh_s=refresh_s))) as primary, \
        _named("secondary", xfr, lambda root, port: (
            secondary_config(root, port, primary.port, xfr, refresh_s=refresh_s), None)
               ) as secondary:
        yield Lab(primary, secondary, LAB_ZONE, refresh_s)


@contextlib.contextmanager
def _named(role: str, secret: str, write: _Writer) -> Iterator[DnsServer]:
    """One ``named -g`` in a fresh temporary directory, as :func:`tests.dnsservers.server_user`
    says, tried on up to three free ports (a port taken meanwhile shows as never serving)."""
    daemon = binary("named", "bind9")
    user = server_user("bind")
    directory = Path(tempfile.mkdtemp(prefix=f"cname-flow-lab-{role}-"))
    server = DnsServer("bind9", directory, 0, KEY_NAME if role == "primary" else XFR_KEY_NAME,
                       ALGORITHM, secret, (LAB_ZONE,))
    try:
        for attempt in range(3):
            server.port = free_port()
            config, zone = write(directory, server.port)
            (directory / "named.conf").write_text(config)
            if zone is not None:
                (directory / f"{LAB_ZONE}.db").write_text(zone)
            for path in (directory, *directory.rglob("*")):
                path.chmod(0o700 if path.is_dir() else 0o600)
                if user is not None:
                    os.chown(path, user.pw_uid, user.pw_gid)
            argv = [daemon, "-g", "-c", str(directory / "named.conf")]
            server.process = spawn(argv, directory, user)
            if _wait_serving(server):
                break
            server.stop()
            if attempt == 2:
                raise RuntimeError(f"lab {role} did not serve {LAB_ZONE} on "
                                   f"127.0.0.1:{server.port}:\n{server.log_tail()}")
        yield server
    finally:
        server.stop()
        shutil.rmtree(directory, ignore_errors=True)

"""Sandbox wiring: one event-loop thread hosting the OSS API, the Alidns API and the DNS fleet.

Use it from Python as a context manager (ephemeral loopback ports)::

    with Sandbox() as sandbox:
        info = sandbox.info          # endpoints, region, AccessKey pair, nameserver addresses
        ...                          # point the real SDK clients at these endpoints

or from the command line: ``cname-flow sandbox serve`` (see :func:`serve`).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import signal
import socket
import threading
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType, TracebackType
from typing import Any, Self

import uvicorn
import yaml

from cname_flow.sandbox.alidns.api import create_alidns_app
from cname_flow.sandbox.config import SandboxConfig
from cname_flow.sandbox.faults import FaultPlan
from cname_flow.sandbox.nameservers.server import DnsFleet
from cname_flow.sandbox.oss.api import create_oss_app
from cname_flow.sandbox.state import SandboxState

#: How often a sandbox with a state file writes a snapshot when something changed, seconds.
PERSIST_INTERVAL_S = 0.5


@dataclass(frozen=True, slots=True)
class SandboxInfo:
    """How to reach a running sandbox.

    Attributes:
        oss_endpoint: ``"http://127.0.0.1:PORT"`` for ``alibabacloud_oss_v2`` (path-style).
        alidns_endpoint: ``"127.0.0.1:PORT"`` (no scheme) for the Alidns client with protocol HTTP.
        region: OSS region of the default bucket.
        access_key_id: AccessKey id of the first account.
        access_key_secret: its secret (a sandbox secret; still never logged).
        nameservers: nameserver host name → ``["127.0.0.1:PORT"]``.
        resolver: ``"127.0.0.1:PORT"`` of the caching resolver the OSS verifier uses.
        sts: True when the sandbox config gives an account STS credentials (``accounts[].sts``):
            the written config then also reads a security token, when one is exported.
        bucket: the first account's first bucket (``examplebucket`` in the default world), the
            written config's ``defaults.bucket``; ``""`` when that account has none.
    """

    oss_endpoint: str
    alidns_endpoint: str
    region: str
    access_key_id: str
    access_key_secret: str = field(repr=False)
    nameservers: dict[str, list[str]]
    resolver: str
    sts: bool = False
    bucket: str = ""

    def to_json(self) -> dict[str, object]:
        """The info file's content (JSON-able; includes the sandbox AccessKey secret)."""
        return {
            "oss_endpoint": self.oss_endpoint,
            "alidns_endpoint": self.alidns_endpoint,
            "region": self.region,
            "access_key_id": self.access_key_id,
            "access_key_secret": self.access_key_secret,
            "nameservers": self.nameservers,
            "resolver": self.resolver,
            "sts": self.sts,
            "bucket": self.bucket,
        }

    def cname_flow_config(self, journal_dir: str = ".cname-flow") -> dict[str, object]:
        """A complete cname-flow config pointing at this sandbox.

        Credentials are references to ``OSS_ACCESS_KEY_ID`` / ``OSS_ACCESS_KEY_SECRET``: set them
        to :attr:`access_key_id` and :attr:`access_key_secret` (``serve`` prints the lines).
        When the sandbox has STS credentials (:attr:`sts`), an optional ``OSS_SESSION_TOKEN``
        reference too: without it a config that names its variables never reads a token, and
        STS keys fail with MissingSecurityToken.
        """
        credentials: dict[str, object] = {
            "access_key_id": {"env": "OSS_ACCESS_KEY_ID"},
            "access_key_secret": {"env": "OSS_ACCESS_KEY_SECRET"},
        }
        if self.sts:
            credentials["security_token"] = {"env": "OSS_SESSION_TOKEN", "optional": True}
        config: dict[str, object] = {
            "oss": {"region": self.region, "endpoint": self.oss_endpoint},
            "alidns": {"endpoint": self.alidns_endpoint, "protocol": "http"},
            "credentials": credentials,
            "propagation": {"nameserver_addresses": self.nameservers},
            "journal": {"dir": journal_dir},
        }
        if self.bucket:  # so `bind DOMAIN` works on the written config as it is
            config["defaults"] = {"bucket": self.bucket}
        return config


def _bind(host: str, port: int) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.listen(2048)
    sock.setblocking(False)
    return sock


def _new_loop() -> asyncio.AbstractEventLoop:
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop is a declared dependency
        return asyncio.new_event_loop()
    return uvloop.new_event_loop()


class Sandbox:
    """The local Alibaba Cloud: start it with ``with Sandbox(config) as sb:`` (or :meth:`start`).

    Args:
        config: the world; ``None`` is the documented default world.
        state_file: when given, the state is restored from it at start (if present) and written
            back atomically every :data:`PERSIST_INTERVAL_S` seconds when changed, and at stop.

    Raises:
        OSError: a configured port is taken.
    """

    def __init__(
        self, config: SandboxConfig | None = None, *, state_file: Path | None = None
    ) -> None:
        self.config = config or SandboxConfig()
        self.state_file = state_file
        offset = self.config.clock_offset_s
        self.state = (SandboxState(self.config) if not offset else
                      SandboxState(self.config, clock=lambda: time.time() + offset))
        if state_file is not None and state_file.exists():
            self.state.restore(state_file)
        self.faults = FaultPlan(self.config.faults)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._servers: list[uvicorn.Server] = []
        self._tasks: list[asyncio.Task[None]] = []
        self._fleet: DnsFleet | None = None
        self._info: SandboxInfo | None = None
        self._persisted_at = -1

    # -- lifecycle ---------------------------------------------------------------------------

    def start(self) -> SandboxInfo:
        """Start every server; return once all of them accept connections."""
        self._loop = _new_loop()
        ready = threading.Event()
        self._thread = threading.Thread(
            target=self._run_loop, args=(ready,), name="cname-flow-sandbox", daemon=True
        )
        self._thread.start()
        ready.wait()
        self._info = self._call(self._start_servers())
        return self._info

    def stop(self) -> None:
        """Stop every server, write the state file (if any) and end the loop thread."""
        if self._loop is None:
            return
        with contextlib.suppress(RuntimeError):
            self._call(self._stop_servers())
        self._loop.call_soon_threadsafe(self._loop.stop)
        if self._thread is not None:
            self._thread.join(timeout=10)
        self._loop.close()
        self._loop = None
        self._persist(force=True)

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    @property
    def info(self) -> SandboxInfo:
        """Endpoints and credentials; only valid while running."""
        if self._info is None:
            raise RuntimeError("the sandbox is not running")
        return self._info

    @property
    def fleet(self) -> DnsFleet:
        """The DNS servers and the caching resolver."""
        if self._fleet is None:
            raise RuntimeError("the sandbox is not running")
        return self._fleet

    def reset(self) -> None:
        """Forget every change: back to the configured world (servers keep their ports)."""
        fresh = SandboxState(self.config)
        with self.state.lock:
            self.state.__dict__.update(
                {k: v for k, v in fresh.__dict__.items() if k not in ("lock", "config", "clock")}
            )
            self.state.touch()
        self.fleet.resolver.flush()

    # -- loop thread -------------------------------------------------------------------------

    def _run_loop(self, ready: threading.Event) -> None:
        assert self._loop is not None
        asyncio.set_event_loop(self._loop)
        self._loop.call_soon(ready.set)
        self._loop.run_forever()

    def _call(self, coro: Coroutine[Any, Any, Any]) -> Any:
        assert self._loop is not None
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(timeout=30)

    async def _start_servers(self) -> SandboxInfo:
        cfg = self.config
        self._fleet = await DnsFleet.start(self.state, faults=self.faults)
        oss = create_oss_app(self.state, self.faults, self._fleet.verifier)
        alidns = create_alidns_app(self.state, self.faults)
        oss_sock = _bind(cfg.host, cfg.oss_port)
        dns_sock = _bind(cfg.host, cfg.alidns_port)
        for app, sock in ((oss, oss_sock), (alidns, dns_sock)):
            server = uvicorn.Server(
                uvicorn.Config(
                    app, lifespan="off", access_log=False, log_level="warning",
                    date_header=False, server_header=False, timeout_keep_alive=30,
                )
            )
            self._servers.append(server)
            self._tasks.append(asyncio.get_running_loop().create_task(server.serve(sockets=[sock])))
        while not all(s.started for s in self._servers):
            await asyncio.sleep(0.005)
        if self.state_file is not None:
            asyncio.get_running_loop().create_task(self._persist_forever())
        account = cfg.accounts[0]
        resolver = self._fleet.resolver
        return SandboxInfo(
            oss_endpoint=f"http://{cfg.host}:{oss_sock.getsockname()[1]}",
            alidns_endpoint=f"{cfg.host}:{dns_sock.getsockname()[1]}",
            region=cfg.region,
            access_key_id=account.access_key_id,
            access_key_secret=account.access_key_secret,
            nameservers=self._fleet.addresses(),
            resolver=f"{resolver.address}:{resolver.port}",
            sts=any(a.sts for a in cfg.accounts),
            bucket=next((b.name for b in cfg.buckets if b.owner == account.id), ""),
        )

    async def _stop_servers(self) -> None:
        for server in self._servers:
            # force_exit: do not wait for keep-alive or half-sent requests to end (uvicorn
            # would wait for them; a stop must take well under a second).
            server.should_exit = server.force_exit = True
        if self._tasks:
            await asyncio.wait(self._tasks, timeout=STOP_GRACE_S)
        for task in asyncio.all_tasks():
            if task is not asyncio.current_task():
                task.cancel()
        if self._fleet is not None:
            await self._fleet.stop()

    async def _persist_forever(self) -> None:
        while True:
            await asyncio.sleep(PERSIST_INTERVAL_S)
            await asyncio.to_thread(self._persist)

    def _persist(self, *, force: bool = False) -> None:
        if self.state_file is None:
            return
        if force or self.state.mutations != self._persisted_at:
            self._persisted_at = self.state.mutations
            self.state.save(self.state_file)


#: Seconds the HTTP servers get to finish once told to stop (SIGINT/SIGTERM must end the
#: sandbox within a second).
STOP_GRACE_S = 0.5


def write_info(info: SandboxInfo, path: Path) -> None:
    """Write the info file (JSON, mode 0600: it holds the sandbox AccessKey secret)."""
    path.write_text(json.dumps(info.to_json(), indent=2) + "\n", encoding="utf-8")
    path.chmod(0o600)


def write_cname_flow_config(info: SandboxInfo, path: Path) -> None:
    """Write a cname-flow config (YAML) pointing at the sandbox; secrets stay in the environment."""
    header = (
        "# cname-flow config for a local sandbox. Before use:\n"
        f"#   export OSS_ACCESS_KEY_ID={info.access_key_id}\n"
        "#   export OSS_ACCESS_KEY_SECRET=<access_key_secret from the sandbox info file>\n"
    )
    if info.sts:
        header += ("# or, for STS credentials of the sandbox config, their id and secret and\n"
                   "#   export OSS_SESSION_TOKEN=<their security_token>\n")
    body = yaml.safe_dump(info.cname_flow_config(), sort_keys=False)
    path.write_text(header + body, encoding="utf-8")


def serve(
    config: SandboxConfig,
    *,
    state_file: Path | None = None,
    info_file: Path | None = None,
    config_out: Path | None = None,
    echo: Callable[[str], None] = print,
) -> None:
    """Run the sandbox in the foreground until SIGINT or SIGTERM, then stop cleanly.

    Prints the endpoints, the AccessKey id and the nameserver addresses (not the secret: it is
    in the info file, mode 0600, and in the sandbox config).
    """
    stop = threading.Event()

    def _on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    previous = {s: signal.signal(s, _on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        with Sandbox(config, state_file=state_file) as sandbox:
            info = sandbox.info
            if info_file is not None:
                write_info(info, info_file)
            if config_out is not None:
                write_cname_flow_config(info, config_out)
            echo(f"OSS endpoint     {info.oss_endpoint}   (region {info.region})")
            echo(f"Alidns endpoint  {info.alidns_endpoint}   (protocol http)")
            echo(f"AccessKey id     {info.access_key_id}")
            for host, addresses in info.nameservers.items():
                echo(f"nameserver       {host} -> {', '.join(addresses)}")
            echo(f"resolver         {info.resolver}")
            if info_file is not None:
                echo(f"info file        {info_file}")
            echo("serving; stop with Ctrl-C or SIGTERM")
            stop.wait()
            echo("stopping")
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)

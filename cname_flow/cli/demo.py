"""``cname-flow demo``: the embedded sandbox, three bindings, and what each nameserver answers.

Starts the sandbox in-process with the second nameserver lagging (so the propagation wait is
visible), writes a cname-flow config pointing at it, binds every domain of the demo manifest
through the real SDK clients, then prints ListCname and each nameserver's answer.

The default manifest, ``demo.yaml`` beside this module, is package data: it is read through
:mod:`importlib.resources`, so the command works from an installed wheel as from a checkout.
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Mapping, Sequence
from importlib import resources
from pathlib import Path

from rich.console import Console

from cname_flow import service
from cname_flow.cli import render
from cname_flow.config import load_settings
from cname_flow.manifest import Manifest, load_manifest
from cname_flow.model import txt_name
from cname_flow.propagation.checker import Round
from cname_flow.sandbox.app import Sandbox, write_cname_flow_config
from cname_flow.sandbox.config import NameserverConfig, SandboxConfig

#: The default manifest's resource name inside this package (``cname_flow.cli``).
DEFAULT_WORKFLOW = "demo.yaml"


def load_workflow(workflow: Path | None = None) -> Manifest:
    """The demo's manifest: ``workflow``, or the ``demo.yaml`` shipped in this package.

    Raises:
        ConfigError: the manifest does not validate (every problem with its line), or the
            shipped file is missing from the installation.
    """
    if workflow is not None:
        return load_manifest(workflow)
    shipped = resources.files("cname_flow.cli").joinpath(DEFAULT_WORKFLOW)
    with resources.as_file(shipped) as path:
        return load_manifest(path)


def demo_world(lag: float) -> SandboxConfig:
    """The default sandbox world with ``ns2`` lagging ``lag`` seconds behind ``ns1``."""
    base = SandboxConfig()
    ns = [NameserverConfig(name=n.name, address=n.address, lag=lag if i else 0.0)
          for i, n in enumerate(base.nameservers)]
    return base.model_copy(update={"nameservers": ns})


def nameserver_text(nameservers: Mapping[str, Sequence[str]]) -> str:
    """``ns1.x (127.0.0.1:5301), ns2.x (127.0.0.1:5302)``: host names with their addresses."""
    return ", ".join(f"{host} ({', '.join(addresses)})" for host, addresses in nameservers.items())


def run_demo(workflow: Path | None, *, lag: float, console: Console) -> None:
    """Run the demo; raises the first binding's error if one fails."""
    manifest = load_workflow(workflow)
    with tempfile.TemporaryDirectory(prefix="cname-flow-demo-") as tmp, \
            Sandbox(demo_world(lag)) as sandbox:
        info = sandbox.info
        console.print(f"sandbox: OSS {info.oss_endpoint}, Alidns {info.alidns_endpoint}, "
                      f"nameservers {nameserver_text(info.nameservers)} (the second lags "
                      f"{lag:g} s)")
        config_file = Path(tmp) / "cname-flow.yaml"
        write_cname_flow_config(info, config_file)
        env = {"OSS_ACCESS_KEY_ID": info.access_key_id,
               "OSS_ACCESS_KEY_SECRET": info.access_key_secret}
        settings = load_settings(config_file, env=env)
        clients = service.Clients.from_settings(settings, env=env)
        started = time.monotonic()
        with service.open_store(settings) as journal:
            for binding in manifest.bindings:
                console.rule(f"{binding.domain} → {binding.bucket}")
                service.bind(clients, binding, journal, on_step=render.StepPrinter(console))
        console.rule(f"all bound in {time.monotonic() - started:.1f} s")
        for bucket in sorted(manifest.buckets):
            console.print(render.cname_table(bucket, service.bucket_listing(clients, bucket)))
        rounds: dict[str, Round] = {}
        for binding in manifest.bindings:
            zone = clients.dns.find_zone(txt_name(binding.domain))
            targets = clients.checker.targets(zone.name, zone.nameservers)
            record = journal.get(binding.key)
            token = (record.token if record else None) or ""
            rounds[txt_name(binding.domain)] = clients.checker.observe(
                txt_name(binding.domain), token, targets)
        console.print(render.nameserver_table(rounds))

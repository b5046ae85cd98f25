"""The library end to end: ``import cname_flow`` against the sandbox, real SDKs, real sockets.

* inside ``asyncio.run``, ``bind_async`` binds two domains at once (``asyncio.gather``) and
  ``run_batch_async`` a small manifest, while the caller's loop keeps ticking;
* the README's "Use it as a library" example, extracted from README.md, runs in a fresh
  interpreter and prints exactly what the README says, nothing else on stdout or stderr;
* the library logs nothing unless the host configures ``logging``, and a host that does
  receives its events.
"""

from __future__ import annotations

import asyncio
import logging
import os
import re
import subprocess
import sys
from collections.abc import Awaitable, Iterator
from pathlib import Path
from typing import TypeVar

import pytest
import structlog
import yaml

import cname_flow
from cname_flow.batch.jobs import JobResult
from cname_flow.journal import BindingRecord
from cname_flow.model import Phase
from cname_flow.sandbox.app import Sandbox
from tests.conftest import PROXY_VARIABLES
from tests.e2e.bindkit import write_config

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(180)]

ROOT = Path(__file__).resolve().parents[2]
T = TypeVar("T")


@pytest.fixture
def config(sandbox: Sandbox, tmp_path: Path) -> Path:
    """A cname-flow config for the module's sandbox (fast propagation), journal in tmp_path."""
    path = tmp_path / "cname-flow.yaml"
    write_config(path, sandbox)
    return path


@pytest.fixture
def env(sandbox: Sandbox) -> dict[str, str]:
    """The environment holding the sandbox's AccessKey (the config refers to it)."""
    return {"OSS_ACCESS_KEY_ID": sandbox.info.access_key_id,
            "OSS_ACCESS_KEY_SECRET": sandbox.info.access_key_secret}


@pytest.fixture
def unconfigured_structlog() -> Iterator[None]:
    """structlog as a host that never configured it sees it (other tests may have run the CLI
    in this process); the previous configuration comes back afterwards."""
    configured, saved = structlog.is_configured(), structlog.get_config()
    structlog.reset_defaults()
    yield
    if configured:
        structlog.configure(**saved)
    else:
        structlog.reset_defaults()


def _txt_values(sandbox: Sandbox, domain: str) -> list[str]:
    name = f"_dnsauth.{domain}"
    with sandbox.state.lock:
        zone = sandbox.state.zone_for(name)
        assert zone is not None
        return [r.value for r in zone.records.values() if r.fqdn == name and r.type == "TXT"]


def _bound(sandbox: Sandbox, bucket: str = "examplebucket") -> set[str]:
    with sandbox.state.lock:
        return set(sandbox.state.buckets[bucket].cnames)


def _run_ticking(work: Awaitable[T]) -> tuple[T, int]:
    """``asyncio.run`` of ``work`` beside a task ticking every 10 ms: (result, ticks seen)."""
    async def main() -> tuple[T, int]:
        ticks = 0
        stop = asyncio.Event()

        async def ticker() -> None:
            nonlocal ticks
            while not stop.is_set():
                ticks += 1
                await asyncio.sleep(0.01)

        task = asyncio.create_task(ticker())
        try:
            return await work, ticks
        finally:
            stop.set()
            await task

    return asyncio.run(main())


def test_bind_async_binds_two_domains_at_once_inside_asyncio_run(
    sandbox: Sandbox, config: Path, env: dict[str, str]
) -> None:
    domains = ("lib-a.example.com", "lib-b.example.com")

    async def both() -> list[BindingRecord]:
        return await asyncio.gather(*(cname_flow.bind_async(d, config=config, env=env)
                                      for d in domains))

    records, ticks = _run_ticking(both())

    assert [(r.key, r.phase) for r in records] == [
        (f"examplebucket/{d}", Phase.BOUND) for d in domains]
    assert set(domains) <= _bound(sandbox)
    for domain, record in zip(domains, records, strict=True):
        assert _txt_values(sandbox, domain) == [record.token]  # one TXT, carrying the token
    # side by side, not one after the other: each started before the other finished
    assert max(r.started_at for r in records) < min(r.updated_at for r in records)
    assert ticks >= 20  # the loop kept running while both waited for propagation (>= 0.2 s)
    listed = {r.domain: r.phase for r in cname_flow.status(config=config, env=env)}
    assert listed == dict.fromkeys(domains, Phase.BOUND)


def test_run_batch_async_binds_a_manifest_inside_asyncio_run(
    sandbox: Sandbox, config: Path, env: dict[str, str], tmp_path: Path
) -> None:
    domains = [f"lib-batch-{i}.example.com" for i in range(3)]
    manifest = tmp_path / "manifest.yaml"
    manifest.write_text(yaml.safe_dump({
        "defaults": {"bucket": "examplebucket", "region": sandbox.info.region},
        "bindings": [{"domain": d} for d in domains]}), encoding="utf-8")

    result, ticks = _run_ticking(cname_flow.run_batch_async(
        manifest, config=config, env=env, job_id="lib-batch", concurrency=4))

    assert isinstance(result, JobResult)
    assert (result.job_id, result.exit_status, result.counts["bound"]) == ("lib-batch", "ok", 3)
    assert result.interrupted is None
    assert set(domains) <= _bound(sandbox)
    assert all(len(_txt_values(sandbox, d)) == 1 for d in domains)
    assert ticks >= 10


def test_the_library_writes_nothing_and_a_host_that_configures_logging_gets_its_events(
    sandbox: Sandbox, config: Path, env: dict[str, str], unconfigured_structlog: None,
    capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture,
) -> None:
    quiet = cname_flow.bind("lib-quiet.example.com", config=config, env=env)
    assert quiet.phase == Phase.BOUND
    assert capsys.readouterr() == ("", "")
    assert [r for r in caplog.records if r.name.startswith("cname_flow.")] == []  # INFO < WARNING

    caplog.set_level(logging.INFO, logger="cname_flow")
    loud = cname_flow.bind("lib-loud.example.com", config=config, env=env)

    assert loud.phase == Phase.BOUND
    assert capsys.readouterr().out == ""
    done = [r for r in caplog.records
            if r.name == "cname_flow.workflow.engine" and r.getMessage().startswith(
                "event=step.done step=put_cname")]
    assert len(done) == 1
    assert vars(done[0])["cname_flow"] == {"event": "step.done", "step": "put_cname",
                                           "phase": "CNAME_PUT", "binding": loud.key}
    assert all(env["OSS_ACCESS_KEY_SECRET"] not in r.getMessage() for r in caplog.records)


def _clean_env(tmp: Path) -> dict[str, str]:
    proxies = {v.upper() for v in PROXY_VARIABLES}
    env = {k: v for k, v in os.environ.items() if k.upper() not in proxies}
    return env | {"PYTHONPATH": str(ROOT), "HOME": str(tmp)}


def readme_example() -> tuple[str, str]:
    """The README's library example and the output it says the example prints."""
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    section = text[text.index("## Use it as a library"):]
    section = section[:section.index("\n## ", 1)]
    code = re.search(r"```python\n(.*?)```", section, re.S)
    printed = re.search(r"```text\n(.*?)```", section, re.S)
    assert code is not None and printed is not None
    return code.group(1), printed.group(1)


def test_the_readme_example_runs_and_prints_what_the_readme_says(
    tmp_path: Path, no_proxy: None
) -> None:
    code, printed = readme_example()
    done = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=_clean_env(tmp_path),
                          capture_output=True, text=True, timeout=120, check=False)
    assert (done.returncode, done.stderr) == (0, "")
    assert done.stdout == printed  # the three BOUND lines and nothing from the library


HOST = """
import logging, sys
from pathlib import Path
import cname_flow
from cname_flow.sandbox.app import Sandbox
from tests.e2e.bindkit import write_config
if sys.argv[1] == "configured":
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(name)s %(message)s")
with Sandbox() as sandbox:
    write_config(Path("c.yaml"), sandbox)
    env = {"OSS_ACCESS_KEY_ID": sandbox.info.access_key_id,
           "OSS_ACCESS_KEY_SECRET": sandbox.info.access_key_secret}
    record = cname_flow.bind("host.example.com", config="c.yaml", env=env)
    Path("phase").write_text(record.phase)
"""


@pytest.mark.parametrize("host", ["silent", "configured"])
def test_a_host_process_sees_library_events_only_once_it_configures_logging(
    tmp_path: Path, host: str
) -> None:
    done = subprocess.run([sys.executable, "-c", HOST, host], cwd=tmp_path,
                          env=_clean_env(tmp_path), capture_output=True, text=True,
                          timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "phase").read_text() == "BOUND"
    assert done.stdout == ""
    if host == "silent":
        assert done.stderr == ""
    else:
        assert ("cname_flow.workflow.engine event=step.done step=verify phase=VERIFIED "
                "binding=examplebucket/host.example.com") in done.stderr.splitlines()

"""The library's entry points without a sandbox: what the package exports, settings, bad input
touching nothing, the async twins leaving the loop free, the shared journal."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

import cname_flow
from cname_flow import api
from cname_flow.batch import jobs
from cname_flow.config import load_settings
from cname_flow.errors import CnameFlowError, ConfigError, InputError, Locked

SYNC = ("bind", "unbind", "plan", "status", "run_batch")


@pytest.fixture
def config(tmp_path: Path) -> Path:
    """A config whose journal lives in ``tmp_path/journal`` (no credentials needed to fail)."""
    path = tmp_path / "cname-flow.yaml"
    path.write_text("journal: {dir: journal}\ndefaults: {bucket: examplebucket}\n",
                    encoding="utf-8")
    return path


def test_the_package_exports_the_api_and_every_name_resolves() -> None:
    for name in SYNC:
        assert name in cname_flow.__all__ and f"{name}_async" in cname_flow.__all__
        assert getattr(cname_flow, name) is getattr(api, name)
        assert asyncio.iscoroutinefunction(getattr(cname_flow, f"{name}_async"))
    assert all(getattr(cname_flow, name) is not None for name in cname_flow.__all__)
    assert set(cname_flow.__all__) <= set(dir(cname_flow))
    with pytest.raises(AttributeError, match="no attribute 'bnid'"):
        cname_flow.bnid  # noqa: B018


def test_every_sync_entry_point_documents_its_result_and_errors() -> None:
    for name in SYNC:
        doc = getattr(api, name).__doc__ or ""
        assert "Returns:" in doc and "Raises:" in doc, name


def test_importing_the_package_does_not_load_the_api_until_a_name_is_used() -> None:
    code = ("import json, sys, cname_flow\nbefore = 'cname_flow.api' in sys.modules\n"
            "cname_flow.bind\nprint(json.dumps([before, 'cname_flow.api' in sys.modules]))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          check=True)
    assert json.loads(done.stdout) == [False, True]


def test_config_may_be_settings_a_path_a_string_or_the_environment(config: Path) -> None:
    settings = load_settings(config)
    assert api.load(settings) is settings
    assert api.load(config).journal.dir == config.parent / "journal"
    assert api.load(str(config)).defaults.bucket == "examplebucket"
    assert api.load(None, {api.CONFIG_ENV: str(config)}).source == config
    assert api.load(None, {}).source is None


def test_a_missing_config_file_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"nope\.yaml"):
        api.load(tmp_path / "nope.yaml")


@pytest.mark.parametrize(("call", "message"), [
    (lambda c: cname_flow.bind("not a domain!", config=c, env={}), "not a domain"),
    (lambda c: cname_flow.bind("a.example.com", config=c, env={}, cert_file="x.pem"),
     "--key-file"),
    (lambda c: cname_flow.plan("a..example.com", config=c, env={}), r"a\.\.example\.com"),
    (lambda c: cname_flow.unbind("-bad-.example.com", config=c, env={}), "-bad-"),
    (lambda c: cname_flow.unbind("example\u200b.com", config=c, env={}), "U\\+200B"),
    (lambda c: cname_flow.status("not a domain!", config=c, env={}), "not a domain"),
])
def test_bad_input_is_an_input_error_that_touches_nothing(
    config: Path, call: object, message: str
) -> None:
    with pytest.raises(InputError, match=message):
        call(config)  # type: ignore[operator]
    assert not (config.parent / "journal").exists()


def test_no_bucket_anywhere_is_an_input_error() -> None:
    with pytest.raises(InputError, match="no bucket"):
        cname_flow.bind("a.example.com", config=load_settings(None, {}), env={})


def test_no_credentials_is_a_config_error_before_the_journal_exists(config: Path) -> None:
    with pytest.raises(ConfigError):
        cname_flow.bind("a.example.com", config=config, env={})
    assert not (config.parent / "journal").exists()


def test_status_before_the_first_bind_is_empty(config: Path) -> None:
    assert cname_flow.status(config=config, env={}) == []


def test_a_bad_manifest_is_a_config_error_naming_its_line_and_runs_nothing(
    config: Path, tmp_path: Path
) -> None:
    manifest = tmp_path / "m.yaml"
    manifest.write_text("bindings:\n  - domain: ok.example.com\n  - domain: 'bad domain'\n",
                        encoding="utf-8")
    with pytest.raises(ConfigError) as caught:
        cname_flow.run_batch(manifest, config=config, env={})
    assert any("m.yaml:3" in reason for reason in caught.value.reasons)
    assert not (config.parent / "journal").exists()


def test_run_batch_runs_in_the_calling_thread_outside_a_loop_and_in_a_helper_inside_one(
    config: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen: list[tuple[str, bool]] = []

    def fake_run_job(settings: object, manifest: Path, **kwargs: object) -> str:
        seen.append((threading.current_thread().name, api._loop_running()))
        return f"ran {manifest.name} as {kwargs['job_id']}"

    monkeypatch.setattr(jobs, "run_job", fake_run_job)
    ran: object = cname_flow.run_batch("m.yaml", config=config, job_id="j1")
    assert ran == "ran m.yaml as j1"

    async def inside() -> object:
        return cname_flow.run_batch("m.yaml", config=config, job_id="j2")  # blocks, still works

    assert asyncio.run(inside()) == "ran m.yaml as j2"
    assert seen[0] == (threading.current_thread().name, False)
    assert seen[1][0].startswith("cname-flow-batch") and seen[1][1] is False


def test_an_async_twin_leaves_the_loop_free_and_passes_arguments_and_errors_through(
    monkeypatch: pytest.MonkeyPatch
) -> None:
    def slow_bind(domain: str, **kwargs: object) -> str:
        time.sleep(0.3)
        if domain == "fail.example.com":
            raise InputError("no such thing")
        return f"{domain} {kwargs}"

    monkeypatch.setattr(api, "bind", slow_bind)

    async def main() -> tuple[object, int]:
        ticks = 0

        async def tick() -> None:
            nonlocal ticks
            while True:
                ticks += 1
                await asyncio.sleep(0.01)

        ticker = asyncio.create_task(tick())
        result: object = await cname_flow.bind_async("a.example.com", bucket="b", route=True)
        with pytest.raises(InputError, match="no such thing"):
            await cname_flow.bind_async("fail.example.com")
        ticker.cancel()
        return result, ticks

    result, ticks = asyncio.run(main())
    assert result == "a.example.com {'bucket': 'b', 'route': True}"
    assert ticks >= 30  # 0.6 s of sleeping threads, the loop ticking every 10 ms meanwhile


def test_status_lists_what_any_process_recorded_in_the_store_of_record(config: Path) -> None:
    """A binding another entry point (here: a separate process) recorded is the library's too."""
    code = ("import sys\nfrom pathlib import Path\nfrom cname_flow.model import Binding\n"
            "from cname_flow.store.jsonl import JsonStore\n"
            "from cname_flow.workflow.driver import start_event\n"
            "with JsonStore(Path(sys.argv[1])) as store:\n"
            "    store.record(start_event(Binding('a.example.com', 'examplebucket', '')))\n")
    subprocess.run([sys.executable, "-c", code, str(config.parent / "journal")], check=True)
    records = cname_flow.status(config=config, env={})
    assert [(r.key, r.phase) for r in records] == [("examplebucket/a.example.com", "PENDING")]


def test_another_process_driving_the_binding_makes_unbind_locked(config: Path) -> None:
    """The library takes the same per-binding lock as the CLI; with no wait it says Locked."""
    config.write_text(config.read_text().replace("journal: {dir: journal}",
                                                 "journal: {dir: journal, lock_wait_s: 0}"))
    code = ("import sys, time\nfrom pathlib import Path\n"
            "from cname_flow.store.jsonl import JsonStore\n"
            "with JsonStore(Path(sys.argv[1])) as store, store.lock(sys.argv[2]):\n"
            "    print('held', flush=True)\n    time.sleep(30)\n")
    holder = subprocess.Popen([sys.executable, "-c", code, str(config.parent / "journal"),
                               "examplebucket/a.example.com"], stdout=subprocess.PIPE, text=True)
    env = {"OSS_ACCESS_KEY_ID": "LTAIexample", "OSS_ACCESS_KEY_SECRET": "not-a-real-secret",
           "CNAME_FLOW__OSS__ENDPOINT": "http://127.0.0.1:9"}
    try:
        assert holder.stdout is not None and holder.stdout.readline() == "held\n"
        with pytest.raises(Locked) as caught:
            cname_flow.unbind("a.example.com", config=config, env=env)
        assert str(holder.pid) in str(caught.value)
        assert isinstance(caught.value, CnameFlowError)
    finally:
        holder.kill()
        holder.wait()

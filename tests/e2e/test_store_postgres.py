"""The PostgreSQL store end to end: real `cname-flow` processes, the real SDKs, the sandbox, a
real PostgreSQL. Bindings made by a local `bind` and `batch run` (JSON journal) are copied in
with `store migrate`; then, with CNAME_FLOW_STORE_URL set and the JSON journal moved away,
`status`, `cert status`, `batch status`, `batch list`, `reconcile` (report) and `forget` read and
write PostgreSQL. The URL carries a password sentinel that no output may show."""

from __future__ import annotations

import json
import shutil
import subprocess
import threading
from pathlib import Path
from typing import Any

import pytest
import yaml

from cname_flow import service
from cname_flow.config import load_settings
from cname_flow.journal import BindingRecord
from cname_flow.model import Phase
from cname_flow.sandbox.app import Sandbox
from cname_flow.store.postgres import PgStore
from tests.e2e.bindkit import SandboxEnv, sandbox_env, write_config

pytestmark = [pytest.mark.e2e, pytest.mark.usefixtures("no_proxy"), pytest.mark.timeout(300)]

BUCKET = "examplebucket"
SENTINEL = "Pg-Sentinel-51c0"


def ok(done: subprocess.CompletedProcess[str]) -> subprocess.CompletedProcess[str]:
    assert done.returncode == 0, done.stderr[-3000:]
    assert SENTINEL not in done.stdout + done.stderr
    return done


def as_json(done: subprocess.CompletedProcess[str]) -> Any:
    return json.loads(ok(done).stdout)


def write_manifest(path: Path, names: list[str]) -> Path:
    doc = {"defaults": {"bucket": BUCKET, "region": "cn-hangzhou"},
           "bindings": [{"domain": d} for d in names]}
    path.write_text(yaml.safe_dump(doc), encoding="utf-8")
    return path


def with_store(sb: SandboxEnv, url: str) -> SandboxEnv:
    return SandboxEnv(sb.sandbox, sb.config, {**sb.env, "CNAME_FLOW_STORE_URL": url}, sb.journal)


def test_status_cert_batch_and_forget_read_postgresql_after_migrate(tmp_path: Path,
                                                                     pg_url: str) -> None:
    url = pg_url.replace("postgres@", f"postgres:{SENTINEL}@")  # trust auth ignores it
    with sandbox_env(tmp_path) as local:
        ok(local.cli("bind", "pg1.example.com", "--json", timeout=120))
        ok(local.cli("bind", "pg2.example.com", "--json", timeout=120))
        manifest = write_manifest(tmp_path / "m.yaml", ["pg3.example.com", "pg4.example.com"])
        ran = as_json(local.cli("batch", "run", "-f", str(manifest), "--job", "j1", "--json",
                                timeout=120))
        assert ran["counts"]["bound"] == 2

        sb = with_store(local, url)
        copied = ok(sb.cli("store", "migrate"))
        assert "copied" in copied.stdout and "1 new jobs" in " ".join(copied.stdout.split())
        journal_dir = local.journal.parent
        journal_dir.rename(tmp_path / "journal.moved")  # from here only PostgreSQL holds them

        names = [f"pg{i}.example.com" for i in range(1, 5)]
        status = {r["domain"]: r["phase"]
                  for r in as_json(sb.cli("status", "--json"))["bindings"]}
        assert status == dict.fromkeys(names, "BOUND")
        certs = as_json(sb.cli("cert", "status", "--json"))["certificates"]
        assert set(names) <= {row["domain"] for row in certs}
        job = as_json(sb.cli("batch", "status", "j1", "--json"))
        assert job["counts"]["bound"] == 2
        assert sorted(b["domain"] for b in job["bindings"]) == names[2:]
        assert [j["job_id"] for j in as_json(sb.cli("batch", "list", "--json"))["jobs"]] == ["j1"]
        planned = sb.cli("reconcile", "-f", str(manifest), "--json")
        assert planned.returncode == 0, planned.stderr[-3000:]  # pg3, pg4 as desired: no drift
        assert SENTINEL not in planned.stdout + planned.stderr

        forgot = as_json(sb.cli("forget", "pg1.example.com", "--json"))
        assert forgot["forgotten"] == [f"{BUCKET}/pg1.example.com"]
        after = {r["domain"] for r in as_json(sb.cli("status", "--json"))["bindings"]}
        assert after == set(names) - {"pg1.example.com"}
        assert sb.sandbox.state.buckets[BUCKET].cnames["pg1.example.com"].status == "Enabled"

        assert not (journal_dir / "bindings.jsonl").exists()  # nothing went to a JSON store
        shutil.rmtree(journal_dir, ignore_errors=True)  # reconcile's run lock lives there
        (tmp_path / "journal.moved").rename(journal_dir)
        again = ok(sb.cli("store", "migrate"))
        assert "nothing new to copy" in again.stdout
        with PgStore(pg_url) as store:
            assert store.get(f"{BUCKET}/pg1.example.com") is None  # stays forgotten
            history = list(store.events(f"{BUCKET}/pg2.example.com"))
            assert history and history[-1].phase == "BOUND"
            assert len(history) == len({(e.step, e.status, e.ts) for e in history})


def test_the_machine_binds_on_the_postgresql_store_from_many_threads(sandbox: Sandbox,
                                                                     tmp_path: Path,
                                                                     pg_url: str) -> None:
    """The engine every entry point shares (service.bind: lock, runner, committer thread) on a
    PgStore shared by four threads: three domains, one of them asked for twice at once."""
    config = tmp_path / "cname-flow.yaml"
    write_config(config, sandbox)
    env = {"OSS_ACCESS_KEY_ID": sandbox.info.access_key_id,
           "OSS_ACCESS_KEY_SECRET": sandbox.info.access_key_secret,
           "CNAME_FLOW_STORE_URL": pg_url}
    settings = load_settings(config, env=env)
    clients = service.Clients.from_settings(settings, env)
    names = ["m1.example.com", "m2.example.com", "m3.example.com", "m1.example.com"]
    results: list[BindingRecord | BaseException] = []
    with service.open_store(settings) as store:
        assert isinstance(store, PgStore)

        def bind(domain: str) -> None:
            try:
                results.append(service.bind(clients, service.make_binding(settings, domain),
                                            store))
            except BaseException as exc:
                results.append(exc)

        threads = [threading.Thread(target=bind, args=(name,)) for name in names]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(120)
        assert all(isinstance(r, BindingRecord) and r.phase == Phase.BOUND for r in results), \
            results
        for domain in set(names):
            token = sandbox.state.buckets[BUCKET].tokens[domain].token
            zone = sandbox.state.zone_for(f"_dnsauth.{domain}")
            assert zone is not None
            txt = [r.value for r in zone.records.values()
                   if r.fqdn == f"_dnsauth.{domain}" and r.type == "TXT"]
            assert txt == [token]  # one TXT record, holding the one token
            minted = {e.outputs.get("token") for e in store.events(f"{BUCKET}/{domain}")}
            assert minted - {None} == {token}
    assert not (tmp_path / "journal" / "bindings.jsonl").exists()  # nothing went to JSON

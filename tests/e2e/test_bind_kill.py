"""End to end: SIGKILL `cname-flow bind` at every step boundary and mid-propagation, then resume."""

from __future__ import annotations

import json
import signal
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from cname_flow.dns.base import OWNER_REMARK
from cname_flow.journal import Journal
from cname_flow.model import Step
from cname_flow.sandbox.alidns.ops import OPERATIONS
from tests.e2e.bindkit import SandboxEnv, sandbox_env, world
from tests.e2e.test_store import store_events

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

DOMAIN = "kill.example.com"
KEY = f"examplebucket/{DOMAIN}"

#: (step, status) events after which the process is killed, in flow order.
KILL_POINTS = [(str(s), status) for s in Step for status in ("running", "done")]


def _kill_after(sb: SandboxEnv, point: tuple[str, str], extra_s: float = 0.0) -> bool:
    """Run bind; SIGKILL it once ``point`` is journaled (+extra_s). False if it finished first."""
    seen = store_events(sb, KEY).count(point)
    proc = sb.popen("bind", DOMAIN)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if store_events(sb, KEY).count(point) > seen:
            time.sleep(extra_s)
            proc.send_signal(signal.SIGKILL)
            proc.wait(10)
            return True
        if proc.poll() is not None:
            return False
        time.sleep(0.002)
    proc.kill()
    raise AssertionError(f"{point} never journaled")


def test_bind_killed_at_every_step_boundary_resumes_to_one_binding(tmp_path: Path) -> None:
    with sandbox_env(tmp_path, world(0.0, 1.5)) as sb:
        killed = [p for p in KILL_POINTS if _kill_after(sb, p)]
        # and once in the middle of the propagation wait (the lagging server not serving yet)
        sb.cli("unbind", DOMAIN, "--yes")
        assert _kill_after(sb, (str(Step.WAIT_PROPAGATION), "running"), extra_s=0.7)
        done = sb.cli("bind", DOMAIN, "--json")
        assert done.returncode == 0, done.stderr
        assert json.loads(done.stdout)["phase"] == "BOUND"
        assert len(killed) >= len(KILL_POINTS) - 2      # only the last events can race the exit
        txt = sb.records(f"_dnsauth.{DOMAIN}")
        assert [r.value for r in txt] == [sb.token("examplebucket", DOMAIN)]
        tokens = {json.loads(line)["outputs"].get("token")
                  for line in sb.journal.read_text().splitlines()
                  if line.startswith("{") and '"token"' in line and KEY in line}
        assert len(tokens - {None}) == 1                 # one token, never re-minted
        assert Journal.read_only(sb.journal).get(KEY) is not None
        assert sb.sandbox.state.buckets["examplebucket"].cnames[DOMAIN].status == "Enabled"


def test_bind_killed_while_the_add_answer_is_in_flight_claims_the_record_on_rerun(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """AddDomainRecord ran, its answer never reached the client: the re-run finds the record
    holding our token, claims it (remark, journaled id), and ``unbind`` removes it."""
    domain = "inflight.example.com"
    name = f"_dnsauth.{domain}"
    with sandbox_env(tmp_path) as sb:
        added, killed = threading.Event(), threading.Event()
        add = OPERATIONS["AddDomainRecord"]

        def add_then_hold(state: Any, account: str, params: Any) -> Any:
            body = add(state, account, params)
            added.set()
            killed.wait(30)  # holds the sandbox's loop: the answer cannot leave before the kill
            return body

        monkeypatch.setitem(OPERATIONS, "AddDomainRecord", add_then_hold)
        proc = sb.popen("bind", domain)
        try:
            assert added.wait(60), "AddDomainRecord never ran"
            proc.send_signal(signal.SIGKILL)
            proc.wait(10)
        finally:
            killed.set()
        monkeypatch.setitem(OPERATIONS, "AddDomainRecord", add)
        [unclaimed] = sb.records(name)
        assert unclaimed.remark == ""
        assert sb.phase(f"examplebucket/{domain}") == "TOKEN_READY"   # the write never finished

        done = sb.cli("bind", domain, "--json")
        assert done.returncode == 0, done.stderr
        assert json.loads(done.stdout)["phase"] == "BOUND"
        [claimed] = sb.records(name)
        assert (claimed.record_id, claimed.remark) == (unclaimed.record_id, OWNER_REMARK)
        record = Journal.read_only(sb.journal).get(f"examplebucket/{domain}")
        assert record is not None and record.txt_record_id == claimed.record_id

        gone = sb.cli("unbind", domain, "--yes")
        assert gone.returncode == 0, gone.stderr
        assert sb.records(name) == []



@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_bind_stopped_by_a_signal_exits_128_plus_it_and_the_rerun_resumes(
    tmp_path: Path, signum: signal.Signals
) -> None:
    """A one-shot bind runs on the engine a job uses, so a signal stops it the way it stops a
    job: the propagation wait is cancelled at once (the lagging server never got to serve),
    the state is saved, exit 128 + signum; the re-run resumes with the same token and record."""
    domain = f"sig{int(signum)}.example.com"
    key = f"examplebucket/{domain}"
    with sandbox_env(tmp_path, world(0.0, 4.0)) as sb:
        proc = sb.popen("bind", domain)
        deadline = time.monotonic() + 60
        while (str(Step.WAIT_PROPAGATION), "running") not in store_events(sb, key):
            assert proc.poll() is None and time.monotonic() < deadline, "no wait started"
            time.sleep(0.01)
        proc.send_signal(signum)
        _, err = proc.communicate(timeout=30)
        assert proc.returncode == 128 + int(signum), err
        assert "re-run to resume" in err and "Traceback" not in err
        assert sb.phase(key) == "TXT_WRITTEN"           # stopped in the wait, not after it
        [first] = sb.records(f"_dnsauth.{domain}")
        done = sb.cli("bind", domain, "--json")
        assert done.returncode == 0, done.stderr
        assert json.loads(done.stdout)["phase"] == "BOUND"
        [again] = sb.records(f"_dnsauth.{domain}")
        assert (again.record_id, again.value) == (first.record_id, first.value)

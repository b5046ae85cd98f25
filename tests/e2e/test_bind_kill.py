"""End to end: SIGKILL `cname-flow bind` at every step boundary and mid-propagation, then resume."""

from __future__ import annotations

import json
import signal
import time
from pathlib import Path

import pytest

from cname_flow.journal import Journal
from cname_flow.model import Step
from tests.e2e.bindkit import SandboxEnv, sandbox_env, world

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

DOMAIN = "kill.example.com"
KEY = f"examplebucket/{DOMAIN}"

#: (step, status) events after which the process is killed, in flow order.
KILL_POINTS = [(str(s), status) for s in Step for status in ("running", "done")]


def _events(sb: SandboxEnv) -> list[tuple[str, str]]:
    if not sb.journal.exists():
        return []
    out = []
    for line in sb.journal.read_text().splitlines():
        try:
            ev = json.loads(line)
        except json.JSONDecodeError:
            continue            # a torn last line: the journal drops it on load
        if ev.get("key") == KEY:
            out.append((ev["step"], ev["status"]))
    return out


def _kill_after(sb: SandboxEnv, point: tuple[str, str], extra_s: float = 0.0) -> bool:
    """Run bind; SIGKILL it once ``point`` is journaled (+extra_s). False if it finished first."""
    seen = _events(sb).count(point)
    proc = sb.popen("bind", DOMAIN)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if _events(sb).count(point) > seen:
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
        sb.cli("unbind", DOMAIN)
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

"""The README's runnable blocks run as written: every ```sh block preceded by
``<!-- runnable -->`` is run by bash (``-e -o pipefail``) in an empty temporary directory, with
this checkout's ``cname-flow`` first on PATH and no cloud credentials in the environment. The
sandbox quick start starts its own sandbox in the background; whatever a block leaves running is
ended with its process group."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from cname_flow.certs import parse_certificate_chain, sha1_fingerprint
from tests.certgen import make_cert, write_pem
from tests.e2e.bindkit import sandbox_env

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(300)]

ROOT = Path(__file__).resolve().parents[2]
MARK = "<!-- runnable -->"
BLOCK = re.compile(re.escape(MARK) + r"\s*\n```(?:sh|bash)\n(.*?)\n```", re.S)


def runnable_blocks(text: str) -> list[str]:
    """The body of every shell block marked runnable, in order.

    Raises:
        AssertionError: a marker not followed by a shell block (a marker that would be skipped).
    """
    blocks = BLOCK.findall(text)
    assert len(blocks) == text.count(MARK), "a runnable marker is not followed by a sh block"
    return blocks


def run_block(body: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    """Run ``body`` with bash in ``cwd``; kill its process group afterwards."""
    bin_dir = str(Path(sys.executable).parent)
    env = {k: v for k, v in os.environ.items()
           if not k.upper().endswith("_PROXY") and not k.startswith(("OSS_", "ALIBABA_CLOUD_"))
           and k not in ("CNAME_FLOW_CONFIG", "CNAME_FLOW_STORE_URL")}
    env |= {"PATH": f"{bin_dir}{os.pathsep}{env.get('PATH', '')}", "PYTHONPATH": str(ROOT),
            "HOME": str(cwd), "NO_COLOR": "1"}
    proc = subprocess.Popen(["bash", "-e", "-o", "pipefail", "-c", body], cwd=cwd, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)
    try:
        out, err = proc.communicate(timeout=240)
    finally:
        try:
            os.killpg(proc.pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)


BLOCKS = runnable_blocks((ROOT / "README.md").read_text(encoding="utf-8"))


def test_the_readme_marks_the_quick_start_the_policy_and_completion_runnable() -> None:
    joined = "\n".join(BLOCKS)
    assert "sandbox serve" in joined and "bind www.example.com" in joined
    assert "doctor --policy-only" in joined and "_CNAME_FLOW_COMPLETE" in joined


@pytest.mark.parametrize("body", BLOCKS, ids=[f"block{i}" for i in range(len(BLOCKS))])
def test_a_runnable_block_runs_as_written(body: str, tmp_path: Path) -> None:
    done = run_block(body, tmp_path)
    assert done.returncode == 0, f"$ {body}\n--- stdout\n{done.stdout}\n--- stderr\n{done.stderr}"
    if "bind www.example.com" in body:  # the sandbox quick start really bound the domain
        assert "www.example.com" in done.stdout and "BOUND" in done.stdout, done.stdout
        assert "credentials accepted" in done.stdout  # doctor ran and passed (exit 0)
    if "complete -p" in body:
        assert "cname-flow" in done.stdout


@pytest.mark.usefixtures("no_proxy")
def test_the_certbot_deploy_hook_attaches_the_renewed_certificate(tmp_path: Path) -> None:
    """docs/certbot.md's hook, run as certbot runs it (RENEWED_LINEAGE, RENEWED_DOMAINS)."""
    doc = (ROOT / "docs" / "certbot.md").read_text(encoding="utf-8")
    [hook] = re.findall(r"<!-- deploy-hook -->\s*\n```sh\n(.*?)\n```", doc, re.S)
    script = tmp_path / "cname-flow-hook"
    script.write_text(hook + "\n", encoding="utf-8")
    script.chmod(0o755)
    domain = "img.example.com"
    old, new = tmp_path / "old", tmp_path / "live"
    old.mkdir()
    new.mkdir()
    first = write_pem(old, make_cert([domain]), cert_name="fullchain.pem", key_name="privkey.pem")
    renewed = write_pem(new, make_cert([domain]), cert_name="fullchain.pem",
                        key_name="privkey.pem")
    with sandbox_env(tmp_path) as sb:
        done = sb.cli("bind", domain, "--cert-file", str(first[0]), "--key-file", str(first[1]))
        assert done.returncode == 0, done.stderr
        env = sb.env | {"CNAME_FLOW_CONFIG": str(sb.config), "RENEWED_LINEAGE": str(new),
                        "RENEWED_DOMAINS": f"{domain} *.example.com",
                        "PATH": f"{Path(sys.executable).parent}{os.pathsep}"
                                f"{os.environ.get('PATH', '')}"}
        ran = subprocess.run([str(script)], env=env, capture_output=True, text=True,
                             timeout=120, check=False)
        assert ran.returncode == 0, ran.stderr
        status = sb.cli("cert", "status", "--json")
    assert status.returncode == 0, status.stderr
    [row] = [r for r in json.loads(status.stdout)["certificates"] if r["domain"] == domain]
    want = sha1_fingerprint(parse_certificate_chain(renewed[0].read_bytes())[0])
    assert row["fingerprint"] == want

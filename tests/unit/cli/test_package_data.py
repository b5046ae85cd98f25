"""The demo's manifest is package data: a built wheel carries it and ``cname-flow demo`` runs
from the unpacked wheel, outside the repository, with no checkout around it."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from cname_flow.cli.demo import DEFAULT_WORKFLOW, load_workflow

ROOT = Path(__file__).resolve().parents[3]
#: The local package index the build backend (setuptools, from pyproject's build-system) comes
#: from; pip's configured index otherwise.
LOCAL_INDEX = Path("/opt/pypi/simple")

RUN_CLI = """
import sys
from pathlib import Path
import cname_flow
assert Path(cname_flow.__file__).resolve().is_relative_to(Path(sys.argv[1]).resolve()), \\
    cname_flow.__file__
from cname_flow.cli import main
sys.argv = ["cname-flow", *sys.argv[2:]]
main()
"""


def test_the_default_workflow_loads_from_the_package() -> None:
    manifest = load_workflow()
    assert [b.domain for b in manifest.bindings] == [
        "example.com", "www.example.com", "img.shop.example.com.cn"]
    assert Path(str(manifest.source)).name == DEFAULT_WORKFLOW


def _build_wheel(tmp: Path) -> Path:
    """Build the project's wheel from a copy of the sources (the work tree stays clean)."""
    src = tmp / "src"
    src.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(ROOT / name, src / name)
    shutil.copytree(ROOT / "cname_flow", src / "cname_flow",
                    ignore=shutil.ignore_patterns("__pycache__"))
    index = ["--index-url", LOCAL_INDEX.as_uri()] if LOCAL_INDEX.is_dir() else []
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", *index,
                    "-w", str(tmp / "dist"), str(src)], check=True, capture_output=True,
                   timeout=300)
    [wheel] = (tmp / "dist").glob("cname_flow-*.whl")
    return wheel


def _cli(unpacked: Path, cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """``cname-flow ARGS`` with only the unpacked wheel (and the venv's dependencies) importable."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env["PYTHONPATH"] = str(unpacked)
    return subprocess.run([sys.executable, "-c", RUN_CLI, str(unpacked), *args], cwd=cwd,
                          env=env, capture_output=True, text=True, timeout=180, check=False)


@pytest.mark.e2e
@pytest.mark.slow
def test_cname_flow_demo_runs_from_the_built_wheel(tmp_path: Path) -> None:
    wheel = _build_wheel(tmp_path)
    with zipfile.ZipFile(wheel) as archive:
        assert "cname_flow/cli/demo.yaml" in archive.namelist()
        archive.extractall(tmp_path / "unpacked")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    done = _cli(tmp_path / "unpacked", elsewhere, "demo", "--lag", "0")
    assert done.returncode == 0, done.stderr
    assert "all bound" in done.stdout and "img.shop.example.com.cn" in done.stdout
    # and the check has teeth: the same wheel without the file fails before starting anything
    (tmp_path / "unpacked" / "cname_flow" / "cli" / "demo.yaml").unlink()
    missing = _cli(tmp_path / "unpacked", elsewhere, "demo", "--lag", "0")
    assert missing.returncode == 2 and "cannot read manifest" in missing.stderr

"""The workflow and the public API import ports only: no vendor SDK, no dnspython."""

from __future__ import annotations

import json
import pkgutil
import subprocess
import sys

import cname_flow.workflow

WORKFLOW_MODULES = sorted(
    f"cname_flow.workflow.{m.name}" for m in pkgutil.iter_modules(cname_flow.workflow.__path__))


def _loaded_after_importing(modules: list[str]) -> list[str]:
    """Every module in ``sys.modules`` after importing ``modules`` in a fresh interpreter."""
    code = (f"import importlib, json, sys\nfor m in {modules!r}: importlib.import_module(m)\n"
            "print(json.dumps(sorted(sys.modules)))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          check=True)
    loaded: list[str] = json.loads(done.stdout)
    return loaded


def test_the_workflow_has_the_modules_this_test_imports() -> None:
    assert {"cname_flow.workflow.context", "cname_flow.workflow.driver",
            "cname_flow.workflow.steps", "cname_flow.workflow.runner"} <= set(WORKFLOW_MODULES)


def test_importing_the_workflow_and_the_public_api_loads_no_sdk_and_no_dnspython() -> None:
    loaded = _loaded_after_importing(["cname_flow", *WORKFLOW_MODULES])
    assert set(WORKFLOW_MODULES) <= set(loaded)
    assert [m for m in loaded if m.startswith("alibabacloud")] == []
    assert [m for m in loaded if m == "cloudflare" or m.startswith("cloudflare.")] == []
    assert [m for m in loaded if m == "dns" or m.startswith("dns.")] == []

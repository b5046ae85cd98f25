"""Start-up stays light: importing the CLI loads no vendor SDK, and help needs none of them.

The time itself is measured by ``bench/startup.py`` (not asserted here: timings on a shared
machine are noise); these tests pin the cause of a slow start, the imports.
"""

from __future__ import annotations

import importlib
import json
import subprocess
import sys
from importlib.metadata import version

import cname_flow

#: Modules that cost most of a second together and no help text needs.
HEAVY = ("alibabacloud_oss_v2", "alibabacloud_credentials", "alibabacloud_alidns20150109",
         "oss2", "cloudflare", "dns", "httpx", "rich", "psycopg", "dbos", "structlog",
         "cryptography", "cname_flow.service", "cname_flow.api")


def _loaded_after(code: str) -> set[str]:
    script = f"import sys, json\n{code}\nprint(json.dumps(sorted(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                         check=True, timeout=60).stdout
    return {name.split(".")[0] if not name.startswith("cname_flow") else name
            for name in json.loads(out.splitlines()[-1])}


def test_importing_the_cli_loads_no_sdk() -> None:
    loaded = _loaded_after("import cname_flow.cli.main")
    assert loaded & set(HEAVY) == set()


def test_help_of_the_root_and_of_a_command_loads_no_sdk() -> None:
    """``batch``, ``reconcile``, ``store`` and ``worker`` live in their own modules and load
    them when named; the commands of ``cli/main.py`` need nothing heavy for their help."""
    code = ("from cname_flow.cli.main import main\n"
            "for argv in (['--help'], ['bind', '--help'], ['-h'], ['plan', '-h']):\n"
            "    try:\n"
            "        main(argv, prog_name='cname-flow')\n"
            "    except SystemExit as exc:\n"
            "        assert exc.code == 0, (argv, exc.code)\n"
            "import sys; sys.stdout = sys.__stdout__")
    loaded = _loaded_after(code)
    assert loaded & set(HEAVY) == set()


def test_a_command_still_loads_what_it_needs() -> None:
    """The lazy stand-ins resolve: a command body reaches the real module."""
    cli_main = importlib.import_module("cname_flow.cli.main")
    assert cli_main.service.open_store.__module__ == "cname_flow.service"
    assert repr(cli_main.service) == "<lazy module 'cname_flow.service'>"


def test_version_printed_is_the_installed_distributions() -> None:
    """``--version`` reads ``cname_flow.__version__`` (no metadata scan at start-up): it must
    be the version the package was installed as (pyproject.toml)."""
    assert cname_flow.__version__ == version("cname-flow")

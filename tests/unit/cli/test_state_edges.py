"""The state's edges through real commands: what a bad job id, a journal location that cannot
be used, or a tampered journal does to a command is a message and an exit code, never a
traceback (issue 13)."""

from __future__ import annotations

import pytest
from click.testing import Result

from cname_flow.cli.common import Outcome
from cname_flow.store import JsonStore
from tests.unit.cli.clikit import CliWorld


def _no_traceback(result: Result) -> None:
    """The command ended through ``sys.exit`` (a message), not an exception escaping it."""
    assert isinstance(result.exception, SystemExit) or result.exception is None, result.exc_info
    assert "Traceback" not in result.output


@pytest.mark.parametrize("command", ["resume", "status"])
def test_a_job_id_too_long_for_a_file_name_exits_2(world: CliWorld, command: str) -> None:
    with JsonStore(world.tmp / "journal", fsync=False) as store, store.open_job("j1"):
        pass  # jobs/ exists: the long name reaches the file system unless refused first
    result = world.invoke("batch", command, "a" * 300)
    _no_traceback(result)
    assert result.exit_code == Outcome.USAGE
    assert "too long" in result.output

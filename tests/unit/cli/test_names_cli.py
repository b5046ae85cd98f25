"""Names and options refused at the command line before anything is sent or journaled (issue 13).

Every refusal is exit 2 with one ``error:`` line, no traceback, no call to OSS or DNS, and no
key in the store of record.
"""

from __future__ import annotations

import pytest
from click.testing import Result

from cname_flow import service
from cname_flow.config import load_settings
from tests.unit.cli.clikit import CliWorld


def assert_refused(world: CliWorld, done: Result, *needles: str) -> None:
    """Exit 2, the reason on stderr, nothing remote, nothing journaled."""
    assert done.exit_code == 2, done.output
    assert "Traceback" not in done.output and done.exception is not None
    assert isinstance(done.exception, SystemExit)
    for needle in needles:
        assert needle in done.stderr, done.stderr
    assert sum(world.oss.calls.values()) == 0, world.oss.calls
    assert sum(world.dns.calls.values()) == 0, world.dns.calls
    assert world.oss.minted == 0
    assert dict(service.read_bindings(load_settings(world.config))) == {}


def bound(world: CliWorld, domain: str) -> None:
    """Bind ``domain`` (exit 0), then forget the calls it made."""
    done = world.invoke("bind", domain)
    assert done.exit_code == 0, done.output
    world.oss.calls.clear()
    world.dns.calls.clear()


# -- domains -------------------------------------------------------------------------------------

@pytest.mark.parametrize("domain", ["1.2.3.4", "::1", "example.123"])
def test_bind_refuses_ip_shaped_names(world: CliWorld, domain: str) -> None:
    assert_refused(world, world.invoke("bind", domain), "error:", repr(domain))

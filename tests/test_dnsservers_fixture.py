"""The real DNS server fixtures themselves: BIND 9 and Knot answer authoritatively on loopback,
as an unprivileged user, and a missing binary fails with what to install (never a skip)."""

from __future__ import annotations

import os
import subprocess

import dns.flags
import dns.message
import dns.query
import pytest

from tests.dnsservers import ZONES, DnsServer, binary


@pytest.mark.parametrize("fixture", ["bind9_server", "knot_server"])
def test_each_server_answers_every_zone_authoritatively_as_an_unprivileged_user(
    fixture: str, request: pytest.FixtureRequest
) -> None:
    server: DnsServer = request.getfixturevalue(fixture)
    for zone in ZONES:
        query = dns.message.make_query(f"{zone}.", "SOA")
        answer = dns.query.udp(query, "127.0.0.1", port=server.port, timeout=2)
        assert answer.flags & dns.flags.AA and answer.answer
    assert server.process is not None and server.process.poll() is None
    owner = subprocess.run(["ps", "-o", "user=", "-p", str(server.process.pid)],
                           capture_output=True, text=True, check=True).stdout.strip()
    assert owner != "root" or os.geteuid() != 0
    assert server.port > 1024


def test_a_missing_binary_should_fail_naming_the_package_to_install() -> None:
    with pytest.raises(RuntimeError, match=r"apt-get install -y no-such-package"):
        binary("no-such-daemon-cname-flow", "no-such-package")

"""The propagation lab itself (:mod:`tests.dnslab`): both BIND daemons run unprivileged on high
loopback ports, and the secondary, told of nothing (NOTIFY off), serves a change only at its
next SOA refresh: seconds after the primary, within one REFRESH period of the alignment."""

from __future__ import annotations

import os
import secrets
import subprocess
import time

from tests.dnslab import FirstServed, Lab, txt_values


def test_lab_servers_run_unprivileged_and_serve_the_zone(propagation_lab: Lab) -> None:
    for server in (propagation_lab.primary, propagation_lab.secondary):
        assert server.process is not None and server.process.poll() is None
        owner = subprocess.run(["ps", "-o", "user=", "-p", str(server.process.pid)],
                               capture_output=True, text=True, check=True).stdout.strip()
        assert owner != "root" or os.geteuid() != 0
        assert server.port > 1024
    assert set(propagation_lab.nameserver_addresses()) == {"ns1.example.org", "ns2.example.org"}


def test_secondary_should_serve_a_change_only_at_its_next_refresh(propagation_lab: Lab) -> None:
    lab = propagation_lab
    aligned = lab.align()
    value = f"lag-{secrets.token_hex(4)}"
    name = f"_lag.{lab.zone}"
    with FirstServed(lab.secondary.port, name, value) as secondary:
        lab.update_txt("_lag", value)
        written = time.monotonic()
        assert value in (txt_values(lab.primary.port, name) or ())  # the primary: at once
        served = secondary.wait(3 * lab.refresh_s + 30)
    assert secondary.last_miss is not None and secondary.last_miss >= written
    # not before half a period (the refresh timer, not a NOTIFY), by the next refresh or two
    # (a loaded machine may make BIND miss one)
    assert served - written >= lab.refresh_s / 2
    assert served - aligned <= 2 * lab.refresh_s + 5

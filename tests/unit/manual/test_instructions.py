"""The record to add, as DNS panels want it."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from cname_flow.manual.instructions import instructions_for, relative_host


def test_subdomain_gets_relative_and_full_host() -> None:
    instr = instructions_for("shop.example.com", "example.com", "tok",
                             datetime(2026, 12, 4, tzinfo=UTC))
    data = instr.as_json()
    assert data["host"] == "_dnsauth.shop" and data["fqdn"] == "_dnsauth.shop.example.com"
    assert data["fqdn_dotted"] == "_dnsauth.shop.example.com." and data["type"] == "TXT"
    assert data["value"] == "tok" and data["token_expires_at"] == "2026-12-04T00:00:00+00:00"
    text = instr.text()
    assert "_dnsauth.shop " in text and "_dnsauth.shop.example.com." in text and "tok" in text


def test_apex_domain_host_is_dnsauth() -> None:
    assert instructions_for("example.com", "example.com", "tok").host == "_dnsauth"


def test_deeper_zone() -> None:
    assert relative_host("_dnsauth.a.b.shop.co.uk", "shop.co.uk") == "_dnsauth.a.b"
    assert relative_host("example.com.", "EXAMPLE.com") == "@"


def test_name_outside_the_zone_is_refused() -> None:
    with pytest.raises(ValueError, match="not in zone"):
        relative_host("_dnsauth.shop.example.org", "example.com")
    with pytest.raises(ValueError):
        relative_host("_dnsauth.badexample.com", "example.com")

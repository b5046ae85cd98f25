"""One source per setting: the settings' defaults are the policies', and one address parser."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from cname_flow.config import OwnershipSettings, PropagationSettings, load_settings
from cname_flow.config import sections as config_sections
from cname_flow.errors import ConfigError
from cname_flow.propagation.model import PropagationPolicy, parse_address
from cname_flow.workflow.putcname import OwnershipPolicy


def field_names(cls: type) -> set[str]:
    return {f.name for f in dataclasses.fields(cls)}


def test_propagation_settings_and_policy_should_declare_the_same_fields() -> None:
    assert set(PropagationSettings.model_fields) == field_names(PropagationPolicy)


def test_propagation_defaults_should_be_the_policys() -> None:
    assert PropagationSettings().to_policy() == PropagationPolicy()


def test_to_policy_should_carry_every_propagation_field(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text(
        "propagation:\n"
        "  query_timeout_s: 1.5\n  tcp_timeout_s: 2.5\n  payload: 1400\n  first_poll_s: 0.0\n"
        "  backoff_initial_s: 0.5\n  backoff_exp_base: 1.5\n  backoff_max_s: 4.0\n"
        "  backoff_jitter_s: 0.0\n  confirmations: 3\n  confirmation_gap_s: 1.0\n"
        "  deadline_s: 60\n  max_parallel: 4\n  strict: true\n  dns_port: 5300\n"
        "  nameserver_addresses: {NS1.Example.NET.: ['127.0.0.1', '[::1]']}\n",
        encoding="utf-8",
    )
    policy = load_settings(path, env={}).propagation.to_policy()

    assert policy == PropagationPolicy(
        query_timeout_s=1.5, tcp_timeout_s=2.5, payload=1400, first_poll_s=0.0,
        backoff_initial_s=0.5, backoff_exp_base=1.5, backoff_max_s=4.0, backoff_jitter_s=0.0,
        confirmations=3, confirmation_gap_s=1.0, deadline_s=60.0, max_parallel=4, strict=True,
        dns_port=5300, nameserver_addresses={"ns1.example.net": ("127.0.0.1", "[::1]")},
    )
    assert policy.overrides_for("ns1.example.net") == [("127.0.0.1", 5300), ("::1", 5300)]


def test_ownership_settings_and_policy_should_declare_the_same_fields() -> None:
    assert set(OwnershipSettings.model_fields) == field_names(OwnershipPolicy)


def test_ownership_policy_defaults_should_be_the_settings() -> None:
    assert OwnershipPolicy() == OwnershipPolicy.from_settings(OwnershipSettings())
    assert dataclasses.astuple(OwnershipPolicy()) == (5.0, 2.0, 60.0, 2.0, 60.0, 900.0)


def test_ownership_from_settings_should_carry_every_field() -> None:
    section = OwnershipSettings(
        initial_s=1, exp_base=3, max_s=10, jitter_s=0, min_window_s=30, cap_s=120
    )
    expected = OwnershipPolicy(1.0, 3.0, 10.0, 0.0, 30.0, 120.0)
    assert OwnershipPolicy.from_settings(section) == expected


def test_config_should_use_the_checkers_address_parser() -> None:
    assert vars(config_sections)["parse_address"] is parse_address
    assert not hasattr(config_sections.PropagationSettings, "addresses_for")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("[::1]", ("::1", 53)),
        ("[::1]:5353", ("::1", 5353)),
        ("::1", ("::1", 53)),
        ("fd00:0:0::53", ("fd00::53", 53)),
        ("1.2.3.4", ("1.2.3.4", 53)),
        ("1.2.3.4:53", ("1.2.3.4", 53)),
        (" 1.2.3.4:5301 ", ("1.2.3.4", 5301)),
    ],
)
def test_parse_address_accepts(text: str, expected: tuple[str, int]) -> None:
    assert parse_address(text, 53) == expected


@pytest.mark.parametrize(
    "text", ["host", "ns1.example.net:53", "1.2.3.4:0", "1.2.3.4:65536", "[::1]:x", "1.2.3.4:"]
)
def test_parse_address_refuses(text: str) -> None:
    with pytest.raises(ValueError):
        parse_address(text, 53)


@pytest.mark.parametrize("text", ["[::1]", "[::1]:5353", "::1", "1.2.3.4", "1.2.3.4:53"])
def test_config_should_accept_what_the_checker_accepts(tmp_path: Path, text: str) -> None:
    path = tmp_path / "c.yaml"
    path.write_text(f"propagation:\n  nameserver_addresses:\n    ns1.example.net: ['{text}']\n")
    settings = load_settings(path, env={})
    assert settings.propagation.nameserver_addresses == {"ns1.example.net": [text]}


@pytest.mark.parametrize("text", ["host", "1.2.3.4:0", "[::1]:99999"])
def test_config_error_wording_for_a_bad_address(tmp_path: Path, text: str) -> None:
    path = tmp_path / "c.yaml"
    path.write_text(f"propagation:\n  nameserver_addresses:\n    ns1.example.net: ['{text}']\n")
    with pytest.raises(ConfigError) as info:
        load_settings(path, env={})
    assert info.value.reasons == [
        f"{path}:3: propagation.nameserver_addresses.ns1.example.net[0]: "
        f"{text!r} is not an address (ip, ip:port or [ipv6]:port)"
    ]

"""load_settings: defaults, the example file, env overrides, and errors that say file:line:key."""

from __future__ import annotations

import traceback
from pathlib import Path

import pydantic
import pytest
import yaml

from cname_flow.config import DEFAULT_RATE_LIMITS, Settings, load_settings
from cname_flow.errors import ConfigError

REPO = Path(__file__).resolve().parents[3]
EXAMPLE = REPO / "config.example.yaml"
SENTINEL = "SENTINEL-7f3a9c-do-not-echo"


def write(tmp_path: Path, text: str, name: str = "config.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def reasons_of(path: Path | None, env: dict[str, str] | None = None) -> list[str]:
    with pytest.raises(ConfigError) as info:
        load_settings(path, env=env or {})
    return info.value.reasons


def test_load_settings_when_no_file_should_use_production_defaults() -> None:
    settings = load_settings(None, env={})

    assert settings.source is None
    assert settings.oss.endpoint is None  # the SDK's https endpoint for the region
    assert settings.oss.region == "cn-hangzhou"
    assert settings.oss.signature_version == "v4"
    assert settings.alidns.protocol == "https"
    assert settings.alidns.effective_endpoint == "alidns.aliyuncs.com"
    assert not settings.credentials.explicit
    assert settings.journal.dir == Path.cwd() / ".cname-flow"


def test_defaults_should_be_the_checkers_defaults() -> None:
    settings = load_settings(None, env={})
    p, o = settings.propagation, settings.ownership

    assert (p.query_timeout_s, p.tcp_timeout_s, p.payload, p.first_poll_s) == (2.0, 3.0, 1232, 0.25)
    assert (p.backoff_initial_s, p.backoff_exp_base, p.backoff_max_s, p.backoff_jitter_s) == (
        0.25,
        1.25,
        8.0,
        0.1,
    )
    assert (p.confirmations, p.confirmation_gap_s, p.deadline_s) == (2, 0.5, 300)
    assert (p.max_parallel, p.strict, p.dns_port, p.nameserver_addresses) == (16, False, 53, {})
    assert (o.initial_s, o.exp_base, o.max_s, o.jitter_s, o.min_window_s, o.cap_s) == (
        5,
        2,
        60,
        2,
        60,
        900,
    )
    assert settings.batch.concurrency == 64
    assert settings.batch.rate_limits["AddDomainRecord"] == 60
    assert settings.batch.rate_limits["DescribeSubDomainRecords"] == 300


def test_alidns_endpoint_when_region_is_not_hangzhou_should_be_regional() -> None:
    settings = load_settings(None, env={"CNAME_FLOW__ALIDNS__REGION": "ap-southeast-1"})
    assert settings.alidns.effective_endpoint == "alidns.ap-southeast-1.aliyuncs.com"


def test_example_file_should_load_cleanly() -> None:
    settings = load_settings(EXAMPLE, env={})

    assert settings.source == EXAMPLE
    assert settings.credentials.access_key_secret is not None
    assert settings.credentials.access_key_secret.env == "OSS_ACCESS_KEY_SECRET"
    policy = settings.propagation.to_policy()
    assert policy.overrides_for("NS1.example.net.") == [("127.0.0.1", 5301)]
    assert settings.journal.dir == REPO / ".cname-flow"
    assert settings.batch.rate_limits == DEFAULT_RATE_LIMITS


def test_example_file_should_document_every_setting() -> None:
    """The example is the documentation: each field of each section must appear in it."""
    data = yaml.safe_load(EXAMPLE.read_text(encoding="utf-8"))
    for section, field in Settings.model_fields.items():
        if section == "source":
            continue
        assert section in data, section
        model = field.annotation
        assert isinstance(model, type) and issubclass(model, pydantic.BaseModel)
        assert set(data[section]) == set(model.model_fields), section


def test_errors_when_several_settings_are_wrong_should_all_be_reported_with_file_line_key(
    tmp_path: Path,
) -> None:
    path = write(
        tmp_path,
        "oss:\n"  # 1
        "  region: CN_Hangzhou\n"  # 2
        "  signature_version: v3\n"  # 3
        "alidns:\n"  # 4
        "  endpoint: http://127.0.0.1:8080\n"  # 5
        "propagation:\n"  # 6
        "  deadline_s: -5\n"  # 7
        "  nameserver_addresses:\n"  # 8
        "    ns1.example.net:\n"  # 9
        "      - 127.0.0.1:5301\n"  # 10
        "      - not-an-ip\n"  # 11
        "batch:\n"  # 12
        "  concurrency: 0\n",  # 13
    )
    reasons = reasons_of(path)

    expected = [
        (2, "oss.region", "not an OSS region id"),
        (3, "oss.signature_version", "'v4' or 'v1'"),
        (5, "alidns.endpoint", "without a scheme"),
        (7, "propagation.deadline_s", "greater than 0"),
        (11, "propagation.nameserver_addresses.ns1.example.net[1]", "not an address"),
        (13, "batch.concurrency", "greater than or equal to 1"),
    ]
    assert len(reasons) == len(expected), reasons
    for reason, (line, key, what) in zip(reasons, expected, strict=True):
        assert reason.startswith(f"{path}:{line}: {key}: "), reason
        assert what in reason


def test_unknown_key_should_name_line_and_suggest_the_close_match(tmp_path: Path) -> None:
    path = write(tmp_path, "oss:\n  region: cn-hangzhou\n  endpont: oss.example.com\n")
    [reason] = reasons_of(path)
    assert reason.startswith(f"{path}:3: oss.endpont: unknown setting; did you mean 'endpoint'?")


def test_unknown_section_should_suggest_the_close_match(tmp_path: Path) -> None:
    path = write(tmp_path, "propagaton:\n  deadline_s: 10\n")
    [reason] = reasons_of(path)
    assert reason.startswith(f"{path}:1: propagaton: unknown setting; did you mean 'propagation'?")


def test_unknown_key_when_nothing_is_close_should_list_allowed_keys(tmp_path: Path) -> None:
    path = write(tmp_path, "journal:\n  zzz: 1\n")
    [reason] = reasons_of(path)
    assert reason == f"{path}:2: journal.zzz: unknown setting (allowed: dir, lock_wait_s)"


def test_bad_yaml_should_give_one_reason_with_the_line(tmp_path: Path) -> None:
    path = write(tmp_path, "oss:\n  region: cn-hangzhou\n  endpoint: [unclosed\nalidns: {}\n")
    [reason] = reasons_of(path)
    assert reason.startswith(f"{path}:4: not valid YAML"), reason


def test_bad_yaml_should_not_echo_the_offending_line(tmp_path: Path) -> None:
    path = write(tmp_path, f'credentials:\n  access_key_secret: "{SENTINEL}\n')
    with pytest.raises(ConfigError) as info:
        load_settings(path, env={})
    assert SENTINEL not in "".join(traceback.format_exception(info.value))


def test_literal_secret_should_be_refused_without_echoing_it(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        f"credentials:\n  access_key_id: {{env: MY_ID}}\n  access_key_secret: {SENTINEL}\n",
    )
    with pytest.raises(ConfigError) as info:
        load_settings(path, env={})
    err = info.value

    [reason] = err.reasons
    assert reason.startswith(f"{path}:3: credentials.access_key_secret: a literal value")
    assert "{env: NAME}" in reason
    rendered = "".join(traceback.format_exception(err)) + repr(err) + str(err)
    assert SENTINEL not in rendered
    assert err.__cause__ is None and err.__suppress_context__


def test_literal_secret_from_an_env_override_should_be_refused_too() -> None:
    reasons = reasons_of(None, {"CNAME_FLOW__CREDENTIALS__ACCESS_KEY_SECRET": SENTINEL})
    assert any(
        r.startswith(
            "env CNAME_FLOW__CREDENTIALS__ACCESS_KEY_SECRET: credentials.access_key_secret"
        )
        for r in reasons
    ), reasons
    assert SENTINEL not in "\n".join(reasons)


def test_env_refs_should_accept_both_spellings(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "credentials:\n"
        "  access_key_id: env/MY_ID\n"
        "  access_key_secret: {env: MY_SECRET}\n"
        "  security_token: {env: MY_TOKEN, optional: true}\n",
    )
    creds = load_settings(path, env={}).credentials
    assert creds.access_key_id is not None and creds.access_key_id.env == "MY_ID"
    assert creds.access_key_secret is not None and creds.access_key_secret.env == "MY_SECRET"
    assert creds.security_token is not None and creds.security_token.optional


def test_env_ref_with_a_bad_variable_name_should_be_refused(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "credentials:\n  access_key_id: {env: MY_ID}\n  access_key_secret: {env: 9-bad}\n",
    )
    [reason] = reasons_of(path)
    assert reason.startswith(f"{path}:3: credentials.access_key_secret.env: ")


def test_credentials_when_only_the_id_is_named_should_be_refused(tmp_path: Path) -> None:
    path = write(tmp_path, "credentials:\n  access_key_id: {env: MY_ID}\n")
    [reason] = reasons_of(path)
    assert reason.startswith(f"{path}:1: credentials: ")
    assert "together" in reason


def test_duplicate_key_should_be_reported(tmp_path: Path) -> None:
    path = write(tmp_path, "oss:\n  region: cn-hangzhou\n  region: cn-shanghai\n")
    [reason] = reasons_of(path)
    assert reason == f"{path}:3: oss.region: duplicate key (first given at line 2)"


def test_env_override_should_win_over_the_file_and_keep_its_type(tmp_path: Path) -> None:
    path = write(tmp_path, "propagation:\n  deadline_s: 30\n  strict: false\n")
    settings = load_settings(
        path,
        env={
            "CNAME_FLOW__PROPAGATION__DEADLINE_S": "120",
            "CNAME_FLOW__PROPAGATION__STRICT": "true",
            "CNAME_FLOW__OSS__ENDPOINT": "http://127.0.0.1:9000",
            "UNRELATED": "x",
        },
    )
    assert settings.propagation.deadline_s == 120
    assert settings.propagation.strict is True
    assert settings.oss.endpoint == "http://127.0.0.1:9000"
    assert settings.where("oss", "endpoint") == "env CNAME_FLOW__OSS__ENDPOINT"
    assert settings.where("propagation", "confirmations") == f"{path}:1"


def test_env_override_errors_should_name_the_variable() -> None:
    reasons = reasons_of(
        None, {"CNAME_FLOW__OSS__READ_TIMEOUT_S": "soon", "CNAME_FLOW__OSS__ENDPONT": "x"}
    )
    assert len(reasons) == 2, reasons
    assert any(r.startswith("env CNAME_FLOW__OSS__ENDPONT: oss.endpont: unknown") for r in reasons)
    assert any(
        r.startswith("env CNAME_FLOW__OSS__READ_TIMEOUT_S: oss.read_timeout_s: ") for r in reasons
    )


def test_env_override_into_a_scalar_should_be_refused(tmp_path: Path) -> None:
    path = write(tmp_path, "oss: 3\n")
    reasons = reasons_of(path, {"CNAME_FLOW__OSS__REGION__X": "y"})
    assert "env CNAME_FLOW__OSS__REGION__X: oss.region: is not a mapping" in reasons


@pytest.mark.parametrize(
    ("endpoint", "ok"),
    [
        ("oss-cn-hangzhou.aliyuncs.com", True),
        ("https://oss-cn-hangzhou.aliyuncs.com", True),
        ("http://127.0.0.1:9000", True),
        ("http://[::1]:9000", True),
        ("ftp://127.0.0.1:9000", False),
        ("http://127.0.0.1:99999", False),
        ("http://127.0.0.1:9000/path", False),
        ("bad host", False),
    ],
)
def test_oss_endpoint_validation(tmp_path: Path, endpoint: str, ok: bool) -> None:
    path = write(tmp_path, f"oss:\n  endpoint: '{endpoint}'\n")
    if ok:
        assert load_settings(path, env={}).oss.endpoint == endpoint
    else:
        [reason] = reasons_of(path)
        assert reason.startswith(f"{path}:2: oss.endpoint: ")


@pytest.mark.parametrize("endpoint", ["https://alidns.aliyuncs.com", "127.0.0.1:0", "a/b"])
def test_alidns_endpoint_when_not_host_port_should_be_refused(
    tmp_path: Path, endpoint: str
) -> None:
    path = write(tmp_path, f"alidns:\n  protocol: http\n  endpoint: '{endpoint}'\n")
    [reason] = reasons_of(path)
    assert reason.startswith(f"{path}:3: alidns.endpoint: ")


def test_nameserver_addresses_should_normalize_host_and_use_dns_port(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "propagation:\n  dns_port: 5300\n  nameserver_addresses:\n"
        "    NS2.Example.NET.: ['127.0.0.2', '[::1]:5301']\n",
    )
    prop = load_settings(path, env={}).propagation
    assert list(prop.nameserver_addresses) == ["ns2.example.net"]
    policy = prop.to_policy()
    assert policy.overrides_for("ns2.example.net") == [("127.0.0.2", 5300), ("::1", 5301)]
    assert policy.overrides_for("ns9.example.net") is None  # no override: look the name up


def test_cross_field_rules_should_name_the_section(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "propagation:\n  backoff_initial_s: 10\n  backoff_max_s: 2\n"
        "ownership:\n  min_window_s: 1000\n  cap_s: 900\n",
    )
    reasons = reasons_of(path)
    assert reasons[0].startswith(f"{path}:1: propagation: backoff_initial_s must not exceed")
    assert reasons[1].startswith(f"{path}:4: ownership: min_window_s must not exceed cap_s")


def test_journal_dir_should_resolve_against_the_config_directory(tmp_path: Path) -> None:
    sub = tmp_path / "conf"
    sub.mkdir()
    rel = load_settings(write(sub, "journal:\n  dir: state/j\n"), env={})
    absolute = load_settings(write(sub, f"journal:\n  dir: {tmp_path}/abs\n", "b.yaml"), env={})
    assert rel.journal.dir == sub.resolve() / "state" / "j"
    assert absolute.journal.dir == tmp_path / "abs"


def test_rate_limits_given_should_merge_over_the_defaults(tmp_path: Path) -> None:
    path = write(tmp_path, "batch:\n  rate_limits:\n    AddDomainRecord: 5\n    Custom: 1.5\n")
    limits = load_settings(path, env={}).batch.rate_limits
    assert limits["AddDomainRecord"] == 5
    assert limits["Custom"] == 1.5
    assert limits["DescribeDomainRecords"] == DEFAULT_RATE_LIMITS["DescribeDomainRecords"]


def test_defaults_section_should_validate_and_normalize(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "defaults:\n  bucket: Bad_Bucket\n  txt_ttl: 0\n  route_target: CDN.Example.com.\n",
    )
    reasons = reasons_of(path)
    assert [r.split(": ")[1] for r in reasons] == ["defaults.bucket", "defaults.txt_ttl"]
    good = write(tmp_path, "defaults:\n  route_target: CDN.Example.com.\n", "good.yaml")
    assert load_settings(good, env={}).defaults.route_target == "cdn.example.com"


def test_settings_should_be_frozen() -> None:
    settings = load_settings(None, env={})
    with pytest.raises(pydantic.ValidationError):
        settings.oss.region = "cn-shanghai"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("- a\n- b\n", ":1: (top level): must be a mapping"),
        ("source: /etc/x\n", ":1: source: not a setting"),
    ],
)
def test_top_level_shape_errors(tmp_path: Path, text: str, expected: str) -> None:
    path = write(tmp_path, text)
    [reason] = reasons_of(path)
    assert reason.startswith(f"{path}{expected}"), reason


def test_empty_file_should_mean_defaults(tmp_path: Path) -> None:
    settings = load_settings(write(tmp_path, "# nothing\n"), env={})
    assert settings.oss.region == "cn-hangzhou"
    assert settings.source == tmp_path / "config.yaml"


def test_missing_file_should_be_one_reason(tmp_path: Path) -> None:
    missing = tmp_path / "absent.yaml"
    [reason] = reasons_of(missing)
    assert reason.startswith(f"{missing}: cannot read the file")

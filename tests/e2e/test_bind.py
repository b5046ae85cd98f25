"""End to end: `cname-flow bind` as a real process, real SDKs, the sandbox over real sockets."""

from __future__ import annotations

import json
import time
from pathlib import Path

import alibabacloud_oss_v2 as oss
import pytest

from cname_flow import service
from cname_flow.config import load_settings
from cname_flow.model import Phase
from cname_flow.propagation.checker import AnswerState, Round
from tests.e2e.bindkit import count_calls, sandbox_env, world

pytestmark = pytest.mark.e2e


def _oss_client(env: dict[str, str], endpoint: str) -> oss.Client:
    cfg = oss.config.load_default()
    cfg.region = "cn-hangzhou"
    cfg.endpoint = endpoint
    cfg.credentials_provider = oss.credentials.StaticCredentialsProvider(
        env["OSS_ACCESS_KEY_ID"], env["OSS_ACCESS_KEY_SECRET"])
    return oss.Client(cfg)


def _listed(env: dict[str, str], endpoint: str, bucket: str) -> dict[str, str]:
    result = _oss_client(env, endpoint).list_cname(oss.ListCnameRequest(bucket=bucket))
    return {c.domain: c.status for c in result.cnames or []}


@pytest.mark.parametrize(("given", "domain"), [
    ("example.com", "example.com"),                              # zone apex
    ("www.example.com", "www.example.com"),                      # subdomain
    ("img.shop.example.com.cn", "img.shop.example.com.cn"),      # zone under a multi-label suffix
    ("图片.example.com", "xn--wcsw84d.example.com"),              # IDN, given as U-labels
    ("IMG.Example.COM.", "img.example.com"),                     # upper case with trailing dot
])
def test_bind_when_domain_is_new_should_end_bound_with_one_txt_record(
    tmp_path: Path, given: str, domain: str
) -> None:
    with sandbox_env(tmp_path) as sb:
        done = sb.cli("bind", given, "--json")
        assert done.returncode == 0, done.stderr
        out = json.loads(done.stdout)
        assert out["phase"] == "BOUND" and out["domain"] == domain
        assert _listed(sb.env, sb.sandbox.info.oss_endpoint, "examplebucket")[domain] == "Enabled"
        txt = sb.records(f"_dnsauth.{domain}")
        assert [r.value for r in txt] == [sb.token("examplebucket", domain)]
        assert txt[0].remark == "managed-by:cname-flow"
        again = sb.cli("bind", given, "--json")       # a re-run observes and changes nothing
        assert again.returncode == 0, again.stderr
        assert len(sb.records(f"_dnsauth.{domain}")) == 1


def test_bind_with_route_should_publish_the_cname_at_the_authoritative_servers(
    tmp_path: Path,
) -> None:
    with sandbox_env(tmp_path) as sb:
        done = sb.cli("bind", "cdn.example.com", "--route", "--remove-txt")
        assert done.returncode == 0, done.stderr
        [cname] = sb.records("cdn.example.com", "CNAME")
        assert cname.value == "examplebucket.oss-cn-hangzhou.aliyuncs.com"
        assert sb.records("_dnsauth.cdn.example.com") == []   # --remove-txt


def test_bind_route_on_zone_apex_should_refuse_before_any_write(tmp_path: Path) -> None:
    with sandbox_env(tmp_path) as sb:
        done = sb.cli("bind", "example.com", "--route")
        assert done.returncode == 2
        assert "apex" in done.stderr and "CNAME" in done.stderr
        assert sb.records("_dnsauth.example.com") == []
        assert sb.token("examplebucket", "example.com") is None


def test_bind_when_nameserver_lags_should_put_cname_once_after_it_serves(tmp_path: Path) -> None:
    lag = 3.0
    with sandbox_env(tmp_path, world(0.0, lag)) as sb:
        settings = load_settings(sb.config, env=sb.env)
        clients = service.Clients.from_settings(settings, env=sb.env)
        puts = count_calls(sb.sandbox, ["PutCname"])["PutCname"]
        rounds: list[tuple[float, Round]] = []
        binding = service.make_binding(settings, "lag.example.com")
        with service.open_store(settings) as journal:
            record = service.bind(clients, binding, journal,
                                  on_round=lambda r: rounds.append((time.monotonic(), r)))
        assert record.phase == Phase.BOUND
        [txt] = sb.records("_dnsauth.lag.example.com")
        written = time.monotonic() - (time.time() - txt.created_ms / 1000)
        served_everywhere = written + lag
        assert len(puts) == 1
        assert puts[0] >= served_everywhere
        all_ok = [t for t, r in rounds if all(a.state is AnswerState.OK for a in r.answers)]
        assert all_ok and all_ok[0] >= served_everywhere - 0.05
        # the first round that saw it everywhere came within one backoff step of it being served
        before = [t for t, _ in rounds if t < all_ok[0]]
        step = all_ok[0] - before[-1]
        assert all_ok[0] - served_everywhere <= step + 0.05
        # and PutCname went out right after the confirming round
        assert puts[0] - all_ok[-1] < 1.0


def test_bind_when_zone_not_in_account_should_fail_touching_nothing(tmp_path: Path) -> None:
    with sandbox_env(tmp_path) as sb:
        done = sb.cli("bind", "www.not-hosted.org")
        assert done.returncode == 2  # an input mistake (issue 16): the account hosts no zone
        assert "not-hosted.org" in done.stderr and "zone" in done.stderr.lower()
        assert sb.token("examplebucket", "www.not-hosted.org") is None


def test_bind_when_domain_bound_elsewhere_should_fail_touching_nothing(tmp_path: Path) -> None:
    with sandbox_env(tmp_path) as sb:
        done = sb.cli("bind", "taken.example.com")  # bound by another account: CnameDenied
        assert done.returncode == 1
        assert "another Alibaba Cloud account" in done.stderr
        assert sb.records("_dnsauth.taken.example.com") == []
        assert sb.token("examplebucket", "taken.example.com") is None


def test_bind_when_config_is_bad_should_name_file_and_line(tmp_path: Path) -> None:
    with sandbox_env(tmp_path) as sb:
        text = sb.config.read_text().replace("propagation:", "propagation:\n  deadlin_s: 3", 1)
        sb.config.write_text(text)
        done = sb.cli("bind", "www.example.com")
        assert done.returncode == 2
        line = text.splitlines().index("  deadlin_s: 3") + 1
        assert f"cname-flow.yaml:{line}" in done.stderr and "deadlin_s" in done.stderr


def test_bind_when_nameservers_unreachable_should_show_the_per_address_table(
    tmp_path: Path,
) -> None:
    dead = {f"ns{i}.sandbox.cname-flow.test": ["127.0.0.1:9"] for i in (1, 2)}
    fast_fail = {"deadline_s": 2, "query_timeout_s": 0.3, "tcp_timeout_s": 0.3,
                 "nameserver_addresses": dead}
    with sandbox_env(tmp_path, propagation=fast_fail) as sb:
        done = sb.cli("bind", "www.example.com")
        assert done.returncode in (1, 75), done.stderr
        assert "127.0.0.1:9" in done.stderr and "UNREACHABLE" in done.stderr
        assert sb.phase("examplebucket/www.example.com") != Phase.BOUND
        assert sb.records("_dnsauth.www.example.com") == []   # found out before writing


def test_bind_when_credentials_refused_should_fail_with_auth_error(tmp_path: Path) -> None:
    with sandbox_env(tmp_path) as sb:
        sb.env["OSS_ACCESS_KEY_SECRET"] = "SENTINEL-wrong-secret-7f3a"
        done = sb.cli("--verbose", "bind", "www.example.com")
        assert done.returncode == 2  # credentials refused: a person must fix them (issue 16)
        assert "SignatureDoesNotMatch" in done.stderr
        assert "SENTINEL-wrong-secret-7f3a" not in done.stdout + done.stderr
        assert sb.token("examplebucket", "www.example.com") is None


def test_sentinel_secret_never_reaches_output_logs_or_journal(tmp_path: Path) -> None:
    sentinel = "SENTINEL-secret-0b5e1c"
    cfg = world()
    accounts = [cfg.accounts[0].model_copy(update={"access_key_secret": sentinel}), cfg.accounts[1]]
    with sandbox_env(tmp_path, cfg.model_copy(update={"accounts": accounts})) as sb:
        outputs = [sb.cli("--verbose", "bind", "www.example.com"),
                   sb.cli("--verbose", "bind", "www.example.com", "--json"),
                   sb.cli("status", "--json"), sb.cli("plan", "img.example.com"),
                   sb.cli("--verbose", "unbind", "www.example.com", "--yes")]
        assert all(o.returncode == 0 for o in outputs), [o.stderr for o in outputs]
        text = "".join(o.stdout + o.stderr for o in outputs)
        text += "".join(p.read_text() for p in sb.journal.parent.iterdir() if p.is_file())
        assert sentinel not in text
        assert "txt.upserted" in text      # the logs were really captured


def test_bind_with_v1_signatures_should_work_through_the_whole_sandbox(tmp_path: Path) -> None:
    with sandbox_env(tmp_path) as sb:
        sb.env["CNAME_FLOW__OSS__SIGNATURE_VERSION"] = "v1"
        done = sb.cli("--verbose", "bind", "v1.example.com", "--json")
        assert done.returncode == 0, done.stderr
        assert json.loads(done.stdout)["phase"] == "BOUND"
        cnames = sb.sandbox.state.buckets["examplebucket"].cnames
        assert cnames["v1.example.com"].status == "Enabled"

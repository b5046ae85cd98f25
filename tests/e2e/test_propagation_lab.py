"""The propagation lab: a full bind against a real BIND primary and a real lagging secondary.

World (:mod:`tests.dnslab`): the RFC 2136 provider writes the ``_dnsauth`` TXT record to a real
BIND 9 primary (TSIG-signed UPDATE over TCP); a real BIND 9 secondary without NOTIFY picks the
change up only at its next SOA refresh, seconds later. The propagation checker polls both
(``propagation.nameserver_addresses`` maps the zone's NS hosts ``ns1``/``ns2`` to their loopback
ports); OSS is the sandbox, reached through the real ``alibabacloud_oss_v2`` client, and its
verifier resolves ``_dnsauth.<domain>`` through the same real servers (sandbox setting
``resolver.upstreams``), so a PutCname sent before the secondary serves the token would be
refused, as :func:`test_verifier_should_refuse_put_cname_while_the_asked_secondary_lags` shows.

What is measured, never assumed: when the secondary first serves the token (a thread polls it
with RD=0 every 20 ms: :class:`tests.dnslab.FirstServed`) and when the sandbox received PutCname
(its request hook, :func:`tests.e2e.bindkit.count_calls`). What is asserted: the order, and that
PutCname followed within one backoff step of the propagation schedule
(:mod:`cname_flow.propagation.schedule`) at that moment, plus the confirming round(s) the
schedule adds (exactly ``confirmation_gap_s`` each), plus :data:`SLACK_S`.

Run: ``pytest -q -s tests/e2e/test_propagation_lab.py`` (``-s`` shows the measured figures).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import alibabacloud_oss_v2 as oss
import pytest
import yaml

from cname_flow import service
from cname_flow.config import load_settings
from cname_flow.model import Phase
from cname_flow.propagation.checker import AnswerState, PropagationPolicy, Round
from cname_flow.sandbox.app import Sandbox
from cname_flow.sandbox.config import ResolverConfig, SandboxConfig
from tests.dnslab import FirstServed, Lab, txt_values
from tests.e2e.bindkit import count_calls

pytestmark = pytest.mark.e2e

BUCKET = "examplebucket"
TSIG_ENV = "CNAME_FLOW_TSIG_SECRET"
#: Fixed allowance on top of the schedule's waits, seconds: the round trips of two polling
#: rounds (loopback, about a millisecond each), the journal's fsync before PutCname, the SDK's
#: signing and the HTTP round trip to the sandbox, and thread wake-ups on a loaded 2-core CI
#: machine. The schedule's waits at that moment are about 1 s, so the bound stays tight.
SLACK_S = 0.75
#: Propagation settings of the lab: the production schedule (``PropagationPolicy`` defaults),
#: only with a deadline generous for a loaded machine.
LAB_DEADLINE_S = 60


def lab_sandbox(lab: Lab, verifier_asks: list[int], **resolver: Any) -> Sandbox:
    """The default sandbox world whose OSS verifier resolves through the lab's servers on
    ``verifier_asks`` (ports); ``resolver``: more :class:`ResolverConfig` fields."""
    upstreams = [f"127.0.0.1:{port}" for port in verifier_asks]
    config = ResolverConfig(upstreams=upstreams, **resolver)
    return Sandbox(SandboxConfig().model_copy(update={"resolver": config}))


def write_lab_config(path: Path, sandbox: Sandbox, lab: Lab, **propagation: Any) -> None:
    """A cname-flow config: OSS at the sandbox, DNS by RFC 2136 at the lab's primary, the
    propagation check at both lab servers with the production schedule (only the deadline and
    ``propagation`` changed)."""
    cfg = sandbox.info.cname_flow_config(journal_dir=str(path.parent / "journal"))
    cfg["dns"] = {"provider": "rfc2136"}
    cfg["rfc2136"] = {"host": "127.0.0.1", "port": lab.primary.port,
                      "key_name": lab.primary.key_name, "algorithm": lab.primary.algorithm,
                      "secret": {"env": TSIG_ENV}, "min_ttl": 60}
    cfg["propagation"] = {"deadline_s": LAB_DEADLINE_S, **propagation,
                          "nameserver_addresses": lab.nameserver_addresses()}
    cfg["defaults"] = {"bucket": BUCKET, "region": sandbox.info.region}
    path.write_text(yaml.safe_dump(cfg, sort_keys=False), encoding="utf-8")


def env_for(sandbox: Sandbox, lab: Lab) -> dict[str, str]:
    return {"OSS_ACCESS_KEY_ID": sandbox.info.access_key_id,
            "OSS_ACCESS_KEY_SECRET": sandbox.info.access_key_secret,
            TSIG_ENV: lab.primary.secret}


def oss_client(sandbox: Sandbox) -> oss.Client:
    cfg = oss.config.load_default()
    cfg.region = sandbox.info.region
    cfg.endpoint = sandbox.info.oss_endpoint
    cfg.credentials_provider = oss.credentials.StaticCredentialsProvider(
        sandbox.info.access_key_id, sandbox.info.access_key_secret)
    return oss.Client(cfg)


def cname_of(domain: str) -> oss.BucketCnameConfiguration:
    return oss.BucketCnameConfiguration(cname=oss.Cname(domain=domain))


def step_bound(policy: PropagationPolicy, attempt_index: int) -> float:
    """The longest wait the schedule picks after attempt ``attempt_index + 1`` (0-based index
    of the round before it): ``wait_exponential_jitter`` with its jitter at most."""
    base = policy.backoff_initial_s * policy.backoff_exp_base ** attempt_index
    return min(base + policy.backoff_jitter_s, policy.backoff_max_s)


def state_of(round_: Round, port: int) -> AnswerState:
    [answer] = [a for a in round_.answers if a.target.port == port]
    return answer.state


@pytest.mark.parametrize("confirmations", [2, 1], ids=["defaults", "one-confirmation"])
def test_bind_should_put_cname_after_the_lagging_secondary_serves_within_one_step(
    tmp_path: Path, propagation_lab: Lab, no_proxy: None, confirmations: int,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    lab = propagation_lab
    # the rfc2136 provider reads its secret from os.environ, not from the env given to it
    monkeypatch.setenv(TSIG_ENV, lab.primary.secret)
    domain = f"img{confirmations}-{int(time.time())}.{lab.zone}"
    name = f"_dnsauth.{domain}"
    # defaults: the verifier asks both servers (round robin); one-confirmation: only the
    # lagging secondary, so an accepted PutCname proves the secondary served by then
    asks = [lab.primary.port, lab.secondary.port] if confirmations == 2 else [lab.secondary.port]
    with lab_sandbox(lab, asks) as sandbox:
        config = tmp_path / "cname-flow.yaml"
        write_lab_config(config, sandbox, lab, confirmations=confirmations)
        settings = load_settings(config, env=env_for(sandbox, lab))
        policy = settings.propagation.to_policy()
        assert policy.backoff_initial_s == PropagationPolicy().backoff_initial_s
        clients = service.Clients.from_settings(settings, env=env_for(sandbox, lab))
        binding = service.make_binding(settings, domain)
        puts = count_calls(sandbox, ["PutCname"])["PutCname"]
        rounds: list[tuple[float, Round]] = []
        # the token the bind will get again (the same one while valid), for the pollers
        token = oss_client(sandbox).create_cname_token(oss.CreateCnameTokenRequest(
            bucket=BUCKET, bucket_cname_configuration=cname_of(domain))).cname_token.token
        assert token is not None
        lab.align()  # the secondary just refreshed: the next write waits most of a period
        with FirstServed(lab.primary.port, name, token) as primary, \
                FirstServed(lab.secondary.port, name, token) as secondary, \
                service.open_store(settings) as store:
            started = time.monotonic()
            record = service.bind(clients, binding, store,
                                  on_round=lambda r: rounds.append((time.monotonic(), r)))
            secondary.wait(LAB_DEADLINE_S)
            primary.wait(LAB_DEADLINE_S)

    assert record.phase == Phase.BOUND
    journal = "".join(p.read_text(errors="replace") for p in (tmp_path / "journal").rglob("*")
                      if p.is_file())
    assert domain in journal and lab.primary.secret not in journal  # the TSIG key stays out
    assert len(puts) == 1  # accepted the first time: no NeedVerifyDomainOwnership retry
    put_at = puts[0]
    assert primary.first_hit is not None and secondary.first_hit is not None
    assert secondary.last_miss is not None  # the secondary was seen not serving it first
    lag = secondary.first_hit - primary.first_hit
    # the checker polled exactly the two lab servers (propagation.nameserver_addresses)
    assert all({a.target.port for a in r.answers} == {lab.primary.port, lab.secondary.port}
               and len(r.answers) == 2 for _, r in rounds)
    # the lab lagged, and the checker saw it: a round with the primary OK, the secondary not
    waited = [r for _, r in rounds if state_of(r, lab.primary.port) is AnswerState.OK
              and state_of(r, lab.secondary.port) is AnswerState.PENDING]
    assert waited, [r.counts() for _, r in rounds]

    # order: PutCname only once the secondary serves the token
    assert secondary.last_miss < put_at
    if confirmations > 1:  # 0.5 s of confirmation: far above the poller's 20 ms resolution
        assert secondary.first_hit <= put_at
    # bound: within one backoff step (the one before the first all-OK round), plus the
    # confirming rounds, plus the slack
    first_ok = next(i for i, (_, r) in enumerate(rounds) if r.ok)
    assert first_ok >= 1
    step = step_bound(policy, first_ok - 1)
    confirming = (policy.confirmations - 1) * policy.confirmation_gap_s
    delay = put_at - secondary.first_hit
    assert delay <= step + confirming + SLACK_S, (delay, step, confirming)
    print(f"\nlab[{confirmations} confirmation(s)]: primary served after "
          f"{primary.first_hit - started:.3f} s, secondary {secondary.first_hit - started:.3f} s "
          f"(lag {lag:.3f} s); PutCname {delay:+.3f} s after the secondary first served "
          f"(bound {step + confirming + SLACK_S:.3f} s: step {step:.3f} + confirming "
          f"{confirming:.3f} + slack {SLACK_S}); rounds {len(rounds)}")


def test_verifier_should_refuse_put_cname_while_the_asked_secondary_lags(
    propagation_lab: Lab, no_proxy: None,
) -> None:
    lab = propagation_lab
    domain = f"early-{int(time.time())}.{lab.zone}"
    name = f"_dnsauth.{domain}"
    # no negative caching: the refusal's "no TXT yet" (SOA minimum 5 s) would otherwise be
    # served again to the second PutCname if it came within 5 s
    with lab_sandbox(lab, [lab.secondary.port], max_negative_ttl=0) as sandbox:
        client = oss_client(sandbox)
        cname = cname_of(domain)
        token = client.create_cname_token(oss.CreateCnameTokenRequest(
            bucket=BUCKET, bucket_cname_configuration=cname)).cname_token.token
        assert token is not None
        lab.align()
        with FirstServed(lab.secondary.port, name, token) as secondary:
            lab.update_txt(name.removesuffix(f".{lab.zone}"), token)
            assert token in (txt_values(lab.primary.port, name) or ())  # the primary serves it
            put = oss.PutCnameRequest(bucket=BUCKET, bucket_cname_configuration=cname)
            asked_at = time.monotonic()
            with pytest.raises(oss.exceptions.OperationError) as refused:
                client.put_cname(put)
            refused_at = time.monotonic()
            error = refused.value.unwrap()
            assert isinstance(error, oss.exceptions.ServiceError)
            assert error.code == "NeedVerifyDomainOwnership"
            served_at = secondary.wait(LAB_DEADLINE_S)
            assert served_at > asked_at  # it began serving only after PutCname was sent
            assert client.put_cname(put).status_code == 200  # the same call, now accepted
        listed = client.list_cname(oss.ListCnameRequest(bucket=BUCKET))
        assert {c.domain: c.status for c in listed.cnames or []}[domain] == "Enabled"
    print(f"\nverifier: refused while the secondary lagged; the secondary served "
          f"{served_at - refused_at:.3f} s after the refusal; accepted afterwards")

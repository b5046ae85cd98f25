"""The sandbox's fault plan: seeded decisions, and "executed, answer lost" on both HTTP APIs.

The *after* kinds (``error_after_rate``, ``drop_after_rate``) run the operation and then lose
its answer, so a client sees a failure although the state changed: the real SDK clients are
driven over loopback sockets and the sandbox state is read directly.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator

import alibabacloud_oss_v2 as oss
import pytest
import structlog
from alibabacloud_alidns20150109 import models as dns_models
from alibabacloud_alidns20150109.client import Client
from alibabacloud_tea_openapi import models as openapi_models
from alibabacloud_tea_openapi.exceptions import ServerException
from darabonba.exceptions import UnretryableException

from cname_flow.sandbox.app import Sandbox, SandboxInfo
from cname_flow.sandbox.config import FaultsConfig, OpFaults, SandboxConfig
from cname_flow.sandbox.faults import FaultKind, FaultPlan

pytestmark = [pytest.mark.e2e, pytest.mark.usefixtures("no_proxy")]

BUCKET = "examplebucket"


def _plan(**rates: float) -> FaultPlan:
    return FaultPlan(FaultsConfig(seed=11, ops={"PutCname": OpFaults(**rates)}))


def test_after_rates_keep_the_before_decisions_of_a_seed() -> None:
    """Adding an *after* rate only turns some clean answers into lost ones."""
    old = _plan(error_rate=0.2)
    before = [old.decide("PutCname").kind for _ in range(400)]
    plan = _plan(error_rate=0.2, drop_after_rate=0.2, error_after_rate=0.1)
    both = [plan.decide("PutCname").kind for _ in range(400)]
    assert [b for a, b in zip(before, both, strict=True) if a is FaultKind.ERROR] == [
        FaultKind.ERROR] * before.count(FaultKind.ERROR)
    assert all(a is FaultKind.ERROR or b is not FaultKind.ERROR
               for a, b in zip(before, both, strict=True))
    assert 40 < both.count(FaultKind.DROP_AFTER) < 120
    assert 15 < both.count(FaultKind.ERROR_AFTER) < 70
    assert plan.injected["PutCname:drop_after"] == both.count(FaultKind.DROP_AFTER)


@pytest.mark.parametrize(("kind", "runs", "answer"), [
    (FaultKind.NONE, True, FaultKind.NONE), (FaultKind.DROP, False, FaultKind.DROP),
    (FaultKind.ERROR_AFTER, True, FaultKind.ERROR), (FaultKind.DROP_AFTER, True, FaultKind.DROP),
])
def test_kind_says_whether_the_operation_runs_and_what_answer_is_lost(
    kind: FaultKind, runs: bool, answer: FaultKind
) -> None:
    assert (kind.executes, kind.answer) == (runs, answer)


def _world(op: str, **rates: float) -> SandboxConfig:
    return SandboxConfig().model_copy(
        update={"faults": FaultsConfig(seed=3, ops={op: OpFaults(**rates)})})


@pytest.fixture
def sandboxes() -> Iterator[list[Sandbox]]:
    started: list[Sandbox] = []
    yield started
    for box in started:
        box.stop()


def _start(sandboxes: list[Sandbox], config: SandboxConfig) -> Sandbox:
    box = Sandbox(config)
    box.start()
    sandboxes.append(box)
    return box


def _alidns(info: SandboxInfo) -> Client:
    return Client(openapi_models.Config(
        access_key_id=info.access_key_id, access_key_secret=info.access_key_secret,
        endpoint=info.alidns_endpoint, protocol="HTTP"))


def _oss(info: SandboxInfo) -> oss.Client:
    cfg = oss.config.load_default()
    cfg.region, cfg.endpoint, cfg.retry_max_attempts = info.region, info.oss_endpoint, 1
    cfg.credentials_provider = oss.credentials.StaticCredentialsProvider(
        info.access_key_id, info.access_key_secret)
    return oss.Client(cfg)


def _add_txt(client: Client, rr: str) -> None:
    client.add_domain_record(dns_models.AddDomainRecordRequest(
        domain_name="example.com", rr=rr, type="TXT", value="token-lost", ttl=600))


def _txt_values(box: Sandbox, rr: str) -> list[str]:
    with box.state.lock:
        return [r.value for r in box.state.zones["example.com"].records.values() if r.rr == rr]


@pytest.mark.parametrize(("rate", "raised"), [
    ("drop_after_rate", UnretryableException), ("error_after_rate", ServerException),
])
def test_alidns_after_fault_adds_the_record_and_loses_the_answer(
    sandboxes: list[Sandbox], rate: str, raised: type[Exception]
) -> None:
    box = _start(sandboxes, _world("AddDomainRecord", **{rate: 1.0}))
    with pytest.raises(raised):
        _add_txt(_alidns(box.info), "_dnsauth.lost")
    assert _txt_values(box, "_dnsauth.lost") == ["token-lost"]   # it ran: the record is there
    kind = rate.removesuffix("_rate")
    assert box.faults.injected == {f"AddDomainRecord:{kind}": 1}


def _cname(domain: str) -> oss.BucketCnameConfiguration:
    return oss.BucketCnameConfiguration(cname=oss.Cname(domain=domain))


def test_oss_drop_after_mints_the_token_and_resets_the_connection(
    sandboxes: list[Sandbox],
) -> None:
    box = _start(sandboxes, _world("CreateCnameToken", drop_after_rate=1.0))
    domain = "lost-token.example.com"
    with pytest.raises(oss.exceptions.OperationError) as info:
        _oss(box.info).create_cname_token(
            oss.CreateCnameTokenRequest(bucket=BUCKET, bucket_cname_configuration=_cname(domain)))
    assert not isinstance(info.value.unwrap(), oss.exceptions.ServiceError)
    assert domain in box.state.buckets[BUCKET].tokens


def test_oss_error_after_binds_and_answers_503(sandboxes: list[Sandbox]) -> None:
    box = _start(sandboxes, _world("PutCname", error_after_rate=1.0))
    client, domain = _oss(box.info), "lost-put.example.com"
    token = client.create_cname_token(oss.CreateCnameTokenRequest(
        bucket=BUCKET, bucket_cname_configuration=_cname(domain))).cname_token.token
    zone = box.state.zone_for(domain)
    assert zone is not None and token
    box.state.add_record(zone, "_dnsauth.lost-put", "TXT", token, 600)
    with pytest.raises(oss.exceptions.OperationError) as info:
        client.put_cname(oss.PutCnameRequest(bucket=BUCKET,
                                             bucket_cname_configuration=_cname(domain)))
    err = info.value.unwrap()
    assert isinstance(err, oss.exceptions.ServiceError)
    assert (err.status_code, err.code) == (503, "ServiceUnavailable")
    assert box.state.buckets[BUCKET].cnames[domain].status == "Enabled"


class _Records(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


def test_oss_drop_logs_one_line_and_no_traceback(sandboxes: list[Sandbox]) -> None:
    box = _start(sandboxes, _world("ListCname", drop_rate=1.0))
    handler = _Records()
    loggers = [logging.getLogger(name) for name in ("", "uvicorn", "uvicorn.error")]
    for logger in loggers:
        logger.addHandler(handler)
    try:
        with structlog.testing.capture_logs() as events:
            with pytest.raises(oss.exceptions.OperationError):
                _oss(box.info).list_cname(oss.ListCnameRequest(bucket=BUCKET))
            # the server survives the drop
            _oss(box.info).get_bucket_info(oss.GetBucketInfoRequest(bucket=BUCKET))
    finally:
        for logger in loggers:
            logger.removeHandler(handler)
    assert [e["event"] for e in events if "drop" in e["event"]] == ["oss.fault.drop"]
    assert [r.getMessage() for r in handler.records if r.levelno >= logging.WARNING] == []
    assert [r for r in handler.records if r.exc_info] == []

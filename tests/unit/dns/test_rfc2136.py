"""The RFC 2136 adapter against real BIND 9 and Knot servers: how each failure is mapped (with
its hint), that only cname-flow's own records are touched, and that the TSIG secret reaches no
error, log line or record id.

The servers (:mod:`tests.dnsservers`) deny updates under ``locked.<zone>``: BIND says REFUSED,
Knot says BADKEY; a wrong secret is BADSIG at both.
"""

from __future__ import annotations

import base64
import io
import socket
import threading
import time
import types
from collections.abc import Callable, Iterator

import dns.message
import dns.query
import dns.rcode
import dns.tsig
import dns.tsigkeyring
import dns.update
import pytest
import structlog

from cname_flow.cli import log as cli_log
from cname_flow.dns.base import OWNER_REMARK
from cname_flow.dns.rfc2136 import Rfc2136
from cname_flow.dns.rfc2136_errors import HINTS, RcodeError, map_rfc2136_error
from cname_flow.dns.rfc2136_records import RecordKey
from cname_flow.errors import DnsAuthError, DnsProviderError, InputError, ZoneNotFound
from cname_flow.retry import RetryPolicy
from tests.contract.dns_provider_contract import fresh
from tests.dnsservers import DELEGATED_LABEL, LOCKED_LABEL, DnsServer

#: Never to be seen outside the keyring: base64 of a recognisable text.
SENTINEL = base64.b64encode(b"SENTINEL-tsig-secret-7f1d-not-for-logs").decode()
ONCE = RetryPolicy(attempts=1)


@pytest.fixture(params=["bind9_server", "knot_server"])
def server(request: pytest.FixtureRequest) -> DnsServer:
    """Each test runs against BIND 9 and against Knot."""
    found: DnsServer = request.getfixturevalue(request.param)
    return found


def provider(server: DnsServer, **overrides: object) -> Rfc2136:
    options: dict[str, object] = {
        "host": server.host, "port": server.port, "key_name": server.key_name,
        "secret": server.secret, "algorithm": server.algorithm, "min_ttl": 600,
        "timeout_s": 2.0, "retry": ONCE,
    }
    options.update(overrides)
    return Rfc2136(**options)  # type: ignore[arg-type]


def foreign_txt(server: DnsServer, name: str, value: str) -> None:
    """Add a TXT record as another tool would: a signed update, no marker."""
    keyring = dns.tsigkeyring.from_text({server.key_name: (server.algorithm, server.secret)})
    update = dns.update.UpdateMessage("example.com.", keyring=keyring,
                                      keyalgorithm=dns.tsig.HMAC_SHA256)
    update.add(f"{name}.", 600, "TXT", f'"{value}"')
    answer = dns.query.tcp(update, server.host, port=server.port, timeout=5)
    assert answer.rcode() == dns.rcode.NOERROR


def foreign_cname(server: DnsServer, name: str, target: str) -> None:
    keyring = dns.tsigkeyring.from_text({server.key_name: (server.algorithm, server.secret)})
    update = dns.update.UpdateMessage("example.com.", keyring=keyring,
                                      keyalgorithm=dns.tsig.HMAC_SHA256)
    update.add(f"{name}.", 600, "CNAME", f"{target}.")
    assert dns.query.tcp(update, server.host, port=server.port, timeout=5).rcode() == 0


def add_txt(p: Rfc2136, name: str, value: str = "tok") -> None:
    p.upsert(p.find_zone("example.com"), name, "TXT", value, 600)


# ----------------------------------------------------------------------- TSIG failures
def test_wrong_secret_should_raise_badsig_naming_the_secret(server: DnsServer) -> None:
    p = provider(server, secret=SENTINEL)
    with pytest.raises(DnsAuthError) as info:
        add_txt(p, f"_dnsauth.{fresh()}.example.com")
    assert (info.value.code, info.value.retryable) == ("BADSIG", False)
    assert "secret" in info.value.hint and info.value.service == "rfc2136"
    assert f"{server.host}:{server.port}" in str(info.value)


@pytest.mark.parametrize("overrides", [{"key_name": "no-such-key"},
                                       {"algorithm": "hmac-sha512"}])
def test_unknown_key_or_algorithm_should_raise_badkey(
    server: DnsServer, overrides: dict[str, str]
) -> None:
    p = provider(server, **overrides)
    with pytest.raises(DnsAuthError) as info:
        add_txt(p, f"_dnsauth.{fresh()}.example.com")
    assert info.value.code == "BADKEY"
    assert "key_name" in info.value.hint and "algorithm" in info.value.hint


def test_clock_off_by_an_hour_should_raise_badtime_naming_the_clock(
    bind9_server: DnsServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    skewed = types.SimpleNamespace(time=lambda: time.time() - 3600)
    monkeypatch.setattr(dns.message, "time", skewed)  # the TSIG "time signed" only
    with pytest.raises(DnsAuthError) as info:
        add_txt(provider(bind9_server), f"_dnsauth.{fresh()}.example.com")
    assert info.value.code == "BADTIME"
    assert "clock" in info.value.hint


# ----------------------------------------------------------------------- policy
def test_name_outside_the_policy_on_bind_should_raise_refused(bind9_server: DnsServer) -> None:
    with pytest.raises(DnsAuthError) as info:
        add_txt(provider(bind9_server), f"_dnsauth.{LOCKED_LABEL}.example.com")
    assert (info.value.code, info.value.retryable) == ("REFUSED", False)
    assert "update policy" in info.value.hint


def test_name_outside_the_acl_on_knot_should_raise_badkey_naming_the_acl(
    knot_server: DnsServer
) -> None:
    with pytest.raises(DnsAuthError) as info:
        add_txt(provider(knot_server), f"_dnsauth.{LOCKED_LABEL}.example.com")
    assert info.value.code == "BADKEY"
    assert "ACL" in info.value.hint


def test_other_record_types_should_be_refused_before_any_message(server: DnsServer) -> None:
    p = provider(server)
    with pytest.raises(InputError):
        p.upsert(p.find_zone("example.com"), f"{fresh()}.example.com", "A", "192.0.2.1", 600)


# ----------------------------------------------------------------------- transport and zones
def test_no_server_on_the_port_should_raise_a_retryable_network_error() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    p = Rfc2136(host="127.0.0.1", port=port, key_name="k", secret=SENTINEL, retry=ONCE,
                timeout_s=1.0)
    with pytest.raises(DnsProviderError) as info:
        p.find_zone("example.com")
    assert info.value.code in ("NetworkError", "Timeout") and info.value.retryable is True
    assert "rfc2136.host" in info.value.hint


@pytest.fixture
def silent_port() -> Iterator[int]:
    """A UDP port on 127.0.0.1 that reads queries and never answers."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    sock.settimeout(0.1)
    stop = threading.Event()

    def swallow() -> None:
        while not stop.is_set():
            try:
                sock.recv(4096)
            except OSError:
                pass

    thread = threading.Thread(target=swallow, daemon=True)
    thread.start()
    yield sock.getsockname()[1]
    stop.set()
    thread.join()
    sock.close()


def test_a_server_that_never_answers_should_raise_a_retryable_timeout(silent_port: int) -> None:
    p = Rfc2136(host="127.0.0.1", port=silent_port, key_name="k", secret=SENTINEL,
                retry=ONCE, timeout_s=0.3)
    with pytest.raises(DnsProviderError) as info:
        p.find_zone("example.com")
    assert (info.value.code, info.value.retryable) == ("Timeout", True)


def test_find_zone_of_a_name_the_server_does_not_serve_should_name_the_server(
    server: DnsServer
) -> None:
    with pytest.raises(ZoneNotFound) as info:
        provider(server).find_zone("img.example.org")
    assert "img.example.org" in str(info.value) and str(server.port) in str(info.value)


def test_find_zone_below_a_delegation_should_say_it_is_delegated(server: DnsServer) -> None:
    with pytest.raises(ZoneNotFound) as info:
        provider(server).find_zone(f"_dnsauth.img.{DELEGATED_LABEL}.example.com")
    assert "delegated" in str(info.value) and "primary" in info.value.hint


def test_find_zone_of_a_name_holding_a_cname_should_find_its_zone(server: DnsServer) -> None:
    p = provider(server)
    name = f"{fresh()}.example.com"
    p.upsert(p.find_zone("example.com"), name, "CNAME", "b.oss-cn-hangzhou.aliyuncs.com", 600)
    assert p.find_zone(name).name == "example.com"


def test_find_zone_should_report_the_apex_nameservers(server: DnsServer) -> None:
    zone = provider(server).find_zone("_dnsauth.a.b.example.com.cn")
    assert (zone.name, zone.nameservers, zone.min_ttl) == (
        "example.com.cn", ("ns1.example.com.cn",), 600)


@pytest.mark.parametrize(
    ("exc", "code", "cls", "retryable"),
    [
        (RcodeError(dns.rcode.SERVFAIL), "SERVFAIL", DnsProviderError, True),
        (RcodeError(dns.rcode.NOTAUTH), "NOTAUTH", ZoneNotFound, False),
        (RcodeError(dns.rcode.NOTZONE), "NOTZONE", DnsProviderError, False),
        (RcodeError(dns.rcode.REFUSED), "REFUSED", DnsAuthError, False),
        (dns.tsig.PeerBadTime(), "BADTIME", DnsAuthError, False),  # type: ignore[no-untyped-call]
        (dns.exception.Timeout(), "Timeout", DnsProviderError, True),
        (ConnectionRefusedError(111, "refused"), "NetworkError", DnsProviderError, True),
        (dns.exception.FormError("response requires a TSIG but does not have one"),
         "UnsignedAnswer", DnsProviderError, False),
    ],
)
def test_every_failure_should_map_once_to_its_class_and_hint(
    exc: BaseException, code: str, cls: type[DnsProviderError], retryable: bool
) -> None:
    error = map_rfc2136_error(exc, "AddRecord", "192.0.2.53:53", (SENTINEL,))
    assert (type(error), error.code, error.retryable) == (cls, code, retryable)
    assert error.hint == HINTS[code]
    assert str(error).startswith("RFC 2136 AddRecord at 192.0.2.53:53: ")


# ----------------------------------------------------------------------- only our records
def test_a_foreign_value_should_be_listed_unowned_and_survive_our_delete(
    server: DnsServer
) -> None:
    p = provider(server)
    zone = p.find_zone("example.com")
    name = f"_dnsauth.{fresh()}.example.com"
    foreign_txt(server, name, "theirs")
    ours, _ = p.upsert(zone, name, "TXT", "ours", 600)
    listed = {r.value: r for r in p.list_records(zone, name, "TXT")}
    assert (listed["theirs"].remark, listed["ours"].remark) == ("", OWNER_REMARK)
    p.delete_record(ours)
    assert [(r.value, r.remark) for r in p.list_records(zone, name, "TXT")] == [("theirs", "")]


def test_claim_of_a_foreign_value_should_keep_its_id_and_mark_it(server: DnsServer) -> None:
    p = provider(server)
    zone = p.find_zone("example.com")
    name = f"_dnsauth.{fresh()}.example.com"
    foreign_txt(server, name, "lost-answer")
    [seen] = p.list_records(zone, name, "TXT")
    claimed = p.claim(seen)
    [listed] = p.list_records(zone, name, "TXT")
    assert (listed.record_id, listed.remark) == (seen.record_id, OWNER_REMARK) == (
        claimed.record_id, claimed.remark)


def test_a_cname_on_a_name_in_use_should_raise_a_conflict_not_be_ignored(
    server: DnsServer
) -> None:
    p = provider(server)
    zone = p.find_zone("example.com")
    name = f"{fresh()}.example.com"
    foreign_cname(server, name, "elsewhere.example.net")
    with pytest.raises(DnsProviderError) as info:
        p.upsert(zone, name, "CNAME", "b.oss-cn-hangzhou.aliyuncs.com", 600)
    assert info.value.code == "YXDOMAIN" and "CNAME" in info.value.hint
    with pytest.raises(DnsProviderError) as beside:
        p.upsert(zone, name, "TXT", "tok", 600)
    assert beside.value.code == "YXRRSET"
    assert [r.value for r in p.list_records(zone, name, "CNAME")] == ["elsewhere.example.net"]


def test_our_cname_replaced_in_place_should_keep_its_id(server: DnsServer) -> None:
    p = provider(server)
    zone = p.find_zone("example.com")
    name = f"{fresh()}.example.com"
    old, _ = p.upsert(zone, name, "CNAME", "a.oss-cn-hangzhou.aliyuncs.com", 600)
    new, changed = p.upsert(zone, name, "CNAME", "b.oss-cn-hangzhou.aliyuncs.com", 600,
                            replace=old)
    assert (changed, new.record_id) == (True, old.record_id)
    [listed] = p.list_records(zone, name, "CNAME")
    assert (listed.record_id, listed.value, listed.remark) == (
        old.record_id, "b.oss-cn-hangzhou.aliyuncs.com", OWNER_REMARK)


def test_the_marker_should_sit_one_label_below_the_record(server: DnsServer) -> None:
    p = provider(server)
    name = f"_dnsauth.{fresh()}.example.com"
    ref, _ = p.upsert(p.find_zone("example.com"), name, "TXT", "tok-m", 600)
    query = dns.message.make_query(f"_cname-flow.{name}.", "TXT")
    answer = dns.query.udp(query, server.host, port=server.port, timeout=2)
    [rrset] = answer.answer
    [strings] = [[s.decode() for s in rd.strings] for rd in rrset]
    key = RecordKey.parse(ref.record_id).key
    assert strings[:3] == [OWNER_REMARK, "type=TXT", f"id={key}"]


def test_a_txt_value_longer_than_255_octets_should_round_trip(server: DnsServer) -> None:
    p = provider(server)
    zone = p.find_zone("example.com")
    name, value = f"_dnsauth.{fresh()}.example.com", "x" * 300 + "-end"
    ref, _ = p.upsert(zone, name, "TXT", value, 600)
    assert [r.value for r in p.list_records(zone, name, "TXT")] == [value]
    p.delete_record(ref)
    assert p.list_records(zone, name, "TXT") == []


# ----------------------------------------------------------------------- the secret
@pytest.fixture
def json_log() -> Iterator[io.StringIO]:
    """Every log event, debug included, as JSON lines in a buffer; structlog restored after."""
    saved, configured = structlog.get_config(), structlog.is_configured()
    out = io.StringIO()
    cli_log.configure(json_logs=True, level="debug", stream=out)
    yield out
    structlog.reset_defaults()
    if configured:
        structlog.configure(**saved)


def test_the_tsig_secret_should_reach_no_error_log_line_or_record_id(
    bind9_server: DnsServer, json_log: io.StringIO
) -> None:
    seen: list[str] = []
    good = provider(bind9_server, retry=RetryPolicy(attempts=2, initial_s=0, max_s=0,
                                                    jitter_s=0))
    wrong = provider(bind9_server, secret=SENTINEL, retry=RetryPolicy(attempts=2))
    zone = good.find_zone("example.com")
    name = f"_dnsauth.{fresh()}.example.com"
    ref, _ = good.upsert(zone, name, "TXT", "tok-s", 600)
    seen += [repr(ref), repr(good), repr(wrong), repr(zone)]
    seen += [repr(r) for r in good.list_records(zone, name, "TXT")]
    failing: list[Callable[[], object]] = [
        lambda: wrong.upsert(zone, name, "TXT", "other", 600),
        lambda: good.upsert(zone, f"x.{LOCKED_LABEL}.example.com", "TXT", "t", 600),
        lambda: Rfc2136(host="127.0.0.1", port=bind9_server.port, key_name="k",
                        secret="not base64!").find_zone("example.com"),
    ]
    for call in failing:
        with pytest.raises((DnsProviderError, InputError)) as info:
            call()
        error = info.value
        seen += [str(error), repr(error), error.hint, str(error.__cause__ or "")]
    good.delete_record(ref)
    text = "\n".join([*seen, json_log.getvalue()])
    assert "dns.record.created" in json_log.getvalue()  # the log was captured
    for secret in (SENTINEL, bind9_server.secret, "not base64!"):
        assert secret not in text
        assert base64.b64decode(SENTINEL).decode() not in text


def test_our_cname_changed_by_hand_should_not_be_deleted(server: DnsServer) -> None:
    p = provider(server)
    zone = p.find_zone("example.com")
    name = f"{fresh()}.example.com"
    ours, _ = p.upsert(zone, name, "CNAME", "a.oss-cn-hangzhou.aliyuncs.com", 600)
    keyring = dns.tsigkeyring.from_text({server.key_name: (server.algorithm, server.secret)})
    by_hand = dns.update.UpdateMessage("example.com.", keyring=keyring,
                                       keyalgorithm=dns.tsig.HMAC_SHA256)
    by_hand.replace(f"{name}.", 600, "CNAME", "cdn.example.net.")
    assert dns.query.tcp(by_hand, server.host, port=server.port, timeout=5).rcode() == 0
    [theirs] = p.list_records(zone, name, "CNAME")
    assert (theirs.value, theirs.remark) == ("cdn.example.net", "")
    p.delete_record(ours)
    assert [r.value for r in p.list_records(zone, name, "CNAME")] == ["cdn.example.net"]
    marks = dns.message.make_query(f"_cname-flow.{name}.", "TXT")
    assert dns.query.udp(marks, server.host, port=server.port, timeout=2).answer == []

"""The detectors: each usual mistake gets its own code, message and remediation."""

from __future__ import annotations

from cname_flow.manual.detect import CODES, Finding, Observation, decode, detect, encode
from cname_flow.propagation.model import AddressAnswer, AnswerState, NameserverAddress, Round

TOKEN = "a" * 32
OLD = "b" * 32
NS1 = NameserverAddress("ns1.example.net", "192.0.2.1", 53)
NS2 = NameserverAddress("ns2.example.net", "192.0.2.2", 53)


def answer(ns: NameserverAddress, state: AnswerState, *values: str,
           cname: str | None = None, detail: str = "") -> AddressAnswer:
    return AddressAnswer(ns, state, frozenset(values), 600 if values else None, 7, 0.001,
                         detail, cname=cname)


def rnd(*answers: AddressAnswer) -> Round:
    return Round.judge(answers, strict=False)


def nothing() -> Round:
    return rnd(answer(NS1, AnswerState.PENDING, detail="NXDOMAIN"),
               answer(NS2, AnswerState.PENDING, detail="NXDOMAIN"))


def observe(main: Round, *, doubled: Round | None = None, apex: Round | None = None,
            previous: tuple[str, ...] = ()) -> Observation:
    return Observation("shop.example.com", "example.com", TOKEN, previous, main,
                       doubled or nothing(), apex or nothing())


def codes(findings: list[Finding]) -> list[str]:
    return [f.code for f in findings]


def test_record_served_everywhere_is_no_finding() -> None:
    main = rnd(answer(NS1, AnswerState.OK, TOKEN), answer(NS2, AnswerState.OK, TOKEN))
    assert main.ok and detect(observe(main)) == []


def test_missing_names_every_server_asked() -> None:
    [found] = detect(observe(nothing()))
    assert found.code == "dns_txt_missing" and found.severity == "error"
    assert "ns1.example.net (192.0.2.1:53)" in found.message and "ns2" in found.message


def test_doubled_zone_suffix_is_named_with_the_relative_host_to_use() -> None:
    doubled = rnd(answer(NS1, AnswerState.OK, TOKEN), answer(NS2, AnswerState.OK, TOKEN))
    found = detect(observe(nothing(), doubled=doubled))
    assert codes(found) == ["dns_txt_doubled_suffix", "dns_txt_missing"]
    assert "_dnsauth.shop.example.com.example.com" in found[0].message
    assert "host _dnsauth.shop " in found[0].remediation


def test_token_at_the_zone_apex() -> None:
    apex = rnd(answer(NS1, AnswerState.OK, TOKEN), answer(NS2, AnswerState.OK, TOKEN))
    assert "dns_txt_at_zone_apex" in codes(detect(observe(nothing(), apex=apex)))


def test_old_token_value_names_the_new_one() -> None:
    main = rnd(answer(NS1, AnswerState.PENDING, OLD), answer(NS2, AnswerState.PENDING, OLD))
    [found] = detect(observe(main, previous=(OLD,)))
    assert found.code == "dns_txt_old_token" and TOKEN in found.remediation


def test_quoted_value() -> None:
    main = rnd(answer(NS1, AnswerState.PENDING, f'"{TOKEN}"'),
               answer(NS2, AnswerState.PENDING, f'"{TOKEN}"'))
    assert codes(detect(observe(main))) == ["dns_txt_quoted"]


def test_unrelated_value() -> None:
    main = rnd(answer(NS1, AnswerState.PENDING, "v=spf1 -all"),
               answer(NS2, AnswerState.PENDING, "v=spf1 -all"))
    [found] = detect(observe(main))
    assert found.code == "dns_txt_wrong_value" and "v=spf1 -all" in found.message


def test_cname_at_dnsauth() -> None:
    main = rnd(answer(NS1, AnswerState.CNAME, cname="verify.saas.example"),
               answer(NS2, AnswerState.CNAME, cname="verify.saas.example"))
    [found] = detect(observe(main))
    assert found.code == "dns_cname_at_dnsauth" and "verify.saas.example" in found.message


def test_several_values_warn_but_do_not_block() -> None:
    main = rnd(answer(NS1, AnswerState.OK, TOKEN, "other"),
               answer(NS2, AnswerState.OK, TOKEN, "other"))
    [found] = detect(observe(main))
    assert main.ok and found.code == "dns_txt_several_values" and found.severity == "warning"


def test_lagging_servers_are_named() -> None:
    main = rnd(answer(NS1, AnswerState.OK, TOKEN), answer(NS2, AnswerState.PENDING))
    [found] = detect(observe(main))
    assert not main.ok and found.code == "dns_txt_lagging"
    assert "not yet by ns2.example.net (192.0.2.2:53)" in found.message
    assert "ns1" not in found.message.split("not yet by")[1]


def test_unreachable_server_is_an_error_only_when_nothing_is_ok() -> None:
    down = answer(NS2, AnswerState.UNREACHABLE, detail="timeout")
    up = detect(observe(rnd(answer(NS1, AnswerState.OK, TOKEN), down)))
    assert [(f.code, f.severity) for f in up] == [("dns_nameserver_unusable", "warning")]
    alone = detect(observe(rnd(down)))
    assert ("dns_nameserver_unusable", "error") in [(f.code, f.severity) for f in alone]


def test_every_code_is_distinct_and_known() -> None:
    assert len(set(CODES)) == len(CODES) == 10


def test_findings_round_trip_through_the_journal_string() -> None:
    found = detect(observe(nothing()))
    assert decode(encode(found)) == [f.as_json() for f in found]
    assert decode("not json") == [] and decode(None) == [] and decode('{"a": 1}') == []

"""PropagationChecker against scripted authoritative servers: classification, success rule,
confirmation, the exact tenacity schedule (fake clock, no real waiting), timeout table, targets."""

from __future__ import annotations

import asyncio
import contextlib
import errno
import itertools
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import dns.edns
import dns.exception
import dns.flags
import dns.message
import dns.rcode
import dns.rdatatype
import dns.rrset
import pytest
from structlog.testing import capture_logs

from cname_flow.errors import PropagationTimeout, StepError
from cname_flow.propagation import drivers as propagation_drivers
from cname_flow.propagation.checker import (
    AddressAnswer,
    AnswerState,
    NameserverAddress,
    PreState,
    PropagationChecker,
    PropagationPolicy,
    Round,
)
from cname_flow.propagation.model import fold_pre_state
from cname_flow.propagation.wire import classify
from tests.unit.propagation.fakes import (
    NAME,
    TOKEN,
    ZONE,
    Answering,
    Behaviour,
    FakeAuthorities,
    FakeClock,
    quoted,
    respond,
    serving,
    targets,
)

#: The reference schedule the README quotes (1 s first poll, ×1.5 backoff, 2 s confirmation gap):
#: these tests pin it so they test the mechanism; the product's faster defaults are tested below.
REFERENCE_SCHEDULE = {"first_poll_s": 1.0, "backoff_initial_s": 1.0, "backoff_exp_base": 1.5,
                      "backoff_jitter_s": 0.5, "confirmation_gap_s": 2.0}


def ref_policy(**overrides: object) -> PropagationPolicy:
    """The reference schedule with ``overrides``."""
    return PropagationPolicy(**{**REFERENCE_SCHEDULE, **overrides})  # type: ignore[arg-type]


EXACT = ref_policy(backoff_jitter_s=0.0)  # no jitter: the schedule is deterministic


def checker_for(
    behaviours: Mapping[str, Behaviour], policy: PropagationPolicy = EXACT, **kwargs: object
) -> tuple[PropagationChecker, FakeAuthorities, FakeClock]:
    clock = FakeClock()
    fake = FakeAuthorities(clock, behaviours)
    checker = PropagationChecker(policy, sleep=clock.sleep, clock=clock, asleep=clock.asleep,
                                 query=fake, aquery=fake.aquery, **kwargs)  # type: ignore[arg-type]
    return checker, fake, clock


def one_answer(behaviour: Behaviour, value: str = TOKEN) -> AddressAnswer:
    checker, _, _ = checker_for({"192.0.2.1": behaviour})
    return checker.observe(NAME, value, targets("192.0.2.1")).answers[0]


# -- classification -------------------------------------------------------------------------

CASES: dict[str, tuple[Behaviour, AnswerState, frozenset[str]]] = {
    "exact value": (lambda q, _: respond(q, txt=quoted(TOKEN)), AnswerState.OK,
                    frozenset({TOKEN})),
    "extra values allowed": (lambda q, _: respond(q, txt=quoted("other", TOKEN)),
                             AnswerState.OK, frozenset({"other", TOKEN})),
    "split character-strings joined": (lambda q, _: respond(q, txt=('"tok-0123" "456789abcdef"',)),
                                       AnswerState.OK, frozenset({TOKEN})),
    "owner name case ignored": (
        lambda q, _: respond(q, txt=quoted(TOKEN), owner=NAME.upper() + "."),
        AnswerState.OK, frozenset({TOKEN})),
    "nxdomain": (lambda q, _: respond(q, rcode=dns.rcode.NXDOMAIN, serial=7),
                 AnswerState.PENDING, frozenset()),
    "nodata / empty non-terminal": (lambda q, _: respond(q, serial=7), AnswerState.PENDING,
                                    frozenset()),
    "stale value": (lambda q, _: respond(q, txt=quoted("old-token")), AnswerState.PENDING,
                    frozenset({"old-token"})),
    "value case is significant": (lambda q, _: respond(q, txt=quoted(TOKEN.upper())),
                                  AnswerState.PENDING, frozenset({TOKEN.upper()})),
    "substring is not a match": (lambda q, _: respond(q, txt=quoted(TOKEN + "x")),
                                 AnswerState.PENDING, frozenset({TOKEN + "x"})),
    "txt at another owner": (lambda q, _: respond(q, txt=quoted(TOKEN), owner=f"x.{ZONE}."),
                             AnswerState.PENDING, frozenset()),
    "cname at the name": (lambda q, _: respond(q, cname="target.example.net."), AnswerState.CNAME,
                          frozenset()),
    "not authoritative": (lambda q, _: respond(q, aa=False, txt=quoted(TOKEN)), AnswerState.LAME,
                          frozenset({TOKEN})),
    "refused": (lambda q, _: respond(q, rcode=dns.rcode.REFUSED), AnswerState.LAME, frozenset()),
    "notauth": (lambda q, _: respond(q, rcode=dns.rcode.NOTAUTH), AnswerState.LAME, frozenset()),
    "servfail": (lambda q, _: respond(q, rcode=dns.rcode.SERVFAIL), AnswerState.SERVFAIL,
                 frozenset()),
    "timeout": (lambda q, _: dns.exception.Timeout(), AnswerState.UNREACHABLE, frozenset()),
    "enetunreach": (lambda q, _: OSError(errno.ENETUNREACH, "Network is unreachable"),
                    AnswerState.UNREACHABLE, frozenset()),
    "malformed answer": (lambda q, _: dns.exception.FormError("bad"), AnswerState.UNREACHABLE,
                         frozenset()),
}


@pytest.mark.parametrize("case", list(CASES))
def test_observe_when_answer_varies_should_classify_per_reference(case: str) -> None:
    behaviour, state, values = CASES[case]
    answer = one_answer(behaviour)
    assert answer.state is state
    assert answer.values == values


def test_classify_when_negative_answer_should_keep_serial_and_negative_ttl() -> None:
    answer = one_answer(lambda q, _: respond(q, rcode=dns.rcode.NXDOMAIN, serial=41))
    assert answer.serial == 41
    assert answer.neg_ttl == 300  # min(SOA TTL 600, MINIMUM 300)
    assert answer.detail == "NXDOMAIN"


def test_classify_when_cname_should_report_target() -> None:
    answer = one_answer(lambda q, _: respond(q, cname="Target.Example.NET."))
    assert answer.cname == "target.example.net"


def test_classify_when_server_sends_nsid_should_keep_it() -> None:
    def with_nsid(q: dns.message.Message, _: float) -> dns.message.Message:
        response = respond(q, txt=quoted(TOKEN))
        nsid = dns.edns.GenericOption(dns.edns.OptionType.NSID, b"edge-hz-3")
        response.use_edns(0, 0, 1232, options=[nsid])
        return response

    answer = one_answer(with_nsid)
    assert answer.nsid == "edge-hz-3"


def test_observe_should_send_rd0_edns_nsid_txt_query_to_every_address() -> None:
    checker, fake, _ = checker_for({a: serving(0) for a in ("192.0.2.1", "192.0.2.2")})
    checker.observe(NAME, TOKEN, targets("192.0.2.1", "192.0.2.2"))
    assert sorted(address for address, _ in fake.log) == ["192.0.2.1", "192.0.2.2"]
    for _, query in fake.log:
        assert not query.flags & dns.flags.RD
        assert query.edns == 0 and query.payload == 1232
        assert [o.otype for o in query.options] == [dns.edns.OptionType.NSID]
        assert query.question[0].rdtype == dns.rdatatype.TXT
        assert str(query.question[0].name) == NAME + "."


# -- success rule ---------------------------------------------------------------------------

OK_B: Behaviour = serving(0)
PENDING_B: Behaviour = serving(None)
LAME_B: Behaviour = lambda q, _: respond(q, rcode=dns.rcode.REFUSED)  # noqa: E731
DOWN_B: Behaviour = lambda q, _: dns.exception.Timeout()  # noqa: E731
CNAME_B: Behaviour = lambda q, _: respond(q, cname="elsewhere.example.net.")  # noqa: E731
SERVFAIL_B: Behaviour = lambda q, _: respond(q, rcode=dns.rcode.SERVFAIL)  # noqa: E731


@pytest.mark.parametrize(
    ("mix", "strict", "ok"),
    [
        ((OK_B, OK_B), False, True),
        ((OK_B, PENDING_B), False, False),
        ((OK_B, CNAME_B), False, False),
        ((OK_B, SERVFAIL_B), False, False),
        ((OK_B, LAME_B), False, True),
        ((OK_B, DOWN_B), False, True),
        ((OK_B, LAME_B), True, False),
        ((OK_B, DOWN_B), True, False),
        ((DOWN_B, DOWN_B), False, False),
        ((LAME_B, DOWN_B), False, False),
    ],
)
def test_round_when_states_mix_should_apply_success_rule(
    mix: tuple[Behaviour, ...], strict: bool, ok: bool
) -> None:
    addresses = [f"192.0.2.{i}" for i in range(1, len(mix) + 1)]
    policy = ref_policy(strict=strict, backoff_jitter_s=0.0)
    checker, _, _ = checker_for(dict(zip(addresses, mix, strict=True)), policy)
    assert checker.observe(NAME, TOKEN, targets(*addresses)).ok is ok


def test_round_judge_when_no_answers_should_not_succeed() -> None:
    assert Round.judge([], strict=False).ok is False


@pytest.mark.parametrize("method", ["observe", "wait", "pre_state"])
def test_checker_when_target_set_empty_should_raise_not_succeed(method: str) -> None:
    checker, _, _ = checker_for({})
    call = getattr(checker, method)
    args: tuple[object, ...] = (NAME, []) if method == "pre_state" else (NAME, TOKEN, [])
    with pytest.raises(StepError, match="no authoritative nameserver") as caught:
        call(*args)
    assert caught.value.retryable is False


# -- schedule and confirmation (fake clock) -------------------------------------------------

def test_wait_when_all_serve_should_confirm_with_two_rounds_gap_apart() -> None:
    checker, fake, clock = checker_for({"192.0.2.1": serving(0), "192.0.2.2": serving(0)})
    rounds: list[Round] = []
    result = checker.wait(NAME, TOKEN, targets("192.0.2.1", "192.0.2.2"),
                          written_at=clock.now, on_round=rounds.append)
    assert result.ok
    assert clock.sleeps == [1.0, 2.0]  # first poll; backoff 1.0 stretched to the 2.0 s gap
    assert len(rounds) == 2 and all(r.ok for r in rounds)
    assert len(fake.asked(dns.rdatatype.TXT)) == 4


def test_wait_when_server_lags_should_follow_exact_exponential_schedule() -> None:
    start = FakeClock().now
    behaviours = {"192.0.2.1": serving(0), "192.0.2.2": serving(start + 14.0)}
    checker, _, clock = checker_for(behaviours)
    checker.wait(NAME, TOKEN, targets("192.0.2.1", "192.0.2.2"), written_at=start)
    # first poll 1.0; backoff 1.0, 1.5, 2.25, 3.375, 5.0625 (rounds at +1, +2, +3.5, +5.75,
    # +9.125, +14.1875 -> first OK); the confirming wait is exactly the 2.0 s gap.
    assert clock.sleeps == pytest.approx([1.0, 1.0, 1.5, 2.25, 3.375, 5.0625, 2.0])


def test_wait_should_cap_backoff_at_max() -> None:
    policy = ref_policy(backoff_jitter_s=0.0, deadline_s=60.0)
    checker, _, clock = checker_for({"192.0.2.1": serving(None)}, policy)
    with pytest.raises(PropagationTimeout):
        checker.wait(NAME, TOKEN, targets("192.0.2.1"), written_at=clock.now)
    assert max(clock.sleeps) == 8.0
    assert clock.sleeps[-3:] == [8.0, 8.0, 8.0]


def test_wait_with_jitter_should_stay_within_jitter_bounds() -> None:
    checker, _, clock = checker_for({"192.0.2.1": serving(None)},
                                    ref_policy(deadline_s=40.0))
    with pytest.raises(PropagationTimeout):
        checker.wait(NAME, TOKEN, targets("192.0.2.1"), written_at=clock.now)
    waits = clock.sleeps[1:]
    for attempt, waited in enumerate(waits, start=1):
        base = min(1.0 * 1.5 ** (attempt - 1), 8.0)
        assert base <= waited <= min(base + 0.5, 8.0)
    assert len(set(waits)) > 1


def test_wait_when_written_earlier_should_only_sleep_the_remaining_first_poll() -> None:
    checker, _, clock = checker_for({"192.0.2.1": serving(0)})
    checker.wait(NAME, TOKEN, targets("192.0.2.1"), written_at=clock.now - 0.25)
    assert clock.sleeps[0] == pytest.approx(0.75)
    checker.wait(NAME, TOKEN, targets("192.0.2.1"), written_at=clock.now - 30.0)
    assert clock.sleeps[2:] == [2.0]  # no first-poll sleep at all, only the confirmation gap


def test_wait_when_server_flaps_should_restart_confirmation() -> None:
    answers = iter([True, False, True, True])

    def flapping(q: dns.message.Message, now: float) -> dns.message.Message:
        return serving(0 if next(answers) else None)(q, now)

    checker, _, clock = checker_for({"192.0.2.1": flapping})
    rounds: list[Round] = []
    checker.wait(NAME, TOKEN, targets("192.0.2.1"), written_at=clock.now, on_round=rounds.append)
    assert [r.ok for r in rounds] == [True, False, True, True]
    # backoff by attempt 1.0, 1.5, 2.25; exactly the 2.0 s gap while a streak is open
    assert clock.sleeps == [1.0, 2.0, 1.5, 2.0]


def test_wait_when_three_confirmations_should_need_three_good_rounds() -> None:
    policy = ref_policy(backoff_jitter_s=0.0, confirmations=3, confirmation_gap_s=0.5)
    checker, fake, clock = checker_for({"192.0.2.1": serving(0)}, policy)
    checker.wait(NAME, TOKEN, targets("192.0.2.1"), written_at=clock.now)
    assert len(fake.asked(dns.rdatatype.TXT)) == 3
    assert clock.sleeps == [1.0, 0.5, 0.5]      # first poll, then the 0.5 s gap twice


def test_wait_when_deadline_passes_should_raise_with_table_naming_the_lagging_address() -> None:
    policy = ref_policy(backoff_jitter_s=0.0, deadline_s=30.0)
    behaviours = {"192.0.2.1": serving(0, serial=9), "192.0.2.2": serving(None, serial=9)}
    checker, fake, clock = checker_for(behaviours, policy)
    started = clock.now + 1.0
    round_starts: list[float] = []
    with pytest.raises(PropagationTimeout) as caught:
        checker.wait(NAME, TOKEN, targets("192.0.2.1", "192.0.2.2"), written_at=clock.now,
                     on_round=lambda _: round_starts.append(clock.now))
    error = caught.value
    assert error.retryable and error.name == NAME and error.expected == TOKEN
    assert max(round_starts) - started < 30.0  # stop_before_delay: no round past the deadline
    assert clock.now - started < 30.0
    lagging = next(line for line in error.table.splitlines() if "192.0.2.2:53" in line)
    assert "PENDING" in lagging and "NXDOMAIN" in lagging and "8 (-1)" in lagging
    healthy = next(line for line in error.table.splitlines() if "192.0.2.1:53" in line)
    assert "OK" in healthy and "9 (max)" in healthy  # serial came from the diagnostic SOA query
    assert "192.0.2.2:53 (ns2.example.com) PENDING" in str(error)
    assert fake.asked(dns.rdatatype.SOA) == ["192.0.2.1"]  # only where the answer lacked one


def test_wait_should_log_each_round_with_counts_per_state() -> None:
    checker, _, clock = checker_for({"192.0.2.1": serving(0), "192.0.2.2": serving(None)},
                                    ref_policy(backoff_jitter_s=0.0, deadline_s=2.5))
    with capture_logs() as logs, pytest.raises(PropagationTimeout):
        checker.wait(NAME, TOKEN, targets("192.0.2.1", "192.0.2.2"), written_at=clock.now)
    rounds = [e for e in logs if e["event"] == "propagation.round"]
    assert [e["states"] for e in rounds] == [{"OK": 1, "PENDING": 1}] * 2
    assert [e["round"] for e in rounds] == [1, 2]
    assert any(e["event"] == "propagation.timeout" for e in logs)


def test_wait_async_should_follow_the_same_schedule_without_threads() -> None:
    start = FakeClock().now
    behaviours = {"192.0.2.1": serving(0), "192.0.2.2": serving(start + 14.0)}
    checker, _, clock = checker_for(behaviours)
    result = asyncio.run(checker.wait_async(NAME, TOKEN, targets("192.0.2.1", "192.0.2.2"),
                                            written_at=start))
    assert result.ok
    assert clock.sleeps == pytest.approx([1.0, 1.0, 1.5, 2.25, 3.375, 5.0625, 2.0])


def test_wait_async_should_build_its_query_once_and_send_each_round_under_a_fresh_id(
        monkeypatch: pytest.MonkeyPatch) -> None:
    drawn = itertools.count(100)  # distinct ids, so "fresh" cannot pass by chance
    monkeypatch.setattr(propagation_drivers, "query_id", lambda: next(drawn))
    start = FakeClock().now
    behaviours = {"192.0.2.1": serving(0), "192.0.2.2": serving(start + 4.0)}
    clock = FakeClock()
    fake = FakeAuthorities(clock, behaviours)
    sent: list[tuple[int, int, str]] = []  # (message object, message id, address) at send time

    async def recording(q: dns.message.Message, target: NameserverAddress) -> dns.message.Message:
        sent.append((id(q), q.id, target.address))
        return await fake.aquery(q, target)

    checker = PropagationChecker(EXACT, clock=clock, asleep=clock.asleep, aquery=recording)
    asyncio.run(checker.wait_async(NAME, TOKEN, targets("192.0.2.1", "192.0.2.2"),
                                   written_at=start))
    rounds = [sent[i:i + 2] for i in range(0, len(sent), 2)]
    assert len(rounds) >= 3                                  # lagging, then two confirming
    assert len({obj for obj, _, _ in sent}) == 1             # one message for the whole wait
    assert all(a[1] == b[1] for a, b in rounds)              # one id per round, both addresses
    assert len({r[0][1] for r in rounds}) == len(rounds)     # a fresh id every round
    assert all({a[2], b[2]} == {"192.0.2.1", "192.0.2.2"} for a, b in rounds)


def test_wait_async_when_deadline_passes_should_raise_with_table() -> None:
    policy = ref_policy(backoff_jitter_s=0.0, deadline_s=10.0)
    checker, _, clock = checker_for({"192.0.2.1": serving(None)}, policy)
    with pytest.raises(PropagationTimeout) as caught:
        asyncio.run(checker.wait_async(NAME, TOKEN, targets("192.0.2.1"), written_at=clock.now))
    assert "192.0.2.1:53" in caught.value.table


def test_observe_async_should_limit_queries_in_flight() -> None:
    in_flight, peak = 0, 0

    async def slow(query: dns.message.Message, target: NameserverAddress) -> dns.message.Message:
        nonlocal in_flight, peak
        in_flight += 1
        peak = max(peak, in_flight)
        await asyncio.sleep(0.001)
        in_flight -= 1
        return respond(query, txt=quoted(TOKEN))

    checker = PropagationChecker(PropagationPolicy(max_parallel=3), aquery=slow)
    addresses = [f"192.0.2.{i}" for i in range(1, 11)]
    result = asyncio.run(checker.observe_async(NAME, TOKEN, targets(*addresses)))
    assert result.ok and len(result.answers) == 10
    assert peak == 3


# -- pre-state ------------------------------------------------------------------------------

def test_pre_state_should_report_old_values_ttls_and_serial() -> None:
    behaviours = {"192.0.2.1": serving(None, serial=5, old=("old-a",)),
                  "192.0.2.2": serving(None, serial=6)}
    checker, fake, _ = checker_for(behaviours)
    pre = checker.pre_state(NAME, targets("192.0.2.1", "192.0.2.2"))
    assert pre.values == frozenset({"old-a"})
    assert pre.old_ttl == 600
    assert pre.neg_ttl == 300
    assert pre.serial == 5  # serial - 1 while not live; SOA queries report it too
    assert pre.cname is None
    # .1 answered positively (no SOA in it); .2's NXDOMAIN carried the SOA (RFC 2308 §3)
    assert fake.asked(dns.rdatatype.SOA) == ["192.0.2.1"]


def test_pre_state_when_negative_answers_carry_soa_should_not_ask_for_it() -> None:
    behaviours = {"192.0.2.1": serving(None, serial=5), "192.0.2.2": serving(None, serial=8)}
    checker, fake, _ = checker_for(behaviours)
    pre = checker.pre_state(NAME, targets("192.0.2.1", "192.0.2.2"))
    assert (pre.values, pre.old_ttl, pre.neg_ttl, pre.serial) == (frozenset(), None, 300, 7)
    assert fake.asked(dns.rdatatype.SOA) == []
    assert sorted(fake.asked(dns.rdatatype.TXT)) == ["192.0.2.1", "192.0.2.2"]


def soa_when_asked(txt_answer: Answering) -> Behaviour:
    """``txt_answer`` for TXT queries; NODATA with SOA serial 9 for SOA queries."""

    def behave(q: dns.message.Message, now: float) -> dns.message.Message:
        if q.question[0].rdtype == dns.rdatatype.SOA:
            return respond(q, serial=9)
        return txt_answer(q, now)

    return behave


#: Server mixes for the pre-state; the SOA is asked only where the TXT answer was authoritative
#: and carried none.
PRE_STATE_MIXES: dict[str, tuple[dict[str, Behaviour], list[str]]] = {
    "all absent": ({"192.0.2.1": serving(None, serial=3), "192.0.2.2": serving(None, serial=4)},
                   []),
    "old value and absent": ({"192.0.2.1": serving(None, serial=3, old=("old",)),
                              "192.0.2.2": serving(None, serial=4)}, ["192.0.2.1"]),
    "negative answer without soa": (
        {"192.0.2.1": soa_when_asked(lambda q, _: respond(q, rcode=dns.rcode.NXDOMAIN)),
         "192.0.2.2": serving(None, serial=4)}, ["192.0.2.1"]),
    # servers that fail for the TXT query fail for the SOA query too: not asked again
    "lame and down": ({"192.0.2.1": lambda q, _: respond(q, aa=False, serial=9),
                       "192.0.2.2": DOWN_B, "192.0.2.3": LAME_B,
                       "192.0.2.4": serving(None, serial=4, old=("old",))}, ["192.0.2.4"]),
    "servfail": ({"192.0.2.1": lambda q, _: respond(q, rcode=dns.rcode.SERVFAIL),
                  "192.0.2.2": serving(None, serial=4)}, []),
    "cname": ({"192.0.2.1": soa_when_asked(lambda q, _: respond(q, cname="x.example.net."))},
              ["192.0.2.1"]),
}


def full_pre_state(checker: PropagationChecker, addresses: list[NameserverAddress]) -> PreState:
    """The pre-state as the reference spells it: TXT and SOA from every address."""
    def every(rdtype: dns.rdatatype.RdataType) -> list[AddressAnswer]:
        return [classify(e, NAME, None) for e in checker._exchange_all(NAME, rdtype, addresses)]

    return fold_pre_state(NAME, every(dns.rdatatype.TXT), every(dns.rdatatype.SOA))


@pytest.mark.parametrize("mix", list(PRE_STATE_MIXES))
def test_pre_state_should_equal_asking_soa_everywhere_and_ask_it_only_where_missing(
    mix: str,
) -> None:
    behaviours, soa_asked = PRE_STATE_MIXES[mix]
    addresses = targets(*behaviours)
    checker, fake, _ = checker_for(behaviours)
    pre = checker.pre_state(NAME, addresses)
    assert sorted(fake.asked(dns.rdatatype.SOA)) == soa_asked
    assert pre == full_pre_state(checker, addresses)


@pytest.mark.parametrize("mix", list(PRE_STATE_MIXES))
def test_pre_state_async_should_equal_pre_state_with_the_same_queries(mix: str) -> None:
    behaviours, soa_asked = PRE_STATE_MIXES[mix]
    addresses = targets(*behaviours)
    checker, fake, _ = checker_for(behaviours)
    pre = asyncio.run(checker.pre_state_async(NAME, addresses))
    assert sorted(fake.asked(dns.rdatatype.SOA)) == soa_asked
    assert pre == checker.pre_state(NAME, addresses)


def test_pre_state_async_when_target_set_empty_should_raise_not_retryable() -> None:
    checker, _, _ = checker_for({})
    with pytest.raises(StepError, match="no authoritative nameserver") as caught:
        asyncio.run(checker.pre_state_async(NAME, []))
    assert caught.value.retryable is False


def test_pre_state_async_when_nobody_answers_authoritatively_should_raise_retryable() -> None:
    checker, fake, _ = checker_for({"192.0.2.1": DOWN_B, "192.0.2.2": LAME_B})
    with pytest.raises(StepError, match="no authoritative answer") as caught:
        asyncio.run(checker.pre_state_async(NAME, targets("192.0.2.1", "192.0.2.2")))
    assert caught.value.retryable is True
    assert fake.asked(dns.rdatatype.SOA) == []


def test_pre_state_when_cname_at_name_should_report_it() -> None:
    checker, _, _ = checker_for({"192.0.2.1": CNAME_B})
    assert checker.pre_state(NAME, targets("192.0.2.1")).cname == "elsewhere.example.net"


def test_pre_state_when_nobody_answers_authoritatively_should_raise_retryable() -> None:
    checker, _, _ = checker_for({"192.0.2.1": DOWN_B, "192.0.2.2": LAME_B})
    with pytest.raises(StepError, match="no authoritative answer") as caught:
        checker.pre_state(NAME, targets("192.0.2.1", "192.0.2.2"))
    assert caught.value.retryable is True


# -- targets --------------------------------------------------------------------------------

def apex(ns_hosts: tuple[str, ...], glue: dict[str, str] | None = None) -> Answering:
    def behave(q: dns.message.Message, _: float) -> dns.message.Message:
        response = respond(q)
        response.answer.append(dns.rrset.from_text_list(
            f"{ZONE}.", 3600, "IN", "NS", [h + "." for h in ns_hosts]))
        for host, ip in (glue or {}).items():
            response.additional.append(dns.rrset.from_text(host + ".", 3600, "IN", "A", ip))
        return response

    return behave


def test_targets_should_union_provider_and_child_apex_nameservers() -> None:
    resolved: list[str] = []

    def resolve(host: str) -> list[str]:
        resolved.append(host)
        return {"ns4.example.org": ["198.51.100.4", "2001:db8::4"]}.get(host, [])

    child = ("ns1.example.net", "ns3.example.com", "ns4.example.org")
    policy = PropagationPolicy(nameserver_addresses={
        "NS1.example.net.": ["127.0.0.11:5301"], "ns2.example.net": ["127.0.0.12"],
        "ns3.example.com": ["[::1]:5303"]})
    behaviours = {"127.0.0.11": apex(child, {"ns3.example.com": "203.0.113.3"}),
                  "127.0.0.12": apex(child)}
    checker, fake, _ = checker_for(behaviours, policy, resolve_host=resolve)
    found = checker.targets("Example.COM.", ["ns1.example.net", "ns2.example.net."])
    assert [(t.host, t.endpoint) for t in found] == [
        ("ns1.example.net", "127.0.0.11:5301"),
        ("ns2.example.net", "127.0.0.12:53"),
        ("ns3.example.com", "[::1]:5303"),  # the override beats the glue
        ("ns4.example.org", "198.51.100.4:53"),
        ("ns4.example.org", "[2001:db8::4]:53"),
    ]
    assert resolved == ["ns4.example.org"]  # only NS host names, never the TXT name
    assert sorted(fake.asked(dns.rdatatype.NS)) == ["127.0.0.11", "127.0.0.12"]
    assert all(not q.flags & dns.flags.RD for _, q in fake.log)


def test_targets_should_use_glue_for_child_only_hosts_without_override() -> None:
    policy = PropagationPolicy(nameserver_addresses={"ns1.example.net": ["127.0.0.11"]})
    behaviours = {"127.0.0.11": apex(("ns1.example.net", "ns9.example.com"),
                                     {"ns9.example.com": "203.0.113.9"})}
    checker, _, _ = checker_for(behaviours, policy, resolve_host=lambda _: [])
    found = checker.targets(ZONE, ["ns1.example.net"])
    assert NameserverAddress("ns9.example.com", "203.0.113.9", 53) in found


def test_targets_should_ignore_apex_answers_that_are_not_authoritative() -> None:
    def lame_apex(q: dns.message.Message, now: float) -> dns.message.Message:
        response = apex(("ns7.example.com",))(q, now)
        response.flags &= ~dns.flags.AA
        return response

    policy = PropagationPolicy(nameserver_addresses={"ns1.example.net": ["127.0.0.11"]})
    checker, _, _ = checker_for({"127.0.0.11": lame_apex}, policy,
                                resolve_host=lambda _: ["203.0.113.7"])
    assert [t.host for t in checker.targets(ZONE, ["ns1.example.net"])] == ["ns1.example.net"]


@pytest.mark.parametrize("provider", [[], ["ns-unknown.example.net"]])
def test_targets_when_nothing_resolves_should_raise_never_succeed(provider: list[str]) -> None:
    checker, _, _ = checker_for({}, resolve_host=lambda _: [])
    with pytest.raises(StepError, match="no authoritative nameserver address") as caught:
        checker.targets(ZONE, provider)
    assert caught.value.retryable is False


# -- policy ---------------------------------------------------------------------------------

@pytest.mark.parametrize(
    "kwargs",
    [{"confirmations": 0}, {"max_parallel": 0}, {"deadline_s": 0}, {"payload": 100},
     {"nameserver_addresses": {"ns1": ["not-an-ip"]}},
     {"nameserver_addresses": {"ns1": ["127.0.0.1:70000"]}}],
)
def test_policy_when_values_invalid_should_raise(kwargs: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        PropagationPolicy(**kwargs)  # type: ignore[arg-type]


def test_policy_defaults_should_be_the_fast_schedule() -> None:
    policy = PropagationPolicy()
    assert (policy.query_timeout_s, policy.tcp_timeout_s, policy.payload) == (2.0, 3.0, 1232)
    assert (policy.first_poll_s, policy.backoff_initial_s, policy.backoff_exp_base,
            policy.backoff_max_s, policy.backoff_jitter_s) == (0.25, 0.25, 1.25, 8.0, 0.1)
    assert (policy.confirmations, policy.confirmation_gap_s, policy.deadline_s) == (2, 0.5, 300.0)
    assert (policy.max_parallel, policy.strict, policy.dns_port) == (16, False, 53)


# -- waiting for a CNAME (the optional route step) ------------------------------------------

ROUTE = "www.example.com"
BUCKET_HOST = "bucket.oss-cn-hangzhou.aliyuncs.com"


def cname_serving(target: str | None) -> Answering:
    def behave(q: dns.message.Message, _: float) -> dns.message.Message:
        if target is None:
            return respond(q, rcode=dns.rcode.NXDOMAIN, serial=3)
        return respond(q, cname=target + ".")

    return behave


@pytest.mark.parametrize(
    ("behaviour", "state", "detail"),
    [
        (cname_serving(BUCKET_HOST.upper()), AnswerState.OK, ""),
        (cname_serving(None), AnswerState.PENDING, "NXDOMAIN"),
        (cname_serving("old.example.net"), AnswerState.PENDING, "CNAME to old.example.net"),
        (LAME_B, AnswerState.LAME, "rcode REFUSED"),
    ],
)
def test_wait_cname_should_classify_the_awaited_target(
    behaviour: Behaviour, state: AnswerState, detail: str
) -> None:
    policy = ref_policy(backoff_jitter_s=0.0, deadline_s=5.0)
    checker, fake, _ = checker_for({"192.0.2.1": behaviour}, policy)
    rounds: list[Round] = []
    with pytest.raises(PropagationTimeout) if state is not AnswerState.OK else _nothing():
        checker.wait_cname(ROUTE, BUCKET_HOST, targets("192.0.2.1"), on_round=rounds.append)
    answer = rounds[0].answers[0]
    assert (answer.state, answer.detail) == (state, detail)
    assert fake.asked(dns.rdatatype.CNAME) and not fake.asked(dns.rdatatype.TXT)


def test_wait_cname_async_when_stuck_should_name_type_and_target_in_timeout() -> None:
    policy = ref_policy(backoff_jitter_s=0.0, deadline_s=3.0)
    checker, _, clock = checker_for({"192.0.2.1": cname_serving("old.example.net")}, policy)
    with pytest.raises(PropagationTimeout) as caught:
        asyncio.run(checker.wait_cname_async(ROUTE, BUCKET_HOST, targets("192.0.2.1"),
                                             written_at=clock.now))
    assert f"CNAME '{BUCKET_HOST}'" in str(caught.value)
    assert "old.example.net" in caught.value.table


def _nothing() -> contextlib.AbstractContextManager[None]:
    return contextlib.nullcontext()


class CountingExecutor(ThreadPoolExecutor):
    """A shared executor that counts the fan-out calls it ran."""

    def __init__(self) -> None:
        super().__init__(max_workers=2)
        self.ran = 0

    def submit(self, fn: Any, /, *args: Any, **kwargs: Any) -> Any:
        self.ran += 1
        return super().submit(fn, *args, **kwargs)


def test_pre_state_fans_out_on_the_callers_executor_when_given() -> None:
    pool = CountingExecutor()
    try:
        checker, fake, _ = checker_for({"192.0.2.1": serving(0), "192.0.2.2": serving(0)},
                                       executor=pool)
        state = checker.pre_state(NAME, targets("192.0.2.1", "192.0.2.2"))
    finally:
        pool.shutdown()
    assert TOKEN in state.values
    assert pool.ran == 4  # TXT and SOA at both addresses, all on the shared pool
    assert len(fake.log) == 4


def test_wait_logs_rounds_at_debug_and_convergence_at_info() -> None:
    checker, _, clock = checker_for({"192.0.2.1": serving(0)})
    with capture_logs() as logs:
        checker.wait(NAME, TOKEN, targets("192.0.2.1"), written_at=clock.now)
    levels = {e["event"]: e["log_level"] for e in logs}
    assert levels["propagation.round"] == "debug"
    assert levels["propagation.converged"] == "info"


# -- the learned first poll (the ``delays`` hook a batch job uses) --------------------------

class RecordingLearner:
    """A DelayLearner that suggests a fixed first poll and records what it is taught."""

    def __init__(self, first_poll_s: float) -> None:
        self.first = first_poll_s
        self.asked: list[tuple[object, float]] = []
        self.seen: list[tuple[object, float]] = []
        self.missing: list[tuple[object, float]] = []

    def first_poll_s(self, key: object, default: float) -> float:
        self.asked.append((key, default))
        return self.first

    def observe(self, key: object, delay_s: float) -> None:
        self.seen.append((key, delay_s))

    def observe_missing(self, key: object, delay_s: float) -> None:
        self.missing.append((key, delay_s))


LAGGING = ("192.0.2.2", "192.0.2.1")  # target order differs from the sorted key
LAGGING_KEY = ("192.0.2.1:53", "192.0.2.2:53")


def test_wait_async_with_delays_should_start_when_learned_and_teach_what_it_saw() -> None:
    start = FakeClock().now
    learner = RecordingLearner(5.0)
    behaviours = {"192.0.2.1": serving(0), "192.0.2.2": serving(start + 14.0)}
    checker, _, clock = checker_for(behaviours, delays=learner)
    rounds: list[Round] = []
    result = asyncio.run(checker.wait_async(NAME, TOKEN, targets(*LAGGING), written_at=start,
                                            on_round=rounds.append))
    assert result.ok and len(rounds) == 7  # the caller's callback still sees every round
    assert learner.asked == [(LAGGING_KEY, EXACT.first_poll_s)]
    # rounds at +5 (learned), then backoff 1, 1.5, 2.25, 3.375, 5.0625: first all-OK at +18.19
    assert clock.sleeps == pytest.approx([5.0, 1.0, 1.5, 2.25, 3.375, 5.0625, 2.0])
    assert [d for _, d in learner.missing] == pytest.approx([5.0, 6.0, 7.5, 9.75, 13.125])
    assert [(key, round(delay, 4)) for key, delay in learner.seen] == [(LAGGING_KEY, 18.1875)]


def test_wait_async_with_delays_when_deadline_passes_should_teach_only_misses() -> None:
    learner = RecordingLearner(1.0)
    checker, _, clock = checker_for({"192.0.2.1": serving(None)},
                                    ref_policy(backoff_jitter_s=0.0, deadline_s=5.0),
                                    delays=learner)
    with pytest.raises(PropagationTimeout):
        asyncio.run(checker.wait_async(NAME, TOKEN, targets("192.0.2.1"), written_at=clock.now))
    assert learner.missing and learner.seen == []


@pytest.mark.parametrize("call", ["explicit first poll", "no write time", "sync", "cname"])
def test_wait_with_delays_should_not_learn_outside_timed_async_txt_waits(call: str) -> None:
    learner = RecordingLearner(7.0)
    checker, _, clock = checker_for({"192.0.2.1": serving(0)}, delays=learner)
    where = targets("192.0.2.1")
    if call == "explicit first poll":
        asyncio.run(checker.wait_async(NAME, TOKEN, where, written_at=clock.now,
                                       first_poll_s=3.0))
        assert clock.sleeps[0] == 3.0
    elif call == "no write time":
        asyncio.run(checker.wait_async(NAME, TOKEN, where))
    elif call == "sync":
        checker.wait(NAME, TOKEN, where, written_at=clock.now)
    else:
        with contextlib.suppress(PropagationTimeout):
            asyncio.run(checker.wait_cname_async(NAME, "x.example.net", where,
                                                 written_at=clock.now))
    assert learner.asked == learner.seen == learner.missing == []


# -- one body, two drivers ------------------------------------------------------------------

def test_sync_methods_should_run_in_a_thread_whose_event_loop_is_running() -> None:
    checker, _, clock = checker_for({"192.0.2.1": serving(0), "192.0.2.2": serving(0)})
    where = targets("192.0.2.1", "192.0.2.2")

    async def from_the_loop() -> tuple[PreState, Round, Round]:
        # a worker falling back to the synchronous path on the loop's own thread
        return (checker.pre_state(NAME, where), checker.observe(NAME, TOKEN, where),
                checker.wait(NAME, TOKEN, where, written_at=clock.now))

    pre, observed, waited = asyncio.run(from_the_loop())
    assert TOKEN in pre.values and observed.ok and waited.ok
    assert clock.sleeps == [1.0, 2.0]


@pytest.mark.parametrize("flavour", ["sync", "async"])
def test_both_flavours_should_send_the_same_queries_and_sleep_the_same(flavour: str) -> None:
    start = FakeClock().now
    behaviours = {"192.0.2.1": serving(0), "192.0.2.2": serving(start + 4.0)}
    checker, fake, clock = checker_for(behaviours)
    where = targets("192.0.2.1", "192.0.2.2")
    if flavour == "sync":
        checker.wait(NAME, TOKEN, where, written_at=start)
    else:
        asyncio.run(checker.wait_async(NAME, TOKEN, where, written_at=start))
    assert clock.sleeps == pytest.approx([1.0, 1.0, 1.5, 2.25, 2.0])  # OK at +5.75, then +7.75
    assert sorted(fake.asked(dns.rdatatype.TXT)) == ["192.0.2.1"] * 5 + ["192.0.2.2"] * 5

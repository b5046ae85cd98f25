"""Wait until every authoritative nameserver address serves the ``_dnsauth`` TXT value.

Implements dns-propagation.md §5 Phases A (targets, pre-state) and C (the poll):

* every address of every authoritative NS host is asked directly, RD=0, in parallel
  (at most ``max_parallel`` in flight);
* no query for the target name ever goes to a recursive resolver, so no resolver's negative
  cache is primed with it (the only recursive lookups are A/AAAA of the NS *host names*);
* rounds run under tenacity: first at ``written_at + first_poll_s``, then with
  ``wait_exponential_jitter``, stopping before ``deadline_s``; success needs ``confirmations``
  good rounds in a row ``confirmation_gap_s`` apart; a timeout raises
  :class:`~cname_flow.errors.PropagationTimeout` carrying the per-address table.

:meth:`PropagationChecker.wait` sleeps in the calling thread (one thread pool per round);
:meth:`PropagationChecker.wait_async` runs on ``dns.asyncquery`` and ``AsyncRetrying`` so thousands
of waits cost only their sockets and a few objects each.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import Awaitable, Callable, Sequence
from concurrent.futures import Executor, ThreadPoolExecutor
from typing import Any

import structlog
from dns.rdatatype import RdataType
from tenacity import AsyncRetrying, RetryCallState, Retrying, retry_if_result

from cname_flow.errors import PropagationTimeout, StepError
from cname_flow.propagation.model import (
    AddressAnswer,
    AnswerState,
    NameserverAddress,
    PreState,
    PropagationPolicy,
    Round,
    fold_pre_state,
    soa_missing,
)
from cname_flow.propagation.schedule import (
    Attempt,
    Confirmation,
    PollWait,
    StopBeforeDeadline,
)
from cname_flow.propagation.targets import ResolveHostFn, discover, system_addresses
from cname_flow.propagation.wire import (
    AsyncQueryFn,
    Exchange,
    QueryFn,
    aask,
    ask,
    async_udp_then_tcp,
    classify,
    make_query,
    merge_serials,
    serial_missing,
    udp_then_tcp,
)

__all__ = [
    "AddressAnswer",
    "AnswerState",
    "AsyncQueryFn",
    "NameserverAddress",
    "PreState",
    "PropagationChecker",
    "PropagationPolicy",
    "QueryFn",
    "Round",
]

log = structlog.get_logger(__name__)

TXT, CNAME, SOA = RdataType.TXT, RdataType.CNAME, RdataType.SOA
RoundCallback = Callable[[Round], None]


class PropagationChecker:
    """Polls the authoritative nameservers of a zone for one TXT value.

    Args:
        policy: timeouts, schedule and overrides; defaults per dns-propagation.md §5.
        sleep: blocking sleep used between rounds by :meth:`wait` (seconds).
        clock: monotonic clock in seconds; ``written_at`` and RTTs are on this clock.
        asleep: asynchronous sleep used by :meth:`wait_async`.
        query: transport for one query to one address (default: UDP, TCP on TC or timeout).
        aquery: the same for the asynchronous methods.
        resolve_host: A/AAAA lookup of an NS host name (default: the system resolver).
        executor: runs the synchronous fan-outs (one query per address, in parallel); default:
            a thread pool of at most ``policy.max_parallel`` threads per fan-out. A shared
            long-lived executor suits many concurrent callers (its size then bounds the queries
            in flight); the caller owns and shuts it down.
    """

    def __init__(
        self,
        policy: PropagationPolicy | None = None,
        *,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
        asleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        query: QueryFn | None = None,
        aquery: AsyncQueryFn | None = None,
        resolve_host: ResolveHostFn = system_addresses,
        executor: Executor | None = None,
    ) -> None:
        self.policy = policy or PropagationPolicy()
        self._sleep = sleep
        self._clock = clock
        self._asleep = asleep
        self._query = query or udp_then_tcp(self.policy)
        self._aquery = aquery or async_udp_then_tcp(self.policy)
        self._resolve_host = resolve_host
        self._executor = executor

    def targets(self, zone: str, provider_nameservers: Sequence[str]) -> list[NameserverAddress]:
        """Every address to poll for ``zone``: provider NS ∪ the child's apex NS set.

        The apex NS set is asked of the provider's nameservers directly (RD=0); addresses come
        from ``policy.nameserver_addresses``, glue, or A/AAAA lookups of the NS host names.

        Raises:
            StepError: not retryable; no nameserver address was found (never vacuous success).
        """
        return discover(zone, provider_nameservers, self.policy, self._exchange_all,
                        self._resolve_host)

    def pre_state(self, name: str, targets: Sequence[NameserverAddress]) -> PreState:
        """What the authoritative servers serve at ``name`` now (TXT, and SOA where needed; RD=0).

        Every address is asked for TXT. An authoritative negative answer (NXDOMAIN, NODATA)
        carries the zone's SOA in its authority section (RFC 2308 §3, §5), which gives the
        serial and ``neg_ttl``; only the addresses whose authoritative answer carried no SOA
        (a positive answer, an odd server) are then asked for SOA
        (:func:`~cname_flow.propagation.model.soa_missing`). The result equals asking every
        address for both, as long as a server answers the two queries alike (a server that
        fails the TXT query is not asked for SOA).

        Raises:
            StepError: ``targets`` is empty (not retryable), or no address answered
                authoritatively (retryable).
        """
        _require(name, targets)
        txt = [classify(e, name, None) for e in self._exchange_all(name, TXT, targets)]
        soa = [classify(e, name, None) for e in self._exchange_all(name, SOA, soa_missing(txt))]
        return fold_pre_state(name, txt, soa)

    async def pre_state_async(self, name: str, targets: Sequence[NameserverAddress]) -> PreState:
        """:meth:`pre_state` on the asynchronous transport; no thread is used.

        Raises:
            StepError: ``targets`` is empty (not retryable), or no address answered
                authoritatively (retryable).
        """
        _require(name, targets)
        txt = [classify(e, name, None) for e in await self._aexchange_all(name, TXT, targets)]
        asked = await self._aexchange_all(name, SOA, soa_missing(txt))
        return fold_pre_state(name, txt, [classify(e, name, None) for e in asked])

    def observe(self, name: str, value: str, targets: Sequence[NameserverAddress]) -> Round:
        """One round: ask every address for ``name`` TXT in parallel and judge the answers.

        Raises:
            StepError: ``targets`` is empty (not retryable).
        """
        return self._observe(name, TXT, value, targets)

    def wait(
        self,
        name: str,
        value: str,
        targets: Sequence[NameserverAddress],
        *,
        written_at: float | None = None,
        on_round: RoundCallback | None = None,
    ) -> Round:
        """Poll until ``value`` is confirmed at every authoritative address; return the last round.

        Args:
            name: the TXT owner name, ``_dnsauth.<domain>``.
            value: the TXT value (the OSS CNAME token), matched byte-exactly.
            targets: from :meth:`targets`.
            written_at: ``clock()`` reading when the provider accepted the write; None = now.
            on_round: called with every round, e.g. to render progress.

        Raises:
            StepError: ``targets`` is empty (not retryable).
            PropagationTimeout: the deadline passed; its ``table`` names the lagging addresses.
        """
        return self._wait(name, TXT, value, targets, written_at, on_round)

    def wait_cname(
        self,
        name: str,
        target: str,
        targets: Sequence[NameserverAddress],
        *,
        written_at: float | None = None,
        on_round: RoundCallback | None = None,
    ) -> Round:
        """:meth:`wait` for a CNAME record: every address must serve ``name`` CNAME ``target``.

        Raises:
            StepError: ``targets`` is empty (not retryable).
            PropagationTimeout: the deadline passed; its ``table`` names the lagging addresses.
        """
        return self._wait(name, CNAME, target, targets, written_at, on_round)

    async def observe_async(
        self, name: str, value: str, targets: Sequence[NameserverAddress]
    ) -> Round:
        """:meth:`observe` on ``dns.asyncquery``; no thread is used."""
        return await self._aobserve(name, TXT, value, targets)

    async def wait_async(
        self,
        name: str,
        value: str,
        targets: Sequence[NameserverAddress],
        *,
        written_at: float | None = None,
        on_round: RoundCallback | None = None,
        first_poll_s: float | None = None,
    ) -> Round:
        """:meth:`wait` on ``dns.asyncquery`` and tenacity's ``AsyncRetrying``.

        Args:
            first_poll_s: seconds after ``written_at`` of the first round, instead of the
                policy's ``first_poll_s`` (a batch job that learned its zone's delay).

        Raises:
            StepError: ``targets`` is empty (not retryable).
            PropagationTimeout: the deadline passed; its ``table`` names the lagging addresses.
        """
        return await self._await(name, TXT, value, targets, written_at, on_round, first_poll_s)

    async def wait_cname_async(
        self,
        name: str,
        target: str,
        targets: Sequence[NameserverAddress],
        *,
        written_at: float | None = None,
        on_round: RoundCallback | None = None,
    ) -> Round:
        """:meth:`wait_cname` on ``dns.asyncquery`` and tenacity's ``AsyncRetrying``."""
        return await self._await(name, CNAME, target, targets, written_at, on_round)

    # -- one round --------------------------------------------------------------------------

    def _observe(
        self, name: str, rdtype: RdataType, value: str, targets: Sequence[NameserverAddress]
    ) -> Round:
        _require(name, targets)
        exchanges = self._exchange_all(name, rdtype, targets)
        return self._judge(exchanges, name, rdtype, value)

    async def _aobserve(
        self, name: str, rdtype: RdataType, value: str, targets: Sequence[NameserverAddress]
    ) -> Round:
        _require(name, targets)
        exchanges = await self._aexchange_all(name, rdtype, targets)
        return self._judge(exchanges, name, rdtype, value)

    def _judge(
        self, exchanges: Sequence[Exchange], name: str, rdtype: RdataType, value: str
    ) -> Round:
        answers = [classify(e, name, value, rdtype=rdtype) for e in exchanges]
        return Round.judge(answers, strict=self.policy.strict)

    # -- the poll ---------------------------------------------------------------------------

    def _wait(
        self,
        name: str,
        rdtype: RdataType,
        value: str,
        targets: Sequence[NameserverAddress],
        written_at: float | None,
        on_round: RoundCallback | None,
    ) -> Round:
        _require(name, targets)
        delay = self._first_poll_delay(written_at)
        if delay > 0:
            self._sleep(delay)
        confirmation = Confirmation(self.policy.confirmations, self.policy.confirmation_gap_s)
        started, rounds = self._clock(), itertools.count(1)

        def attempt() -> Attempt:
            at = self._clock()
            round_ = self._observe(name, rdtype, value, targets)
            return self._record(name, round_, next(rounds), confirmation.record(round_, at),
                                on_round)

        retrying = Retrying(sleep=self._sleep, **self._strategies(confirmation, started))
        last: Attempt = retrying(attempt)
        if last.confirmed:
            return self._converged(name, last.round, started)
        final = merge_serials(last.round, name,
                              self._exchange_all(name, SOA, serial_missing(last.round)))
        raise self._timeout(name, rdtype, value, final, started)

    async def _await(
        self,
        name: str,
        rdtype: RdataType,
        value: str,
        targets: Sequence[NameserverAddress],
        written_at: float | None,
        on_round: RoundCallback | None,
        first_poll_s: float | None = None,
    ) -> Round:
        _require(name, targets)
        delay = self._first_poll_delay(written_at, first_poll_s)
        if delay > 0:
            await self._asleep(delay)
        confirmation = Confirmation(self.policy.confirmations, self.policy.confirmation_gap_s)
        started, rounds = self._clock(), itertools.count(1)

        async def attempt() -> Attempt:
            at = self._clock()
            round_ = await self._aobserve(name, rdtype, value, targets)
            return self._record(name, round_, next(rounds), confirmation.record(round_, at),
                                on_round)

        retrying = AsyncRetrying(sleep=self._asleep, **self._strategies(confirmation, started))
        last: Attempt = await retrying(attempt)
        if last.confirmed:
            return self._converged(name, last.round, started)
        soa = await self._aexchange_all(name, SOA, serial_missing(last.round))
        raise self._timeout(name, rdtype, value, merge_serials(last.round, name, soa), started)

    # -- schedule ---------------------------------------------------------------------------

    def _first_poll_delay(
        self, written_at: float | None, first_poll_s: float | None = None
    ) -> float:
        now = self._clock()
        first = self.policy.first_poll_s if first_poll_s is None else first_poll_s
        return (now if written_at is None else written_at) + first - now

    def _strategies(self, confirmation: Confirmation, started: float) -> dict[str, Any]:
        return {
            "stop": StopBeforeDeadline(self.policy.deadline_s, started, self._clock),
            "wait": PollWait(self.policy, confirmation),
            "retry": retry_if_result(lambda attempt: not attempt.confirmed),
            "retry_error_callback": _last_attempt,
        }

    def _record(
        self, name: str, round_: Round, number: int, confirmed: bool, on_round: RoundCallback | None
    ) -> Attempt:
        log.debug("propagation.round", name=name, round=number, ok=round_.ok,
                 confirmed=confirmed, states=round_.counts())
        if on_round is not None:
            on_round(round_)
        return Attempt(round_, confirmed)

    def _converged(self, name: str, round_: Round, started: float) -> Round:
        warnings = [f"{a.target.host} {a.target.endpoint} {a.state}" for a in round_.lagging()]
        log.info("propagation.converged", name=name, elapsed_s=round(self._clock() - started, 3),
                 addresses=len(round_.answers), warnings=warnings)
        return round_

    def _timeout(
        self, name: str, rdtype: RdataType, value: str, round_: Round, started: float
    ) -> PropagationTimeout:
        elapsed = self._clock() - started
        lagging = ", ".join(f"{a.target.endpoint} ({a.target.host}) {a.state}"
                            for a in round_.lagging()) or "none, but not confirmed in time"
        table = round_.table()
        log.warning("propagation.timeout", name=name, elapsed_s=round(elapsed, 3),
                    states=round_.counts())
        return PropagationTimeout(
            f"{name}: {rdtype.name} {value!r} not served by every authoritative address"
            f" after {elapsed:.0f} s;"
            f" lagging: {lagging}\n{table}",
            name=name, expected=value, table=table,
        )

    # -- fan-out ----------------------------------------------------------------------------

    def _exchange_all(
        self, name: str, rdtype: RdataType, targets: Sequence[NameserverAddress]
    ) -> list[Exchange]:
        if not targets:
            return []

        def one(target: NameserverAddress) -> Exchange:
            return ask(self._query, make_query(name, rdtype, self.policy.payload), target,
                       self._clock)

        if self._executor is not None:
            return list(self._executor.map(one, targets))
        workers = min(self.policy.max_parallel, len(targets))
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="propagation") as pool:
            return list(pool.map(one, targets))

    async def _aexchange_all(
        self, name: str, rdtype: RdataType, targets: Sequence[NameserverAddress]
    ) -> list[Exchange]:
        if not targets:
            return []
        gate = asyncio.Semaphore(self.policy.max_parallel)

        async def one(target: NameserverAddress) -> Exchange:
            async with gate:
                return await aask(self._aquery, make_query(name, rdtype, self.policy.payload),
                                  target, self._clock)

        return list(await asyncio.gather(*(one(target) for target in targets)))


def _require(name: str, targets: Sequence[NameserverAddress]) -> None:
    if not targets:
        raise StepError(f"{name}: no authoritative nameserver address to check",
                        hint="an empty target set can never prove propagation", retryable=False)


def _last_attempt(retry_state: RetryCallState) -> Attempt:
    assert retry_state.outcome is not None  # tenacity sets it before asking to stop
    result: Attempt = retry_state.outcome.result()
    return result

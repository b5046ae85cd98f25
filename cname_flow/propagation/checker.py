"""Wait until every authoritative nameserver address serves the ``_dnsauth`` TXT value.

The check (README "How a binding flows", "Propagation"):

* targets: every address of every authoritative NS host (the provider's NS set and the zone's
  apex NS set, RFC 1034 §4.2.1), see :mod:`cname_flow.propagation.targets`;
* every address is asked directly, RD=0 (RFC 1035 §4.1.1), in parallel (at most
  ``max_parallel`` in flight); no query for the target name ever goes to a recursive resolver,
  so no resolver's negative cache (RFC 2308 §5) is primed with it (the only recursive lookups
  are A/AAAA of the NS *host names*);
* rounds run under tenacity (https://tenacity.readthedocs.io/): first at ``written_at +
  first_poll_s``, then with ``wait_exponential_jitter``, stopping before ``deadline_s``;
  success needs ``confirmations`` good rounds in a row ``confirmation_gap_s`` apart
  (:mod:`cname_flow.propagation.schedule`); a timeout raises
  :class:`~cname_flow.errors.PropagationTimeout` carrying the per-address table.

Each operation is written once, as a coroutine over an :class:`~.drivers.Io`. The async methods
(the batch path) await it on the running event loop with ``dns.asyncquery`` and
``AsyncRetrying``, so thousands of waits cost only their sockets and a few objects each; the
synchronous methods (the one-shot bind) run the same coroutine with blocking sockets, a thread
pool per fan-out and ``time.sleep``, through :func:`~cname_flow.propagation.blocking.run_sync`
(no event loop; a few microseconds per call).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Sequence
from concurrent.futures import Executor

import dns.message
from dns.rdatatype import RdataType

from cname_flow.errors import PropagationTimeout, StepError
from cname_flow.logs import get_logger
from cname_flow.propagation.blocking import run_sync
from cname_flow.propagation.drivers import Io, evented, threaded
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
from cname_flow.propagation.schedule import DelayLearner, LearningWait, confirm
from cname_flow.propagation.targets import ResolveHostFn, discover, system_addresses
from cname_flow.propagation.wire import (
    AsyncQueryFn,
    Exchange,
    QueryFn,
    async_udp_then_tcp,
    classify,
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
    "RoundCallback",
]

log = get_logger(__name__)

TXT, CNAME, SOA = RdataType.TXT, RdataType.CNAME, RdataType.SOA
RoundCallback = Callable[[Round], None]


class PropagationChecker:
    """Polls the authoritative nameservers of a zone for one TXT value.

    Args:
        policy: timeouts, schedule and overrides; defaults in README "Propagation defaults".
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
        delays: when given, :meth:`wait_async` sends its first round when this learner
            suggests for the nameserver set, and teaches it when the record was seen
            everywhere (:class:`~cname_flow.propagation.schedule.LearningWait`); it is used
            from one event loop only.
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
        delays: DelayLearner | None = None,
    ) -> None:
        self.policy = policy or PropagationPolicy()
        self.delays = delays
        self._clock = clock
        self._resolve_host = resolve_host
        payload, parallel = self.policy.payload, self.policy.max_parallel
        self._blocking = threaded(query or udp_then_tcp(self.policy), sleep, clock,
                                  payload=payload, max_parallel=parallel, executor=executor)
        self._evented = evented(aquery or async_udp_then_tcp(self.policy), asleep, clock,
                                payload=payload, max_parallel=parallel)

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
        return run_sync(self._pre_state(self._blocking, name, targets))

    async def pre_state_async(self, name: str, targets: Sequence[NameserverAddress]) -> PreState:
        """:meth:`pre_state` on the asynchronous transport; no thread is used.

        Raises:
            StepError: as :meth:`pre_state`.
        """
        return await self._pre_state(self._evented, name, targets)

    def observe(self, name: str, value: str, targets: Sequence[NameserverAddress]) -> Round:
        """One round: ask every address for ``name`` TXT in parallel and judge the answers.

        Raises:
            StepError: ``targets`` is empty (not retryable).
        """
        return run_sync(self._observe(self._blocking, name, TXT, value, targets))

    async def observe_async(
        self, name: str, value: str, targets: Sequence[NameserverAddress]
    ) -> Round:
        """:meth:`observe` on ``dns.asyncquery``; no thread is used."""
        return await self._observe(self._evented, name, TXT, value, targets)

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
        return run_sync(self._poll(self._blocking, name, TXT, value, targets, written_at,
                                   on_round))

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
        return run_sync(self._poll(self._blocking, name, CNAME, target, targets, written_at,
                                   on_round))

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
                policy's ``first_poll_s`` (or of what the checker's ``delays`` suggest, which
                are consulted only when ``written_at`` is given and this is not).

        Raises:
            StepError: ``targets`` is empty (not retryable).
            PropagationTimeout: the deadline passed; its ``table`` names the lagging addresses.
        """
        learning = None
        if self.delays is not None and written_at is not None and first_poll_s is None:
            learning = LearningWait.of(self.delays, targets, written_at, self._clock)
        return await self._poll(self._evented, name, TXT, value, targets, written_at, on_round,
                                first_poll_s, learning)

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
        return await self._poll(self._evented, name, CNAME, target, targets, written_at, on_round)

    # -- the one body of each operation -----------------------------------------------------

    async def _pre_state(
        self, io: Io, name: str, targets: Sequence[NameserverAddress]
    ) -> PreState:
        _require(name, targets)
        txt = [classify(e, name, None) for e in await io.ask_all(name, TXT, targets)]
        asked = await io.ask_all(name, SOA, soa_missing(txt))
        return fold_pre_state(name, txt, [classify(e, name, None) for e in asked])

    async def _observe(
        self, io: Io, name: str, rdtype: RdataType, value: str,
        targets: Sequence[NameserverAddress], reuse: dns.message.Message | None = None,
    ) -> Round:
        _require(name, targets)
        exchanges = await io.ask_all(name, rdtype, targets, reuse=reuse)
        answers = [classify(e, name, value, rdtype=rdtype) for e in exchanges]
        return Round.judge(answers, strict=self.policy.strict)

    async def _poll(
        self,
        io: Io,
        name: str,
        rdtype: RdataType,
        value: str,
        targets: Sequence[NameserverAddress],
        written_at: float | None,
        on_round: RoundCallback | None,
        first_poll_s: float | None = None,
        learning: LearningWait | None = None,
    ) -> Round:
        _require(name, targets)
        if learning is not None:
            first_poll_s = learning.first_poll_s(self.policy.first_poll_s)
            on_round = learning.then(on_round)
        delay = self._first_poll_delay(written_at, first_poll_s)
        if delay > 0:
            await io.sleep(delay)
        started = self._clock()
        query = io.query_for(name, rdtype)  # built once, sent every round under a fresh id
        last = await confirm(lambda: self._observe(io, name, rdtype, value, targets, query),
                             name, self.policy, self._clock, io.sleep, started, on_round)
        if last.confirmed:
            if learning is not None:
                learning.converged()
            return self._converged(name, last.round, started)
        soa = await io.ask_all(name, SOA, serial_missing(last.round))
        raise self._timeout(name, rdtype, value, merge_serials(last.round, name, soa), started)

    # -- the first round, the outcome ---------------------------------------------------------

    def _first_poll_delay(
        self, written_at: float | None, first_poll_s: float | None = None
    ) -> float:
        now = self._clock()
        first = self.policy.first_poll_s if first_poll_s is None else first_poll_s
        return (now if written_at is None else written_at) + first - now

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
        """Ask every target in parallel on blocking sockets (target discovery's ``gather``)."""
        return run_sync(self._blocking.ask_all(name, rdtype, targets))


def _require(name: str, targets: Sequence[NameserverAddress]) -> None:
    if not targets:
        raise StepError(f"{name}: no authoritative nameserver address to check",
                        hint="an empty target set can never prove propagation", retryable=False)

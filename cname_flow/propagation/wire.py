"""One query to one authoritative address, and the classification of its answer.

Queries are non-recursive (RD=0, RFC 1035 §4.1.1) with EDNS(0) (RFC 6891) advertising the
policy's payload (1232 bytes by default: https://www.dnsflagday.net/2020/) and an empty NSID
option (RFC 5001); they go over UDP first with TCP on truncation (RFC 7766 §5, dnspython's
``udp_with_fallback``), get one TCP try after a UDP timeout, and wait not at all on an OSError
such as ENETUNREACH.

The transport is a seam: :data:`QueryFn` / :data:`AsyncQueryFn` take the query and the address
and return the response or raise (``dns.exception.Timeout``, ``OSError``, any
``dns.exception.DNSException``); tests replace it with a scripted fake.
"""

from __future__ import annotations

import array
import contextlib
import dataclasses
import functools
import secrets
import threading
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

import dns.asyncquery
import dns.edns
import dns.exception
import dns.flags
import dns.message
import dns.name
import dns.query
import dns.rcode
import dns.rdatatype
import dns.rrset
from dns.rdatatype import RdataType

from cname_flow.propagation.blocking import blocking, run_sync
from cname_flow.propagation.model import (
    AddressAnswer,
    AnswerState,
    NameserverAddress,
    PropagationPolicy,
    Round,
)

QueryFn = Callable[[dns.message.Message, NameserverAddress], dns.message.Message]
AsyncQueryFn = Callable[[dns.message.Message, NameserverAddress], Awaitable[dns.message.Message]]

#: What a failed exchange may raise; each maps to UNREACHABLE.
TRANSPORT_ERRORS = (dns.exception.DNSException, OSError, EOFError)
_LAME_RCODES = frozenset({dns.rcode.REFUSED, dns.rcode.NOTAUTH})


class QueryIds:
    """Unpredictable 16-bit DNS message ids (RFC 5452 §4.3), drawn from the OS in blocks.

    dnspython draws each id with ``SystemRandom`` (one ``getrandom`` syscall per query); a
    batch job sends thousands of queries, and those syscalls were ~4 % of its CPU. Drawing
    ``block`` ids per syscall from the same CSPRNG (:func:`secrets.token_bytes`) keeps them
    just as unpredictable. Thread-safe.

    Args:
        block: ids drawn per refill.
    """

    def __init__(self, block: int = 1024) -> None:
        self._block = block
        self._ids: list[int] = []
        self._lock = threading.Lock()

    def __call__(self) -> int:
        """The next id, 0..65535."""
        with self._lock:
            if not self._ids:
                self._ids = array.array("H", secrets.token_bytes(2 * self._block)).tolist()
            return self._ids.pop()


#: The ids of every query cname-flow sends.
query_id = QueryIds()


def make_query(name: str, rdtype: dns.rdatatype.RdataType, payload: int) -> dns.message.Message:
    """A non-recursive (RD=0) query for ``name``/``rdtype`` with EDNS(0) and an NSID request."""
    nsid = dns.edns.GenericOption(dns.edns.OptionType.NSID, b"")
    return dns.message.make_query(
        name, rdtype, use_edns=0, payload=payload, options=[nsid], flags=0, id=query_id()
    )


class _UdpWithFallback(Protocol):
    """``dns.query.udp_with_fallback`` / ``dns.asyncquery.udp_with_fallback``, awaitable."""

    def __call__(self, q: dns.message.Message, where: str, *, timeout: float,
                 port: int) -> Awaitable[tuple[dns.message.Message, bool]]: ...


class _Tcp(Protocol):
    """``dns.query.tcp`` / ``dns.asyncquery.tcp``, awaitable."""

    def __call__(self, q: dns.message.Message, where: str, *, timeout: float,
                 port: int) -> Awaitable[dns.message.Message]: ...


async def _udp_then_tcp(
    q: dns.message.Message,
    target: NameserverAddress,
    policy: PropagationPolicy,
    udp: _UdpWithFallback,
    tcp: _Tcp,
) -> dns.message.Message:
    """The fallback rule, once for both transports (RFC 7766 §5: TCP when UDP truncates).

    UDP with ``udp_with_fallback`` (TC=1 is retried over TCP within ``query_timeout_s``); after
    a timeout of that, one TCP try within ``tcp_timeout_s`` (UDP may be filtered, or dropped by
    response rate limiting). An OSError (ENETUNREACH, ECONNREFUSED) propagates at once.
    """
    try:
        response, _ = await udp(q, target.address, timeout=policy.query_timeout_s,
                                port=target.port)
    except dns.exception.Timeout:
        return await tcp(q, target.address, timeout=policy.tcp_timeout_s, port=target.port)
    return response


def udp_then_tcp(policy: PropagationPolicy) -> QueryFn:
    """The production transport: UDP (TCP on TC=1) within ``query_timeout_s``, then one TCP try.

    Blocking sockets (``dns.query``), for the synchronous methods of the checker; the rule is
    :func:`async_udp_then_tcp`'s, run by :func:`~cname_flow.propagation.blocking.run_sync`.
    dnspython: https://dnspython.readthedocs.io/en/stable/query.html

    Raises (from the returned function):
        dns.exception.Timeout: neither UDP nor TCP answered in time.
        OSError: the address is unreachable (raised at once, no timeout is waited for).
    """
    udp, tcp = blocking(dns.query.udp_with_fallback), blocking(dns.query.tcp)

    def query(q: dns.message.Message, target: NameserverAddress) -> dns.message.Message:
        return run_sync(_udp_then_tcp(q, target, policy, udp, tcp))

    return query


def async_udp_then_tcp(policy: PropagationPolicy) -> AsyncQueryFn:
    """:func:`udp_then_tcp` on ``dns.asyncquery`` (no thread per query).

    Raises (from the returned coroutine function): as :func:`udp_then_tcp`.
    """

    async def query(q: dns.message.Message, target: NameserverAddress) -> dns.message.Message:
        return await _udp_then_tcp(q, target, policy, dns.asyncquery.udp_with_fallback,
                                   dns.asyncquery.tcp)

    return query


@dataclass(frozen=True, slots=True)
class Exchange:
    """The raw outcome of one query: a response or the error, and the round-trip time."""

    target: NameserverAddress
    response: dns.message.Message | None
    error: BaseException | None
    rtt_s: float | None


async def aask(
    query: AsyncQueryFn,
    q: dns.message.Message,
    target: NameserverAddress,
    clock: Callable[[], float],
) -> Exchange:
    """Send ``q`` to ``target`` through ``query``; transport errors become ``Exchange.error``.

    ``rtt_s`` is measured on ``clock`` (seconds) from just before the send to the answer.
    """
    started = clock()
    try:
        response = await query(q, target)
    except TRANSPORT_ERRORS as exc:
        return Exchange(target, None, exc, None)
    return Exchange(target, response, None, clock() - started)


def ask(
    query: QueryFn, q: dns.message.Message, target: NameserverAddress, clock: Callable[[], float]
) -> Exchange:
    """:func:`aask` for a blocking transport, in the calling thread (no event loop)."""
    return run_sync(aask(blocking(query), q, target, clock))


def classify(
    exchange: Exchange, name: str, value: str | None, *, rdtype: RdataType = RdataType.TXT
) -> AddressAnswer:
    """Classify one exchange as an :class:`~cname_flow.propagation.model.AnswerState`.

    AA and RCODE per RFC 1035 §4.1.1, NXDOMAIN/NODATA per RFC 2308 §2, the SOA of a negative
    answer from its authority section (RFC 2308 §3), a TXT RR's character-strings
    (RFC 1035 §3.3.14) joined into one value.

    Args:
        exchange: the outcome of a query for ``name``.
        name: the queried name; owner names are compared case-insensitively.
        value: with ``rdtype`` TXT, the value waited for, compared byte-exactly (case
            significant) with each RR's joined character-strings, extra values allowed; with
            ``rdtype`` CNAME, the target waited for (case-insensitive, trailing dot ignored).
            None only reads facts: a positive TXT answer is then OK whatever its values.
        rdtype: TXT (a CNAME at the name is then state CNAME) or CNAME (the awaited record).

    Returns:
        The answer; ``values`` (TXT values, or the CNAME target when waiting for a CNAME),
        ``ttl``, ``serial``, ``neg_ttl``, ``cname`` and ``nsid`` are filled from the response
        whatever the state.
    """
    response = exchange.response
    if response is None:
        return _unreachable(exchange)
    qname = owner_name(name)
    txt = _txt_rrset(response, qname)
    cname = _cname_target(response, qname)
    serial, neg_ttl = _soa_facts(response)
    if rdtype == RdataType.CNAME:
        state, detail = _cname_state(response, cname, value)
        values = frozenset({cname} if cname else ())
    else:
        state, detail = _state(response, txt, cname, value)
        values = frozenset(_decode(raw) for raw in _joined(txt))
    return AddressAnswer(
        target=exchange.target,
        state=state,
        values=values,
        ttl=txt.ttl if txt is not None else None,
        serial=serial,
        rtt_s=exchange.rtt_s,
        detail=detail,
        neg_ttl=neg_ttl,
        cname=cname,
        nsid=_nsid(response),
    )


@functools.lru_cache(maxsize=4096)
def owner_name(name: str) -> dns.name.Name:
    """``dns.name.from_text(name)``, remembered for the names of the waits in flight (a batch
    classifies every answer of every round; names are immutable, so one object serves all)."""
    return dns.name.from_text(name)


def is_authoritative_noerror(response: dns.message.Message) -> bool:
    """True when the response has AA=1 and rcode NOERROR."""
    return bool(response.flags & dns.flags.AA) and response.rcode() == dns.rcode.NOERROR


def _unreachable(exchange: Exchange) -> AddressAnswer:
    error = exchange.error
    if isinstance(error, dns.exception.Timeout):
        detail = "timeout"
    else:
        detail = f"{type(error).__name__}: {error}".rstrip(": ")
    return AddressAnswer(
        exchange.target, AnswerState.UNREACHABLE, frozenset(), None, None, None, detail
    )


def _failure(response: dns.message.Message) -> tuple[AnswerState, str] | None:
    """LAME or SERVFAIL, or None for a usable answer; AA is read first (a server without the
    zone may answer with any rcode)."""
    rcode = response.rcode()
    if not response.flags & dns.flags.AA:
        return AnswerState.LAME, f"not authoritative (AA=0, rcode {dns.rcode.to_text(rcode)})"
    if rcode in _LAME_RCODES:
        return AnswerState.LAME, f"rcode {dns.rcode.to_text(rcode)}"
    if rcode == dns.rcode.SERVFAIL:
        return AnswerState.SERVFAIL, "rcode SERVFAIL"
    if rcode not in (dns.rcode.NOERROR, dns.rcode.NXDOMAIN):
        return AnswerState.LAME, f"rcode {dns.rcode.to_text(rcode)}"
    return None


def _cname_state(
    response: dns.message.Message, cname: str | None, target: str | None
) -> tuple[AnswerState, str]:
    failure = _failure(response)
    if failure is not None:
        return failure
    if cname is None:
        negative = "NXDOMAIN" if response.rcode() == dns.rcode.NXDOMAIN else "NODATA"
        return AnswerState.PENDING, negative
    if target is None or cname == target.rstrip(".").lower():
        return AnswerState.OK, ""
    return AnswerState.PENDING, f"CNAME to {cname}"


def _state(
    response: dns.message.Message,
    txt: dns.rrset.RRset | None,
    cname: str | None,
    value: str | None,
) -> tuple[AnswerState, str]:
    failure = _failure(response)
    if failure is not None:
        return failure
    rcode = response.rcode()
    if cname is not None:
        return AnswerState.CNAME, f"CNAME to {cname}"
    if rcode == dns.rcode.NXDOMAIN:
        return AnswerState.PENDING, "NXDOMAIN"
    if txt is None:
        return AnswerState.PENDING, "NODATA"
    if value is None or value.encode() in _joined(txt):
        return AnswerState.OK, ""
    return AnswerState.PENDING, "value absent"


def _txt_rrset(response: dns.message.Message, qname: dns.name.Name) -> dns.rrset.RRset | None:
    for rrset in response.answer:
        if rrset.rdtype == dns.rdatatype.TXT and rrset.name == qname:
            return rrset
    return None


def _joined(txt: dns.rrset.RRset | None) -> set[bytes]:
    if txt is None:
        return set()
    return {b"".join(rdata.strings) for rdata in txt}


def _cname_target(response: dns.message.Message, qname: dns.name.Name) -> str | None:
    for rrset in response.answer:
        if rrset.rdtype == dns.rdatatype.CNAME and rrset.name == qname:
            return str(rrset[0].target.to_text(omit_final_dot=True)).lower()
    return None


def _soa_facts(response: dns.message.Message) -> tuple[int | None, int | None]:
    """``(serial, min(SOA TTL, MINIMUM))`` from an SOA in the answer or authority section."""
    for rrset in (*response.answer, *response.authority):
        if rrset.rdtype == dns.rdatatype.SOA:
            soa = rrset[0]
            return int(soa.serial), min(int(rrset.ttl), int(soa.minimum))
    return None, None


def _nsid(response: dns.message.Message) -> str | None:
    for option in response.options:
        if option.otype == dns.edns.OptionType.NSID:
            raw: bytes = option.to_wire() or b""
            text = raw.decode("ascii", "replace")
            return text if raw.isascii() and text.isprintable() else raw.hex()
    return None


def _decode(raw: bytes) -> str:
    with contextlib.suppress(UnicodeDecodeError):
        return raw.decode("utf-8")
    return raw.decode("utf-8", "backslashreplace")


def serial_missing(round_: Round) -> list[NameserverAddress]:
    """Targets of ``round_`` that answered but whose answer carried no SOA serial."""
    return [a.target for a in round_.answers
            if a.serial is None and a.state is not AnswerState.UNREACHABLE]


def merge_serials(round_: Round, name: str, exchanges: Sequence[Exchange]) -> Round:
    """``round_`` with the serials read from diagnostic SOA ``exchanges`` for ``name``."""
    serials = {e.target: classify(e, name, None).serial for e in exchanges}
    answers = tuple(a if serials.get(a.target) is None else
                    dataclasses.replace(a, serial=serials[a.target]) for a in round_.answers)
    return Round(answers=answers, ok=round_.ok)

"""Values of the propagation check: the policy, the targets, one answer, one round, the pre-state.

Everything here is immutable and free of I/O; :mod:`cname_flow.propagation.checker` produces
these values. The check is described in the README ("How a binding flows", "Propagation
defaults"); its DNS terms are those of RFC 1034, RFC 1035 and RFC 2308 (negative answers), and
"lame" is RFC 9499 §7's lame delegation.
All durations are in seconds, measured on the checker's monotonic clock.
"""

from __future__ import annotations

import ipaddress
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum

from cname_flow.errors import StepError


def parse_address(entry: str, default_port: int) -> tuple[str, int]:
    """Split ``"ip"``, ``"ip:port"`` or ``"[ipv6]:port"`` into ``(ip, port)``.

    A bare IPv6 address (``"fd00::53"``) gets ``default_port``.

    Raises:
        ValueError: not an IP literal, or the port is outside 1..65535.
    """
    text = entry.strip()
    host, port = text, default_port
    if text.startswith("["):
        host, _, rest = text[1:].partition("]")
        port = int(rest.removeprefix(":")) if rest else default_port
    elif text.count(":") == 1:
        host, _, raw_port = text.partition(":")
        port = int(raw_port)
    ip = ipaddress.ip_address(host)
    if not 0 < port < 65536:
        raise ValueError(f"nameserver address {entry!r}: port {port} out of range")
    return ip.compressed, port


def normalize_host(host: str) -> str:
    """A nameserver host name as compared everywhere: lowercase, no trailing dot."""
    return host.strip().rstrip(".").lower()


@dataclass(frozen=True, slots=True)
class PropagationPolicy:
    """How the authoritative nameservers are polled (defaults: README "Propagation defaults").

    Attributes:
        query_timeout_s: UDP timeout per query (a truncated answer goes to TCP within it).
        tcp_timeout_s: timeout of the one TCP try made after a UDP timeout.
        payload: EDNS(0) UDP payload size advertised, in bytes.
        first_poll_s: delay from the write to the first round.
        backoff_initial_s: ``initial`` of ``wait_exponential_jitter``.
        backoff_exp_base: ``exp_base`` of ``wait_exponential_jitter``.
        backoff_max_s: ``max`` of ``wait_exponential_jitter``.
        backoff_jitter_s: ``jitter`` of ``wait_exponential_jitter`` (uniform in ``[0, jitter]``).
        confirmations: successful rounds needed in a row.
        confirmation_gap_s: least time between the starts of two confirming rounds.
        deadline_s: no round starts later than this after the first round (``stop_before_delay``).
        max_parallel: queries in flight at once.
        strict: when True, LAME and UNREACHABLE addresses block success instead of warning.
        dns_port: port of the authoritative servers when an address names none.
        nameserver_addresses: NS host -> ``["ip" | "ip:port" | "[ipv6]:port"]``; replaces the
            address lookup of that host (sandbox, lab, split horizon).

    Raises:
        ValueError: a count or duration out of range, or a malformed override address.
    """

    query_timeout_s: float = 2.0
    tcp_timeout_s: float = 3.0
    payload: int = 1232
    first_poll_s: float = 0.25
    backoff_initial_s: float = 0.25
    backoff_exp_base: float = 1.25
    backoff_max_s: float = 8.0
    backoff_jitter_s: float = 0.1
    confirmations: int = 2
    confirmation_gap_s: float = 0.5
    deadline_s: float = 300.0
    max_parallel: int = 16
    strict: bool = False
    dns_port: int = 53
    nameserver_addresses: Mapping[str, Sequence[str]] = field(default_factory=dict, hash=False)

    def __post_init__(self) -> None:
        if self.confirmations < 1 or self.max_parallel < 1:
            raise ValueError("confirmations and max_parallel must be at least 1")
        if min(self.query_timeout_s, self.tcp_timeout_s, self.deadline_s) <= 0:
            raise ValueError("query timeouts and the deadline must be positive")
        if not 512 <= self.payload <= 65535:
            raise ValueError(f"EDNS payload {self.payload} outside 512..65535 bytes")
        for entries in self.nameserver_addresses.values():
            for entry in entries:
                parse_address(entry, self.dns_port)

    def overrides_for(self, host: str) -> list[tuple[str, int]] | None:
        """The ``(ip, port)`` pairs configured for ``host``, or None when it has no override."""
        for key, entries in self.nameserver_addresses.items():
            if normalize_host(key) == normalize_host(host):
                return [parse_address(entry, self.dns_port) for entry in entries]
        return None


@dataclass(frozen=True, slots=True, order=True)
class NameserverAddress:
    """One address of one authoritative nameserver: the unit the check queries.

    Attributes:
        host: NS host name, lowercase, no trailing dot (``"ns1.alidns.com"``).
        address: IPv4 or IPv6 literal.
        port: UDP/TCP port, 53 outside labs.
    """

    host: str
    address: str
    port: int

    @property
    def endpoint(self) -> str:
        """``"ip:port"``, or ``"[ipv6]:port"``."""
        ip = f"[{self.address}]" if ":" in self.address else self.address
        return f"{ip}:{self.port}"


class AnswerState(StrEnum):
    """What one address said about the record: AA and RCODE (RFC 1035 §4.1.1), NXDOMAIN and
    NODATA (RFC 2308 §2), lame delegation (RFC 9499 §7)."""

    OK = "OK"  # AA=1, NOERROR, the TXT set contains the value exactly
    PENDING = "PENDING"  # AA=1 and NXDOMAIN, NODATA or a TXT set without the value
    CNAME = "CNAME"  # AA=1 with a CNAME at the name
    LAME = "LAME"  # AA=0, REFUSED, NOTAUTH, referral, other odd rcode
    SERVFAIL = "SERVFAIL"  # AA=1 and SERVFAIL
    UNREACHABLE = "UNREACHABLE"  # timeout, ICMP error, broken answer


BLOCKING_STATES = frozenset({AnswerState.PENDING, AnswerState.CNAME, AnswerState.SERVFAIL})
WARNING_STATES = frozenset({AnswerState.LAME, AnswerState.UNREACHABLE})
#: States of an answer that came from a server holding the zone (AA=1, usable rcode).
AUTHORITATIVE_STATES = frozenset({AnswerState.OK, AnswerState.PENDING, AnswerState.CNAME})


@dataclass(frozen=True, slots=True)
class AddressAnswer:
    """The classified answer of one address in one round.

    Attributes:
        target: who was asked.
        state: the classification.
        values: TXT values at the name, character-strings joined, decoded as UTF-8
            (undecodable bytes backslash-escaped).
        ttl: TTL of the TXT RRset in seconds, when one was served.
        serial: zone SOA serial, when the answer (or a diagnostic SOA query) carried one.
        rtt_s: time from sending the query to the answer, None without an answer.
        detail: why, in a few words (``"NXDOMAIN"``, ``"rcode REFUSED"``, ``"timeout"``).
        neg_ttl: negative-caching TTL, min(SOA TTL, SOA MINIMUM) (RFC 2308), when an SOA came.
        cname: target of a CNAME at the name, lowercase without trailing dot.
        nsid: the server's NSID (RFC 5001), when it sent one.
    """

    target: NameserverAddress
    state: AnswerState
    values: frozenset[str]
    ttl: int | None
    serial: int | None
    rtt_s: float | None
    detail: str
    neg_ttl: int | None = None
    cname: str | None = None
    nsid: str | None = None


@dataclass(frozen=True, slots=True)
class Round:
    """Every address's answer in one polling round and whether the round succeeded.

    Attributes:
        answers: one answer per target address, in target order.
        ok: the success rule (see :meth:`judge`).
    """

    answers: tuple[AddressAnswer, ...]
    ok: bool

    @classmethod
    def judge(cls, answers: Sequence[AddressAnswer], *, strict: bool) -> Round:
        """Apply the success rule to ``answers``.

        A round succeeds iff at least one address is OK (an empty or all-unreachable set is
        never success: https://github.com/ansible-collections/community.dns/issues/65), no
        address is PENDING, CNAME or SERVFAIL, and, when ``strict``, none is LAME or
        UNREACHABLE either: a resolver skips lame and unreachable servers (RFC 1034 §5.3.3),
        so by default they warn instead of blocking.
        """
        states = {answer.state for answer in answers}
        blocking = BLOCKING_STATES | WARNING_STATES if strict else BLOCKING_STATES
        ok = AnswerState.OK in states and not states & blocking
        return cls(answers=tuple(answers), ok=ok)

    def counts(self) -> dict[str, int]:
        """Number of addresses per state, e.g. ``{"OK": 3, "PENDING": 1}``."""
        return dict(Counter(str(answer.state) for answer in self.answers))

    def lagging(self) -> tuple[AddressAnswer, ...]:
        """The answers that are not OK, in target order."""
        return tuple(a for a in self.answers if a.state is not AnswerState.OK)

    def table(self) -> str:
        """Fixed-width text table: host, address:port, state, SOA serial vs max, RTT, values."""
        return render_table(self.answers)


@dataclass(frozen=True, slots=True)
class PreState:
    """What the authoritative servers serve at the name before the write (RD=0 answers only).

    Attributes:
        values: union of the TXT values served (joined character-strings).
        old_ttl: largest TTL of a TXT RRset served, seconds; None when there is none.
        neg_ttl: largest min(SOA TTL, SOA MINIMUM) seen, seconds (RFC 2308).
        cname: CNAME target at the name, when a server serves one.
        serial: highest zone SOA serial seen.
    """

    values: frozenset[str]
    old_ttl: int | None
    neg_ttl: int | None
    cname: str | None
    serial: int | None


def soa_missing(txt: Sequence[AddressAnswer]) -> list[NameserverAddress]:
    """Targets whose authoritative TXT answer carried no zone SOA, in answer order.

    A negative answer from a server holding the zone carries the SOA in its authority section
    (RFC 2308 §3), so only these targets (positive answers, servers that omit it) need an SOA
    query for the pre-state's serial and ``neg_ttl``. Addresses that did not answer TXT
    authoritatively (LAME, SERVFAIL, UNREACHABLE) are not asked again: a server that does not
    hold the zone, or cannot be reached, gives no authoritative SOA either, and
    :func:`fold_pre_state` counts only authoritative answers.
    """
    return [a.target for a in txt if a.state in AUTHORITATIVE_STATES and a.serial is None]


def fold_pre_state(
    name: str, txt: Sequence[AddressAnswer], soa: Sequence[AddressAnswer]
) -> PreState:
    """Combine per-address TXT and SOA answers for ``name`` into one :class:`PreState`.

    Raises:
        StepError: retryable; no address answered the TXT query authoritatively.
    """
    txt_auth = [a for a in txt if a.state in AUTHORITATIVE_STATES]
    if not txt_auth:
        table = Round.judge(list(txt), strict=False).table()
        raise StepError(f"{name}: no authoritative answer from any of {len(txt)} addresses, "
                        f"so nothing was written:\n{table}", retryable=True)
    every = txt_auth + [a for a in soa if a.state in AUTHORITATIVE_STATES]
    ttls = [a.ttl for a in txt_auth if a.ttl is not None]
    neg_ttls = [a.neg_ttl for a in every if a.neg_ttl is not None]
    serials = [a.serial for a in every if a.serial is not None]
    return PreState(
        values=frozenset().union(*(a.values for a in txt_auth)),
        old_ttl=max(ttls, default=None),
        neg_ttl=max(neg_ttls, default=None),
        cname=next((a.cname for a in txt_auth if a.cname), None),
        serial=max(serials, default=None),
    )


# -- the round as a table (for errors and the CLI) ----------------------------------------------

#: Columns of :func:`render_table`. Example::
#:
#:     HOST             ADDRESS        STATE    SERIAL            RTT    VALUES   DETAIL
#:     ns1.example.net  127.0.0.11:53  OK       2024010102 (max)  1.2ms  tok-abc  nsid=a1
#:     ns2.example.net  127.0.0.12:53  PENDING  2024010101 (-1)   0.9ms  -        NXDOMAIN
TABLE_HEADER = ("HOST", "ADDRESS", "STATE", "SERIAL", "RTT", "VALUES", "DETAIL")
#: Longest VALUES cell; longer ones end in "...".
MAX_VALUES_CHARS = 60


def render_table(answers: Sequence[AddressAnswer]) -> str:
    """Return one line per answer under a header, columns padded to the widest cell.

    The SERIAL column shows each SOA serial against the highest serial of the round:
    ``(max)`` for the newest, ``(-N)`` for one N increments behind (RFC 1982 arithmetic
    is not needed for a diagnostic; serials are compared as integers).
    """
    top = max((a.serial for a in answers if a.serial is not None), default=None)
    rows = [TABLE_HEADER, *(_row(answer, top) for answer in answers)]
    widths = [max(len(row[i]) for row in rows) for i in range(len(TABLE_HEADER))]
    lines = ["  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True))
             for row in rows]
    return "\n".join(line.rstrip() for line in lines)


def _row(answer: AddressAnswer, top: int | None) -> tuple[str, ...]:
    detail = answer.detail
    if answer.nsid:
        detail = f"{detail}; nsid={answer.nsid}" if detail else f"nsid={answer.nsid}"
    return (
        answer.target.host,
        answer.target.endpoint,
        str(answer.state),
        _serial(answer.serial, top),
        "-" if answer.rtt_s is None else f"{answer.rtt_s * 1000:.1f}ms",
        _values(answer.values),
        detail or "-",
    )


def _serial(serial: int | None, top: int | None) -> str:
    if serial is None or top is None:
        return "-"
    return f"{serial} (max)" if serial == top else f"{serial} ({serial - top})"


def _values(values: frozenset[str]) -> str:
    if not values:
        return "-"
    text = ", ".join(sorted(values))
    return text if len(text) <= MAX_VALUES_CHARS else text[: MAX_VALUES_CHARS - 3] + "..."

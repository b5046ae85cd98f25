"""The caching recursive resolver the sandbox's OSS verifier asks, and the verifier itself.

:class:`CachingResolver` resolves names in the sandbox zones by asking one authoritative server
per cache miss (round robin over the fleet, RD=0), and caches like a real resolver:

* positive answers for the smallest TTL of their RRsets;
* NXDOMAIN for the *name* (every type; RFC 2308 §5) and NODATA for the (name, type), each for
  min(SOA TTL, SOA MINIMUM, ``max_negative_ttl``) taken from the SOA in the authority section;
  negative answers without an SOA are not cached (RFC 2308 §5);
* SERVFAIL, REFUSED and timeouts are not cached; the next server is tried, then SERVFAIL.

Answers carry RA and the remaining TTLs. Names outside the sandbox (no hosted zone, not a
nameserver host name) are REFUSED: the resolver has no route to the Internet and says so at once
rather than timing out. This is what makes a PutCname called too early cost the negative TTL.

With ``forward_all`` (the sandbox config's ``resolver.upstreams``: :class:`ExternalServer`
upstreams, e.g. a real BIND primary and its secondaries) every name is resolved through the
upstreams, whatever zones the sandbox hosts.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

import dns.asyncquery
import dns.exception
import dns.flags
import dns.message
import dns.name
import dns.rcode
import dns.rdataclass
import dns.rdatatype
import dns.rdtypes.ANY.SOA
import dns.rrset

from cname_flow.sandbox.nameservers.transport import (
    DnsEndpoint,
    ListeningServer,
    Reply,
    decode_query,
)
from cname_flow.sandbox.state import SandboxState

logger = logging.getLogger(__name__)

OUR_PAYLOAD = 1232
#: Per-upstream query timeout (UDP, then TCP on truncation), seconds.
UPSTREAM_TIMEOUT = 2.0
#: Longest CNAME chain followed across zones.
MAX_CNAME_HOPS = 8
#: Cache entries kept before expired ones are swept (then the oldest are evicted).
MAX_CACHE_ENTRIES = 100_000
#: ``queries_seen`` keeps at most this many of the latest queries.
MAX_QUERIES_SEEN = 100_000
#: Cache key type standing for "every type" (a cached NXDOMAIN covers the whole name).
_ANY_TYPE = -1


class Upstream(Protocol):
    """An authoritative server the resolver may ask (an ``AuthoritativeServer``)."""

    @property
    def name(self) -> str: ...  # pragma: no cover - protocol

    @property
    def address(self) -> str: ...  # pragma: no cover - protocol

    @property
    def port(self) -> int: ...  # pragma: no cover - protocol


@dataclass(frozen=True, slots=True)
class ExternalServer:
    """An authoritative server outside the sandbox the resolver may ask (an :class:`Upstream`).

    Attributes:
        address: its IP literal.
        port: its DNS port.
    """

    address: str
    port: int

    @property
    def name(self) -> str:
        """``"ip:port"`` (``"[ipv6]:port"``), for logs."""
        ip = f"[{self.address}]" if ":" in self.address else self.address
        return f"{ip}:{self.port}"


@dataclass(frozen=True, slots=True)
class _Entry:
    """One cached upstream answer; ``expires_at``/``stored_at`` in the state's clock."""

    rcode: dns.rcode.Rcode
    answer: tuple[dns.rrset.RRset, ...]
    authority: tuple[dns.rrset.RRset, ...]
    negative: bool  # NXDOMAIN or NODATA, possibly at the end of a CNAME chain
    stored_at: float
    expires_at: float


class CachingResolver(ListeningServer):
    """A recursive resolver (UDP and TCP) for the sandbox zones with RFC 2308 caching.

    Args:
        state: the sandbox state (which names are sandbox names; the clock).
        upstreams: the authoritative servers, asked round robin (their ports are read at query
            time, so servers may be started after the resolver is built).
        address: loopback IP literal to bind.
        port: port to bind, 0 for a free one.
        max_negative_ttl: cap on negative caching, seconds.
        timeout: per-upstream timeout, seconds.
        forward_all: resolve every name through the upstreams instead of refusing names the
            sandbox does not host (for :class:`ExternalServer` upstreams).

    Raises:
        ValueError: ``address`` is not loopback.

    Attributes:
        queries_seen: ``(state clock time, qname without trailing dot, qtype text)`` of every
            client query, oldest first (for tests).
        upstream_queries: queries sent to authoritative servers (cache misses).
    """

    def __init__(
        self,
        state: SandboxState,
        upstreams: Sequence[Upstream],
        address: str = "127.0.0.1",
        port: int = 0,
        *,
        max_negative_ttl: int = 3600,
        timeout: float = UPSTREAM_TIMEOUT,
        forward_all: bool = False,
    ) -> None:
        self.state = state
        self.forward_all = forward_all
        self.upstreams = list(upstreams)
        self.max_negative_ttl = max_negative_ttl
        self.timeout = timeout
        self.queries_seen: list[tuple[float, str, str]] = []
        self.upstream_queries = 0
        self._hosts: set[dns.name.Name] = (
            set() if forward_all else {dns.name.from_text(u.name) for u in self.upstreams})
        self._cache: dict[tuple[dns.name.Name, int], _Entry] = {}
        self._inflight: dict[tuple[dns.name.Name, int], asyncio.Future[_Entry | None]] = {}
        self._next = itertools.cycle(range(max(1, len(self.upstreams))))
        self._endpoint = DnsEndpoint(address, port, self._handle)

    def _on_started(self) -> None:
        logger.info("dns.resolver.started addr=%s:%d", self.address, self.port)

    def flush(self) -> None:
        """Forget every cached answer (like ``unbound-control flush_zone .``)."""
        self._cache.clear()

    # -- serving clients ---------------------------------------------------------------------

    def _handle(self, wire: bytes, tcp: bool) -> Reply:
        query, response = decode_query(wire, our_payload=OUR_PAYLOAD, recursion_available=True)
        if query is None or response is None:
            return response
        question = query.question[0]
        self._record_seen(question.name, question.rdtype)
        if question.rdclass != dns.rdataclass.IN or not self._is_sandbox_name(question.name):
            response.set_rcode(dns.rcode.REFUSED)
            return response
        return self._answer(response, question.name, question.rdtype)

    def _record_seen(self, qname: dns.name.Name, qtype: dns.rdatatype.RdataType) -> None:
        if len(self.queries_seen) >= MAX_QUERIES_SEEN:
            del self.queries_seen[: MAX_QUERIES_SEEN // 2]
        self.queries_seen.append((self.state.clock(), qname.to_text(omit_final_dot=True).lower(),
                                  dns.rdatatype.to_text(qtype)))

    def _is_sandbox_name(self, name: dns.name.Name) -> bool:
        if self.forward_all:
            return True
        return name in self._hosts or self.state.zone_for(name.to_text(True)) is not None

    async def _answer(self, response: dns.message.Message, qname: dns.name.Name,
                      qtype: dns.rdatatype.RdataType) -> dns.message.Message:
        name = qname
        for _ in range(MAX_CNAME_HOPS):
            entry = await self._lookup(name, qtype)
            if entry is None:
                response.answer.clear()
                response.set_rcode(dns.rcode.SERVFAIL)
                return response
            now = self.state.clock()
            response.answer.extend(_aged(entry.answer, entry, now))
            response.set_rcode(entry.rcode)
            if entry.negative:
                response.authority.extend(_aged(entry.authority, entry, now))
                return response
            target = _dangling_cname(entry.answer, name, qtype)
            if target is None or not self._is_sandbox_name(target):
                return response
            name = target
        return response

    # -- the cache ---------------------------------------------------------------------------

    async def _lookup(self, name: dns.name.Name, qtype: dns.rdatatype.RdataType) -> _Entry | None:
        """The cached or freshly fetched answer for (name, type); None when every server failed."""
        now = self.state.clock()
        for key in ((name, _ANY_TYPE), (name, qtype)):
            entry = self._cache.get(key)
            if entry is not None and now < entry.expires_at:
                return entry
        key = (name, qtype)
        pending = self._inflight.get(key)
        if pending is not None:
            return await asyncio.shield(pending)
        future: asyncio.Future[_Entry | None] = asyncio.get_running_loop().create_future()
        self._inflight[key] = future
        try:
            entry = await self._fetch(name, qtype)
            future.set_result(entry)
        except BaseException:
            future.cancel()  # only on shutdown or a bug: waiters stop too
            raise
        finally:
            del self._inflight[key]
        if entry is not None:
            self._store(name, qtype, entry)
        return entry

    def _store(self, name: dns.name.Name, qtype: dns.rdatatype.RdataType, entry: _Entry) -> None:
        if entry.expires_at <= entry.stored_at:
            return
        if len(self._cache) >= MAX_CACHE_ENTRIES:
            self._sweep()
        nxdomain = entry.rcode == dns.rcode.NXDOMAIN and not entry.answer
        self._cache[(name, _ANY_TYPE if nxdomain else qtype)] = entry

    def _sweep(self) -> None:
        now = self.state.clock()
        self._cache = {k: e for k, e in self._cache.items() if now < e.expires_at}
        for key in list(self._cache)[: max(0, len(self._cache) - MAX_CACHE_ENTRIES // 2)]:
            del self._cache[key]

    async def _fetch(self, name: dns.name.Name, qtype: dns.rdatatype.RdataType) -> _Entry | None:
        """Ask the upstreams in round-robin order until one gives a usable answer."""
        start = next(self._next)
        count = len(self.upstreams)
        for i in range(count):
            upstream = self.upstreams[(start + i) % count]
            response = await self._ask(upstream, name, qtype)
            if response is not None:
                return self._entry(response)
        return None

    async def _ask(self, upstream: Upstream, name: dns.name.Name,
                   qtype: dns.rdatatype.RdataType) -> dns.message.Message | None:
        query = dns.message.make_query(name, qtype, use_edns=0, payload=OUR_PAYLOAD, flags=0)
        self.upstream_queries += 1
        try:
            response, _ = await dns.asyncquery.udp_with_fallback(
                query, upstream.address, timeout=self.timeout, port=upstream.port
            )
        except (dns.exception.DNSException, OSError) as exc:
            logger.debug("dns.resolver.upstream_failed server=%s error=%s", upstream.name, exc)
            return None
        if response.rcode() not in (dns.rcode.NOERROR, dns.rcode.NXDOMAIN):
            return None
        return response

    def _entry(self, response: dns.message.Message) -> _Entry:
        now = self.state.clock()
        answer, authority = tuple(response.answer), tuple(response.authority)
        rcode = response.rcode()
        has_soa = any(rrset.rdtype == dns.rdatatype.SOA for rrset in authority)
        negative = rcode == dns.rcode.NXDOMAIN or not answer or has_soa
        ttls = [rrset.ttl for rrset in answer]  # a CNAME chain counts, positive or negative
        if negative:
            ttls.append(self._negative_ttl(authority))
        return _Entry(rcode, answer, authority, negative, now, now + min(ttls))

    def _negative_ttl(self, authority: Sequence[dns.rrset.RRset]) -> int:
        """RFC 2308 §5: min(SOA TTL, SOA MINIMUM), capped; 0 (do not cache) without an SOA."""
        for rrset in authority:
            if rrset.rdtype == dns.rdatatype.SOA and rrset:
                soa = rrset[0]
                assert isinstance(soa, dns.rdtypes.ANY.SOA.SOA)
                return min(rrset.ttl, soa.minimum, self.max_negative_ttl)
        return 0


def _dangling_cname(answer: Sequence[dns.rrset.RRset], name: dns.name.Name,
                    qtype: dns.rdatatype.RdataType) -> dns.name.Name | None:
    """The end of the CNAME chain from ``name`` when the answer has no ``qtype`` data there."""
    if qtype in (dns.rdatatype.CNAME, dns.rdatatype.ANY):
        return None
    owners = {rrset.name: rrset for rrset in answer}
    current, seen = name, {name}
    while (rrset := owners.get(current)) is not None and rrset.rdtype == dns.rdatatype.CNAME:
        current = rrset[0].target
        if current in seen:
            return None
        seen.add(current)
    return None if current in owners or current == name else current


def _aged(rrsets: Sequence[dns.rrset.RRset], entry: _Entry,
          now: float) -> list[dns.rrset.RRset]:
    """Copies of cached RRsets with their TTLs decreased by the time spent in the cache."""
    elapsed = max(0, math.floor(now - entry.stored_at))
    out = []
    for rrset in rrsets:
        out.append(dns.rrset.from_rdata_list(rrset.name, max(0, rrset.ttl - elapsed), list(rrset)))
    return out


class ResolverVerifier:
    """What the sandbox OSS API's PutCname uses to read the ``_dnsauth`` proof.

    Args:
        address: the caching resolver's address.
        port: the caching resolver's port.
        timeout: per query (UDP, then TCP on truncation), seconds.
    """

    def __init__(self, address: str, port: int, timeout: float = UPSTREAM_TIMEOUT) -> None:
        self.address = address
        self.port = port
        self.timeout = timeout

    async def txt_values(self, name: str) -> frozenset[str]:
        """The TXT values at ``name`` through the resolver, following CNAMEs it followed.

        Args:
            name: owner name (A-labels or Unicode; trailing dot optional).

        Returns:
            Each TXT record's character-strings joined and decoded as UTF-8 (invalid bytes
            replaced); empty on NXDOMAIN, NODATA, SERVFAIL, REFUSED, timeout or a bad name.
        """
        try:
            query = dns.message.make_query(name, dns.rdatatype.TXT, use_edns=0,
                                           payload=OUR_PAYLOAD)
            response, _ = await dns.asyncquery.udp_with_fallback(
                query, self.address, timeout=self.timeout, port=self.port
            )
        except (dns.exception.DNSException, OSError, ValueError):
            return frozenset()
        if response.rcode() != dns.rcode.NOERROR:
            return frozenset()
        return frozenset(
            b"".join(rdata.strings).decode("utf-8", "replace")
            for rrset in response.answer
            if rrset.rdtype == dns.rdatatype.TXT
            for rdata in rrset
        )

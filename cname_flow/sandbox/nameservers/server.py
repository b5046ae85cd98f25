"""The sandbox's DNS: authoritative nameservers with per-server propagation lag, and the fleet.

Each :class:`AuthoritativeServer` listens on its own loopback ``address:port`` (UDP and TCP) and
answers for every zone of the sandbox state as it was ``lag`` seconds ago (``lag=None``: as it
was when the sandbox started), like a primary and lagging or stuck secondaries. :class:`DnsFleet`
starts the configured servers plus the caching resolver (``dns_resolver.CachingResolver``) that the
OSS API's PutCname asks through a ``dns_resolver.ResolverVerifier``.

All of it runs in the caller's asyncio event loop. See ``docs/sandbox-dns.md``.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Mapping

import dns.edns
import dns.flags
import dns.message
import dns.rcode
import dns.rdataclass

from cname_flow.sandbox.faults import FaultKind, FaultPlan
from cname_flow.sandbox.nameservers.cache import AnswerCache
from cname_flow.sandbox.nameservers.resolver import (
    CachingResolver,
    ExternalServer,
    ResolverVerifier,
)
from cname_flow.sandbox.nameservers.transport import (
    DnsEndpoint,
    ListeningServer,
    Reply,
    decode_query,
    render,
)
from cname_flow.sandbox.nameservers.zone import Validity, ZoneAnswerer
from cname_flow.sandbox.state import SandboxState

__all__ = ["AuthoritativeServer", "CachingResolver", "DnsFleet", "ResolverVerifier"]

logger = logging.getLogger(__name__)

#: EDNS payload the servers advertise (the DNS Flag Day 2020 value), bytes.
OUR_PAYLOAD = 1232
#: A DNS header is 12 bytes (RFC 1035 §4.1.1).
_HEADER_BYTES = 12
#: Fault-plan operation of the authoritative servers, and the catch-all one.
DNS_FAULT_OP, ANY_FAULT_OP = "dns", "*"


def faults_for_dns(faults: FaultPlan | None) -> FaultPlan | None:
    """``faults`` when it has settings for DNS (op ``"dns"`` or ``"*"``), else None.

    Read per query, so a plan edited while the sandbox runs takes effect at once.
    """
    if faults is None:
        return None
    ops = faults.config.ops
    return faults if DNS_FAULT_OP in ops or ANY_FAULT_OP in ops else None


class AuthoritativeServer(ListeningServer):
    """One authoritative nameserver for every zone in ``state.zones``, on UDP and TCP.

    Answers with AA for hosted names (RFC 1034 §4.3.2; no delegations), REFUSED without AA for
    names outside every zone, from the state as of ``state.server_time(lag)``. Over UDP an
    answer larger than the client's payload (512 bytes without EDNS) is sent empty with TC=1.
    Undecodable queries get FORMERR when their header parses and are dropped otherwise. With a
    fault plan, operation ``"dns"`` may add latency, drop the query (DROP), answer SERVFAIL
    (ERROR) or answer empty with TC=1 over UDP / REFUSED over TCP (THROTTLE, like RRL's slip).
    The EDNS NSID option (RFC 5001) is answered with the server's host name.

    Args:
        state: the sandbox state.
        name: host name, e.g. ``"ns1.sandbox.cname-flow.test"``.
        address: loopback IP literal to bind.
        port: port to bind, 0 for a free one.
        lag: seconds behind the state, or None for "never updates".
        faults: optional fault plan.
        host_addresses: nameserver host name → address served as A/AAAA; defaults to this
            server's own.

    Raises:
        ValueError: ``address`` is not loopback.

    Attributes:
        port: the bound port once :meth:`start` returned.
        queries: queries answered so far.
    """

    def __init__(
        self,
        state: SandboxState,
        name: str,
        address: str = "127.0.0.1",
        port: int = 0,
        lag: float | None = 0.0,
        *,
        faults: FaultPlan | None = None,
        host_addresses: Mapping[str, str] | None = None,
    ) -> None:
        self.state = state
        self.name = name.lower().rstrip(".")
        self.lag = lag
        self.faults = faults
        self.queries = 0
        self._cache = AnswerCache(state)
        self._answerer = ZoneAnswerer(state, host_addresses or {self.name: address})
        self._nsid = dns.edns.NSIDOption(self.name.encode())
        self._endpoint = DnsEndpoint(address, port, self._handle)

    @property
    def cache_hits(self) -> int:
        """UDP queries answered from the rendered-answer cache so far."""
        return self._cache.hits

    def _on_started(self) -> None:
        logger.info("dns.server.started name=%s addr=%s:%d lag=%s",
                    self.name, self.address, self.port, self.lag)

    def _handle(self, wire: bytes, tcp: bool) -> Reply:
        faults = faults_for_dns(self.faults)
        if faults is not None:
            return self._respond_with_faults(faults, wire, tcp)
        if tcp or len(wire) < _HEADER_BYTES:
            return self.respond(wire)
        return self._respond_udp_cached(wire)

    def _respond_udp_cached(self, wire: bytes) -> bytes | None:
        """The UDP answer, rendered once and reused while it holds (:mod:`.dns_cache`).

        Queries that differ only in their ID get the same answer bytes with the query's ID: the
        cache key is the query without its ID (so question case, flags and EDNS options count).
        This is what lets one event loop serve thousands of queries per second with dnspython
        building the answers.
        """
        at = self.state.server_time(self.lag)
        hit, answer = self._cache.lookup(wire, at)
        if hit:
            if answer is not None:
                self.queries += 1
            return answer
        response, validity = self._answer(wire, at)
        answer = None if response is None else render(response, False)
        self._cache.store(wire, answer, validity)
        return answer

    async def _respond_with_faults(self, faults: FaultPlan, wire: bytes,
                                   tcp: bool) -> dns.message.Message | None:
        kind = (await faults.apply("dns")).answer  # a query changes nothing: after = before
        response = self.respond(wire)
        if kind is FaultKind.NONE or response is None:
            return response
        if kind is FaultKind.DROP:
            return None
        response.answer.clear()
        response.authority.clear()
        response.additional.clear()
        if kind is FaultKind.ERROR:
            response.set_rcode(dns.rcode.SERVFAIL)
        elif tcp:
            response.set_rcode(dns.rcode.REFUSED)
        else:
            response.flags |= dns.flags.TC
        return response

    def respond(self, wire: bytes, at: float | None = None) -> dns.message.Message | None:
        """The response to one query, or None when nothing should be sent.

        Args:
            wire: the query in wire format.
            at: the point in time to serve; defaults to ``state.server_time(lag)``.
        """
        return self._answer(wire, at)[0]

    def _answer(self, wire: bytes, at: float | None
                ) -> tuple[dns.message.Message | None, Validity | None]:
        """The response and what it depended on (None: on the query bytes alone)."""
        query, response = decode_query(wire, our_payload=OUR_PAYLOAD)
        if query is None or response is None:
            return response, None
        self.queries += 1
        question = query.question[0]
        if any(opt.otype == dns.edns.OptionType.NSID for opt in query.options):
            response.use_edns(0, 0, OUR_PAYLOAD, query.payload, options=[self._nsid])
        if question.rdclass != dns.rdataclass.IN:
            response.set_rcode(dns.rcode.REFUSED)
            return response, None
        if at is None:
            at = self.state.server_time(self.lag)
        return response, self._answerer.answer(response, question.name, question.rdtype, at)


class DnsFleet:
    """The sandbox nameservers, the caching resolver in front of them (or in front of the
    external servers of ``resolver.upstreams``, when set), and the OSS verifier.

    Attributes:
        servers: one per ``state.config.nameservers`` entry, in config order.
        resolver: the caching resolver (``state.config.resolver``).
        verifier: asks ``resolver``; what PutCname uses.
    """

    def __init__(self, servers: list[AuthoritativeServer], resolver: CachingResolver) -> None:
        self.servers = servers
        self.resolver = resolver
        self.verifier = ResolverVerifier(resolver.address, resolver.port)

    @classmethod
    async def start(cls, state: SandboxState, faults: FaultPlan | None = None) -> DnsFleet:
        """Start every configured nameserver, then the resolver that knows them.

        Args:
            state: the sandbox state; ``state.config.nameservers`` and ``.resolver`` are used.
            faults: optional fault plan applied by the authoritative servers (op ``"dns"``).

        Raises:
            OSError: a configured port is taken (everything started so far is stopped).
            ValueError: a configured address is not loopback.
        """
        cfg = state.config
        hosts = {ns.name.lower().rstrip("."): ns.address for ns in cfg.nameservers}
        servers = [
            AuthoritativeServer(state, ns.name, ns.address, ns.port, ns.lag, faults=faults,
                                host_addresses=hosts)
            for ns in cfg.nameservers
        ]
        started: list[AuthoritativeServer] = []
        try:
            for server in servers:
                await server.start()
                started.append(server)
            external = [ExternalServer(ip, port)
                        for ip, port in cfg.resolver.upstream_addresses()]
            resolver = CachingResolver(
                state, external or servers, cfg.resolver.address, cfg.resolver.port,
                max_negative_ttl=cfg.resolver.max_negative_ttl, forward_all=bool(external),
            )
            await resolver.start()
        except BaseException:
            for server in started:
                await server.stop()
            raise
        return cls(servers, resolver)

    def addresses(self) -> dict[str, list[str]]:
        """Nameserver host name → ``["127.0.0.1:PORT", …]`` (one per server with that name)."""
        out: dict[str, list[str]] = {}
        for server in self.servers:
            out.setdefault(server.name, []).append(f"{server.address}:{server.port}")
        return out

    async def stop(self) -> None:
        """Stop the resolver, then every nameserver."""
        stops: list[Awaitable[None]] = [self.resolver.stop(), *(s.stop() for s in self.servers)]
        for stop in stops:
            await stop

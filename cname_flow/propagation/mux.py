"""An asynchronous DNS transport that keeps one UDP socket per nameserver address.

``dns.asyncquery.udp`` opens, registers and closes a socket per query; a batch job polls two
addresses ~5 times per binding, so at N = 1,000 that is ~10,000 sockets, each a few syscalls
and selector changes on the event loop. :class:`SharedUdpTransport` opens one *connected*
UDP socket per address on first use and keeps it for the job. Concurrent queries share it:

* each query in flight on a socket has a message id unused on that socket (the caller's random
  id, or a copy of the query under another when a query in flight there has it), and a reply is
  handed to the query whose id it carries, and only if ``Message.is_response`` holds (same
  id, QR set, same question; RFC 1035 §7.3, RFC 5452 §4.3); any other datagram is dropped.
  dnspython cannot do this itself: ``dns.asyncquery.udp(sock=...)`` reads the socket's *next*
  datagram, so two queries sharing a socket there would steal each other's replies;
* the connected socket only accepts datagrams from the address it was connected to, and an
  ICMP error (``error_received``) fails every query in flight to that address (an ICMP error
  is about the peer, not one query);
* a round's fan-out sends one message, with one id, to every address; it is rendered once
  (``to_wire``) for all of them;
* the wire format is dnspython's (``to_wire`` / ``dns.message.from_wire``), and the rest of
  :func:`~cname_flow.propagation.wire.async_udp_then_tcp`'s behaviour is kept: TCP when the
  reply is truncated (TC=1), one TCP try after a UDP timeout, OSError raised at once.

A fixed source port per address makes an off-path forgery easier than with a fresh port per
query (16 bits of id entropy instead of ~32): a forged positive answer could only make the
engine call PutCname early, which OSS then refuses (it checks the TXT record itself), so the
binding retries; it cannot make a wrong binding. Sending one id to the addresses of a round
gives such a forger nothing more: each address's answer still needs that id guessed.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import cast

import dns.asyncquery
import dns.exception
import dns.flags
import dns.message

from cname_flow.propagation.model import NameserverAddress, PropagationPolicy
from cname_flow.propagation.wire import query_id

_Key = tuple[str, int]


class _Endpoint(asyncio.DatagramProtocol):
    """One connected UDP socket and the queries in flight on it, by message id."""

    def __init__(self) -> None:
        self.transport: asyncio.DatagramTransport | None = None
        self.pending: dict[int, tuple[dns.message.Message, asyncio.Future[dns.message.Message]]]
        self.pending = {}
        self.lost = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # asyncio's selector datagram transport does not subclass DatagramTransport
        self.transport = cast(asyncio.DatagramTransport, transport)

    def datagram_received(self, data: bytes, addr: tuple[str | int, ...]) -> None:
        try:
            response = dns.message.from_wire(data)
        except dns.exception.DNSException:
            return  # not a DNS message: dropped, as dnspython's ignore_errors does
        waiting = self.pending.get(response.id)
        if waiting is None:
            return  # late (its query timed out) or unsolicited
        query, future = waiting
        if not future.done() and query.is_response(response):
            future.set_result(response)

    def error_received(self, exc: Exception) -> None:
        self._fail_all(exc)

    def connection_lost(self, exc: Exception | None) -> None:
        self.lost = True
        self._fail_all(exc or ConnectionError("UDP socket closed"))

    def unused_id(self) -> int:
        """A message id no query in flight on this socket uses."""
        while True:
            candidate = query_id()
            if candidate not in self.pending:
                return candidate

    def _fail_all(self, exc: Exception) -> None:
        for _, future in self.pending.values():
            if not future.done():
                future.set_exception(exc)


class SharedUdpTransport:
    """:data:`~cname_flow.propagation.wire.AsyncQueryFn` over one UDP socket per address.

    Call it as ``await transport(query, target)``; call :meth:`aclose` on the same event loop
    when done. Sockets belong to the loop that opened them: used from another loop, the
    transport opens new ones.

    Args:
        policy: ``query_timeout_s`` (UDP, and TCP after TC=1) and ``tcp_timeout_s`` (the TCP
            try after a UDP timeout), seconds.
    """

    def __init__(self, policy: PropagationPolicy) -> None:
        self.policy = policy
        self._loop: asyncio.AbstractEventLoop | None = None
        self._endpoints: dict[_Key, asyncio.Future[_Endpoint]] = {}
        self._rendered: tuple[dns.message.Message, int, bytes] | None = None

    async def __call__(
        self, q: dns.message.Message, target: NameserverAddress
    ) -> dns.message.Message:
        """Send ``q`` to ``target`` under its own id, or a copy of it under another id when a
        query in flight on that socket has this one.

        Raises:
            dns.exception.Timeout: neither UDP nor TCP answered in time.
            OSError: the address is unreachable (socket or ICMP error), raised at once.
            dns.exception.DNSException: the TCP fallback got a malformed or mismatched answer.
        """
        endpoint = await self._endpoint(target)
        try:
            response = await self._udp(endpoint, q)
        except dns.exception.Timeout:
            return await dns.asyncquery.tcp(q, target.address, timeout=self.policy.tcp_timeout_s,
                                            port=target.port)
        if response.flags & dns.flags.TC:
            return await dns.asyncquery.tcp(q, target.address,
                                            timeout=self.policy.query_timeout_s, port=target.port)
        return response

    async def aclose(self) -> None:
        """Close every socket; queries in flight fail with ConnectionError."""
        endpoints, self._endpoints = self._endpoints, {}
        for opened in endpoints.values():
            if opened.done() and not opened.cancelled() and opened.exception() is None:
                transport = opened.result().transport
                if transport is not None:
                    transport.close()
        await asyncio.sleep(0)  # let connection_lost run

    async def _udp(self, endpoint: _Endpoint, q: dns.message.Message) -> dns.message.Message:
        assert endpoint.transport is not None
        if q.id in endpoint.pending:  # a query in flight here has this id: send a copy
            q = _renumbered(q, endpoint.unused_id())
        future: asyncio.Future[dns.message.Message] = asyncio.get_running_loop().create_future()
        endpoint.pending[q.id] = (q, future)
        try:
            endpoint.transport.sendto(self._wire(q))
            async with asyncio.timeout(self.policy.query_timeout_s):
                return await future
        except TimeoutError:
            raise dns.exception.Timeout from None
        finally:
            del endpoint.pending[q.id]

    def _wire(self, q: dns.message.Message) -> bytes:
        """``q.to_wire()``, rendered once for a round's fan-out: the next address of the round
        gets the same message with the same id, and so the same bytes."""
        last = self._rendered
        if last is not None and last[0] is q and last[1] == q.id:
            return last[2]
        wire = q.to_wire()
        self._rendered = (q, q.id, wire)
        return wire

    async def _endpoint(self, target: NameserverAddress) -> _Endpoint:
        """The socket for ``target``, opened once (concurrent first callers share the open)."""
        loop = asyncio.get_running_loop()
        if loop is not self._loop:
            self._abandon()
            self._loop = loop
        key = (target.address, target.port)
        opened = self._endpoints.get(key)
        if opened is None or _unusable(opened):
            opened = loop.create_task(self._open(key))
            self._endpoints[key] = opened
        try:
            return await asyncio.shield(opened)
        except OSError:
            if self._endpoints.get(key) is opened:
                del self._endpoints[key]  # the next query tries to open it again
            raise

    async def _open(self, key: _Key) -> _Endpoint:
        _, endpoint = await asyncio.get_running_loop().create_datagram_endpoint(
            _Endpoint, remote_addr=key)
        return endpoint

    def _abandon(self) -> None:
        """Forget sockets of a previous loop (closed with it, or when collected)."""
        for opened in self._endpoints.values():
            if opened.done() and not opened.cancelled() and opened.exception() is None:
                transport = opened.result().transport
                if transport is not None:
                    with contextlib.suppress(RuntimeError):  # that loop is closed
                        transport.close()
        self._endpoints = {}


def _renumbered(q: dns.message.Message, new_id: int) -> dns.message.Message:
    """A copy of ``q`` under message id ``new_id`` (``q`` itself is left as it is: another
    address of the same round may be waiting for the answer to its id)."""
    copy = dns.message.from_wire(q.to_wire())
    copy.id = new_id
    return copy


def _unusable(opened: asyncio.Future[_Endpoint]) -> bool:
    """True for an open that failed or a socket that was closed."""
    if not opened.done():
        return False
    return opened.cancelled() or opened.exception() is not None or opened.result().lost

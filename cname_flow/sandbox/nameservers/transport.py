"""Loopback DNS listeners for the sandbox: one UDP socket and one TCP listener on the same port.

The wire format is dnspython's; this module only moves datagrams and RFC 1035 §4.2.2 / RFC 7766
length-framed TCP messages between sockets and a *handler*. A handler takes the query bytes and
the transport (``tcp=True`` for TCP) and returns the response message, ``None`` (send nothing),
or an awaitable of either when it has to wait (upstream queries, injected latency); over UDP it
may also return the rendered answer bytes. Returning a
message directly keeps the authoritative servers' UDP path free of task creation. The listener
renders it with :func:`render`: over UDP within the client's payload size (truncating with TC
when it does not fit), over TCP with the 2-byte length prefix.

Garbage never stops a listener: handlers turn undecodable input into FORMERR or ``None``, a TCP
connection whose frame is cut short is closed, and a handler exception drops that one query.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import socket
from collections.abc import Awaitable, Callable
from typing import cast

import dns.exception
import dns.flags
import dns.message
import dns.opcode
import dns.rcode

logger = logging.getLogger(__name__)

#: What a handler returns: the response (or its UDP rendering), nothing, or an awaitable response.
Reply = dns.message.Message | bytes | None | Awaitable[dns.message.Message | None]
#: ``handler(query_wire, tcp) -> Reply``.
Handler = Callable[[bytes, bool], Reply]

#: Largest UDP answer when the query has no EDNS (RFC 1035 §4.2.1), bytes.
CLASSIC_UDP_PAYLOAD = 512
#: Largest TCP answer (the 2-byte length prefix), bytes.
TCP_MAX = 65535
#: A TCP connection with no complete query for this long is closed (RFC 7766 §6.2.3), seconds.
TCP_IDLE_TIMEOUT = 10.0
#: Attempts to find a port number free for both UDP and TCP when the configured port is 0.
_BIND_ATTEMPTS = 20
#: UDP receive buffer asked for, bytes (the kernel caps it at ``net.core.rmem_max``): a burst
#: of queries that miss the answer cache queues instead of being dropped, as authoritative
#: servers configure it (BIND's and Unbound's ``so-rcvbuf``).
UDP_RECEIVE_BUFFER = 4 * 1024 * 1024


def require_loopback(address: str) -> None:
    """Refuse any address that is not loopback: the sandbox never listens elsewhere.

    Raises:
        ValueError: ``address`` is not an IP literal or not a loopback address.
    """
    if not ipaddress.ip_address(address).is_loopback:
        raise ValueError(f"sandbox DNS listens on loopback only, not {address}")


def render(response: dns.message.Message, tcp: bool) -> bytes:
    """Serialize ``response`` for its transport.

    Over TCP: up to 65,535 bytes, length-prefixed. Over UDP: up to the payload the query
    advertised (``response.request_payload``, which :func:`dns.message.make_response` copies
    from the query's EDNS), or 512 bytes without EDNS. When the full answer does not fit, every
    record section is emptied and TC is set (RFC 2181 §9), so the client retries over TCP rather
    than using a partial RRset.
    """
    if tcp:
        limit = TCP_MAX
    elif response.edns >= 0 and response.request_payload:
        limit = max(CLASSIC_UDP_PAYLOAD, response.request_payload)
    else:
        limit = CLASSIC_UDP_PAYLOAD
    try:
        return response.to_wire(max_size=limit, prepend_length=tcp)
    except dns.exception.TooBig:
        response.answer.clear()
        response.authority.clear()
        response.additional.clear()
        response.flags |= dns.flags.TC
        return response.to_wire(max_size=limit, prepend_length=tcp)


class _UdpProtocol(asyncio.DatagramProtocol):
    def __init__(self, endpoint: DnsEndpoint) -> None:
        self._endpoint = endpoint
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.DatagramTransport, transport)

    def datagram_received(self, data: bytes, addr: tuple[str | int, ...]) -> None:
        try:
            reply = self._endpoint.handler(data, False)
            if isinstance(reply, bytes):
                self._send_wire(reply, addr)
            elif isinstance(reply, dns.message.Message):
                self._send(reply, addr)
            elif reply is not None:
                self._endpoint.spawn(self._send_later(reply, addr))
        except Exception:  # one bad query must not take the listener down
            logger.exception("dns.udp.query_failed")

    async def _send_later(
        self, reply: Awaitable[dns.message.Message | None], addr: tuple[str | int, ...]
    ) -> None:
        response = await reply
        if response is not None:
            self._send(response, addr)

    def _send(self, response: dns.message.Message, addr: tuple[str | int, ...]) -> None:
        self._send_wire(render(response, tcp=False), addr)

    def _send_wire(self, wire: bytes, addr: tuple[str | int, ...]) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.sendto(wire, addr)

    def error_received(self, exc: Exception) -> None:
        logger.debug("dns.udp.error: %s", exc)


class DnsEndpoint:
    """A UDP socket and a TCP listener on one loopback ``address:port``, feeding ``handler``.

    Args:
        address: loopback IP literal to bind.
        port: port to bind; 0 picks one free for both UDP and TCP.
        handler: see the module docstring.

    Attributes:
        port: the bound port once :meth:`start` returned.
    """

    def __init__(self, address: str, port: int, handler: Handler) -> None:
        require_loopback(address)
        self.address = address
        self.port = port
        self.handler = handler
        self._udp: asyncio.DatagramTransport | None = None
        self._tcp: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    async def start(self) -> None:
        """Bind both sockets.

        Raises:
            OSError: the configured port is taken, or no common free port was found.
        """
        attempts = 1 if self.port else _BIND_ATTEMPTS
        for attempt in range(attempts):
            udp_port = await self._bind_udp(self.port)
            try:
                self._tcp = await asyncio.start_server(self._serve_tcp, self.address, udp_port)
            except OSError:
                self._close_udp()
                if attempt == attempts - 1:
                    raise
                continue
            self.port = udp_port
            return

    async def _bind_udp(self, port: int) -> int:
        loop = asyncio.get_running_loop()
        transport, _ = await loop.create_datagram_endpoint(
            lambda: _UdpProtocol(self), local_addr=(self.address, port)
        )
        self._udp = transport
        sock = transport.get_extra_info("socket")
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, UDP_RECEIVE_BUFFER)
        return int(transport.get_extra_info("sockname")[1])

    def _close_udp(self) -> None:
        if self._udp is not None:
            self._udp.close()
            self._udp = None

    async def stop(self) -> None:
        """Close both sockets and cancel queries still in progress."""
        self._close_udp()
        if self._tcp is not None:
            self._tcp.close()
            self._tcp = None
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)

    def spawn(self, coro: Awaitable[None]) -> None:
        """Run ``coro`` as a task owned by this endpoint (cancelled by :meth:`stop`)."""
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._done)

    def _done(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            logger.error("dns.query_failed", exc_info=task.exception())

    async def _serve_tcp(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        if task is not None:
            self._tasks.add(task)  # so stop() cancels open connections
        try:
            while True:
                async with asyncio.timeout(TCP_IDLE_TIMEOUT):
                    prefix = await reader.readexactly(2)
                    wire = await reader.readexactly(int.from_bytes(prefix, "big"))
                reply = self.handler(wire, True)
                if isinstance(reply, bytes):
                    raise TypeError("handlers answer TCP queries with messages, not bytes")
                if reply is None or isinstance(reply, dns.message.Message):
                    response = reply
                else:
                    response = await reply
                if response is None:
                    continue
                writer.write(render(response, tcp=True))
                await writer.drain()
        except (asyncio.IncompleteReadError, TimeoutError, ConnectionError):
            pass  # client went away, idled out, or sent a cut frame: close quietly
        except asyncio.CancelledError:
            # stop() cancels open connections; ending normally keeps Python 3.11's stream
            # callback from printing the cancellation as a traceback on shutdown.
            pass
        finally:
            if task is not None:
                self._tasks.discard(task)
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()


def decode_query(wire: bytes, *, our_payload: int, recursion_available: bool = False
                 ) -> tuple[dns.message.Message | None, dns.message.Message | None]:
    """Parse a query and start its response, or answer what cannot be served.

    Returns:
        ``(query, response)`` with the response skeleton (question copied, EDNS mirrored with
        ``our_payload`` bytes advertised) when the query is servable; ``(None, response)`` with
        a finished FORMERR, NOTIMP or BADVERS (RFC 6891 §6.1.3) answer otherwise; ``(None, None)``
        when there is nothing to answer (a response, or bytes with no usable header).
    """
    try:
        query = dns.message.from_wire(wire)
    except Exception:  # any undecodable input: try to say FORMERR, never crash the listener
        return None, _formerr(wire, our_payload)
    if query.flags & dns.flags.QR:
        return None, None
    response = dns.message.make_response(
        query, recursion_available=recursion_available, our_payload=our_payload
    )
    if query.opcode() != dns.opcode.QUERY:
        response.set_rcode(dns.rcode.NOTIMP)
        return None, response
    if query.edns > 0:
        response.set_rcode(dns.rcode.BADVERS)
        return None, response
    if len(query.question) != 1:
        response.set_rcode(dns.rcode.FORMERR)
        return None, response
    return query, response


def _formerr(wire: bytes, our_payload: int) -> dns.message.Message | None:
    """FORMERR for a message whose header and question parse but whose body does not."""
    try:
        query = dns.message.from_wire(wire, question_only=True, ignore_trailing=True)
        if query.flags & dns.flags.QR:
            return None
        response = dns.message.make_response(query, our_payload=our_payload)
    except Exception:
        return None  # not even a header: drop it
    response.set_rcode(dns.rcode.FORMERR)
    return response


class ListeningServer:
    """The socket plumbing every sandbox DNS server shares: one :class:`DnsEndpoint`.

    Subclasses set ``self._endpoint`` in ``__init__`` and may override :meth:`_on_started`.
    """

    _endpoint: DnsEndpoint

    @property
    def address(self) -> str:
        """The loopback address the server listens on."""
        return self._endpoint.address

    @property
    def port(self) -> int:
        """The bound port (the configured one until :meth:`start` binds a free one)."""
        return self._endpoint.port

    async def start(self) -> None:
        """Bind UDP and TCP.

        Raises:
            OSError: the port is taken.
        """
        await self._endpoint.start()
        self._on_started()

    async def stop(self) -> None:
        """Close both sockets; queries in progress are cancelled."""
        await self._endpoint.stop()

    def _on_started(self) -> None:
        """Called once both sockets are bound (e.g. to log the address)."""

"""The production transport over real loopback sockets: TC=1 goes to TCP, a UDP timeout gets
one TCP try, a refused TCP connection is UNREACHABLE at once (sync and asyncio)."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import threading
from collections.abc import Iterator
from dataclasses import dataclass

import dns.exception
import dns.flags
import dns.message
import dns.query
import pytest

from cname_flow.propagation.checker import (
    AnswerState,
    NameserverAddress,
    PropagationChecker,
    PropagationPolicy,
    Round,
)
from tests.unit.propagation.fakes import NAME, TOKEN, quoted, respond

FAST = PropagationPolicy(query_timeout_s=0.3, tcp_timeout_s=1.0)


def _bind_pair(with_tcp: bool) -> tuple[socket.socket, socket.socket, int]:
    """A UDP socket on a free loopback port and a TCP socket (listening on the same port when
    ``with_tcp``). The kernel picks the UDP port; another process may hold its TCP twin, so a
    taken pair is let go and another tried."""
    for _ in range(50):
        udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        udp.bind(("127.0.0.1", 0))
        port: int = udp.getsockname()[1]
        tcp = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        if not with_tcp:
            return udp, tcp, port
        try:
            tcp.bind(("127.0.0.1", port))
        except OSError:
            udp.close()
            tcp.close()
            continue
        tcp.listen()
        return udp, tcp, port
    raise RuntimeError("no loopback port free for both UDP and TCP")


@dataclass
class LoopbackServer:
    """UDP and TCP on one loopback port; UDP may stay silent or answer truncated."""

    udp_mode: str  # "silent" or "truncate"
    tcp: bool
    udp_seen: int = 0
    tcp_seen: int = 0

    @contextlib.contextmanager
    def running(self) -> Iterator[NameserverAddress]:
        udp, tcp, port = _bind_pair(self.tcp)
        stop = threading.Event()
        threads = [threading.Thread(target=self._serve_udp, args=(udp, stop), daemon=True)]
        if self.tcp:
            threads.append(threading.Thread(target=self._serve_tcp, args=(tcp, stop), daemon=True))
        for thread in threads:
            thread.start()
        try:
            yield NameserverAddress("ns1.example.com", "127.0.0.1", port)
        finally:
            stop.set()
            udp.close()
            tcp.close()

    def _serve_udp(self, sock: socket.socket, stop: threading.Event) -> None:
        sock.settimeout(0.05)
        while not stop.is_set():
            try:
                query, _, peer = dns.query.receive_udp(sock)
            except (TimeoutError, OSError, dns.exception.DNSException):
                continue
            self.udp_seen += 1
            if self.udp_mode == "truncate":
                response = respond(query)
                response.flags |= dns.flags.TC
                dns.query.send_udp(sock, response, peer)

    def _serve_tcp(self, sock: socket.socket, stop: threading.Event) -> None:
        sock.settimeout(0.05)
        while not stop.is_set():
            try:
                conn, _ = sock.accept()
            except OSError:
                continue
            with conn:
                conn.settimeout(1.0)
                query, _ = dns.query.receive_tcp(conn)
                self.tcp_seen += 1
                dns.query.send_tcp(conn, respond(query, txt=quoted(TOKEN)))


def observe(target: NameserverAddress, *, use_async: bool) -> Round:
    checker = PropagationChecker(FAST)
    if use_async:
        return asyncio.run(checker.observe_async(NAME, TOKEN, [target]))
    return checker.observe(NAME, TOKEN, [target])


@pytest.mark.parametrize("use_async", [False, True])
def test_transport_when_udp_truncated_should_retry_over_tcp(use_async: bool) -> None:
    server = LoopbackServer(udp_mode="truncate", tcp=True)
    with server.running() as target:
        answer = observe(target, use_async=use_async).answers[0]
    assert answer.state is AnswerState.OK
    assert (server.udp_seen, server.tcp_seen) == (1, 1)
    assert answer.rtt_s is not None and answer.rtt_s < FAST.query_timeout_s


@pytest.mark.parametrize("use_async", [False, True])
def test_transport_when_udp_times_out_should_try_tcp_once(use_async: bool) -> None:
    server = LoopbackServer(udp_mode="silent", tcp=True)
    with server.running() as target:
        answer = observe(target, use_async=use_async).answers[0]
    assert answer.state is AnswerState.OK
    assert server.tcp_seen == 1
    assert answer.rtt_s is not None and answer.rtt_s >= FAST.query_timeout_s


@pytest.mark.parametrize("use_async", [False, True])
def test_transport_when_udp_silent_and_tcp_refused_should_be_unreachable(use_async: bool) -> None:
    server = LoopbackServer(udp_mode="silent", tcp=False)
    with server.running() as target:
        answer = observe(target, use_async=use_async).answers[0]
    assert answer.state is AnswerState.UNREACHABLE
    assert "Refused" in answer.detail

"""SharedUdpTransport against a real loopback UDP server: one socket per address, replies
matched to their queries by id and question whatever their order, forgeries dropped."""

from __future__ import annotations

import asyncio
import secrets
from concurrent.futures import ThreadPoolExecutor
from typing import cast

import dns.exception
import dns.flags
import dns.message
import dns.rdatatype
import dns.rrset
import pytest

from cname_flow.propagation import wire as propagation_wire
from cname_flow.propagation.model import NameserverAddress, PropagationPolicy
from cname_flow.propagation.mux import SharedUdpTransport
from cname_flow.propagation.wire import QueryIds, make_query


class LoopbackServer(asyncio.DatagramProtocol):
    """A UDP server protocol that keeps its transport to answer on."""

    transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # asyncio's selector datagram transport does not subclass DatagramTransport
        self.transport = cast(asyncio.DatagramTransport, transport)


class ReorderingServer(LoopbackServer):
    """Holds ``batch`` queries, sends a forged reply to the first, then answers in reverse."""

    def __init__(self, batch: int) -> None:
        self.batch = batch
        self.held: list[tuple[dns.message.Message, tuple[str, int]]] = []
        self.sources: set[tuple[str, int]] = set()

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        assert self.transport is not None
        self.sources.add(addr)
        self.held.append((dns.message.from_wire(data), addr))
        if len(self.held) < self.batch:
            return
        first, first_addr = self.held[0]
        forged = dns.message.make_query("forged.example.com", dns.rdatatype.TXT)
        forged.id = first.id  # right id, wrong question: must be ignored
        self.transport.sendto(_answer(forged).to_wire(), first_addr)
        self.transport.sendto(b"\x00\x01garbage", first_addr)  # not DNS: ignored too
        for query, source in reversed(self.held):
            self.transport.sendto(_answer(query).to_wire(), source)
        self.held = []


def _answer(query: dns.message.Message) -> dns.message.Message:
    response = dns.message.make_response(query)
    name = query.question[0].name
    response.answer.append(dns.rrset.from_text(name, 60, "IN", "TXT", f'"{name}"'))
    return response


def _value(response: dns.message.Message) -> str:
    return b"".join(response.answer[0][0].strings).decode()


def test_concurrent_queries_share_one_socket_and_each_gets_its_own_answer() -> None:
    async def scenario() -> tuple[list[str], int]:
        loop = asyncio.get_running_loop()
        server = ReorderingServer(batch=5)
        transport, _ = await loop.create_datagram_endpoint(lambda: server,
                                                           local_addr=("127.0.0.1", 0))
        port = transport.get_extra_info("sockname")[1]
        target = NameserverAddress(host="ns1.example.com", address="127.0.0.1", port=port)
        mux = SharedUdpTransport(PropagationPolicy(query_timeout_s=2.0))
        try:
            names = [f"n{i}.example.com" for i in range(5)]
            responses = await asyncio.gather(*(
                mux(make_query(n, dns.rdatatype.TXT, 1232), target) for n in names))
            again = await asyncio.gather(*(  # a second round reuses the same socket
                mux(make_query(n, dns.rdatatype.TXT, 1232), target) for n in names))
        finally:
            await mux.aclose()
            transport.close()
        assert [_value(r) for r in again] == [_value(r) for r in responses]
        return [_value(r) for r in responses], len(server.sources)

    values, sources = asyncio.run(scenario())
    assert values == [f"n{i}.example.com." for i in range(5)]
    assert sources == 1


def test_no_answer_times_out_then_tcp_is_refused() -> None:
    async def scenario() -> None:
        loop = asyncio.get_running_loop()
        silent, _ = await loop.create_datagram_endpoint(asyncio.DatagramProtocol,
                                                        local_addr=("127.0.0.1", 0))
        port = silent.get_extra_info("sockname")[1]
        target = NameserverAddress(host="ns1.example.com", address="127.0.0.1", port=port)
        mux = SharedUdpTransport(PropagationPolicy(query_timeout_s=0.2, tcp_timeout_s=0.2))
        try:
            with pytest.raises((dns.exception.Timeout, OSError)):
                await mux(make_query("a.example.com", dns.rdatatype.TXT, 1232), target)
        finally:
            await mux.aclose()
            silent.close()

    asyncio.run(scenario())


def test_query_ids_should_be_16_bit_and_drawn_in_blocks(monkeypatch: pytest.MonkeyPatch) -> None:
    draws: list[int] = []
    real = secrets.token_bytes

    def counting(n: int) -> bytes:
        draws.append(n)
        return real(n)

    monkeypatch.setattr(secrets, "token_bytes", counting)
    ids = QueryIds(block=64)
    got = [ids() for _ in range(200)]
    assert all(0 <= i <= 0xFFFF for i in got)
    assert draws == [128] * 4                       # one syscall per 64 ids
    assert len(set(got)) > 150                      # random, not a counter or a constant


def test_query_ids_should_hand_each_drawn_id_out_once_across_threads() -> None:
    ids = QueryIds(block=32)
    with ThreadPoolExecutor(8) as pool:
        got = list(pool.map(lambda _: ids(), range(32 * 50)))
    assert len(got) == 32 * 50 and all(0 <= i <= 0xFFFF for i in got)


def test_make_query_should_take_its_id_from_the_pool(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(propagation_wire, "query_id", lambda: 4242)
    query = make_query("_dnsauth.a.example.com", dns.rdatatype.TXT, 1232)
    assert query.id == 4242
    assert query.flags & dns.flags.RD == 0


class RecordingServer(LoopbackServer):
    """Answers every query at once, keeping the datagrams it got."""

    def __init__(self) -> None:
        self.datagrams: list[bytes] = []

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        assert self.transport is not None
        self.datagrams.append(data)
        self.transport.sendto(_answer(dns.message.from_wire(data)).to_wire(), addr)


async def _recording(loop: asyncio.AbstractEventLoop, host: str
                     ) -> tuple[RecordingServer, asyncio.DatagramTransport, NameserverAddress]:
    server = RecordingServer()
    transport, _ = await loop.create_datagram_endpoint(lambda: server,
                                                       local_addr=("127.0.0.1", 0))
    port = transport.get_extra_info("sockname")[1]
    return server, transport, NameserverAddress(host=host, address="127.0.0.1", port=port)


def test_one_message_to_two_addresses_is_rendered_once_and_each_answer_is_its_own(
        monkeypatch: pytest.MonkeyPatch) -> None:
    renders: list[int] = []
    real = dns.message.Message.to_wire

    def counting(self: dns.message.Message, *args: object, **kw: object) -> bytes:
        if not self.flags & dns.flags.QR:  # the servers render their answers too
            renders.append(self.id)
        return real(self, *args, **kw)  # type: ignore[arg-type]

    async def scenario() -> None:
        loop = asyncio.get_running_loop()
        one, t1, a1 = await _recording(loop, "ns1.example.com")
        two, t2, a2 = await _recording(loop, "ns2.example.com")
        mux = SharedUdpTransport(PropagationPolicy(query_timeout_s=2.0))
        q = make_query("shared.example.com", dns.rdatatype.TXT, 1232)
        try:
            monkeypatch.setattr(dns.message.Message, "to_wire", counting)
            answers = await asyncio.gather(mux(q, a1), mux(q, a2))
            monkeypatch.undo()
        finally:
            await mux.aclose()
            t1.close()
            t2.close()
        assert renders == [q.id]                            # rendered once for both
        assert one.datagrams == two.datagrams               # the same bytes, the same id
        assert [_value(a) for a in answers] == ["shared.example.com."] * 2
        assert all(a.id == q.id for a in answers)

    asyncio.run(scenario())


def test_a_message_sent_twice_at_once_on_one_socket_goes_under_two_ids() -> None:
    async def scenario() -> None:
        loop = asyncio.get_running_loop()
        server, transport, target = await _recording(loop, "ns1.example.com")
        alias = NameserverAddress(host="ns1-alias.example.com", address=target.address,
                                  port=target.port)
        mux = SharedUdpTransport(PropagationPolicy(query_timeout_s=2.0))
        q = make_query("twice.example.com", dns.rdatatype.TXT, 1232)
        drawn = q.id
        try:
            answers = await asyncio.gather(mux(q, target), mux(q, alias))
        finally:
            await mux.aclose()
            transport.close()
        ids = [dns.message.from_wire(d).id for d in server.datagrams]
        assert len(set(ids)) == 2 and drawn in ids          # the copy got another id
        assert q.id == drawn                                # the caller's message is untouched
        assert sorted(a.id for a in answers) == sorted(ids)
        assert [_value(a) for a in answers] == ["twice.example.com."] * 2

    asyncio.run(scenario())

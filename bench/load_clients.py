"""Load generators for ``bench/sandbox_load.py``: signed OSS and Alidns requests, DNS queries.

Each generator runs in its own process on its own uvloop event loop and drives one API of a
sandbox started elsewhere, in one of two modes:

* **open loop** (``rate`` set): request *i* is due at ``start + i / rate`` whatever happened to
  the earlier ones, and its latency is measured from that due time, so a server that falls
  behind shows up as latency (no coordinated omission);
* **closed loop** (``rate`` is ``None``): ``concurrency`` requests in flight, each sent as soon
  as the previous one finished; the completion rate is the most the server sustains.

Every HTTP request is signed afresh with the SDK's own signer (OSS: ``SignerV4`` of
alibabacloud-oss-v2, which stamps ``x-oss-date``; Alidns: ``Utils.get_authorization`` of the
Tea OpenAPI core with a fresh ``x-acs-signature-nonce``), so the server pays for verifying real
signatures and never sees a replayed nonce. DNS queries are rendered by dnspython once per name;
each send only rewrites the 2-byte message ID (RFC 1035 §4.1.1).
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import itertools
import json
import random
import struct
import time
from collections import Counter, deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any
from urllib.parse import urlencode

import aiohttp
import dns.message
import dns.rcode
import uvloop
from alibabacloud_oss_v2.signer import SignerV4
from alibabacloud_oss_v2.types import Credentials, HttpRequest, SigningContext
from alibabacloud_tea_openapi.utils import Utils
from yarl import URL

#: SHA-256 of the empty body (ACS3 ``x-acs-content-sha256``).
EMPTY_SHA256 = hashlib.sha256(b"").hexdigest()
#: DNS names the generators ask for: ``_dnsauth.d{k}.example.com``, k < DNS_NAMES; even k exist.
DNS_NAMES = 2000
#: Domains whose CNAME tokens the OSS generator creates, and how many per bucket (OSS's limit).
OSS_DOMAINS, DOMAINS_PER_BUCKET = 1000, 100
#: A request still unanswered this long after the last one was due counts as a timeout, seconds.
DRAIN_S = 3.0
#: How often the open-loop pacer wakes up to send what is due, seconds.
TICK_S = 0.001


@dataclass(frozen=True, slots=True)
class Job:
    """One generator's assignment.

    Attributes:
        api: ``"oss"``, ``"alidns"`` or ``"dns"``.
        rate: requests per second (open loop), or ``None`` for closed loop.
        concurrency: requests in flight at most (HTTP connections; DNS queries in closed loop).
        seconds: how long requests are sent.
        start_at: wall-clock time (``time.time()``) at which sending starts.
        info: the sandbox info file's content (endpoints, AccessKey pair, nameservers).
        tag: distinguishes names this generator creates from other generators' ones.
    """

    api: str
    rate: float | None
    concurrency: int
    seconds: float
    start_at: float
    info: dict[str, Any]
    tag: str


@dataclass(slots=True)
class Outcome:
    """What a generator saw: latencies in seconds of successful requests, errors by kind."""

    api: str
    rate: float | None
    seconds: float
    sent: int = 0
    latencies: list[float] = field(default_factory=list)
    errors: Counter[str] = field(default_factory=Counter)
    last_done: float = 0.0
    client_cpu_s: float = 0.0


# -- request makers ----------------------------------------------------------------------------

Prepared = tuple[str, URL, dict[str, str], bytes | None, str]


class OssRequests:
    """Cycles CreateCnameToken, GetCnameToken (of the token just created) and ListCname.

    The domains are ``d{k}.example.com``, k < :data:`OSS_DOMAINS`, in buckets of
    :data:`DOMAINS_PER_BUCKET` (``bench{k // 100}``), visited in turn: the buckets hold what a
    1,000-domain batch leaves in them, not an ever-growing pile.
    """

    def __init__(self, info: dict[str, Any], tag: str) -> None:
        self._endpoint = info["oss_endpoint"]
        self._creds = Credentials(info["access_key_id"], info["access_key_secret"])
        self._region = info["region"]
        self._seq = itertools.count()
        self.created: deque[int] = deque(maxlen=100)

    def next(self) -> Prepared:
        """The next request: (method, URL, headers, body, operation name)."""
        n = next(self._seq)
        k = (n // 3) % OSS_DOMAINS
        if n % 3 == 0:
            body = (f"<BucketCnameConfiguration><Cname><Domain>d{k}.example.com</Domain></Cname>"
                    "</BucketCnameConfiguration>").encode()
            return self._signed(k, "POST", "cname=&comp=token", body, f"create:{k}")
        if n % 3 == 1 and self.created:
            k = self.created[-1]
            return self._signed(k, "GET", f"comp=token&cname=d{k}.example.com", None, "get")
        return self._signed(k, "GET", "cname=", None, "list")

    def done(self, op: str, status: int, body: bytes) -> bool:
        """Record a response; True when it is the expected success."""
        if status == 200 and op.startswith("create:"):
            self.created.append(int(op.removeprefix("create:")))
        return status == 200

    def _signed(self, k: int, method: str, query: str, body: bytes | None, op: str) -> Prepared:
        bucket = oss_bucket(k)
        headers = {}
        if body is not None:
            md5 = base64.b64encode(hashlib.md5(body).digest()).decode()
            headers = {"Content-Type": "application/xml", "Content-MD5": md5}
        request = HttpRequest(method, f"{self._endpoint}/{bucket}/?{query}", headers=headers)
        SignerV4().sign(SigningContext(product="oss", region=self._region, bucket=bucket,
                                       request=request, credentials=self._creds))
        return method, URL(request.url, encoded=True), dict(request.headers), body, op


def oss_bucket(k: int) -> str:
    """The bucket that domain ``d{k}.example.com`` is bound to in the bench world."""
    return f"bench{k // DOMAINS_PER_BUCKET}"


class AlidnsRequests:
    """Per 10 requests: AddDomainRecord, 8 DescribeSubDomainRecords, DeleteDomainRecord.

    At 600 requests/s that is 60 adds/s, twice what a batch can write (Alidns limits
    AddDomainRecord to 60/s per account, and a batch spreads those over its whole run), and the
    deletes keep the zone's size from phase to phase.
    """

    def __init__(self, info: dict[str, Any], tag: str) -> None:
        self._endpoint = info["alidns_endpoint"]
        self._ak, self._sk = info["access_key_id"], info["access_key_secret"]
        self._seq = itertools.count()
        self._tag = tag
        self._random = random.Random(tag)
        self.added: deque[str] = deque()

    def next(self) -> Prepared:
        """The next request: (method, URL, headers, body, operation name)."""
        n = next(self._seq)
        if n % 10 == 0:
            return self._signed("AddDomainRecord", {
                "DomainName": "example.com", "RR": f"_dnsauth.lg{self._tag}-{n}",
                "Type": "TXT", "Value": f"token-{n}"}, "add")
        if n % 10 == 5 and self.added:
            return self._signed("DeleteDomainRecord", {"RecordId": self.added.popleft()}, "del")
        k = self._random.randrange(DNS_NAMES)
        return self._signed("DescribeSubDomainRecords", {
            "SubDomain": f"_dnsauth.d{k}.example.com", "DomainName": "example.com"}, "describe")

    def done(self, op: str, status: int, body: bytes) -> bool:
        """Record a response; True when it is the expected success."""
        if status == 200 and op == "add":
            self.added.append(json.loads(body)["RecordId"])
        return status == 200

    def _signed(self, action: str, query: dict[str, str], op: str) -> Prepared:
        headers = {
            "host": self._endpoint, "x-acs-version": "2015-01-09", "x-acs-action": action,
            "x-acs-date": Utils.get_timestamp(), "x-acs-signature-nonce": Utils.get_nonce(),
            "accept": "application/json", "x-acs-content-sha256": EMPTY_SHA256,
        }
        req = SimpleNamespace(pathname="/", method="POST", query=query, headers=headers)
        headers["Authorization"] = Utils.get_authorization(
            req, "ACS3-HMAC-SHA256", EMPTY_SHA256, self._ak, self._sk)
        url = URL(f"http://{self._endpoint}/?{urlencode(query)}", encoded=True)
        return "POST", url, headers, None, op


# -- pacing ------------------------------------------------------------------------------------

#: The clock for due times and latencies: ``time.monotonic`` (nanosecond resolution), not the
#: event loop's clock (uvloop's is cached per loop iteration, millisecond resolution).
now = time.monotonic


async def _sleep_until(wall: float) -> None:
    await asyncio.sleep(max(0.0, wall - time.time()))


async def open_loop(rate: float, seconds: float, fire: Callable[[float], object]) -> None:
    """Call ``fire(due)`` for request i at its due time ``start + i / rate`` (``now()``)."""
    start, total, i = now(), int(rate * seconds), 0
    while i < total:
        due = min(total, int((now() - start) * rate) + 1)
        while i < due:
            fire(start + i / rate)
            i += 1
        await asyncio.sleep(TICK_S)


async def closed_loop(concurrency: int, seconds: float,
                      one: Callable[[float], Awaitable[None]]) -> None:
    """Run ``concurrency`` workers that each call ``await one(sent_at)`` back to back."""
    stop = now() + seconds

    async def worker() -> None:
        while now() < stop:
            await one(now())

    await asyncio.gather(*(worker() for _ in range(concurrency)))


# -- HTTP --------------------------------------------------------------------------------------

async def run_http(job: Job, out: Outcome) -> None:
    """Drive the OSS or Alidns API over keep-alive connections (aiohttp)."""
    maker = (OssRequests if job.api == "oss" else AlidnsRequests)(job.info, job.tag)
    loop = asyncio.get_running_loop()
    connector = aiohttp.TCPConnector(limit=job.concurrency, force_close=False)
    async with aiohttp.ClientSession(connector=connector, trust_env=False,
                                     skip_auto_headers=("User-Agent",)) as session:

        async def one(due: float) -> None:
            method, url, headers, body, op = maker.next()
            out.sent += 1
            try:
                async with session.request(method, url, headers=headers, data=body) as resp:
                    content = await resp.read()
                    ok = maker.done(op, resp.status, content)
            except (aiohttp.ClientError, OSError) as exc:
                out.errors[type(exc).__name__] += 1
                return
            done = now()
            if ok:
                out.latencies.append(done - due)
                out.last_done = done
            else:
                out.errors[f"HTTP {resp.status} {op.split(':')[0]}"] += 1

        await _sleep_until(job.start_at)
        begin = now()
        if job.rate is None:
            await closed_loop(job.concurrency, job.seconds, one)
            out.last_done -= begin
            return
        tasks: set[asyncio.Task[None]] = set()
        await open_loop(job.rate, job.seconds,
                        lambda due: tasks.add(loop.create_task(one(due))))
        _, pending = await asyncio.wait(tasks, timeout=DRAIN_S) if tasks else (set(), set())
        for task in pending:
            task.cancel()
        if pending:
            out.errors["timeout"] += len(pending)
        out.last_done -= begin


# -- DNS ---------------------------------------------------------------------------------------

class DnsClient(asyncio.DatagramProtocol):
    """Queries over one connected UDP socket per nameserver; answers matched by message ID."""

    def __init__(self, out: Outcome) -> None:
        self.out = out
        self.pending: dict[int, tuple[float, bool, asyncio.Future[None] | None]] = {}
        self.queries = [dns.message.make_query(f"_dnsauth.d{k}.example.com", "TXT", use_edns=0,
                                               payload=1232).to_wire()[2:]
                        for k in range(DNS_NAMES)]
        self._ids = itertools.cycle(range(65536))
        self._names = itertools.cycle(range(DNS_NAMES))

    def send(self, transport: asyncio.DatagramTransport, due: float,
             waiter: asyncio.Future[None] | None = None) -> int:
        """Send the next query (returns its ID); the answer is checked against the name."""
        qid, k = next(self._ids), next(self._names)
        self.pending[qid] = (due, k % 2 == 0, waiter)
        self.out.sent += 1
        transport.sendto(struct.pack("!H", qid) + self.queries[k])
        return qid

    def datagram_received(self, data: bytes, addr: tuple[str | Any, int]) -> None:
        """Match the answer; NOERROR with an answer for existing names, NXDOMAIN otherwise."""
        qid, flags, _, ancount = struct.unpack_from("!HHHH", data)
        entry = self.pending.pop(qid, None)
        if entry is None:
            self.out.errors["unmatched"] += 1
            return
        due, exists, waiter = entry
        rcode = dns.rcode.from_flags(flags, 0)
        ok = (rcode == dns.rcode.NOERROR and ancount > 0) if exists else rcode == dns.rcode.NXDOMAIN
        done = now()
        if ok:
            self.out.latencies.append(done - due)
            self.out.last_done = done
        else:
            self.out.errors[dns.rcode.to_text(rcode)] += 1
        if waiter is not None and not waiter.done():
            waiter.set_result(None)


async def run_dns(job: Job, out: Outcome) -> None:
    """Drive the authoritative servers: queries alternate between every nameserver address."""
    loop = asyncio.get_running_loop()
    client = DnsClient(out)
    transports = []
    for addresses in job.info["nameservers"].values():
        host, port = addresses[0].rsplit(":", 1)
        transport, _ = await loop.create_datagram_endpoint(
            lambda: client, remote_addr=(host, int(port)))
        transports.append(transport)
    rotation = itertools.cycle(transports)
    await _sleep_until(job.start_at)
    begin = now()
    if job.rate is None:
        async def one(sent_at: float) -> None:
            waiter = loop.create_future()
            qid = client.send(next(rotation), sent_at, waiter)
            try:
                await asyncio.wait_for(waiter, DRAIN_S)
            except TimeoutError:
                client.pending.pop(qid, None)
                out.errors["timeout"] += 1
        await closed_loop(job.concurrency, job.seconds, one)
    else:
        await open_loop(job.rate, job.seconds, lambda due: client.send(next(rotation), due))
        deadline = now() + DRAIN_S
        while client.pending and now() < deadline:
            await asyncio.sleep(0.01)
    if client.pending:
        out.errors["timeout"] += len(client.pending)
    out.last_done -= begin
    for transport in transports:
        transport.close()


def run_job(job: Job) -> Outcome:
    """Process entry point: run one generator to completion and return what it measured."""
    out = Outcome(job.api, job.rate, job.seconds)
    cpu = time.process_time()
    runner = run_dns if job.api == "dns" else run_http
    uvloop.run(runner(job, out))
    out.client_cpu_s = time.process_time() - cpu
    return out

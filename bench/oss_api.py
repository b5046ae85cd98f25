"""Throughput of the sandbox OSS API: V4-signed requests per second over loopback.

The server runs in its own process (uvicorn, one worker, configured by ``uvicorn_config``); the
load generator signs every request afresh with the SDK's own V4 signer and sends it from a few
threads with keep-alive. Prints requests/s for ListCname (read) and CreateCnameToken (write).
The load generator shares the machine's cores, so the figures are a lower bound.

    .venv/bin/python bench/oss_api.py [seconds]
"""

from __future__ import annotations

import base64
import hashlib
import multiprocessing
import socket
import sys
import threading
import time

import requests
import uvicorn
from alibabacloud_oss_v2.signer import SignerV4
from alibabacloud_oss_v2.types import Credentials, HttpRequest, SigningContext

from cname_flow.sandbox.config import OssLimits, SandboxConfig
from cname_flow.sandbox.faults import FaultPlan
from cname_flow.sandbox.oss_api import create_oss_app, uvicorn_config
from cname_flow.sandbox.state import SandboxState

AK, SK = "LTAI5tSandboxExampleKey", "sandbox-secret-do-not-use-in-production"


class NoTxt:
    async def txt_values(self, name: str) -> frozenset[str]:
        return frozenset()


def serve(sock: socket.socket) -> None:
    state = SandboxState(SandboxConfig(oss=OssLimits(max_tokens_per_bucket=10**9)))
    app = create_oss_app(state, FaultPlan(state.config.faults), NoTxt())
    uvicorn.Server(uvicorn_config(app)).run(sockets=[sock])


def signed(port: int, method: str, query: str, body: bytes) -> tuple[str, dict[str, str]]:
    md5 = base64.b64encode(hashlib.md5(body).digest()).decode()
    url = f"http://127.0.0.1:{port}/examplebucket/?{query}"
    request = HttpRequest(method, url, headers={"Content-Type": "application/xml",
                                                "Content-MD5": md5})
    SignerV4().sign(SigningContext(product="oss", region="cn-hangzhou", bucket="examplebucket",
                                   request=request, credentials=Credentials(AK, SK)))
    return request.url, dict(request.headers)


def worker(port: int, stop: float, counts: list[int], index: int, writes: bool) -> None:
    session = requests.Session()
    session.trust_env = False
    n = 0
    while time.monotonic() < stop:
        if writes:
            body = (f"<BucketCnameConfiguration><Cname><Domain>b{index}-{n}.example.com</Domain>"
                    "</Cname></BucketCnameConfiguration>").encode()
            url, h = signed(port, "POST", "cname=&comp=token", body)
            session.post(url, headers=h, data=body).raise_for_status()
        else:
            url, h = signed(port, "GET", "cname=", b"")
            session.get(url, headers=h).raise_for_status()
        n += 1
    counts[index] = n


def measure(port: int, seconds: float, writes: bool, threads: int = 8) -> float:
    counts = [0] * threads
    stop = time.monotonic() + seconds
    pool = [threading.Thread(target=worker, args=(port, stop, counts, i, writes))
            for i in range(threads)]
    for t in pool:
        t.start()
    for t in pool:
        t.join()
    return sum(counts) / seconds


def main() -> None:
    seconds = float(sys.argv[1]) if len(sys.argv) > 1 else 5.0
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    proc = multiprocessing.get_context("fork").Process(target=serve, args=(sock,), daemon=True)
    proc.start()
    time.sleep(1.0)
    try:
        print(f"read  (ListCname):        {measure(port, seconds, False):7.0f} req/s")
        print(f"write (CreateCnameToken): {measure(port, seconds, True):7.0f} req/s")
    finally:
        proc.terminate()


if __name__ == "__main__":
    main()

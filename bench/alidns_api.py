"""Throughput of the sandbox Alidns API: ACS3-signed requests per second over loopback.

The server runs in its own process (uvicorn, one worker); the load generator signs every
request afresh (new nonce, as the SDK does) and sends it from a few threads with keep-alive.
Prints requests/s for a read (DescribeSubDomainRecords) and a write mix (Add + Delete).

    .venv/bin/python bench/alidns_api.py [seconds]
"""

from __future__ import annotations

import multiprocessing
import socket
import sys
import threading
import time
from types import SimpleNamespace
from urllib.parse import urlencode

import requests
import uvicorn
from alibabacloud_tea_openapi.utils import Utils

from cname_flow.sandbox.alidns_api import create_alidns_app
from cname_flow.sandbox.config import AlidnsLimits, SandboxConfig
from cname_flow.sandbox.faults import FaultPlan
from cname_flow.sandbox.state import SandboxState

AK, SK = "LTAI5tSandboxExampleKey", "sandbox-secret-do-not-use-in-production"
EMPTY = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"


def serve(sock: socket.socket) -> None:
    config = SandboxConfig(alidns=AlidnsLimits(enforce_rate_limits=False))
    state = SandboxState(config)
    app = create_alidns_app(state, FaultPlan(config.faults))
    uvicorn.Server(uvicorn.Config(app, log_level="warning", access_log=False)).run(sockets=[sock])


def signed(port: int, action: str, query: dict[str, str]) -> tuple[str, dict[str, str]]:
    headers = {
        "host": f"127.0.0.1:{port}", "x-acs-version": "2015-01-09", "x-acs-action": action,
        "x-acs-date": Utils.get_timestamp(), "x-acs-signature-nonce": Utils.get_nonce(),
        "accept": "application/json", "x-acs-content-sha256": EMPTY,
    }
    req = SimpleNamespace(pathname="/", method="POST", query=query, headers=headers)
    headers["Authorization"] = Utils.get_authorization(req, "ACS3-HMAC-SHA256", EMPTY, AK, SK)
    return f"http://127.0.0.1:{port}/?{urlencode(query)}", headers


def worker(port: int, stop: float, counts: list[int], index: int, writes: bool) -> None:
    session = requests.Session()
    session.trust_env = False
    n = 0
    while time.monotonic() < stop:
        if writes:
            url, h = signed(port, "AddDomainRecord", {
                "DomainName": "example.com", "RR": f"b{index}-{n}", "Type": "TXT", "Value": "v"})
            record_id = session.post(url, headers=h).json()["RecordId"]
            url, h = signed(port, "DeleteDomainRecord", {"RecordId": record_id})
            session.post(url, headers=h).raise_for_status()
            n += 2
        else:
            url, h = signed(port, "DescribeSubDomainRecords", {
                "SubDomain": "_dnsauth.img.example.com", "DomainName": "example.com"})
            session.post(url, headers=h).raise_for_status()
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
        print(f"read  (DescribeSubDomainRecords): {measure(port, seconds, False):7.0f} req/s")
        print(f"write (AddDomainRecord+Delete):   {measure(port, seconds, True):7.0f} req/s")
    finally:
        proc.terminate()


if __name__ == "__main__":
    main()

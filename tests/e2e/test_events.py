"""End to end: events from real ``cname-flow`` processes against the sandbox, delivered to a
real HTTP receiver on a loopback port (``http.server``), each signature checked.

* a bind, a ``reconcile --apply`` binding a certificate that expires in 10 days, drift made
  through the real SDK, a second ``reconcile --apply`` that fixes it, a ``cert status``: the
  receiver gets binding.verified, drift.found, certificate.expiring... in the order the
  stream holds them, every request signed; ``cname-flow events`` prints them;
* a receiver that fails the first attempts: the event is retried and arrives, same event id;
  `cname-flow events --follow` (started before the stream exists) prints it;
* a receiver that refuses: the event waits in the outbox; ``events --resend`` delivers it.

The webhook secret is a sentinel that must appear in no output, stream, outbox or journal.
"""

from __future__ import annotations

import json
import subprocess
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import alibabacloud_oss_v2 as oss
import pytest
import yaml

from cname_flow.events.signing import SignatureInvalid, verify_signature
from tests.certgen import make_cert, write_pem
from tests.e2e.bindkit import SandboxEnv, sandbox_env

pytestmark = [pytest.mark.e2e, pytest.mark.usefixtures("no_proxy")]

SECRET = "SENTINEL-e2e-webhook-secret-5b9e"
BUCKET = "examplebucket"


@dataclass
class Receiver:
    """A webhook receiver: answers ``fail_first`` attempts of each event with ``fail_status``,
    then 204; records every request and whether its signature verified."""

    fail_first: int = 0
    fail_status: int = 503
    requests: list[dict[str, Any]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def accepted(self) -> list[dict[str, Any]]:
        with self.lock:
            return [r for r in self.requests if r["answer"] == 204]

    def handle(self, headers: Any, body: bytes) -> int:
        try:
            verify_signature(SECRET, headers.get("CnameFlow-Signature"), body, 300)
            ok = True
        except SignatureInvalid:
            ok = False
        event = json.loads(body)
        with self.lock:
            tries = sum(1 for r in self.requests if r["event"]["id"] == event["id"])
            answer = 401 if not ok else (self.fail_status if tries < self.fail_first else 204)
            self.requests.append({"event": event, "header_id": headers.get("CnameFlow-Event-Id"),
                                  "signed": ok, "answer": answer})
        return answer


@pytest.fixture
def receiver() -> Iterator[tuple[Receiver, str]]:
    state = Receiver()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            self.send_response(state.handle(self.headers, body))
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: Any) -> None:
            del format, args

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield state, f"http://127.0.0.1:{server.server_address[1]}/hooks/cname-flow"
    finally:
        server.shutdown()
        server.server_close()


def add_events(sb: SandboxEnv, url: str, **hook: Any) -> None:
    cfg = yaml.safe_load(sb.config.read_text(encoding="utf-8"))
    cfg["events"] = {"jsonl": "events.jsonl", "flush_timeout_s": 15, "webhooks": [
        {"url": url, "secret": {"env": "HOOK_SECRET"}, "timeout_s": 5,
         "retry_initial_s": 0.2, "retry_max_s": 1, "retry_window_s": 30, **hook}]}
    sb.config.write_text(yaml.safe_dump(cfg, sort_keys=False), encoding="utf-8")
    sb.env["HOOK_SECRET"] = SECRET


def stream(sb: SandboxEnv) -> list[dict[str, Any]]:
    path = sb.config.parent / "events.jsonl"
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def assert_no_secret(sb: SandboxEnv, *outputs: str) -> None:
    for out in outputs:
        assert SECRET not in out
    for path in sb.config.parent.rglob("*"):
        if path.is_file() and path.name != sb.config.name:
            assert SECRET.encode() not in path.read_bytes(), path


def oss_client(sb: SandboxEnv) -> oss.Client:
    cfg = oss.config.load_default()
    cfg.region = "cn-hangzhou"
    cfg.endpoint = sb.sandbox.info.oss_endpoint
    cfg.credentials_provider = oss.credentials.StaticCredentialsProvider(
        sb.env["OSS_ACCESS_KEY_ID"], sb.env["OSS_ACCESS_KEY_SECRET"])
    return oss.Client(cfg)


def by_subject(events: list[dict[str, Any]]) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for e in events:
        out.setdefault(e["subject"], []).append(e["id"])
    return out


def read_line(proc: subprocess.Popen[str], timeout_s: float) -> str:
    """The next line ``proc`` prints, waited for at most ``timeout_s``."""
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.append(proc.stdout.readline()
                                                          if proc.stdout else ""), daemon=True)
    reader.start()
    reader.join(timeout_s)
    assert lines and lines[0], "no line from `cname-flow events --follow`"
    return lines[0]


def test_a_bind_and_a_reconcile_with_drift_deliver_signed_events_in_order(
    tmp_path: Path, receiver: tuple[Receiver, str],
) -> None:
    got, url = receiver
    soon = make_cert(["b.example.com"], not_after=datetime.now(UTC) + timedelta(days=10))
    cert, key = write_pem(tmp_path, soon)
    with sandbox_env(tmp_path) as sb:
        add_events(sb, url)
        bound = sb.cli("bind", "a.example.com")
        assert bound.returncode == 0, bound.stderr
        manifest = tmp_path / "desired.yaml"
        manifest.write_text(yaml.safe_dump({"defaults": {"bucket": BUCKET}, "bindings": [
            {"domain": "a.example.com"},
            {"domain": "b.example.com", "cert_file": str(cert), "key_file": str(key)}]}),
            encoding="utf-8")
        first = sb.cli("reconcile", "-f", str(manifest), "--apply", "--force", timeout=120)
        assert first.returncode == 0, first.stderr
        oss_client(sb).delete_cname(oss.DeleteCnameRequest(
            bucket=BUCKET, bucket_cname_configuration=oss.BucketCnameConfiguration(
                cname=oss.Cname(domain="a.example.com"))))
        fixed = sb.cli("reconcile", "-f", str(manifest), "--apply", "--force", "--json",
                       timeout=120)
        assert fixed.returncode == 1, fixed.stderr       # b's certificate: drift left
        assert json.loads(fixed.stdout)["results"][0]["status"] == "fixed"
        certs = sb.cli("cert", "status")
        assert certs.returncode == 0, certs.stderr
        listing = sb.cli("events", "--type", "binding.verified")
        assert listing.returncode == 0, listing.stderr
        written = stream(sb)
        assert_no_secret(sb, *(p.stdout + p.stderr for p in (bound, first, fixed, certs, listing)))

    a, b = f"{BUCKET}/a.example.com", f"{BUCKET}/b.example.com"
    assert [(e["type"], e["subject"]) for e in written] == [
        ("binding.verified", a),                       # bind
        ("drift.found", "reconcile"),                  # first reconcile: b missing
        ("binding.verified", b),
        ("drift.found", "reconcile"),                  # second: a deleted, b expiring
        ("binding.verified", a),
        ("certificate.expiring", b),                   # reconcile's
        ("certificate.expiring", b),                   # cert status's
    ]
    drift = written[3]["data"]
    assert {(f["key"], f["kind"]) for f in drift["findings"]} == {
        (a, "binding_missing"), (b, "certificate_expiring")}
    assert 9 <= written[5]["data"]["days_left"] <= 10
    assert written[6]["data"]["fingerprint"] == soon.fingerprint
    assert [json.loads(line)["id"] for line in listing.stdout.splitlines()] == [
        e["id"] for e in written if e["type"] == "binding.verified"]

    assert got.requests and all(r["signed"] for r in got.requests)
    delivered = [r["event"] for r in got.accepted()]
    assert all(r["header_id"] == r["event"]["id"] for r in got.requests)
    assert delivered == written                      # each event once, bodies as in the stream
    assert by_subject(delivered) == by_subject(written)


def test_a_receiver_failing_the_first_attempts_gets_the_event_retried_same_id(
    tmp_path: Path, receiver: tuple[Receiver, str],
) -> None:
    got, url = receiver
    got.fail_first = 2
    with sandbox_env(tmp_path) as sb:
        add_events(sb, url, events=["binding.verified"])
        follower = sb.popen("events", "--follow")     # started before the stream exists
        try:
            bound = sb.cli("bind", "a.example.com")
            assert bound.returncode == 0, bound.stderr
            followed = read_line(follower, timeout_s=20)
        finally:
            follower.terminate()
            follower.wait(10)
        written = stream(sb)
        assert_no_secret(sb, bound.stdout + bound.stderr)
    [event] = written
    assert json.loads(followed) == event
    assert [(r["event"]["id"], r["answer"], r["signed"]) for r in got.requests] == [
        (event["id"], 503, True), (event["id"], 503, True), (event["id"], 204, True)]
    assert not (tmp_path / "journal" / "events-outbox.jsonl").exists()


def test_a_refused_event_waits_in_the_outbox_until_resent(
    tmp_path: Path, receiver: tuple[Receiver, str],
) -> None:
    got, url = receiver
    got.fail_first, got.fail_status = 1, 400           # refused: no retry, to the outbox
    with sandbox_env(tmp_path) as sb:
        add_events(sb, url)
        bound = sb.cli("bind", "a.example.com")
        assert bound.returncode == 0, bound.stderr
        outbox = tmp_path / "journal" / "events-outbox.jsonl"
        [entry] = [json.loads(line) for line in outbox.read_text(encoding="utf-8").splitlines()]
        assert entry["error"] == "HTTP 400" and entry["url"] == url
        again = sb.cli("events", "--resend")
        assert again.returncode == 0, again.stderr
        assert "re-sent 1 event(s)" in again.stdout
        assert outbox.read_text(encoding="utf-8") == ""
        assert_no_secret(sb, bound.stdout + bound.stderr, again.stdout + again.stderr)
    assert [(r["event"]["id"], r["answer"]) for r in got.requests] == [
        (entry["event"]["id"], 400), (entry["event"]["id"], 204)]

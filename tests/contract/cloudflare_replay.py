"""A replay server of Cloudflare's API v4 DNS calls, for the adapter's tests (no network here).

It serves, on a loopback port over real HTTP (stdlib :mod:`http.server` in a thread), the calls
:mod:`cname_flow.dns.cloudflare` makes: ``GET /zones?name=``, and ``GET``/``POST``/``PATCH``/
``DELETE`` under ``/zones/{zone_id}/dns_records``, keeping the records in memory so a test sees
its own writes. Every answer is built from the JSON files in ``recordings/cloudflare/``: the
``{"success", "errors", "messages", "result", "result_info"}`` envelope, the zone and record
objects and the error bodies. **They are taken from Cloudflare's API documentation**
(https://developers.cloudflare.com/api/resources/zones/methods/list/,
https://developers.cloudflare.com/api/resources/dns/subresources/records/methods/list/) and,
for the error bodies, from answers quoted in public issues (cited in
:mod:`cname_flow.dns.cloudflare_errors`), **not recorded live** against Cloudflare: the replay
is as faithful as those documents, and a behaviour they do not show is not modelled.

Modelled: bearer-token auth (another token → 401; a header that is not ``Bearer <token>`` →
400 with 6003/6111; a token in ``read_only`` → 403 with 10000 on writes), page/per_page paging,
``name.exact`` (case-insensitive) and ``type`` filters, 81058 for an identical record,
81054 for a CNAME beside other records, 81044 for an unknown record id, TTL 1 or 60..86400, and
errors queued with :meth:`CloudflareReplay.fail_next` (429 with ``Retry-After``, 5xx).
"""

from __future__ import annotations

import copy
import json
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

RECORDINGS = Path(__file__).parent / "recordings" / "cloudflare"
PREFIX = "/client/v4"


def recording(name: str) -> Any:
    """One recording file's JSON (``zone``, ``record``, ``envelopes``, ``errors``)."""
    return json.loads((RECORDINGS / f"{name}.json").read_text(encoding="utf-8"))


@dataclass
class Seen:
    """One request the server answered: method, path (without the prefix), query, headers."""

    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    body: Any


@dataclass
class CloudflareReplay:
    """The server's state: zones, records, the accepted token and queued failures.

    Attributes:
        token: the API token accepted as ``Authorization: Bearer <token>``.
        zones: zone name → zone id.
        read_only: tokens that may read but not write (403, code 10000, on writes).
        records: record id → record object (the API's shape).
        seen: every request, in order.
        url: the base URL to give the SDK (``http://127.0.0.1:<port>/client/v4``), once started.
    """

    token: str
    zones: dict[str, str]
    read_only: set[str] = field(default_factory=set)
    records: dict[str, dict[str, Any]] = field(default_factory=dict)
    seen: list[Seen] = field(default_factory=list)
    url: str = ""
    _failures: list[str] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def fail_next(self, error: str, times: int = 1) -> None:
        """Answer the next ``times`` requests with the recorded error ``error`` (errors.json)."""
        with self._lock:
            self._failures.extend([error] * times)

    def add_record(self, zone: str, name: str, rtype: str, content: str, *, ttl: int = 600,
                   comment: str | None = None) -> str:
        """Put a record in as the customer would (past the adapter); returns its id."""
        record = _record(self.zones[zone], zone, name, rtype, content, ttl, comment, False)
        with self._lock:
            self.records[record["id"]] = record
        return str(record["id"])

    # -------------------------------------------------------------- dispatch
    def answer(self, method: str, target: str, headers: dict[str, str],
               body: Any) -> tuple[int, dict[str, str], Any]:
        """(status, headers, JSON body) for one request."""
        parts = urlsplit(target)
        path = parts.path[len(PREFIX):] if parts.path.startswith(PREFIX) else parts.path
        query = parse_qs(parts.query)
        with self._lock:
            self.seen.append(Seen(method, path, query, headers, body))
            if self._failures:
                return _error(self._failures.pop(0))
            refused = self._refused(method, headers)
            if refused:
                return _error(refused)
            return self._route(method, path.strip("/").split("/"), query, body)

    def _refused(self, method: str, headers: dict[str, str]) -> str:
        auth = headers.get("authorization", "")
        if not auth.startswith("Bearer ") or any(h in headers for h in ("x-auth-key",
                                                                          "x-auth-email")):
            return "bad_authorization_header"
        token = auth[len("Bearer "):]
        if token in self.read_only:
            return "forbidden" if method != "GET" else ""
        return "" if token == self.token else "unauthorized"

    def _route(self, method: str, parts: list[str], query: dict[str, list[str]],
               body: Any) -> tuple[int, dict[str, str], Any]:
        if parts == ["zones"] and method == "GET":
            return self._zones(query)
        if len(parts) >= 3 and parts[0] == "zones" and parts[2] == "dns_records":
            zone = next((n for n, i in self.zones.items() if i == parts[1]), None)
            if zone is None:
                return 404, {}, _failure("Zone not found")
            if len(parts) == 3:
                if method == "GET":
                    return self._list(parts[1], query)
                if method == "POST":
                    return self._create(zone, body)
            if len(parts) == 4:
                return self._one(method, parts[3], body)
        return 404, {}, _failure(f"no route {method} /{'/'.join(parts)}")

    # --------------------------------------------------------------- handlers
    def _zones(self, query: dict[str, list[str]]) -> tuple[int, dict[str, str], Any]:
        wanted = _first(query, "name")
        found = []
        for name, zone_id in sorted(self.zones.items()):
            if wanted is None or name == wanted.lower():
                zone = recording("zone")
                zone.update(id=zone_id, name=name,
                            name_servers=[f"ns{i}.replay.invalid" for i in (1, 2)])
                found.append(zone)
        return 200, {}, _page(found, query, default_per_page=20)

    def _list(self, zone_id: str, query: dict[str, list[str]]) -> tuple[int, dict[str, str], Any]:
        name, rtype = _first(query, "name.exact"), _first(query, "type")
        found = [r for r in self.records.values() if r["zone_id"] == zone_id
                 and (name is None or r["name"] == name.lower())
                 and (rtype is None or r["type"] == rtype)]
        return 200, {}, _page(found, query, default_per_page=100)

    def _create(self, zone: str, body: dict[str, Any]) -> tuple[int, dict[str, str], Any]:
        name, rtype = str(body["name"]).lower(), str(body["type"])
        if not _ttl_ok(body.get("ttl", 1)):
            return 400, {}, _failure("TTL must be 1 or between 60 and 86400")
        same = [r for r in self.records.values() if r["name"] == name and r["zone_name"] == zone]
        if any(r["type"] == rtype and r["content"] == body.get("content") for r in same):
            return _error("record_exists")
        if same and "CNAME" in {rtype, *(r["type"] for r in same)}:
            return _error("cname_conflict")
        record = _record(self.zones[zone], zone, name, rtype, str(body.get("content", "")),
                         int(body.get("ttl", 1)), body.get("comment"),
                         bool(body.get("proxied", False)))
        self.records[record["id"]] = record
        return 200, {}, _one(record)

    def _one(self, method: str, record_id: str,
             body: Any) -> tuple[int, dict[str, str], Any]:
        record = self.records.get(record_id)
        if record is None:
            return _error("record_gone")
        if method == "GET":
            return 200, {}, _one(record)
        if method == "DELETE":
            del self.records[record_id]
            deleted = recording("envelopes")["deleted"]
            deleted["result"]["id"] = record_id
            return 200, {}, deleted
        if method == "PATCH":
            if "ttl" in body and not _ttl_ok(body["ttl"]):
                return 400, {}, _failure("TTL must be 1 or between 60 and 86400")
            for key in ("name", "content", "ttl", "comment", "proxied"):
                if key in body:
                    record[key] = str(body[key]).lower() if key == "name" else body[key]
            return 200, {}, _one(record)
        return 405, {}, _failure(f"method {method} not allowed")


def _first(query: dict[str, list[str]], key: str) -> str | None:
    values = query.get(key)
    return values[0] if values else None


def _ttl_ok(ttl: Any) -> bool:
    return isinstance(ttl, int) and (ttl == 1 or 60 <= ttl <= 86400)


def _record(zone_id: str, zone: str, name: str, rtype: str, content: str, ttl: int,
            comment: str | None, proxied: bool) -> dict[str, Any]:
    record: dict[str, Any] = recording("record")
    record.update(id=uuid.uuid4().hex, zone_id=zone_id, zone_name=zone, name=name.lower(),
                  type=rtype, content=content, ttl=ttl, comment=comment, proxied=proxied,
                  proxiable=rtype == "CNAME")
    return record


def _page(items: list[dict[str, Any]], query: dict[str, list[str]], *,
          default_per_page: int) -> dict[str, Any]:
    page = int(_first(query, "page") or 1)
    per_page = int(_first(query, "per_page") or default_per_page)
    chunk = items[(page - 1) * per_page: page * per_page]
    envelope: dict[str, Any] = recording("envelopes")["list"]
    envelope["result"] = copy.deepcopy(chunk)
    envelope["result_info"] = {"page": page, "per_page": per_page, "count": len(chunk),
                               "total_count": len(items),
                               "total_pages": max(1, -(-len(items) // per_page))}
    return envelope


def _one(record: dict[str, Any]) -> dict[str, Any]:
    envelope: dict[str, Any] = recording("envelopes")["one"]
    envelope["result"] = copy.deepcopy(record)
    return envelope


def _failure(message: str) -> dict[str, Any]:
    return {"success": False, "errors": [{"message": message}], "messages": [], "result": None}


def _error(name: str) -> tuple[int, dict[str, str], Any]:
    entry = recording("errors")[name]
    return int(entry["status"]), dict(entry.get("headers", {})), entry["body"]


@contextmanager
def serving(replay: CloudflareReplay) -> Iterator[CloudflareReplay]:
    """Serve ``replay`` on an ephemeral loopback port until the block ends; sets ``replay.url``."""

    class Handler(BaseHTTPRequestHandler):
        def _serve(self) -> None:
            length = int(self.headers.get("content-length") or 0)
            raw = self.rfile.read(length) if length else b""
            body = json.loads(raw) if raw else None
            headers = {k.lower(): v for k, v in self.headers.items()}
            status, extra, payload = replay.answer(self.command, self.path, headers, body)
            data = json.dumps(payload).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            for key, value in extra.items():
                self.send_header(key, value)
            self.end_headers()
            self.wfile.write(data)

        do_GET = do_POST = do_PATCH = do_DELETE = do_PUT = _serve

        def log_message(self, format: str, *args: Any) -> None:  # quiet
            return

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05},
                              daemon=True)
    thread.start()
    replay.url = f"http://127.0.0.1:{server.server_address[1]}{PREFIX}"
    try:
        yield replay
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)

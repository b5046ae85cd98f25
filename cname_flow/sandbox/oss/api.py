"""The sandbox's OSS HTTP API: an ASGI app the real ``alibabacloud_oss_v2`` client talks to.

Per request: address (path-style ``/<bucket>/?…`` or virtual-host ``Host: <bucket>.<endpoint>``)
→ route by method and query keys → fault injection → bounded body read → signature (V4 or V1)
→ Content-MD5 → operation (:mod:`oss_ops`). Faults answer before the operation (ERROR,
THROTTLE: a 503; DROP: the connection is reset) or after it ran (ERROR_AFTER, DROP_AFTER).
Every answer carries ``Date`` and a 24-character ``x-oss-request-id``; errors are
namespace-free ``<Error>`` documents with ``Content-Type: application/xml``. The public
sources of these rules are listed in ``docs/sandbox-oss.md``.

Serve it with ``date_header=False`` (uvicorn adds its own ``Date`` otherwise; two ``Date``
headers break the SDK's error parsing) — :func:`uvicorn_config` does that.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import ipaddress
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from functools import lru_cache
from urllib.parse import parse_qsl

import uvicorn
from starlette.responses import Response
from starlette.types import ASGIApp, Receive, Scope, Send

from cname_flow.logs import get_logger
from cname_flow.sandbox.faults import FaultKind, FaultPlan, abort_connection
from cname_flow.sandbox.oss import xml as oss_xml
from cname_flow.sandbox.oss.ops import Caller, OssOperations, OwnershipVerifier
from cname_flow.sandbox.oss.signing import AuthFailure, SignedRequest, verify
from cname_flow.sandbox.oss.xml import OssErrorResponse
from cname_flow.sandbox.state import SandboxState, new_request_id

__all__ = ["OssApp", "OwnershipVerifier", "create_oss_app", "uvicorn_config"]

_log = get_logger(__name__)

_POST_CNAME_OPS = {"token": "CreateCnameToken", "add": "PutCname", "delete": "DeleteCname"}
_BODY_OPS = frozenset({"PutBucket", "CreateCnameToken", "PutCname", "DeleteCname"})

#: PutCname's answer header naming the certificate it bound (the Java SDK's
#: ``OSSHeaders.OSS_HEADER_CERT_ID``, read by its ``AddBucketCnameResponseParser``).
CERT_ID_HEADER = "x-oss-yundun-certificate-id"

#: A handler's answer: status, body, and optionally extra headers.
_Answer = tuple[int, bytes] | tuple[int, bytes, dict[str, str]]


@dataclass(frozen=True, slots=True)
class OssRequest:
    """One HTTP request as the router sees it.

    Attributes:
        method: upper-case HTTP method.
        bucket: addressed bucket or None (service level).
        key: object key (``""`` for bucket operations).
        raw_query: query string as sent, without ``?``.
        query: decoded query (last value wins).
        headers: lower-case name → value (latin-1 decoded; last value wins).
    """

    method: str
    bucket: str | None
    key: str
    raw_query: str
    query: dict[str, str]
    headers: dict[str, str]


def create_oss_app(state: SandboxState, faults: FaultPlan, verifier: OwnershipVerifier) -> ASGIApp:
    """Build the OSS API app over the shared sandbox state.

    Args:
        state: buckets, tokens, bindings, credentials and limits.
        faults: per-operation fault plan (``faults.apply(op)`` at the start of each operation).
        verifier: TXT lookups for PutCname's ownership proof.

    Returns:
        An ASGI application (serve with :func:`uvicorn_config`).
    """
    return OssApp(state, faults, verifier)


def uvicorn_config(app: ASGIApp, host: str = "127.0.0.1", port: int = 0) -> uvicorn.Config:
    """A uvicorn config fit for this app: no server ``Date``/``Server`` headers, no access log."""
    return uvicorn.Config(
        app,
        host=host,
        port=port,
        date_header=False,
        server_header=False,
        access_log=False,
        log_level="warning",
        lifespan="off",
        timeout_keep_alive=30,
    )


class OssApp:
    """The ASGI callable behind :func:`create_oss_app`."""

    def __init__(self, state: SandboxState, faults: FaultPlan, verifier: OwnershipVerifier) -> None:
        self.state = state
        self.faults = faults
        self.ops = OssOperations(state, verifier)
        self._handlers = self._handler_table()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        request_id = new_request_id()
        try:
            response = await self._serve(scope, receive, request_id)
        except Exception:
            _log.exception("oss.internal_error", request_id=request_id)
            failure = OssErrorResponse(500, "InternalError", "We encountered an internal error.")
            response = self._error(failure, request_id, None)
        if response is None:
            _log.info("oss.fault.drop", request_id=request_id, path=scope.get("path"))
            await abort_connection(send)
            return
        await response(scope, receive, send)

    async def _serve(self, scope: Scope, receive: Receive, request_id: str) -> Response | None:
        req = parse_scope(scope)
        op = route(req)
        if op is None:
            failure = OssErrorResponse(
                501, "NotImplemented", "The sandbox does not emulate this operation."
            )
            return self._error(failure, request_id, req.bucket)
        kind = await self.faults.apply(op)
        response = await self._operate(op, req, receive, request_id) if kind.executes else None
        if kind is FaultKind.NONE:
            return response
        if kind.answer is FaultKind.DROP:  # DROP, or DROP_AFTER once the operation ran
            return None
        return self._error(_fault_error(kind.answer), request_id, req.bucket)

    async def _operate(
        self, op: str, req: OssRequest, receive: Receive, request_id: str
    ) -> Response:
        try:
            raw_body: bytes | None = b""
            if op in _BODY_OPS:
                raw_body = await read_body(receive, req.headers.get("content-length"))
            if raw_body is None:  # refused before the signature is even looked at
                return self._error(_too_large(), request_id, req.bucket, close=True)
            caller = self._authenticate(req)
            body = check_body(req, raw_body)
            status, content, *extra = await self._handlers[op](caller, req, body)
        except AuthFailure as exc:
            failure = OssErrorResponse(exc.status, exc.code, exc.message, fields=exc.fields)
            return self._error(failure, request_id, req.bucket)
        except OssErrorResponse as exc:
            return self._error(exc, request_id, req.bucket)
        return self._response(status, content, request_id, *extra)

    def _authenticate(self, req: OssRequest) -> Caller:
        """The verified caller; a V4 scope naming another region than the host's → 400
        InvalidArgument, EC 0002-00000226 (https://help.aliyun.com/zh/oss/support/0002-00000226).
        """
        signed = SignedRequest(req.method, req.raw_query, req.headers, req.bucket)
        auth = verify(
            signed, self.state.credential, self.state.clock(), self.state.config.oss.max_skew_s
        )
        host_region = host_region_of(req.headers.get("host", ""))
        if auth.region is not None and host_region is not None and auth.region != host_region:
            raise OssErrorResponse(
                400, "InvalidArgument", "Invalid signing region in Authorization header.",
                "0002-00000226",
            )
        return Caller(auth.credential.account_id, auth.region, host_region)

    # -- responses ------------------------------------------------------------------------------

    def _response(
        self, status: int, body: bytes, request_id: str, extra: dict[str, str] | None = None
    ) -> Response:
        headers = {
            "Date": oss_xml.http_date(self.state.clock()),
            "x-oss-request-id": request_id,
            "Server": "AliyunOSS",
        }
        if extra:
            headers.update(extra)
        return Response(body, status, headers, "application/xml" if body else None)

    def _error(self, exc: OssErrorResponse, request_id: str, bucket: str | None, *,
               close: bool = False) -> Response:
        """The ``<Error>`` answer; ``close``: the connection ends after it (a body left unread)."""
        region = self.state.config.region
        host = f"oss-{region}.aliyuncs.com"
        host_id = f"{oss_xml.xml_text(bucket)}.{host}" if bucket else host
        body = oss_xml.error_body(exc.code, exc.message, request_id, host_id, exc.ec, exc.fields)
        extra = {"x-oss-ec": exc.ec} if exc.ec else {}
        if close:
            extra["connection"] = "close"
        return self._response(exc.status, body, request_id, extra or None)

    # -- operations -----------------------------------------------------------------------------

    def _handler_table(
        self,
    ) -> dict[str, Callable[[Caller, OssRequest, bytes], Awaitable[_Answer]]]:
        ops = self.ops

        async def list_buckets(c: Caller, r: OssRequest, _: bytes) -> tuple[int, bytes]:
            return 200, ops.list_buckets(c, r.query)

        async def put_bucket(c: Caller, r: OssRequest, body: bytes) -> tuple[int, bytes]:
            if body.strip():
                _parse_or_malformed(body, "CreateBucketConfiguration")
            ops.put_bucket(c, _bucket(r))
            return 200, b""

        async def get_bucket_info(c: Caller, r: OssRequest, _: bytes) -> tuple[int, bytes]:
            return 200, ops.get_bucket_info(c, _bucket(r))

        async def delete_bucket(c: Caller, r: OssRequest, _: bytes) -> tuple[int, bytes]:
            ops.delete_bucket(c, _bucket(r))
            return 204, b""

        async def create_token(c: Caller, r: OssRequest, body: bytes) -> tuple[int, bytes]:
            return 200, ops.create_cname_token(c, _bucket(r), body, r.query.get("wildcard"))

        async def get_token(c: Caller, r: OssRequest, _: bytes) -> tuple[int, bytes]:
            return 200, ops.get_cname_token(c, _bucket(r), r.query.get("cname", ""),
                                            r.query.get("wildcard"))

        async def put_cname(c: Caller, r: OssRequest, body: bytes) -> _Answer:
            cert_id = await ops.put_cname(c, _bucket(r), body)
            return (200, b"", {CERT_ID_HEADER: cert_id}) if cert_id else (200, b"")

        async def list_cname(c: Caller, r: OssRequest, _: bytes) -> tuple[int, bytes]:
            return 200, ops.list_cname(c, _bucket(r))

        async def delete_cname(c: Caller, r: OssRequest, body: bytes) -> tuple[int, bytes]:
            ops.delete_cname(c, _bucket(r), body, r.query.get("wildcard"))
            return 200, b""

        return {
            "ListBuckets": list_buckets,
            "PutBucket": put_bucket,
            "GetBucketInfo": get_bucket_info,
            "DeleteBucket": delete_bucket,
            "CreateCnameToken": create_token,
            "GetCnameToken": get_token,
            "PutCname": put_cname,
            "ListCname": list_cname,
            "DeleteCname": delete_cname,
        }


# -- request parsing and routing ------------------------------------------------------------


def parse_scope(scope: Scope) -> OssRequest:
    """Turn an ASGI HTTP scope into an :class:`OssRequest` (no I/O)."""
    headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
    raw_query = scope["query_string"].decode("latin-1")
    query = dict(parse_qsl(raw_query, keep_blank_values=True))
    bucket, key = address(headers.get("host", ""), scope["path"])
    return OssRequest(scope["method"].upper(), bucket, key, raw_query, query, headers)


def address(host: str, path: str) -> tuple[str | None, str]:
    """(bucket, key) from the Host header and the decoded path.

    Virtual-host style when the host is a name other than ``localhost`` whose first label is
    not a service endpoint (``oss-…``); path-style otherwise.
    """
    vhost = _vhost_bucket(host)
    if vhost is not None:
        return vhost, path[1:]
    first, _, key = path[1:].partition("/")
    return first or None, key


@lru_cache(maxsize=1024)
def _vhost_bucket(host: str) -> str | None:
    name = _hostname(host)
    if "." not in name or name == "localhost" or name.startswith("oss-"):
        return None
    try:
        ipaddress.ip_address(name)
    except ValueError:
        return name.partition(".")[0].lower()
    return None


_HOST_REGION = re.compile(r"(?:^|\.)oss-([a-z0-9-]+?)(?:-internal)?\.aliyuncs\.com\.?$")


@lru_cache(maxsize=1024)
def host_region_of(host: str) -> str | None:
    """The region an OSS host names (``b.oss-cn-shanghai.aliyuncs.com`` → ``"cn-shanghai"``,
    ``-internal`` endpoints too, as in
    https://www.alibabacloud.com/help/en/oss/user-guide/regions-and-endpoints), else None
    (loopback, ``localhost``, any other name)."""
    match = _HOST_REGION.search(_hostname(host).lower())
    return match.group(1) if match else None


def _hostname(host: str) -> str:
    if host.startswith("["):
        return host[1:].partition("]")[0]
    name, sep, port = host.rpartition(":")
    return name if sep and port.isdigit() and ":" not in name else host


def route(req: OssRequest) -> str | None:
    """The operation name for a request, or None when not emulated.

    Method and query keys as in each operation's API reference, e.g. PutCname's
    ``POST /?cname&comp=add``:
    https://www.alibabacloud.com/help/en/oss/developer-reference/putcname
    """
    q, method = req.query, req.method
    if req.bucket is None:
        return "ListBuckets" if method == "GET" else None
    if req.key:
        return None
    if "cname" in q or "comp" in q:
        if method == "POST" and "cname" in q:
            return _POST_CNAME_OPS.get(q.get("comp", ""))
        if method == "GET" and q.get("comp") == "token":
            return "GetCnameToken"
        return "ListCname" if method == "GET" and "comp" not in q else None
    if "bucketInfo" in q:
        return "GetBucketInfo" if method == "GET" else None
    if not q:
        return {"PUT": "PutBucket", "DELETE": "DeleteBucket"}.get(method)
    return None


async def read_body(receive: Receive, declared: str | None = None) -> bytes | None:
    """The request body, or None once it exceeds ``oss_xml.MAX_BODY_BYTES`` (reading stops), or
    at once, unread, when the declared ``Content-Length`` does."""
    if declared is not None and declared.isdigit() and int(declared) > oss_xml.MAX_BODY_BYTES:
        return None
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > oss_xml.MAX_BODY_BYTES:
            return None
        chunks.append(chunk)
        if message["type"] != "http.request" or not message.get("more_body", False):
            return b"".join(chunks)


def check_body(req: OssRequest, body: bytes | None) -> bytes:
    """The body, checked: size cap (400 MalformedXML) and Content-MD5 (400 InvalidDigest).

    Raises:
        OssErrorResponse: as above.
    """
    if body is None:
        raise _too_large()
    sent = req.headers.get("content-md5")
    if sent is not None:
        actual = base64.b64encode(hashlib.md5(body).digest()).decode("ascii")
        if not hmac.compare_digest(actual, sent):
            raise OssErrorResponse(
                400, "InvalidDigest", "The Content-MD5 you specified was invalid."
            )
    return body


def _bucket(req: OssRequest) -> str:
    if req.bucket is None:  # route() never sends a bucket-less request to a bucket operation
        raise OssErrorResponse(400, "InvalidBucketName", "The specified bucket is not valid.")
    return req.bucket


def _parse_or_malformed(body: bytes, root: str) -> None:
    try:
        oss_xml.parse_xml(body, root)
    except oss_xml.MalformedXml:
        raise OssErrorResponse(
            400, "MalformedXML", "The XML you provided was not well-formed."
        ) from None


def _too_large() -> OssErrorResponse:
    return OssErrorResponse(
        400, "MalformedXML", f"The body exceeds {oss_xml.MAX_BODY_BYTES} bytes."
    )


def _fault_error(kind: FaultKind) -> OssErrorResponse:
    """The injected fault's answer. THROTTLE: 503 ``MetaOperationQpsLimitExceeded``, OSS's
    answer when bucket-level (meta) operations exceed their QPS, as the "HTTP status code 503"
    page gives it (https://www.alibabacloud.com/help/en/oss/user-guide/503-error); not S3's
    ``SlowDown``, which OSS does not send."""
    if kind is FaultKind.THROTTLE:
        return OssErrorResponse(
            503, "MetaOperationQpsLimitExceeded", "Qps limit for the meta operation is exceeded."
        )
    return OssErrorResponse(503, "ServiceUnavailable", "Service is temporarily unavailable.")

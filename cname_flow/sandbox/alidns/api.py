"""The sandbox's Alidns API (2015-01-09) as a Starlette app the real SDK talks to unmodified.

Wire contract (sources in docs/sandbox-alidns.md): every call is ``POST /`` (``GET`` accepted
for RPC callers) with all parameters in the query string; the action comes from header
``x-acs-action`` (ACS3) or query ``Action`` (RPC v1). Requests are authenticated with
ACS3-HMAC-SHA256 or RPC HMAC-SHA1 signatures, STS tokens, a 15-minute clock-skew window and
signature-nonce replay protection; then per-account per-action token buckets apply
(``Throttling.User``); then the operation runs against the shared :class:`SandboxState`.

Answers are JSON. Success bodies carry ``RequestId``; errors are
``{RequestId, HostId, Code, Message, Recommend}`` with HTTP 400 unless noted.
Injected faults: ERROR → 503 ``ServiceUnavailable``, THROTTLE → ``Throttling.User``,
DROP → the TCP connection is reset without an answer; ERROR_AFTER and DROP_AFTER run the
operation first, then answer as ERROR and DROP ("executed, answer lost"). With
``last_operation_not_finished`` on, a change to a host record within
``last_operation_window_s`` of the previous one answers ``LastOperationNotFinished``
(:mod:`cname_flow.sandbox.alidns.pending`).
"""

from __future__ import annotations

import json
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from urllib.parse import parse_qsl

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

from cname_flow.sandbox.alidns.ops import OPERATIONS
from cname_flow.sandbox.alidns.pending import RecentChanges, touched
from cname_flow.sandbox.alidns.rules import AlidnsError, Params
from cname_flow.sandbox.alidns.signing import (
    MalformedAuthorization,
    acs3_canonical_request,
    acs3_string_to_sign,
    parse_acs3_authorization,
    rpc_string_to_sign,
    verify_acs3,
    verify_rpc,
)
from cname_flow.sandbox.faults import FaultKind, FaultPlan, abort_connection
from cname_flow.sandbox.state import Credential, SandboxState, new_request_id

API_VERSION = "2015-01-09"
HOST_ID = "alidns.aliyuncs.com"
MAX_SKEW_S = 15 * 60
#: Query keys that belong to RPC v1 signing, not to the operation.
RPC_PROTOCOL_KEYS = frozenset({
    "Action", "Version", "Format", "Timestamp", "SignatureNonce", "SignatureMethod",
    "SignatureVersion", "AccessKeyId", "Signature", "SecurityToken", "SignatureType",
    "RegionId",
})
_DROP_KEY = "cname_flow.drop"
JSON_TYPE = "application/json;charset=utf-8"
#: The largest request body read, bytes. Alidns takes its parameters in the query (or a small
#: form body): a larger body is refused before it is read on, before authentication.
MAX_BODY_BYTES = 64 * 1024


@dataclass(frozen=True, slots=True)
class RpcRequest:
    """One request as received: decoded query/form pairs, lowercase multi-valued headers."""

    method: str
    path: str
    pairs: list[tuple[str, str]]
    headers: dict[str, list[str]]
    body: bytes

    def header(self, name: str) -> str | None:
        """The first value of a header (lowercase name), or None."""
        values = self.headers.get(name)
        return values[0] if values else None

    def param(self, name: str) -> str | None:
        """The last value of a query or form parameter, or None."""
        return next((v for k, v in reversed(self.pairs) if k == name), None)

    @property
    def action(self) -> str | None:
        """The API action: ``x-acs-action`` header or ``Action`` parameter."""
        return self.header("x-acs-action") or self.param("Action")


class TokenBuckets:
    """Per-(account, action) token buckets: ``rate`` requests per second, burst = ``rate``.

    Args:
        rates: action → requests per second; actions not listed are unlimited.
        clock: monotonic seconds.
    """

    def __init__(self, rates: dict[str, float], clock: Callable[[], float] = time.monotonic):
        self._rates = rates
        self._clock = clock
        self._buckets: dict[tuple[str, str], tuple[float, float]] = {}

    def allow(self, account: str, action: str) -> bool:
        """Take one token; False when the bucket is empty (the caller answers Throttling.User)."""
        rate = self._rates.get(action)
        if rate is None:
            return True
        burst, now = max(rate, 1.0), self._clock()
        tokens, last = self._buckets.get((account, action), (burst, now))
        tokens = min(burst, tokens + (now - last) * rate)
        allowed = tokens >= 1.0
        self._buckets[(account, action)] = (tokens - 1.0 if allowed else tokens, now)
        return allowed


class NonceCache:
    """Signature nonces seen within the skew window (a replayed nonce is refused)."""

    def __init__(self, window_s: float = 2 * MAX_SKEW_S) -> None:
        self._window = window_s
        self._seen: set[str] = set()
        self._order: deque[tuple[float, str]] = deque()

    def first_use(self, nonce: str, now: float) -> bool:
        """Record ``nonce``; False when it was already used inside the window."""
        while self._order and self._order[0][0] < now - self._window:
            self._seen.discard(self._order.popleft()[1])
        if nonce in self._seen:
            return False
        self._seen.add(nonce)
        self._order.append((now, nonce))
        return True


def error_response(err: AlidnsError, request_id: str, headers: dict[str, str] | None = None
                   ) -> Response:
    """The JSON error answer the SDK turns into ClientException / ServerException."""
    body: dict[str, object] = {
        "RequestId": request_id,
        "HostId": HOST_ID,
        "Code": err.code,
        "Message": err.message,
        "Recommend": f"https://api.aliyun.com/troubleshoot?q={err.code}&product=Alidns"
        f"&requestId={request_id}",
    }
    return _json(body, err.status, request_id, headers)


def _json(body: dict[str, object], status: int, request_id: str,
          headers: dict[str, str] | None = None) -> Response:
    data = json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
    all_headers = {"x-acs-request-id": request_id, **(headers or {})}
    return Response(data, status, all_headers, media_type=JSON_TYPE)


def _parse_date(raw: str | None, fmt: str) -> float:
    try:
        return datetime.strptime(raw or "", fmt).replace(tzinfo=UTC).timestamp()
    except ValueError:
        raise AlidnsError(
            "InvalidTimeStamp.Format", "Specified time stamp or date value is not well formatted."
        ) from None


def _check_time(stamp: float) -> None:
    if abs(time.time() - stamp) > MAX_SKEW_S:
        raise AlidnsError(
            "InvalidTimeStamp.Expired", "Specified time stamp or date value is expired."
        )


def _check_token(cred: Credential, token: str | None) -> None:
    if cred.security_token is None:
        return
    if not token:
        raise AlidnsError("MissingSecurityToken", "SecurityToken is mandatory for this action.")
    if token != cred.security_token:
        raise AlidnsError(
            "InvalidSecurityToken.MismatchWithAccessKey",
            "Specified SecurityToken mismatch with the AccessKey.",
        )


def _signature_mismatch(string_to_sign: str) -> AlidnsError:
    return AlidnsError(
        "SignatureDoesNotMatch",
        "Specified signature is not matched with our calculation. "
        f"server string to sign is:{string_to_sign}",
    )


class Authenticator:
    """Turns a request into the caller's :class:`Credential`, or raises :class:`AlidnsError`."""

    def __init__(self, state: SandboxState) -> None:
        self._state = state
        self._nonces = NonceCache()

    def __call__(self, req: RpcRequest) -> Credential:
        """Authenticate with ACS3 (``Authorization`` header) or RPC v1 (``Signature`` param)."""
        if req.header("authorization") is not None:
            return self._acs3(req)
        return self._rpc(req)

    def _credential(self, access_key_id: str) -> Credential:
        cred = self._state.credential(access_key_id)
        if cred is None:
            raise AlidnsError(
                "InvalidAccessKeyId.NotFound", "Specified access key is not found.", 404
            )
        return cred

    def _nonce(self, nonce: str | None) -> None:
        if nonce and not self._nonces.first_use(nonce, time.time()):
            raise AlidnsError("SignatureNonceUsed", "Specified signature nonce was used already.")

    def _acs3(self, req: RpcRequest) -> Credential:
        try:
            auth = parse_acs3_authorization(req.header("authorization") or "")
        except MalformedAuthorization:
            raise AlidnsError(
                "IncompleteSignature", "The request signature does not conform to Aliyun standards."
            ) from None
        cred = self._credential(auth.access_key_id)
        _check_time(_parse_date(req.header("x-acs-date"), "%Y-%m-%dT%H:%M:%SZ"))
        canonical = acs3_canonical_request(
            req.method, req.path, req.pairs, req.headers, auth.signed_headers, req.body
        )
        if not verify_acs3(cred.access_key_secret, auth, canonical):
            raise _signature_mismatch(acs3_string_to_sign(canonical))
        self._nonce(req.header("x-acs-signature-nonce"))
        _check_token(cred, req.header("x-acs-security-token"))
        return cred

    def _rpc(self, req: RpcRequest) -> Credential:
        params = Params(dict(req.pairs))
        cred = self._credential(params.required("AccessKeyId"))
        signature = params.required("Signature")
        _check_time(_parse_date(params.get("Timestamp"), "%Y-%m-%dT%H:%M:%SZ"))
        if (params.get("SignatureMethod") or "HMAC-SHA1") != "HMAC-SHA1":
            raise AlidnsError(
                "InvalidParameter", "Specified parameter SignatureMethod is not valid."
            )
        if not verify_rpc(cred.access_key_secret, req.method, req.pairs, signature):
            raise _signature_mismatch(rpc_string_to_sign(req.method, req.pairs))
        self._nonce(params.get("SignatureNonce"))
        _check_token(cred, params.get("SecurityToken"))
        return cred


def _too_large() -> AlidnsError:
    """413 (RFC 9110 §15.5.14, Content Too Large): Alidns documents no code for it, so the
    answer keeps the OpenAPI error shape with the status's own name."""
    return AlidnsError(
        "RequestEntityTooLarge", f"The request body exceeds {MAX_BODY_BYTES} bytes.", 413
    )


async def read_body(request: Request) -> bytes:
    """The request body, at most :data:`MAX_BODY_BYTES`: a larger declared ``Content-Length``
    is refused unread, a longer stream as soon as it passes the cap.

    Raises:
        AlidnsError: 413 ``RequestEntityTooLarge``.
    """
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > MAX_BODY_BYTES:
        raise _too_large()
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > MAX_BODY_BYTES:
            raise _too_large()
        chunks.append(chunk)
    return b"".join(chunks)


async def _incoming(request: Request) -> RpcRequest:
    body = await read_body(request)
    pairs = parse_qsl(request.scope.get("query_string", b"").decode("latin-1"),
                      keep_blank_values=True)
    if request.headers.get("content-type", "").startswith("application/x-www-form-urlencoded"):
        pairs += parse_qsl(body.decode("utf-8", "replace"), keep_blank_values=True)
    headers: dict[str, list[str]] = {}
    for raw_name, raw_value in request.headers.raw:
        headers.setdefault(raw_name.decode("latin-1").lower(), []).append(
            raw_value.decode("latin-1")
        )
    return RpcRequest(request.method, request.url.path, pairs, headers, body)


def _action_not_found() -> AlidnsError:
    return AlidnsError(
        "InvalidAction.NotFound",
        "Specified api is not found, please check your url and method.",
        404,
    )


def _check_action(req: RpcRequest) -> str:
    action = req.action
    if not action:
        raise AlidnsError("MissingAction", "Action is mandatory for this action.")
    if action not in OPERATIONS:
        raise _action_not_found()
    version = req.header("x-acs-version") or req.param("Version")
    if not version:
        raise AlidnsError("MissingVersion", "Version is mandatory for this action.")
    if version != API_VERSION:
        raise AlidnsError("InvalidVersion", "Specified parameter Version is not valid.")
    return action


class AlidnsService:
    """The request pipeline: bounded body → faults → action → authentication → rate limit →
    operation."""

    def __init__(self, state: SandboxState, faults: FaultPlan) -> None:
        self.state = state
        self.faults = faults
        self.auth = Authenticator(state)
        self.buckets = TokenBuckets(dict(state.config.alidns.rate_limits))
        self.recent = RecentChanges(state.config.alidns.last_operation_window_s)

    def _throttled(self, request_id: str) -> Response:
        cfg = self.state.config.alidns
        headers = {}
        if cfg.retry_after_ms:
            headers["x-acs-retry-after"] = str(cfg.retry_after_ms)
        err = AlidnsError(
            "Throttling.User", "Request was denied due to user flow control.", cfg.throttle_status
        )
        return error_response(err, request_id, headers)

    async def handle(self, request: Request) -> Response:
        """Serve one HTTP request (any failure inside becomes a JSON error answer).

        A fault drawn for the action replaces the answer: before the operation (nothing
        changed) or, for the *after* kinds, once it has run (its effect stays).
        """
        request_id = new_request_id()
        try:
            req = await _incoming(request)
        except AlidnsError as refused:  # refused before it is read on: close, do not drain
            return error_response(refused, request_id, {"connection": "close"})
        kind = await self.faults.apply(req.action or "unknown")
        if kind is FaultKind.NONE:
            return self._run(req, request_id)
        if kind.executes:
            self._run(req, request_id)  # it ran; its answer is lost below
        if kind.answer is FaultKind.DROP:
            await request.scope["extensions"][_DROP_KEY]()
            return Response(status_code=204)  # never reaches the client
        if kind.answer is FaultKind.THROTTLE:
            return self._throttled(request_id)
        err = AlidnsError(
            "ServiceUnavailable",
            "The request has failed due to a temporary failure of the server.", 503,
        )
        return error_response(err, request_id)

    def _run(self, req: RpcRequest, request_id: str) -> Response:
        try:
            return self._serve(req, request_id)
        except AlidnsError as err:
            return error_response(err, request_id)

    def _serve(self, req: RpcRequest, request_id: str) -> Response:
        action = _check_action(req)
        account = self.auth(req).account_id
        cfg = self.state.config.alidns
        if cfg.enforce_rate_limits and not self.buckets.allow(account, action):
            return self._throttled(request_id)
        params = Params({k: v for k, v in req.pairs if k not in RPC_PROTOCOL_KEYS})
        busy = touched(self.state, account, action, params)
        if cfg.last_operation_not_finished:
            self.recent.check(busy)
        body = OPERATIONS[action](self.state, account, params)
        self.recent.note(busy)
        return _json({"RequestId": request_id, **body}, 200, request_id)


class _DropCapable:
    """Outermost ASGI layer: lends the endpoint a way to drop the raw connection."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            extensions = dict(scope.get("extensions") or {})
            extensions[_DROP_KEY] = lambda: abort_connection(send)
            scope = {**scope, "extensions": extensions}
        await self.app(scope, receive, send)


def create_alidns_app(state: SandboxState, faults: FaultPlan) -> ASGIApp:
    """Build the Alidns API app over the shared sandbox state (serve it with uvicorn).

    Args:
        state: the sandbox's store; accounts, zones and records are read and changed here.
        faults: per-operation fault plan, keyed by action name (e.g. ``"AddDomainRecord"``).

    Returns:
        An ASGI app answering ``POST /`` (and ``GET /``) as Alidns 2015-01-09 does.
    """
    service = AlidnsService(state, faults)

    async def not_found(request: Request) -> Response:
        return error_response(_action_not_found(), new_request_id())

    routes = [
        Route("/", service.handle, methods=["GET", "POST"]),
        Route("/{path:path}", not_found, methods=["GET", "POST", "PUT", "DELETE", "HEAD"]),
    ]
    return _DropCapable(Starlette(routes=routes))

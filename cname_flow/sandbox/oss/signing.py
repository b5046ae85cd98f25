"""Server-side verification of OSS request signatures: V4 (``OSS4-HMAC-SHA256``) and V1 (``OSS``).

Implements what ``alibabacloud_oss_v2`` 1.4.1 signs (SDK ``signer/v4.py`` and ``signer/v1.py``;
OSS documents the algorithms in ``recommend-to-use-signature-version-4`` and
``include-signatures-in-the-authorization-header`` under
https://www.alibabacloud.com/help/en/oss/developer-reference/), checked against a credential store:

- V4: ``Authorization: OSS4-HMAC-SHA256 Credential=<AK>/<yyyymmdd>/<region>/<product>/
  aliyun_v4_request[,AdditionalHeaders=h1;h2],Signature=<64 hex>``; time from ``x-oss-date``.
- V1: ``Authorization: OSS <AK>:<base64 HMAC-SHA1>``; time from ``Date``.

Checks run in this order and stop at the first failure: header syntax (400 InvalidArgument),
missing time (403 AccessDenied), unknown AccessKey id (403 InvalidAccessKeyId), STS security
token missing or wrong (403 InvalidAccessKeyId), clock skew (403 RequestTimeTooSkewed), signature
(403 SignatureDoesNotMatch). Messages never carry a secret, a security token or a signature.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from functools import lru_cache
from urllib.parse import quote, unquote

from cname_flow.sandbox.state import Credential

V4_ALGORITHM = "OSS4-HMAC-SHA256"
V4_TERMINATOR = "aliyun_v4_request"
UNSIGNED_PAYLOAD = "UNSIGNED-PAYLOAD"

#: V1 sub-resources: the SDK's fixed list plus the CNAME operations' own (``cname``, ``comp``).
V1_SUBRESOURCES = frozenset(
    {
        "acl",
        "bucketInfo",
        "location",
        "stat",
        "delete",
        "append",
        "tagging",
        "objectMeta",
        "uploads",
        "uploadId",
        "partNumber",
        "security-token",
        "position",
        "response-content-type",
        "response-content-language",
        "response-expires",
        "response-cache-control",
        "response-content-disposition",
        "response-content-encoding",
        "restore",
        "callback",
        "callback-var",
        "versions",
        "versioning",
        "versionId",
        "sequential",
        "continuation-token",
        "regionList",
        "cloudboxes",
        "symlink",
        "resourceGroup",
        "cname",
        "comp",
    }
)

_DEFAULT_SIGNED = ("content-type", "content-md5")


class AuthFailure(Exception):
    """The request is not authenticated; maps to one OSS error answer.

    Attributes:
        status: HTTP status (400 or 403).
        code: OSS error code, e.g. ``"SignatureDoesNotMatch"``.
        message: human-readable text without secrets.
        fields: extra ``<Error>`` children (e.g. ``StringToSign`` for V4; never secret).
    """

    def __init__(
        self, status: int, code: str, message: str, fields: Mapping[str, str] | None = None
    ) -> None:
        super().__init__(f"{code}: {message}")
        self.status = status
        self.code = code
        self.message = message
        self.fields = dict(fields or {})


@dataclass(frozen=True, slots=True)
class SignedRequest:
    """What the verifier needs from one HTTP request.

    Attributes:
        method: HTTP method, upper case.
        raw_query: the query string exactly as sent, without ``?``.
        headers: header name (lower case) → value; the last value wins for repeated names.
        bucket: bucket addressed (path-style or virtual-host), or None for service operations.
    """

    method: str
    raw_query: str
    headers: Mapping[str, str]
    bucket: str | None


@dataclass(frozen=True, slots=True)
class Authenticated:
    """A verified request: its credential and, for V4, the region of the signing scope."""

    credential: Credential = field(repr=False)
    version: str
    region: str | None = None


CredentialLookup = Callable[[str], Credential | None]


def verify(
    req: SignedRequest, lookup: CredentialLookup, now: float, max_skew_s: float
) -> Authenticated:
    """Authenticate one request signed with OSS V4 or V1 header authentication.

    Args:
        req: the request as received.
        lookup: AccessKey id → credential (None when unknown).
        now: server time, Unix seconds.
        max_skew_s: largest accepted distance between the request time and ``now``, seconds.

    Returns:
        The credential that signed the request.

    Raises:
        AuthFailure: any check fails (see the module docstring for codes and order).
    """
    auth = req.headers.get("authorization")
    if not auth:
        raise AuthFailure(403, "AccessDenied", "Anonymous access is forbidden for this operation.")
    if auth.startswith(V4_ALGORITHM + " "):
        return _verify_v4(req, auth[len(V4_ALGORITHM) + 1 :], lookup, now, max_skew_s)
    if auth.startswith("OSS "):
        return _verify_v1(req, auth[4:], lookup, now, max_skew_s)
    raise AuthFailure(400, "InvalidArgument", "Authorization header is invalid.")


# -- V4 ---------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _V4Auth:
    access_key_id: str
    date: str
    region: str
    product: str
    additional_headers: tuple[str, ...]
    signature: str


def _parse_v4(value: str) -> _V4Auth:
    fields: dict[str, str] = {}
    for part in value.split(","):
        key, sep, val = part.strip().partition("=")
        if not sep:
            raise AuthFailure(400, "InvalidArgument", "Authorization header is invalid.")
        fields[key] = val
    scope = fields.get("Credential", "").split("/")
    signature = fields.get("Signature", "")
    if len(scope) != 5 or scope[4] != V4_TERMINATOR or not scope[0] or not signature:
        raise AuthFailure(400, "InvalidArgument", "Authorization header is invalid.")
    extra = fields.get("AdditionalHeaders", "")
    additional = tuple(sorted({h.strip().lower() for h in extra.split(";") if h.strip()}))
    return _V4Auth(scope[0], scope[1], scope[2], scope[3], additional, signature)


def _verify_v4(
    req: SignedRequest, value: str, lookup: CredentialLookup, now: float, max_skew_s: float
) -> Authenticated:
    auth = _parse_v4(value)
    stamp = req.headers.get("x-oss-date", "")
    when = _parse_v4_time(stamp)
    cred = _credential(lookup, auth.access_key_id, req.headers.get("x-oss-security-token"))
    _check_skew(when, now, max_skew_s)
    if stamp[:8] != auth.date:
        raise AuthFailure(
            403, "SignatureDoesNotMatch", "Credential date does not match x-oss-date."
        )
    scope = f"{auth.date}/{auth.region}/{auth.product}/{V4_TERMINATOR}"
    canonical = v4_canonical_request(req, auth.additional_headers)
    digest = hashlib.sha256(canonical.encode("utf-8")).hexdigest()
    string_to_sign = f"{V4_ALGORITHM}\n{stamp}\n{scope}\n{digest}"
    key = v4_signing_key(cred.access_key_secret, auth.date, auth.region, auth.product)
    expected = hmac.new(key, string_to_sign.encode("utf-8"), hashlib.sha256).hexdigest()
    if not hmac.compare_digest(expected, auth.signature):
        raise AuthFailure(
            403,
            "SignatureDoesNotMatch",
            "The request signature we calculated does not match the signature you provided.",
            {"StringToSign": string_to_sign},
        )
    return Authenticated(cred, "v4", auth.region)


def _parse_v4_time(stamp: str) -> float:
    try:
        return datetime.strptime(stamp, "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC).timestamp()
    except ValueError:
        raise AuthFailure(
            403, "AccessDenied", "OSS authentication requires a valid x-oss-date header."
        ) from None


def v4_canonical_request(req: SignedRequest, additional: tuple[str, ...] = ()) -> str:
    """The V4 canonical request (as SDK ``signer/v4.py`` builds it), fields joined by ``\\n``.

    Args:
        req: the request; ``raw_query`` is used undecoded, pairs sorted as (key, value).
        additional: extra signed header names (lower case, sorted), from ``AdditionalHeaders``.
    """
    uri = quote(f"/{req.bucket}/", safe="/") if req.bucket else "/"
    pairs = sorted(p.partition("=")[::2] for p in req.raw_query.split("&")) if req.raw_query else []
    query = "&".join(f"{k}={v}" if v else k for k, v in pairs)
    wanted = set(additional)
    signed = sorted(
        (name, val)
        for name, val in req.headers.items()
        if name.startswith("x-oss-") or name in _DEFAULT_SIGNED or name in wanted
    )
    headers = "".join(f"{name}:{val}\n" for name, val in signed)
    payload = req.headers.get("x-oss-content-sha256", UNSIGNED_PAYLOAD)
    return f"{req.method}\n{uri}\n{query}\n{headers}\n{';'.join(additional)}\n{payload}"


@lru_cache(maxsize=256)
def v4_signing_key(secret: str, date: str, region: str, product: str) -> bytes:
    """The V4 signing key: HMAC-SHA256 chain over date, region, product and the terminator."""
    key = hmac.new(("aliyun_v4" + secret).encode("utf-8"), date.encode(), hashlib.sha256).digest()
    for part in (region, product, V4_TERMINATOR):
        key = hmac.new(key, part.encode("utf-8"), hashlib.sha256).digest()
    return key


# -- V1 ---------------------------------------------------------------------------------------


def _verify_v1(
    req: SignedRequest, value: str, lookup: CredentialLookup, now: float, max_skew_s: float
) -> Authenticated:
    access_key_id, sep, signature = value.rpartition(":")
    if not sep or not access_key_id or not signature:
        raise AuthFailure(400, "InvalidArgument", "Authorization header is invalid.")
    when = _parse_http_date(req.headers.get("date", ""))
    token = req.headers.get("x-oss-security-token") or req.headers.get("security-token")
    cred = _credential(lookup, access_key_id, token)
    _check_skew(when, now, max_skew_s)
    string_to_sign = v1_string_to_sign(req)
    mac = hmac.new(cred.access_key_secret.encode("utf-8"), string_to_sign.encode(), hashlib.sha1)
    expected = base64.b64encode(mac.digest()).decode("ascii")
    if not hmac.compare_digest(expected, signature):
        raise AuthFailure(
            403,
            "SignatureDoesNotMatch",
            "The request signature we calculated does not match the signature you provided.",
        )
    return Authenticated(cred, "v1")


def _parse_http_date(value: str) -> float:
    try:
        parsed = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        parsed = None
    if parsed is None or parsed.tzinfo is None:
        raise AuthFailure(403, "AccessDenied", "OSS authentication requires a valid Date header.")
    return parsed.timestamp()


def v1_string_to_sign(req: SignedRequest) -> str:
    """The V1 string to sign (SDK ``signer/v1.py``): verb, MD5, type, date, headers, resource."""
    h = req.headers
    date = h.get("x-oss-date", "") or h.get("date", "")
    oss_headers = "".join(
        f"{name}:{val}\n" for name, val in sorted(h.items()) if name.startswith("x-oss-")
    )
    return (
        f"{req.method}\n{h.get('content-md5', '')}\n{h.get('content-type', '')}\n{date}\n"
        f"{oss_headers}{v1_canonical_resource(req)}"
    )


def v1_canonical_resource(req: SignedRequest) -> str:
    """``/bucket/`` (or ``/``) plus the sorted, URL-decoded sub-resources as ``?k&k=v``."""
    uri = f"/{req.bucket}/" if req.bucket else "/"
    pairs = []
    for part in req.raw_query.split("&") if req.raw_query else ():
        key, _, value = part.partition("=")
        key = unquote(key)
        if key in V1_SUBRESOURCES:
            pairs.append((key, unquote(value)))
    if not pairs:
        return uri
    return uri + "?" + "&".join(f"{k}={v}" if v else k for k, v in sorted(pairs))


# -- shared checks ----------------------------------------------------------------------------


def _credential(lookup: CredentialLookup, access_key_id: str, token: str | None) -> Credential:
    cred = lookup(access_key_id)
    if cred is None:
        raise AuthFailure(
            403,
            "InvalidAccessKeyId",
            "The OSS Access Key Id you provided does not exist in our records.",
        )
    if cred.security_token is not None and not hmac.compare_digest(
        (token or "").encode("utf-8"), cred.security_token.encode("utf-8")
    ):
        raise AuthFailure(403, "InvalidAccessKeyId", "The security token you provided is invalid.")
    return cred


def _check_skew(when: float, now: float, max_skew_s: float) -> None:
    if abs(now - when) > max_skew_s:
        raise AuthFailure(
            403,
            "RequestTimeTooSkewed",
            "The difference between the request time and the current time is too large.",
        )

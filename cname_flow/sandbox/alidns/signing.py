"""Server-side verification of Alibaba Cloud POP API signatures (ACS3-HMAC-SHA256 and RPC v1).

Implements what ``alibabacloud_tea_openapi`` 0.4.6 computes on the client
(``utils.get_authorization`` and ``Utils.get_rpcsignature``), rebuilt from the request as it
arrived on the wire. Public descriptions:
https://alibabacloud.com/help/en/sdk/product-overview/v3-request-structure-and-signature (ACS3)
and https://help.aliyun.com/en/sdk/product-overview/rpc-mechanism (RPC v1).

* **ACS3-HMAC-SHA256** (the default, "V3 signature"): ``Authorization: ACS3-HMAC-SHA256
  Credential=<AK>,SignedHeaders=<h1;h2…>,Signature=<64 hex>``. The canonical request is
  ``METHOD \\n path \\n canonical query \\n canonical headers \\n signed headers \\n
  hex(sha256(body))``; the canonical query is the *decoded* wire query re-encoded with
  ``quote(v, safe="~")``; canonical headers are rebuilt from the ``SignedHeaders`` list.
  Signature = ``hex(HMAC-SHA256(secret, "ACS3-HMAC-SHA256\\n" + hex(sha256(canonical))))``.
* **RPC v1** (``Config(signature_algorithm="v2")``): ``Signature`` query parameter =
  ``base64(HMAC-SHA1(secret + "&", METHOD + "&%2F&" + quote_plus(sorted k=v pairs)))``.

The functions here are pure: they never look up credentials and never log. Comparison of
signatures is constant-time.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from urllib.parse import quote, quote_plus

ACS3_ALGORITHM = "ACS3-HMAC-SHA256"
RPC_SIGNATURE_METHOD = "HMAC-SHA1"
EMPTY_SHA256 = hashlib.sha256(b"").hexdigest()


class MalformedAuthorization(ValueError):
    """The ``Authorization`` header is not a well-formed ACS3 authorization."""


@dataclass(frozen=True, slots=True)
class Acs3Authorization:
    """The parsed ``Authorization`` header of an ACS3 request.

    Attributes:
        algorithm: e.g. ``"ACS3-HMAC-SHA256"``.
        access_key_id: the ``Credential=`` value.
        signed_headers: lowercase header names, in the order given.
        signature: lowercase hex digest the client sent.
    """

    algorithm: str
    access_key_id: str
    signed_headers: tuple[str, ...]
    signature: str


def parse_acs3_authorization(header: str) -> Acs3Authorization:
    """Parse ``"<ALG> Credential=AK,SignedHeaders=a;b,Signature=hex"``.

    Raises:
        MalformedAuthorization: missing algorithm, fields or values.
    """
    algorithm, _, rest = header.strip().partition(" ")
    fields: dict[str, str] = {}
    for part in rest.split(","):
        key, sep, value = part.strip().partition("=")
        if sep:
            fields[key] = value
    credential = fields.get("Credential", "")
    signed = fields.get("SignedHeaders", "")
    signature = fields.get("Signature", "")
    if not algorithm or not credential or not signed or not signature:
        raise MalformedAuthorization("authorization lacks Credential, SignedHeaders or Signature")
    names = tuple(h.strip().lower() for h in signed.split(";") if h.strip())
    return Acs3Authorization(algorithm, credential, names, signature.lower())


def acs3_canonical_query(params: Sequence[tuple[str, str]]) -> str:
    """The canonical query of decoded ``(key, value)`` pairs: sorted keys, values ``quote(v,"~")``.

    Keys are not re-encoded (the SDK does not encode them). A key repeated on the wire keeps
    its last value, as the SDK's dict would.
    """
    merged = dict(params)
    return "&".join(f"{k}={quote(merged[k], safe='~')}" for k in sorted(merged))


def acs3_canonical_headers(
    headers: Mapping[str, Sequence[str]], signed: Sequence[str]
) -> str:
    """``name:value\\n`` per signed header: values stripped, repeats sorted and ``,``-joined.

    Args:
        headers: lowercase header name → every value received for it.
        signed: lowercase names listed in ``SignedHeaders`` (a missing header signs as empty).
    """
    lines = []
    for name in sorted(signed):
        values = sorted(v.strip() for v in headers.get(name, ()))
        lines.append(f"{name}:{','.join(values)}\n")
    return "".join(lines)


def acs3_canonical_request(
    method: str,
    path: str,
    params: Sequence[tuple[str, str]],
    headers: Mapping[str, Sequence[str]],
    signed: Sequence[str],
    body: bytes,
) -> str:
    """The ACS3 canonical request (``utils.get_authorization``) of a request as received."""
    return "\n".join(
        (
            method.upper(),
            path or "/",
            acs3_canonical_query(params),
            acs3_canonical_headers(headers, signed),
            ";".join(sorted(signed)),
            hashlib.sha256(body).hexdigest(),
        )
    )


def acs3_string_to_sign(canonical_request: str) -> str:
    """``"ACS3-HMAC-SHA256\\n" + hex(sha256(canonical_request))``."""
    digest = hashlib.sha256(canonical_request.encode("utf-8")).hexdigest()
    return f"{ACS3_ALGORITHM}\n{digest}"


def acs3_signature(secret: str, canonical_request: str) -> str:
    """``hex(HMAC-SHA256(secret, acs3_string_to_sign(canonical_request)))``."""
    string_to_sign = acs3_string_to_sign(canonical_request)
    return hmac.new(secret.encode(), string_to_sign.encode(), hashlib.sha256).hexdigest()


def verify_acs3(secret: str, auth: Acs3Authorization, canonical_request: str) -> bool:
    """True when ``auth.signature`` is the ACS3-HMAC-SHA256 signature of ``canonical_request``."""
    if auth.algorithm != ACS3_ALGORITHM:
        return False
    return hmac.compare_digest(acs3_signature(secret, canonical_request), auth.signature)


def rpc_string_to_sign(method: str, params: Sequence[tuple[str, str]]) -> str:
    """The RPC v1 string to sign over every parameter except ``Signature``."""
    merged = {k: v for k, v in params if k != "Signature"}
    pairs = "&".join(
        f"{quote(k, safe='~')}={quote(merged[k], safe='~')}" for k in sorted(merged)
    )
    return f"{method.upper()}&%2F&{quote_plus(pairs, safe='~')}"


def rpc_signature(secret: str, method: str, params: Sequence[tuple[str, str]]) -> str:
    """``base64(HMAC-SHA1(secret + "&", string_to_sign))`` (RPC v1, ``SignatureVersion=1.0``)."""
    mac = hmac.new(f"{secret}&".encode(), rpc_string_to_sign(method, params).encode(), "sha1")
    return base64.b64encode(mac.digest()).decode("ascii")


def verify_rpc(secret: str, method: str, params: Sequence[tuple[str, str]], sent: str) -> bool:
    """True when ``sent`` is the RPC v1 signature of ``params``."""
    return hmac.compare_digest(rpc_signature(secret, method, params).encode(), sent.encode())

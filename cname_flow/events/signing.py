"""Webhook signatures: HMAC-SHA256 over ``"<timestamp>.<body>"``, sent in one header.

The scheme is Stripe's (https://docs.stripe.com/webhooks#verify-manually), under our own header
names, so receivers can reuse what they know:

* ``CnameFlow-Signature: t=<unix seconds>,v1=<hex>``, where ``<hex>`` is
  ``HMAC-SHA256(key=secret, msg=f"{t}.".encode() + body)`` (RFC 2104 HMAC, FIPS 180-4 SHA-256)
  in lowercase hex, ``body`` being the exact bytes of the request body;
* each delivery attempt is signed afresh with its own ``t``, so a receiver can refuse old
  requests (``tolerance_s``) and a replay of a captured request fails once it is older;
* several ``v1=`` values may be present (a secret being rotated): one match is enough.

A receiver calls :func:`verify_signature` with the raw body, before parsing it (docs/events.md).
"""

from __future__ import annotations

import hashlib
import hmac
import time

from cname_flow.errors import InputError

#: The header carrying the signature.
SIGNATURE_HEADER = "CnameFlow-Signature"
#: The header carrying the event id (the same on every attempt: de-duplicate on it).
EVENT_ID_HEADER = "CnameFlow-Event-Id"
#: The header carrying the event type.
EVENT_TYPE_HEADER = "CnameFlow-Event-Type"

#: Default age, seconds, past which a signed request is refused (Stripe's default too).
DEFAULT_TOLERANCE_S = 300.0


class SignatureInvalid(InputError):
    """A webhook request's signature header is missing, malformed, too old, or does not match.

    The message says which, never showing the secret or the expected value.
    """


def signature(secret: str, timestamp: int, body: bytes) -> str:
    """The lowercase hex HMAC-SHA256 of ``f"{timestamp}."`` + ``body`` under ``secret`` (UTF-8)."""
    msg = str(timestamp).encode("ascii") + b"." + body
    return hmac.new(secret.encode("utf-8"), msg, hashlib.sha256).hexdigest()


def sign(secret: str, body: bytes, timestamp: int | None = None) -> str:
    """The :data:`SIGNATURE_HEADER` value for ``body``: ``"t=<unix>,v1=<hex>"``.

    Args:
        secret: the endpoint's shared secret.
        body: the exact request body bytes.
        timestamp: unix seconds; now when None.
    """
    t = int(time.time()) if timestamp is None else timestamp
    return f"t={t},v1={signature(secret, t, body)}"


def _parse(header: str) -> tuple[int, list[str]]:
    stamp: int | None = None
    sigs: list[str] = []
    for part in header.split(","):
        key, sep, value = part.strip().partition("=")
        if not sep:
            continue
        if key == "t":
            try:
                stamp = int(value)
            except ValueError:
                raise SignatureInvalid(f"{SIGNATURE_HEADER}: t= is not unix seconds") from None
        elif key == "v1":
            sigs.append(value.strip().lower())
    if stamp is None:
        raise SignatureInvalid(f"{SIGNATURE_HEADER}: no t= timestamp")
    if not sigs:
        raise SignatureInvalid(f"{SIGNATURE_HEADER}: no v1= signature")
    return stamp, sigs


def verify_signature(
    secret: str, header: str | None, body: bytes, tolerance_s: float = DEFAULT_TOLERANCE_S, *,
    now: float | None = None,
) -> int:
    """Check a webhook request's :data:`SIGNATURE_HEADER` against its raw body.

    Args:
        secret: the endpoint's shared secret (as configured at the sender).
        header: the header's value, or None when the request had none.
        body: the request body exactly as received (before any JSON parsing).
        tolerance_s: the largest age (and clock skew ahead) accepted, seconds; 0 or less
            turns the age check off (not advised: it is the replay protection).
        now: unix seconds (injected for tests); the system clock when None.

    Returns:
        The signed timestamp, unix seconds.

    Raises:
        SignatureInvalid: no header, a malformed one, a timestamp outside ``tolerance_s``, or
            no ``v1`` value matching (compared in constant time, :func:`hmac.compare_digest`).
    """
    if not header:
        raise SignatureInvalid(f"no {SIGNATURE_HEADER} header")
    stamp, sigs = _parse(header)
    current = time.time() if now is None else now
    if tolerance_s > 0 and abs(current - stamp) > tolerance_s:
        raise SignatureInvalid(
            f"{SIGNATURE_HEADER}: timestamp {stamp} is {current - stamp:.0f} s away from now "
            f"(tolerance {tolerance_s:g} s): a replay or a clock off")
    expected = signature(secret, stamp, body)
    if not any(hmac.compare_digest(expected, s) for s in sigs):
        raise SignatureInvalid(f"{SIGNATURE_HEADER}: no v1 signature matches the body "
                               "(wrong secret, or the body was changed)")
    return stamp


__all__ = [
    "DEFAULT_TOLERANCE_S",
    "EVENT_ID_HEADER",
    "EVENT_TYPE_HEADER",
    "SIGNATURE_HEADER",
    "SignatureInvalid",
    "sign",
    "signature",
    "verify_signature",
]

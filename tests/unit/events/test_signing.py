"""Webhook signatures: the Stripe-style ``t=,v1=`` header over ``"<t>.<body>"``."""

from __future__ import annotations

import hashlib
import hmac

import pytest

from cname_flow.events.signing import SignatureInvalid, sign, signature, verify_signature

SECRET = "whsec-test-0123456789"
BODY = b'{"schema":"cname-flow/event/v1","id":"evt_1","type":"binding.verified"}'


def test_the_signature_is_hmac_sha256_over_timestamp_dot_body() -> None:
    expected = hmac.new(SECRET.encode(), b"1764590400." + BODY, hashlib.sha256).hexdigest()
    assert signature(SECRET, 1764590400, BODY) == expected
    assert sign(SECRET, BODY, 1764590400) == f"t=1764590400,v1={expected}"


def test_a_fresh_signature_verifies_and_returns_its_timestamp() -> None:
    header = sign(SECRET, BODY, 1000)
    assert verify_signature(SECRET, header, BODY, 300, now=1100) == 1000


@pytest.mark.parametrize(("secret", "body", "why"), [
    ("another-secret", BODY, "no v1 signature matches"),
    (SECRET, BODY + b" ", "no v1 signature matches"),
])
def test_a_wrong_secret_or_a_changed_body_is_refused(secret: str, body: bytes, why: str) -> None:
    header = sign(SECRET, BODY, 1000)
    with pytest.raises(SignatureInvalid, match=why) as err:
        verify_signature(secret, header, body, 300, now=1000)
    assert SECRET not in str(err.value) and signature(SECRET, 1000, BODY) not in str(err.value)


@pytest.mark.parametrize("now", [1000 + 301, 1000 - 301])
def test_a_timestamp_outside_the_tolerance_is_refused(now: int) -> None:
    header = sign(SECRET, BODY, 1000)
    with pytest.raises(SignatureInvalid, match="tolerance 300 s"):
        verify_signature(SECRET, header, BODY, 300, now=now)
    assert verify_signature(SECRET, header, BODY, 301, now=now) == 1000
    assert verify_signature(SECRET, header, BODY, 0, now=now + 10**6) == 1000  # check off


@pytest.mark.parametrize(("header", "why"), [
    (None, "no CnameFlow-Signature header"),
    ("", "no CnameFlow-Signature header"),
    ("v1=abc", "no t= timestamp"),
    ("t=1000", "no v1= signature"),
    ("t=soon,v1=abc", "not unix seconds"),
])
def test_a_malformed_header_is_refused_naming_what_is_missing(header: str | None,
                                                              why: str) -> None:
    with pytest.raises(SignatureInvalid, match=why):
        verify_signature(SECRET, header, BODY, 300, now=1000)


def test_one_matching_v1_among_several_is_enough_during_a_secret_rotation() -> None:
    old = signature("old-secret", 1000, BODY)
    new = signature(SECRET, 1000, BODY)
    header = f"t=1000, v1={old}, v1={new.upper()}"
    assert verify_signature(SECRET, header, BODY, 300, now=1000) == 1000
    assert verify_signature("old-secret", header, BODY, 300, now=1000) == 1000

"""The server-side ACS3 / RPC v1 verifier agrees with the signatures the real SDK computes."""

from __future__ import annotations

import hashlib
from types import SimpleNamespace
from urllib.parse import parse_qsl, urlencode

import pytest
from alibabacloud_tea_openapi.utils import Utils
from hypothesis import given
from hypothesis import strategies as st

from cname_flow.sandbox.alidns.signing import (
    EMPTY_SHA256,
    MalformedAuthorization,
    acs3_canonical_headers,
    acs3_canonical_query,
    acs3_canonical_request,
    parse_acs3_authorization,
    rpc_signature,
    verify_acs3,
    verify_rpc,
)

SECRET = "unit-test-secret"
BASE_HEADERS = {
    "host": "127.0.0.1:59801",
    "x-acs-version": "2015-01-09",
    "x-acs-action": "AddDomainRecord",
    "user-agent": "AlibabaCloud (Linux; x86_64) Python/3.11.7 Core/0.4.3 TeaDSL/2",
    "x-acs-date": "2026-11-21T09:53:24Z",
    "x-acs-signature-nonce": "af1171849196f7f560773ce3e96f611f",
    "accept": "application/json",
    "x-acs-content-sha256": EMPTY_SHA256,
    "x-acs-credentials-provider": "static_ak",
}
QUERY = {"DomainName": "example.com", "RR": "_dnsauth.img", "TTL": "600", "Type": "TXT",
         "Value": "tok en*~/+=&é"}


def sdk_authorization(query: dict[str, str], headers: dict[str, str]) -> str:
    request = SimpleNamespace(pathname="/", method="POST", query=query, headers=headers)
    return str(Utils.get_authorization(request, "ACS3-HMAC-SHA256", EMPTY_SHA256, "AK", SECRET))


def as_received(query: dict[str, str], headers: dict[str, str]) -> tuple[
    list[tuple[str, str]], dict[str, list[str]]
]:
    """What the server sees: the urlencoded wire query decoded again, headers as lists."""
    wire = urlencode(query)  # quote_plus, as darabonba's compose_url
    return parse_qsl(wire, keep_blank_values=True), {k: [v] for k, v in headers.items()}


def server_verifies(query: dict[str, str], headers: dict[str, str], auth_header: str,
                    secret: str = SECRET) -> bool:
    pairs, received = as_received(query, headers)
    auth = parse_acs3_authorization(auth_header)
    canonical = acs3_canonical_request("POST", "/", pairs, received, auth.signed_headers, b"")
    return verify_acs3(secret, auth, canonical)


def test_canonical_request_matches_the_captured_sdk_request() -> None:
    pairs, received = as_received(QUERY, BASE_HEADERS)
    canonical = acs3_canonical_request("POST", "/", pairs, received, sorted(received), b"")
    lines = canonical.split("\n")
    assert lines[:3] == [
        "POST", "/",
        "DomainName=example.com&RR=_dnsauth.img&TTL=600&Type=TXT"
        "&Value=tok%20en%2A~%2F%2B%3D%26%C3%A9",
    ]
    assert lines[3] == "accept:application/json"
    assert lines[-2] == ";".join(sorted(BASE_HEADERS))
    assert lines[-1] == EMPTY_SHA256


def test_sdk_signature_verifies() -> None:
    assert server_verifies(QUERY, BASE_HEADERS, sdk_authorization(QUERY, BASE_HEADERS))


def test_sts_headers_are_part_of_the_signature() -> None:
    headers = BASE_HEADERS | {"x-acs-security-token": "tok", "x-acs-accesskey-id": "AK"}
    auth = sdk_authorization(QUERY, headers)
    assert server_verifies(QUERY, headers, auth)
    assert not server_verifies(QUERY, headers | {"x-acs-security-token": "other"}, auth)


@pytest.mark.parametrize(
    ("query_change", "header_change"),
    [
        ({"Value": "tampered"}, {}),
        ({"Extra": "1"}, {}),
        ({}, {"x-acs-action": "DeleteDomainRecord"}),
        ({}, {"host": "evil.example:80"}),
    ],
)
def test_tampering_breaks_the_signature(
    query_change: dict[str, str], header_change: dict[str, str]
) -> None:
    auth = sdk_authorization(QUERY, BASE_HEADERS)
    assert not server_verifies(QUERY | query_change, BASE_HEADERS | header_change, auth)


def test_wrong_secret_and_wrong_algorithm_fail() -> None:
    auth = sdk_authorization(QUERY, BASE_HEADERS)
    assert not server_verifies(QUERY, BASE_HEADERS, auth, secret="other")
    sm3 = auth.replace("ACS3-HMAC-SHA256", "ACS3-HMAC-SM3", 1)
    assert not server_verifies(QUERY, BASE_HEADERS, sm3)


def test_unsigned_extra_headers_are_ignored() -> None:
    auth = sdk_authorization(QUERY, BASE_HEADERS)
    assert server_verifies(QUERY, BASE_HEADERS | {"accept-encoding": "identity"}, auth)


def test_body_hash_is_checked() -> None:
    pairs, received = as_received(QUERY, BASE_HEADERS)
    auth = parse_acs3_authorization(sdk_authorization(QUERY, BASE_HEADERS))
    canonical = acs3_canonical_request("POST", "/", pairs, received, auth.signed_headers, b"x")
    assert not verify_acs3(SECRET, auth, canonical)
    assert canonical.endswith(hashlib.sha256(b"x").hexdigest())


def test_parse_authorization() -> None:
    auth = parse_acs3_authorization(
        "ACS3-HMAC-SHA256 Credential=AK,SignedHeaders=host;X-Acs-Date,Signature=ABCD"
    )
    assert auth.access_key_id == "AK"
    assert auth.signed_headers == ("host", "x-acs-date")
    assert auth.signature == "abcd"


@pytest.mark.parametrize(
    "header",
    ["", "ACS3-HMAC-SHA256", "ACS3-HMAC-SHA256 Credential=AK,Signature=ab",
     "ACS3-HMAC-SHA256 Credential=,SignedHeaders=host,Signature=ab"],
)
def test_malformed_authorization(header: str) -> None:
    with pytest.raises(MalformedAuthorization):
        parse_acs3_authorization(header)


def test_canonical_headers_join_repeats_sorted_and_strip() -> None:
    text = acs3_canonical_headers({"b": [" 2 ", "1"], "a": ["x"]}, ["b", "a", "c"])
    assert text == "a:x\nb:1,2\nc:\n"


def test_rpc_signature_matches_the_sdk() -> None:
    params = QUERY | {
        "Action": "AddDomainRecord", "Format": "json", "Version": "2015-01-09",
        "Timestamp": "2026-11-21T09:55:21Z", "SignatureNonce": "n",
        "SignatureMethod": "HMAC-SHA1", "SignatureVersion": "1.0", "AccessKeyId": "AK",
    }
    sdk = Utils.get_rpcsignature(params, "POST", SECRET)
    wire = parse_qsl(urlencode(params | {"Signature": sdk}), keep_blank_values=True)
    assert rpc_signature(SECRET, "POST", wire) == sdk
    assert verify_rpc(SECRET, "POST", wire, sdk)
    assert not verify_rpc(SECRET, "GET", wire, sdk)
    assert not verify_rpc("other", "POST", wire, sdk)


@given(st.dictionaries(
    st.text(st.characters(min_codepoint=0x21, max_codepoint=0x7E, exclude_characters="=&"),
            min_size=1, max_size=8),
    st.text(max_size=20), max_size=6,
))
def test_any_query_round_trips_through_the_wire(query: dict[str, str]) -> None:
    """Whatever the SDK signs, the decoded-then-re-encoded wire query signs the same."""
    auth = sdk_authorization(query, BASE_HEADERS)
    assert server_verifies(query, BASE_HEADERS, auth)


def test_canonical_query_keeps_the_last_repeat() -> None:
    assert acs3_canonical_query([("a", "1"), ("a", "2 3")]) == "a=2%203"

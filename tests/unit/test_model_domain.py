"""The domain check every entry point shares (:func:`cname_flow.model.normalize_domain`)."""

from __future__ import annotations

import pytest

from cname_flow.errors import InputError
from cname_flow.model import normalize_domain


@pytest.mark.parametrize(("raw", "expected"), [
    ("Example.COM", "example.com"),
    ("example.com.", "example.com"),
    ("例子.中国", "xn--fsqu00a.xn--fiqs8s"),
    ("XN--FSQU00A.xn--fiqs8s", "xn--fsqu00a.xn--fiqs8s"),
    ("123.example.com", "123.example.com"),       # RFC 1123: a numeric label is fine...
    ("1.2.3.example.com", "1.2.3.example.com"),
    ("example.xn--fiqs8s", "example.xn--fiqs8s"),
])
def test_host_names_are_accepted_as_a_labels(raw: str, expected: str) -> None:
    assert normalize_domain(raw) == expected


@pytest.mark.parametrize("raw", ["1.2.3.4", "10.0.0.1.", "::1", "[2001:db8::1]", "fe80::1"])
def test_ip_addresses_are_refused_by_name(raw: str) -> None:
    with pytest.raises(InputError, match="IP address cannot be a custom domain"):
        normalize_domain(raw)


@pytest.mark.parametrize("raw", ["example.123", "1.2.3.0x4", "0x7f.0x1", "a.b.0x", "999.999"])
def test_a_numeric_last_label_is_refused(raw: str) -> None:
    """...but a numeric TLD is not (RFC 3696 §2), and URL parsers read these as IPv4."""
    with pytest.raises(InputError, match=r"last label .* is numeric"):
        normalize_domain(raw)


@pytest.mark.parametrize("raw", ["example.com..", "example.com. .", ".example.com", "a..b.com"])
def test_empty_labels_are_refused_trailing_dots_included(raw: str) -> None:
    with pytest.raises(InputError):
        normalize_domain(raw)


@pytest.mark.parametrize("raw", ["\ud800.com", "xn--" + "a" * 70 + ".com", "a" * 300 + ".com"])
def test_codec_failures_are_input_errors(raw: str) -> None:
    with pytest.raises(InputError, match="not a valid IDNA name"):
        normalize_domain(raw)

"""The base-URL rule the PowerDNS (no path) and Cloudflare (a path) settings share."""

from __future__ import annotations

import pytest

from cname_flow.config.dns_sections import http_url


@pytest.mark.parametrize(
    ("value", "path", "expected"),
    [("http://127.0.0.1:8081/", False, "http://127.0.0.1:8081"),
     (" https://api.example/client/v4/ ", True, "https://api.example/client/v4")],
)
def test_a_base_url_should_come_back_without_its_trailing_slash(
    value: str, path: bool, expected: str
) -> None:
    assert http_url(value, path=path) == expected


@pytest.mark.parametrize(
    ("value", "path", "words"),
    [("http://h/api", False, "the API path is added"),
     ("ftp://h", True, "expected http(s)"),
     ("http://h:99999", False, "1..65535"),
     ("http://user@h/v4", True, "scheme, host, port and path"),
     ("http://h/v4?x=1", True, "scheme, host, port and path")],
)
def test_a_bad_base_url_should_say_what_is_wrong(value: str, path: bool, words: str) -> None:
    with pytest.raises(ValueError, match=words.replace("(", r"\(").replace(")", r"\)")):
        http_url(value, path=path)

"""Fuzzing the input boundary of names (issue 13): domains, buckets, regions, route targets.

Generated unicode text, IP-like strings, labels of random length and mixed scripts go through
the public validators (:mod:`cname_flow.names`, :func:`cname_flow.model.normalize_domain`) and
through :func:`cname_flow.api.make_binding`. Properties:

- the only exceptions are :class:`~cname_flow.errors.CnameFlowError` subclasses (exit 2 at the
  command line), never a ``UnicodeError``, ``ValueError`` or ``IndexError`` from below;
- whatever is accepted is well formed (an LDH A-label host name of 2+ labels, a bucket name OSS
  allows, a region id of the documented shape);
- a name accepted for a destructive command round-trips: the name acted on is the typed one,
  up to ASCII whitespace at the ends, one trailing dot, lowercase and NFC (what is printed,
  the binding's domain and key, is what is acted on).

``hypothesis.event`` labels each outcome, so ``--hypothesis-show-statistics`` shows how many
examples were accepted and refused.
"""

from __future__ import annotations

import ipaddress
import re
import unicodedata

import idna
from hypothesis import event, given
from hypothesis import strategies as st

from cname_flow import api, service
from cname_flow.config import load_settings
from cname_flow.errors import CnameFlowError, InputError
from cname_flow.model import Binding, normalize_domain
from cname_flow.names import (
    check_bucket,
    check_region,
    check_route_target,
    domain_warnings,
    hidden_changes,
    mixed_scripts,
    visible_domain,
)
from tests.fuzz.budget import FUZZ

SETTINGS = load_settings(None, {})
HOST_LABEL = re.compile(r"^(?!-)[a-z0-9-]{1,63}(?<!-)$")

# -- strategies ----------------------------------------------------------------------------------

#: Characters that make names interesting: LDH, uppercase, look-alikes of other scripts (Cyrillic
#: а е о р, Greek ο), CJK and kana, Hangul, invisible and mapped ones (ZWSP, soft hyphen, ZWNJ,
#: ZWJ, variation selector, fullwidth letters, ideographic and fullwidth full stops, ideographic
#: space), a combining accent, a virama, URL punctuation.
SPICE = ("abcxyz019-ABCZ.аеорοσΣß例子中国かカー한" "\u200b\u00ad\u200c\u200d\ufe0f"
         "ｅＡ\u3002\uff0e\u3000\u0301\u094d\u0915_/:@ ")

spice = st.sampled_from(SPICE)
any_char = st.characters(codec=None, exclude_categories=())   # surrogates included
label = st.text(st.one_of(spice, spice, any_char), min_size=0, max_size=16)
long_label = st.integers(55, 70).map(lambda n: "a" * n)
dotted = st.lists(st.one_of(label, long_label), min_size=1, max_size=5).map(".".join)
ldh_label = st.text("abcxyz0189-", min_size=1, max_size=12)
host = st.lists(ldh_label, min_size=2, max_size=4).map(".".join)
good_label = st.tuples(st.text("abcxyz0189", min_size=1, max_size=8),
                       st.sampled_from(["", "-", "--"]),
                       st.text("abz09", min_size=1, max_size=4)).map(
    lambda t: t[0] + t[1] + t[2] if t[1] else t[0])
good_host = st.tuples(st.lists(good_label, min_size=1, max_size=3),
                      st.text("abcz", min_size=2, max_size=5)).map(
    lambda t: ".".join([*t[0], t[1]]))

#: Letters of one script each (with capitals where the script has case), for U-label names that
#: should be accepted as they are typed.
SCRIPTS = ("abcéüßàçñ", "ΑΒΓαβγδεζσ", "АБВабвгдежщ", "例子中国漢字かなカナー", "한국어", "कखगि्",
           "אבגד", "ابتث")
unicode_label = st.sampled_from(SCRIPTS).flatmap(lambda a: st.text(a, min_size=1, max_size=8))
unicode_host = st.tuples(st.lists(unicode_label, min_size=1, max_size=2),
                         st.sampled_from(["com", "中国", "рф", "ελ", "Com."])).map(
    lambda t: ".".join([*t[0], t[1]]))


@st.composite
def near_misses(draw: st.DrawFn) -> str:
    """A valid name (LDH or Unicode) with one character of :data:`SPICE` (or any) slipped in."""
    name = draw(st.one_of(good_host, unicode_host))
    at = draw(st.integers(0, len(name)))
    return name[:at] + draw(st.one_of(spice, spice, any_char)) + name[at:]


octet = st.integers(0, 0x1FF).flatmap(lambda n: st.sampled_from([str(n), hex(n), f"0{n:o}"]))
ip_like = st.one_of(
    st.ip_addresses().map(str),
    st.ip_addresses(v=6).map(lambda a: f"[{a}]"),
    st.lists(octet, min_size=2, max_size=5).map(".".join),
)
domains = st.one_of(host, unicode_host, near_misses(), near_misses(), dotted, ip_like,
                    st.text(any_char, max_size=20),
                    st.tuples(host, st.sampled_from(["", ".", " ", "\n", ".."])).map("".join))
buckets = st.one_of(st.text(st.one_of(spice, any_char), max_size=70),
                    st.text("abz09-", min_size=1, max_size=66))
regions = st.one_of(st.text(st.one_of(spice, any_char), max_size=20),
                    st.lists(st.text("abz09", max_size=8), min_size=1, max_size=5)
                    .map("-".join),
                    st.tuples(st.text("abz", min_size=1, max_size=4),
                              st.lists(st.text("abz09", min_size=1, max_size=8), min_size=1,
                                       max_size=3)).map(lambda t: "-".join([t[0], *t[1]])),
                    st.integers(50, 64).map(lambda n: "cn-" + "a" * n))
targets = st.one_of(domains, st.tuples(st.sampled_from(["http://", "https://", "", "a@"]), host,
                                       st.sampled_from(["", "/", "/x", ":443", "?q", "#f"]))
                    .map("".join))


def mostly(valid: st.SearchStrategy[str], fuzzed: st.SearchStrategy[str],
           ) -> st.SearchStrategy[str]:
    """``valid`` most of the time, so whole bindings get built as well as refused."""
    return st.integers(0, 7).flatmap(lambda i: fuzzed if i == 7 else valid)


def outcome(fn: object, *args: object) -> object:
    """Call ``fn``; an error must be ours (returned, and counted as an event)."""
    try:
        result = fn(*args)  # type: ignore[operator]
    except CnameFlowError as exc:
        event(f"refused: {type(exc).__name__}")
        return exc
    event("accepted")
    return result


def assert_host_name(name: str) -> None:
    labels = name.split(".")
    assert name.isascii() and name == name.lower() and len(name) <= 253 and len(labels) >= 2
    assert all(HOST_LABEL.match(lb) for lb in labels), name
    assert not re.fullmatch(r"[0-9]+|0x[0-9a-f]*", labels[-1])
    try:
        ipaddress.ip_address(name)
    except ValueError:
        return
    raise AssertionError(f"{name} is an IP address")


def typed_forms(raw: str) -> list[str]:
    """The typed name as the user sees it, labels lowercased (all, or ASCII only) and NFC."""
    text = raw.strip(" \t\r\n")
    text = text[:-1] if text.endswith(".") else text
    return [unicodedata.normalize("NFC", form) for form in (
        "".join(c.lower() for c in text),
        "".join(c.lower() if c.isascii() else c for c in text))]


# -- domains -------------------------------------------------------------------------------------

@FUZZ
@given(domains)
def test_domains_are_host_names_or_refused(raw: str) -> None:
    result = outcome(normalize_domain, raw)
    if isinstance(result, str):
        assert_host_name(result)
        assert outcome(normalize_domain, result) == result     # idempotent
        assert isinstance(domain_warnings(raw), list)
    else:
        assert isinstance(result, InputError)


@FUZZ
@given(domains)
def test_destructive_names_round_trip(raw: str) -> None:
    result = outcome(visible_domain, raw)
    if not isinstance(result, str):
        return
    event("accepted with a U-label" if not raw.isascii() else "accepted in ASCII")
    assert result == normalize_domain(raw) and hidden_changes(raw) == []
    alabels = result.split(".")
    forms = [form.split(".") for form in typed_forms(raw)]
    assert all(len(labels) == len(alabels) for labels in forms)
    for i, alabel in enumerate(alabels):
        encoded = set()
        for labels in forms:
            try:
                encoded.add(idna.encode(labels[i]).decode("ascii"))  # IDNA 2008, no mapping
            except idna.IDNAError:
                continue
        assert alabel in encoded, (raw, alabel, [labels[i] for labels in forms])
        if not forms[0][i].isascii():
            assert mixed_scripts(alabel) == []
    binding = service.make_binding(SETTINGS, raw, bucket="examplebucket", destructive=True)
    assert (binding.domain, binding.key) == (result, f"examplebucket/{result}")


@FUZZ
@given(st.lists(st.sampled_from("abceopxyаеорсхуοαβ例かカ한-1"), min_size=1, max_size=12)
       .map("".join), st.sampled_from(["com", "рф", "中国"]))
def test_mixed_script_labels_are_refused_in_unicode_and_taken_as_a_labels(
        first: str, tld: str) -> None:
    raw = f"{first}.{tld}"
    try:
        name = normalize_domain(raw)
    except InputError:
        event("not a name")
        return
    mixed = mixed_scripts(name)
    event("mixed scripts: refused" if mixed else "single script: accepted")
    try:
        assert visible_domain(raw) == name and not mixed    # typed in Unicode: taken iff
    except InputError as exc:                               # single-script
        assert mixed and "give the A-label form" in str(exc)
    assert visible_domain(name) == name                      # the A-label form is always taken


# -- buckets, regions, route targets -------------------------------------------------------------

@FUZZ
@given(buckets)
def test_buckets_follow_the_oss_rules_or_are_refused(raw: str) -> None:
    result = outcome(check_bucket, raw)
    rule = re.fullmatch(r"[a-z0-9][a-z0-9-]{1,61}[a-z0-9]", raw) is not None
    assert (result == raw) is rule
    assert isinstance(result, str | InputError)


@FUZZ
@given(regions)
def test_regions_have_the_documented_shape_or_are_refused(raw: str) -> None:
    result = outcome(check_region, raw)
    shape = re.fullmatch(r"[a-z]{2,}(-[a-z0-9]+)+", raw) is not None and len(raw) <= 59
    assert (result == raw) is shape
    assert isinstance(result, str | InputError)


@FUZZ
@given(targets)
def test_route_targets_are_host_names_or_refused(raw: str) -> None:
    result = outcome(check_route_target, raw)
    if isinstance(result, str):
        assert_host_name(result)
        assert not any(mark in raw for mark in ("://", "/", "@", "?", "#"))
    else:
        assert isinstance(result, InputError)


# -- through the library's make_binding ----------------------------------------------------------

@FUZZ
@given(domain=mostly(st.one_of(good_host, unicode_host), domains),
       bucket=mostly(st.just("examplebucket"), st.one_of(st.none(), buckets)),
       region=mostly(st.sampled_from([None, "ap-southeast-1"]), regions),
       target=st.one_of(st.none(), mostly(good_host, targets)),
       cert=st.sampled_from([(None, None, None), (None, None, None),
                             ("4930000-cn-hangzhou", None, None), (None, "a.pem", "a.key"),
                             (None, "a.pem", None), ("1-cn-hangzhou", None, "a.key")]))
def test_api_make_binding_builds_valid_bindings_or_refuses(
        domain: str, bucket: str | None, region: str | None, target: str | None,
        cert: tuple[str | None, str | None, str | None]) -> None:
    cert_id, cert_file, key_file = cert
    result = outcome(lambda: api.make_binding(
        SETTINGS, domain, bucket=bucket, region=region, route=True, route_target=target,
        cert_id=cert_id, cert_file=cert_file, key_file=key_file))
    if not isinstance(result, Binding):
        assert isinstance(result, InputError)
        return
    assert_host_name(result.domain)
    assert result.domain == normalize_domain(domain)
    assert bucket is not None and check_bucket(result.bucket) == bucket
    assert result.region == (region or "") and (not region or check_region(region) == region)
    if target:
        assert_host_name(result.route_target)
        assert result.route_target == normalize_domain(target) != result.domain
    assert result.certificate is None or (result.certificate.cert_id is None) == (
        result.certificate.cert_file is not None and result.certificate.key_file is not None)

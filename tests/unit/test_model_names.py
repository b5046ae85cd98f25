"""The one validation pass of names and options (:mod:`cname_flow.names`), and that every place
building a binding from user input goes through it (issue 13)."""

from __future__ import annotations

from pathlib import Path

import pytest

from cname_flow import api, service
from cname_flow.config import load_settings
from cname_flow.config.settings import Settings
from cname_flow.errors import ConfigError, InputError
from cname_flow.manifest import load_manifest
from cname_flow.model import BindingOptions, CertificateSpec, normalize_domain
from cname_flow.names import (
    build_binding,
    check_bucket,
    check_certificate_spec,
    check_region,
    check_route_target,
    domain_warnings,
    mixed_scripts,
    visible_domain,
)


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    config = tmp_path / "cname-flow.yaml"
    config.write_text(f"journal:\n  dir: {tmp_path / 'journal'}\n"
                      "defaults:\n  bucket: examplebucket\n", encoding="utf-8")
    return load_settings(config)


# -- buckets -------------------------------------------------------------------------------------

@pytest.mark.parametrize("name", ["abc", "examplebucket", "a-1", "0" * 63, "my-bucket-2024"])
def test_bucket_names_oss_allows(name: str) -> None:
    assert check_bucket(name) == name


@pytest.mark.parametrize(("name", "why"), [
    ("a/b", "not '/'"),
    ("Bad_Bucket", "not 'B' '_'"),
    ("ab", "2 characters"),
    ("a" * 64, "64 characters"),
    ("", "0 characters"),
    ("-abc", "start and end"),
    ("abc-", "start and end"),
    ("exa mple", "not ' '"),
    ("ex\u0430mple", "not '\u0430'"),
])
def test_bucket_names_oss_forbids(name: str, why: str) -> None:
    with pytest.raises(InputError, match="bucket") as caught:
        check_bucket(name)
    assert why in str(caught.value)


# -- regions -------------------------------------------------------------------------------------

@pytest.mark.parametrize("region", ["cn-hangzhou", "ap-southeast-1", "us-west-1", "eu-central-1",
                                    "cn-hongkong", "rg-china-mainland", "cn-beijing-finance-1",
                                    "xx-newregion-9"])
def test_region_ids_of_the_right_shape(region: str) -> None:
    assert check_region(region) == region


@pytest.mark.parametrize("region", ["x y", "hangzhou", "CN-Hangzhou", "cn_hangzhou", "cn-",
                                    "-cn-hangzhou", "cn--hangzhou", "1n-hangzhou", "cn-hangzhou ",
                                    "cn-" + "a" * 57, "oss-cn-hangzhou.aliyuncs.com"])
def test_region_ids_of_another_shape(region: str) -> None:
    with pytest.raises(InputError, match="not an OSS region id"):
        check_region(region)


# -- route targets -------------------------------------------------------------------------------

@pytest.mark.parametrize(("raw", "expected"), [
    ("cdn.example.net", "cdn.example.net"),
    ("ExampleBucket.OSS-cn-hangzhou.aliyuncs.com.", "examplebucket.oss-cn-hangzhou.aliyuncs.com"),
    ("例子.example.net", "xn--fsqu00a.example.net"),
])
def test_route_targets_are_host_names(raw: str, expected: str) -> None:
    assert check_route_target(raw) == expected


@pytest.mark.parametrize(("raw", "why"), [
    ("evil", "at least two labels"),
    ("http://evil/", "not a URL (a scheme)"),
    ("https://cdn.example.net", "not a URL (a scheme)"),
    ("cdn.example.net/x", "not a URL (a path)"),
    ("cdn.example.net:443", "takes no port"),
    ("user@cdn.example.net", "not a URL (user info)"),
    ("1.2.3.4", "IP address"),
    ("::1", "IP address"),
    ("cdn_x.example.net", "not a valid"),
    ("", "empty name"),
])
def test_route_targets_that_are_not_host_names(raw: str, why: str) -> None:
    with pytest.raises(InputError, match="route target") as caught:
        check_route_target(raw)
    assert why in str(caught.value)


def test_a_route_target_cannot_be_the_domain_itself() -> None:
    with pytest.raises(InputError, match="to itself"):
        build_binding("www.example.com", bucket="examplebucket",
                      options=BindingOptions(route=True, route_target="WWW.example.com."))


# -- certificates --------------------------------------------------------------------------------

def test_a_cas_id_and_files_together_are_refused() -> None:
    for spec in (CertificateSpec(Path("a.pem"), Path("a.key"), "4930000-cn-hangzhou"),
                 CertificateSpec(Path("a.pem"), None, "4930000-cn-hangzhou"),
                 CertificateSpec(None, Path("a.key"), "4930000-cn-hangzhou")):
        with pytest.raises(InputError, match="not both"):
            check_certificate_spec(spec)


def test_half_a_certificate_is_refused_and_whole_ones_pass() -> None:
    with pytest.raises(InputError, match="both --cert-file and --key-file"):
        check_certificate_spec(CertificateSpec(cert_file=Path("a.pem")))
    for spec in (None, CertificateSpec(cert_id="4930000-cn-hangzhou"),
                 CertificateSpec(Path("a.pem"), Path("a.key"))):
        assert check_certificate_spec(spec) is spec


# -- every builder goes through the pass ---------------------------------------------------------

BAD_FIELDS = [
    ({"region": "x y"}, "region 'x y'"),
    ({"bucket": "a/b"}, "bucket 'a/b'"),
    ({"bucket": "Bad_Bucket"}, "bucket 'Bad_Bucket'"),
    ({"route_target": "evil"}, "route target 'evil'"),
    ({"route_target": "http://evil/"}, "route target 'http://evil/'"),
    ({"cert_id": "4930000-cn-hangzhou", "cert_file": "a.pem", "key_file": "a.key"}, "not both"),
]


@pytest.mark.parametrize(("fields", "needle"), BAD_FIELDS)
def test_api_make_binding_refuses(settings: Settings, fields: dict[str, str], needle: str) -> None:
    with pytest.raises(InputError) as caught:
        api.make_binding(settings, "www.example.com", **fields)  # type: ignore[arg-type]
    assert needle in str(caught.value)


@pytest.mark.parametrize(("fields", "needle"), BAD_FIELDS)
def test_manifest_rows_are_refused_with_their_line(tmp_path: Path, fields: dict[str, str],
                                                   needle: str) -> None:
    cells = "".join(f"\n    {k}: {v!r}" for k, v in fields.items())
    path = tmp_path / "m.yaml"
    path.write_text("defaults:\n  bucket: examplebucket\nbindings:\n  - domain: ok.example.com\n"
                    f"  - domain: www.example.com{cells}\n", encoding="utf-8")
    with pytest.raises(ConfigError) as caught:
        load_manifest(path)
    assert len(caught.value.reasons) == 1
    assert caught.value.reasons[0].startswith(f"{path}:5:") and needle in caught.value.reasons[0]


def test_a_bad_fallback_region_is_refused_with_every_other_problem(tmp_path: Path) -> None:
    path = tmp_path / "m.csv"
    path.write_text("domain,bucket\na.example.com,examplebucket\nb.example.com,x_y\n",
                    encoding="utf-8")
    with pytest.raises(ConfigError) as caught:
        load_manifest(path, region="Hangzhou")
    assert caught.value.reasons == [
        f"{path}:2: region 'Hangzhou': not an OSS region id (region ids look like cn-hangzhou "
        "or ap-southeast-1)",
        f"{path}:3: bucket 'x_y': OSS bucket names hold only lowercase letters, digits and "
        "hyphens, not '_' (give the bucket's name as OSS shows it)"]


def test_service_make_binding_normalises_what_it_accepts(settings: Settings) -> None:
    binding = service.make_binding(
        settings, "WWW.例子.com.", region="ap-southeast-1",
        options=BindingOptions(route=True, route_target="CDN.example.net."))
    assert (binding.domain, binding.bucket, binding.region, binding.route_target) == (
        "www.xn--fsqu00a.com", "examplebucket", "ap-southeast-1", "cdn.example.net")


# -- destructive commands act only on the name the user can see ----------------------------------

@pytest.mark.parametrize(("raw", "expected"), [
    ("example.com", "example.com"),
    (" Example.COM.\n", "example.com"),             # edge whitespace, case, one trailing dot
    ("例子.中国", "xn--fsqu00a.xn--fiqs8s"),          # U-labels
    ("XN--FSQU00A.xn--fiqs8s", "xn--fsqu00a.xn--fiqs8s"),
    ("e\u0301.com", "xn--9ca.com"),                 # NFC: the same text
    ("ΣΙΣΥΦΟΣ.gr", "xn--uxamkbbkh.gr"),             # case folding, letter by letter (σ, not ς)
    ("日本語かなカナ.jp", "xn--u8j2cyjqe154zcvb2w6i.jp"),  # Japanese mixes scripts UTS 39 allows
    ("한국어漢字.kr", "xn--p8s937b4q9bkkuslr.kr"),
    ("xn--pypal-4ve.com", "xn--pypal-4ve.com"),      # a mixed label, as an A-label
])
def test_visible_names_are_accepted(raw: str, expected: str) -> None:
    assert visible_domain(raw) == expected


@pytest.mark.parametrize(("raw", "needle"), [
    ("example\u200b.com", "U+200B ZERO WIDTH SPACE at position 8 is removed"),
    ("exam\u00adple.com", "U+00AD SOFT HYPHEN at position 5 is removed"),
    ("example.com\ufe0f", "U+FE0F VARIATION SELECTOR-16 at position 12 is removed"),
    ("\u3000example.com", "U+3000 IDEOGRAPHIC SPACE at position 1 becomes ' '"),
    ("例子。中国", "U+3002 IDEOGRAPHIC FULL STOP at position 3 becomes '.'"),
    ("ｅxample.com", "U+FF45 FULLWIDTH LATIN SMALL LETTER E at position 1 becomes 'e'"),
    ("ﬁsh.com", "U+FB01 LATIN SMALL LIGATURE FI at position 1 becomes 'fi'"),
    ("क्\u200cष.com", "U+200C ZERO WIDTH NON-JOINER at position 3 is invisible"),
])
def test_hidden_changes_are_refused_naming_the_code_point(raw: str, needle: str) -> None:
    assert normalize_domain(raw)                   # the lenient check lets each one through
    with pytest.raises(InputError) as caught:
        visible_domain(raw)
    assert needle in str(caught.value) and "act only on the name you can see" in str(caught.value)
    assert f"it would act on {normalize_domain(raw)}" in str(caught.value)


@pytest.mark.parametrize(("raw", "needle"), [
    ("p\u0430ypal.com", "label 'p\u0430ypal' mixes LATIN and CYRILLIC (U+0430 CYRILLIC SMALL "
                        "LETTER A at position 2)"),
    ("www.g\u03bfogle.com", "mixes LATIN and GREEK (U+03BF GREEK SMALL LETTER OMICRON"),
    ("\u0430pple.com", "mixes CYRILLIC and LATIN (U+0070 LATIN SMALL LETTER P at position 2)"),
])
def test_mixed_script_unicode_labels_are_refused_unless_given_as_a_labels(raw: str,
                                                                          needle: str) -> None:
    with pytest.raises(InputError, match="give the A-label form") as caught:
        visible_domain(raw)
    assert needle in str(caught.value)
    alabel = normalize_domain(raw)
    assert visible_domain(alabel) == alabel
    assert mixed_scripts(alabel) and needle.split(" (")[0] in mixed_scripts(alabel)[0]


def test_single_script_names_mix_nothing() -> None:
    for name in ("example.com", "xn--fsqu00a.xn--fiqs8s", "xn--80ak6aa92e.com", "a1-b2.com"):
        assert mixed_scripts(name) == []


def test_destructive_bindings_refuse_what_bind_warns_about(settings: Settings) -> None:
    raw = "example\u200b.com"
    assert service.make_binding(settings, raw).domain == "example.com"
    assert domain_warnings(raw) == ["U+200B ZERO WIDTH SPACE at position 8 is removed"]
    with pytest.raises(InputError, match="U\\+200B"):
        service.make_binding(settings, raw, destructive=True)
    assert service.make_binding(settings, "example.com", destructive=True).domain == "example.com"

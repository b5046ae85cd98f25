"""Certificate pre-flight, RFC 6125 matching, CAS ids, rotation plans and post-PutCname checks."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import NamedTuple

import pytest

from cname_flow.certs import (
    CertificatePlan,
    LocalCertificate,
    check_cas_cert_id,
    check_certificate,
    covers,
    plan_certificate,
    verify_bound_certificate,
)
from cname_flow.errors import CertificateError, InputError, UnsafePlan
from cname_flow.model import CertificateInfo
from tests.certgen import Issued, days, make_ca, make_cert, new_key, write_pem

SENTINEL = "SENTINEL0PRIVATE0KEY0MATERIAL0DO0NOT0LEAK"


def key_lines(pem: str) -> list[str]:
    """The base64 body lines of a PEM key: none may ever show up in text we produce."""
    return [line for line in pem.splitlines() if line and not line.startswith("-----")]


def assert_no_key(text: str, *pems: str) -> None:
    assert SENTINEL not in text
    for pem in pems:
        for line in key_lines(pem):
            assert line not in text


def refused(cert_file: Path, key_file: Path, domain: str = "example.com", **kw: object) -> str:
    """Run the pre-flight expecting a refusal; return the full message (with hint)."""
    with pytest.raises(CertificateError) as info:
        check_certificate(cert_file, key_file, domain, **kw)  # type: ignore[arg-type]
    err = info.value
    text = f"{err} | {err.message} | {err.hint} | {err!r}"
    assert_no_key(text, key_file.read_text() if key_file.is_file() else "")
    return text


@pytest.fixture(scope="module")
def ca() -> Issued:
    return make_ca()


@pytest.fixture(scope="module")
def leaf(ca: Issued) -> Issued:
    return make_cert(["example.com", "*.example.com"], issuer=ca)


# --------------------------------------------------------------------------- pre-flight: success


def test_check_certificate_when_valid_chain_should_return_leaf_facts(
    tmp_path: Path, ca: Issued, leaf: Issued
) -> None:
    cert_file, key_file = write_pem(tmp_path, leaf, chain=[ca])
    lc = check_certificate(cert_file, key_file, "img.example.com")
    assert lc.fingerprint == leaf.fingerprint
    assert lc.names == ("example.com", "*.example.com")
    assert lc.not_before == leaf.cert.not_valid_before_utc
    assert lc.not_after == leaf.cert.not_valid_after_utc
    assert lc.not_after.tzinfo is not None
    assert lc.chain_pem == leaf.cert_pem + ca.cert_pem
    assert lc.private_key_pem == leaf.key_pem
    assert lc.warnings == ()
    assert 89 < lc.days_left() < 90.1
    assert lc.days_left(lc.not_after - timedelta(days=2)) == pytest.approx(2.0)


def test_check_certificate_when_cert_file_also_holds_key_should_drop_key_from_chain(
    tmp_path: Path, leaf: Issued
) -> None:
    cert_file, key_file = write_pem(tmp_path, leaf)
    cert_file.write_text(leaf.cert_pem + leaf.key_pem)
    lc = check_certificate(cert_file, key_file, "example.com")
    assert lc.chain_pem == leaf.cert_pem
    assert_no_key(lc.chain_pem + repr(lc), leaf.key_pem)


def test_check_certificate_when_key_file_also_holds_cert_should_send_key_alone(
    tmp_path: Path, leaf: Issued
) -> None:
    cert_file, key_file = write_pem(tmp_path, leaf)
    key_file.write_text(leaf.cert_pem + leaf.key_pem)
    lc = check_certificate(cert_file, key_file, "example.com")
    assert lc.private_key_pem == leaf.key_pem


def test_check_certificate_when_pkcs1_rsa_key_should_keep_its_format(tmp_path: Path) -> None:
    from cryptography.hazmat.primitives import serialization as ser

    cert = make_cert(key_kind="rsa")
    cert_file, key_file = write_pem(tmp_path, cert)
    pkcs1 = cert.key.private_bytes(ser.Encoding.PEM, ser.PrivateFormat.TraditionalOpenSSL,
                                   ser.NoEncryption()).decode()
    key_file.write_text(pkcs1)
    lc = check_certificate(cert_file, key_file, "example.com")
    assert lc.private_key_pem == pkcs1
    assert lc.private_key_pem.startswith("-----BEGIN RSA PRIVATE KEY-----")


def test_local_certificate_repr_and_plan_never_show_the_key(tmp_path: Path, leaf: Issued) -> None:
    cert_file, key_file = write_pem(tmp_path, leaf)
    lc = check_certificate(cert_file, key_file, "example.com")
    lc_sentinel = dataclasses.replace(lc, private_key_pem=SENTINEL)
    for obj in (lc, lc_sentinel):
        assert_no_key(repr(obj) + str(obj), leaf.key_pem)
        for current in (None, _info(fingerprint="AA:BB", cert_id="1-cn-hangzhou")):
            plan = plan_certificate(current, obj)
            assert plan.request is not None
            assert plan.request.private_key == obj.private_key_pem
            assert_no_key(str(plan) + repr(plan) + plan.reason, leaf.key_pem)


def test_check_certificate_when_only_cn_should_use_cn(tmp_path: Path) -> None:
    cert = make_cert(["cn-only.example.com"], san=False)
    lc = check_certificate(*write_pem(tmp_path, cert), "CN-ONLY.example.com.")
    assert lc.names == ("cn-only.example.com",)


def test_check_certificate_when_san_present_should_ignore_cn(tmp_path: Path) -> None:
    cert = make_cert(["a.example.com"], cn="b.example.com")
    text = refused(*write_pem(tmp_path, cert), "b.example.com")
    assert "does not cover b.example.com" in text


@pytest.mark.parametrize("domain", ["例子.example.com", "xn--fsqu00a.example.com",
                                    "XN--FSQU00A.Example.COM"])
def test_check_certificate_when_idn_san_should_match_a_and_u_labels(
    tmp_path: Path, domain: str
) -> None:
    cert = make_cert(["例子.example.com"])
    lc = check_certificate(*write_pem(tmp_path, cert), domain)
    assert lc.names == ("xn--fsqu00a.example.com",)


def test_check_certificate_when_u_label_cn_should_report_a_label(tmp_path: Path) -> None:
    cert = make_cert(["例子.example.com"], san=False)
    lc = check_certificate(*write_pem(tmp_path, cert), "xn--fsqu00a.example.com")
    assert lc.names == ("xn--fsqu00a.example.com",)


# --------------------------------------------------------------------------- pre-flight: warnings


def test_check_certificate_when_not_yet_valid_should_warn_with_date(tmp_path: Path) -> None:
    start = days(3).replace(microsecond=0)
    cert = make_cert(["example.com"], not_before=start)
    lc = check_certificate(*write_pem(tmp_path, cert), "example.com")
    assert any("not valid before" in w and start.date().isoformat() in w for w in lc.warnings)


def test_check_certificate_when_key_group_readable_should_warn(tmp_path: Path) -> None:
    cert_file, key_file = write_pem(tmp_path, make_cert(), key_mode=0o644)
    lc = check_certificate(cert_file, key_file, "example.com")
    (warning,) = lc.warnings
    assert str(key_file) in warning
    assert "0644" in warning


def test_check_certificate_when_expiring_soon_should_warn(tmp_path: Path) -> None:
    cert = make_cert(["example.com"], not_after=days(5))
    lc = check_certificate(*write_pem(tmp_path, cert), "example.com")
    assert any("expires in 5.0 days" in w or "expires in 4.9" in w for w in lc.warnings)


def test_check_certificate_when_chain_does_not_link_should_warn(
    tmp_path: Path, leaf: Issued
) -> None:
    stranger = make_ca("unrelated CA")
    cert_file, key_file = write_pem(tmp_path, leaf, chain=[stranger])
    lc = check_certificate(cert_file, key_file, "example.com")
    (warning,) = lc.warnings
    assert "certificate #2" in warning
    assert "unrelated CA" in warning


def test_check_certificate_when_intermediate_chain_should_not_warn(tmp_path: Path) -> None:
    root = make_ca("root")
    inter = make_ca("intermediate", issuer=root)
    cert = make_cert(["example.com"], issuer=inter)
    lc = check_certificate(*write_pem(tmp_path, cert, chain=[inter, root]), "example.com")
    assert lc.warnings == ()
    assert lc.chain_pem.count("BEGIN CERTIFICATE") == 3


# --------------------------------------------------------------------------- pre-flight: refusals


def test_refuse_expired(tmp_path: Path) -> None:
    cert_file, key_file = write_pem(tmp_path, make_cert(not_after=days(-1)))
    text = refused(cert_file, key_file)
    assert str(cert_file) in text
    assert "expired" in text


def test_refuse_expired_judged_at_given_now(tmp_path: Path, leaf: Issued) -> None:
    cert_file, key_file = write_pem(tmp_path, leaf)
    later = leaf.cert.not_valid_after_utc + timedelta(seconds=1)
    assert "expired" in refused(cert_file, key_file, now=later)


def test_refuse_fewer_days_than_required(tmp_path: Path) -> None:
    cert_file, key_file = write_pem(tmp_path, make_cert(not_after=days(10)))
    text = refused(cert_file, key_file, min_days_left=14)
    assert str(cert_file) in text
    assert "required 14" in text


def test_refuse_mismatched_key(tmp_path: Path, leaf: Issued) -> None:
    other = new_key()
    cert_file, key_file = write_pem(tmp_path, leaf, key=other)
    text = refused(cert_file, key_file)
    assert str(key_file) in text
    assert str(cert_file) in text
    assert "does not match" in text


def test_refuse_other_name(tmp_path: Path) -> None:
    cert_file, key_file = write_pem(tmp_path, make_cert(["other.org", "*.other.org"]))
    text = refused(cert_file, key_file, "img.example.com")
    assert str(cert_file) in text
    assert "other.org" in text
    assert "img.example.com" in text


@pytest.mark.parametrize(
    "content",
    [
        "not a certificate at all",
        "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
        "-----BEGIN CERTIFICATE-----\nnot base64 !!\n-----END CERTIFICATE-----\n",
        "",
    ],
    ids=["garbage", "short-der", "bad-base64", "empty"],
)
def test_refuse_bad_pem_certificate(tmp_path: Path, content: str) -> None:
    cert_file, key_file = write_pem(tmp_path, make_cert())
    cert_file.write_text(content)
    assert str(cert_file) in refused(cert_file, key_file)


def test_refuse_binary_certificate(tmp_path: Path, leaf: Issued) -> None:
    from cryptography.hazmat.primitives.serialization import Encoding

    cert_file, key_file = write_pem(tmp_path, leaf)
    cert_file.write_bytes(leaf.cert.public_bytes(Encoding.DER))
    text = refused(cert_file, key_file)
    assert str(cert_file) in text
    assert "not PEM" in text


@pytest.mark.parametrize(
    "content",
    [
        f"-----BEGIN PRIVATE KEY-----\n{SENTINEL}\n-----END PRIVATE KEY-----\n",
        f"-----BEGIN RSA PRIVATE KEY-----\n{SENTINEL}{SENTINEL}\n-----END RSA PRIVATE KEY-----\n",
        f"{SENTINEL}\n",
    ],
    ids=["pkcs8", "pkcs1", "no-pem"],
)
def test_refuse_bad_pem_key_without_echoing_it(tmp_path: Path, leaf: Issued, content: str) -> None:
    cert_file, key_file = write_pem(tmp_path, leaf)
    key_file.write_text(content)
    assert str(key_file) in refused(cert_file, key_file)


def test_refuse_encrypted_key(tmp_path: Path, leaf: Issued) -> None:
    from cryptography.hazmat.primitives import serialization as ser

    cert_file, key_file = write_pem(tmp_path, leaf)
    key_file.write_bytes(leaf.key.private_bytes(
        ser.Encoding.PEM, ser.PrivateFormat.PKCS8, ser.BestAvailableEncryption(b"pw")))
    text = refused(cert_file, key_file)
    assert str(key_file) in text
    assert "encrypted" in text


def test_refuse_swapped_files(tmp_path: Path, leaf: Issued) -> None:
    cert_file, key_file = write_pem(tmp_path, leaf)
    text = refused(key_file, cert_file)
    assert str(key_file) in text
    assert "swapped" in text


@pytest.mark.parametrize("missing", ["cert", "key"])
def test_refuse_missing_file(tmp_path: Path, leaf: Issued, missing: str) -> None:
    cert_file, key_file = write_pem(tmp_path, leaf)
    gone = cert_file if missing == "cert" else key_file
    gone.unlink()
    text = refused(cert_file, key_file)
    assert str(gone) in text
    assert "cannot read" in text


def test_refuse_chain_order_wrong(tmp_path: Path, ca: Issued, leaf: Issued) -> None:
    cert_file, key_file = write_pem(tmp_path, ca, chain=[leaf], key=leaf.key)
    text = refused(cert_file, key_file)
    assert str(cert_file) in text
    assert "CA certificate" in text
    assert "first" in text


def test_refuse_key_of_another_cert_in_chain_should_say_which(
    tmp_path: Path, ca: Issued, leaf: Issued
) -> None:
    intermediate_like = make_cert(["not-a-ca.example.net"])
    cert_file, key_file = write_pem(tmp_path, leaf, chain=[intermediate_like],
                                    key=intermediate_like.key)
    text = refused(cert_file, key_file)
    assert "certificate #2" in text


def test_invalid_domain_is_an_input_error(tmp_path: Path, leaf: Issued) -> None:
    with pytest.raises(InputError):
        check_certificate(*write_pem(tmp_path, leaf), "exa mple..com")


# --------------------------------------------------------------------------- RFC 6125 matrix


@pytest.mark.parametrize(
    ("presented", "domain", "expected"),
    [
        ("example.com", "example.com", True),
        ("EXAMPLE.com", "example.COM.", True),
        ("example.com", "www.example.com", False),
        ("*.example.com", "www.example.com", True),
        ("*.example.com", "WWW.Example.Com", True),
        ("*.example.com", "example.com", False),  # no match on the bare parent
        ("*.example.com", "a.b.example.com", False),  # one label only
        ("*.example.com", "www.example.org", False),
        ("w*.example.com", "www.example.com", False),  # partial wildcard
        ("*w.example.com", "www.example.com", False),
        ("www.*.example.com", "www.a.example.com", False),  # not left-most
        ("*.*.example.com", "a.b.example.com", False),
        ("*.com", "example.com", False),  # wildcard over a TLD
        ("*", "example.com", False),
        ("*.example.com", "xn--fsqu00a.example.com", True),
        ("*.example.com", "例子.example.com", True),
        ("xn--fsqu00a.example.com", "例子.example.com", True),
        ("例子.example.com", "xn--fsqu00a.example.com", True),
        ("*.xn--fsqu00a.xn--fiqs8s", "www.例子.中国", True),
        ("*.xn--fiqs8s", "xn--fsqu00a.中国", False),  # wildcard over an IDN TLD
        ("xn--*.example.com", "xn--fsqu00a.example.com", False),
        ("*.example.com", "*.example.com", True),  # wildcard binding needs the same wildcard
        ("a.example.com", "*.example.com", False),
    ],
)
def test_covers_matrix(presented: str, domain: str, expected: bool) -> None:
    assert covers([presented], domain) is expected


def test_covers_when_any_name_matches() -> None:
    assert covers(["a.example.org", "*.example.com"], "b.example.com")
    assert not covers([], "b.example.com")


# --------------------------------------------------------------------------- CAS ids


@pytest.mark.parametrize(
    ("raw", "normalized"),
    [
        ("4930000-cn-hangzhou", "4930000-cn-hangzhou"),
        (" 1234567-ap-southeast-1 ", "1234567-ap-southeast-1"),
        ("42-CN-Hangzhou", "42-cn-hangzhou"),
        ("7-cn-shanghai-finance-1", "7-cn-shanghai-finance-1"),
    ],
)
def test_check_cas_cert_id_accepts(raw: str, normalized: str) -> None:
    assert check_cas_cert_id(raw) == normalized


@pytest.mark.parametrize(
    ("raw", "fix"),
    [
        ("19580016-cas.aliyuncs.com", "19580016-cn-hangzhou"),
        ("19580016-cas.ap-southeast-1.aliyuncs.com", "19580016-ap-southeast-1"),
        ("4930000", "4930000-cn-hangzhou"),
        ("cert-abc", "<number>-<CAS region>"),
        ("4930000-", "<number>-<CAS region>"),
        ("4930000-hangzhou", "<number>-<CAS region>"),
        ("", "<number>-<CAS region>"),
    ],
)
def test_check_cas_cert_id_refuses_naming_the_id(raw: str, fix: str) -> None:
    with pytest.raises(CertificateError) as info:
        check_cas_cert_id(raw)
    assert repr(raw) in info.value.message
    assert fix in str(info.value)


# --------------------------------------------------------------------------- rotation plans


def _info(*, fingerprint: str = "", cert_id: str = "", type_: str = "Upload",
          start: datetime | None = None, end: datetime | None = None,
          status: str = "Enabled") -> CertificateInfo:
    return CertificateInfo(type=type_, cert_id=cert_id, status=status, fingerprint=fingerprint,
                           valid_start=start, valid_end=end)


@pytest.fixture(scope="module")
def local(tmp_path_factory: pytest.TempPathFactory, leaf: Issued) -> LocalCertificate:
    return check_certificate(*write_pem(tmp_path_factory.mktemp("c"), leaf), "example.com")


CAS = "4930000-cn-hangzhou"
OTHER_FP = "AA:" * 19 + "AA"


class Sent(NamedTuple):
    """The CertificateConfiguration fields a plan must carry."""

    cert_id: str | None
    has_pem: bool
    previous: str | None
    force: bool
    delete: bool


Desired = LocalCertificate | str | None


def test_plan_table(local: LocalCertificate) -> None:
    same_fp = _info(fingerprint=local.fingerprint.lower(), cert_id="9-cn-hangzhou")
    bound = _info(fingerprint=OTHER_FP, cert_id="9-cn-hangzhou")
    cas_bound = _info(fingerprint=OTHER_FP, cert_id=CAS, type_="CAS")
    table: list[tuple[CertificateInfo | None, Desired, bool, bool, str, Sent | None]] = [
        # current, desired, force, remove -> action, what PutCname carries
        (None, None, False, False, "none", None),
        (bound, None, False, False, "none", None),
        (None, local, False, False, "attach", Sent(None, True, None, False, False)),
        (None, local, True, False, "attach", Sent(None, True, None, True, False)),
        (None, CAS, False, False, "attach", Sent(CAS, False, None, False, False)),
        (same_fp, local, False, False, "none", None),
        (same_fp, local, True, False, "none", None),
        (cas_bound, CAS.upper(), False, False, "none", None),
        (bound, local, False, False, "rotate", Sent(None, True, "9-cn-hangzhou", False, False)),
        (bound, local, True, False, "rotate", Sent(None, True, None, True, False)),
        (bound, CAS, False, False, "rotate", Sent(CAS, False, "9-cn-hangzhou", False, False)),
        (bound, CAS, True, False, "rotate", Sent(CAS, False, None, True, False)),
        (cas_bound, local, False, False, "rotate", Sent(None, True, CAS, False, False)),
        (bound, None, False, True, "remove", Sent(None, False, None, False, True)),
        (bound, None, True, True, "remove", Sent(None, False, None, False, True)),
        (None, None, True, True, "none", None),
    ]
    for current, desired, force, remove, action, sent in table:
        plan = plan_certificate(current, desired, force=force, remove=remove)
        assert isinstance(plan, CertificatePlan)
        assert plan.action == action, (current, desired, force, remove)
        assert plan.reason
        if sent is None:
            assert plan.request is None
            continue
        r = plan.request
        assert r is not None
        got = Sent(r.cert_id, r.certificate is not None, r.previous_cert_id, r.force,
                   r.delete_certificate)
        assert got == sent, (current, desired, force, remove)
        assert not (r.delete_certificate and r.force), "DeleteCertificate+Force is MalformedXML"
        assert (r.private_key is not None) == sent.has_pem


def test_plan_never_sends_delete_with_force(local: LocalCertificate) -> None:
    for current in (None, _info(fingerprint=OTHER_FP, cert_id="9-cn-hangzhou")):
        for force in (False, True):
            plan = plan_certificate(current, None, force=force, remove=True)
            assert plan.request is None or not plan.request.force
    plan = plan_certificate(_info(fingerprint=OTHER_FP, cert_id="9-x-y"), None, force=True,
                            remove=True)
    assert "Force is not sent" in str(plan)


def test_plan_remove_with_desired_is_a_bug(local: LocalCertificate) -> None:
    with pytest.raises(ValueError, match="remove"):
        plan_certificate(None, local, remove=True)


def test_plan_rotate_without_cert_id_needs_force(local: LocalCertificate) -> None:
    no_id = _info(fingerprint=OTHER_FP, cert_id="")
    with pytest.raises(UnsafePlan, match="--force"):
        plan_certificate(no_id, local)
    assert plan_certificate(no_id, local, force=True).request.force  # type: ignore[union-attr]


def test_plan_bad_cas_id_refused() -> None:
    with pytest.raises(CertificateError, match=r"19580016-cas\.aliyuncs\.com"):
        plan_certificate(None, "19580016-cas.aliyuncs.com")


def test_plan_str_names_action_and_fingerprint(local: LocalCertificate) -> None:
    plan = plan_certificate(_info(fingerprint=OTHER_FP, cert_id="9-cn-hangzhou"), local)
    assert str(plan).startswith("certificate rotate:")
    assert local.fingerprint in str(plan)
    assert "9-cn-hangzhou" in str(plan)


# --------------------------------------------------------------------------- verification


def _bound_like(lc: LocalCertificate, **kw: object) -> CertificateInfo:
    base: dict[str, object] = {"fingerprint": lc.fingerprint, "cert_id": "9-cn-hangzhou",
                               "start": lc.not_before, "end": lc.not_after}
    base.update(kw)
    return _info(**base)  # type: ignore[arg-type]


def test_verify_when_same_certificate_should_be_empty(local: LocalCertificate) -> None:
    assert verify_bound_certificate(_bound_like(local), local) == []
    lower = _bound_like(local, fingerprint=local.fingerprint.lower(),
                        start=local.not_before + timedelta(microseconds=500))
    assert verify_bound_certificate(lower, local) == []


def test_verify_reports_each_mismatch(local: LocalCertificate) -> None:
    assert verify_bound_certificate(None, local) == ["ListCname shows no certificate on the domain"]
    wrong = _bound_like(local, fingerprint=OTHER_FP, end=local.not_after + timedelta(seconds=1),
                        start=None, status="Disabled")
    problems = verify_bound_certificate(wrong, local)
    assert len(problems) == 4
    joined = "\n".join(problems)
    for word in ("Fingerprint", "ValidStartDate", "ValidEndDate", "Status"):
        assert word in joined


def test_verify_dates_compare_in_utc(local: LocalCertificate) -> None:
    from datetime import timezone

    plus8 = timezone(timedelta(hours=8))
    shifted = _bound_like(local, start=local.not_before.astimezone(plus8),
                          end=local.not_after.astimezone(plus8))
    assert verify_bound_certificate(shifted, local) == []


def test_verify_cas_id() -> None:
    assert verify_bound_certificate(_info(cert_id=CAS.upper(), type_="CAS"), CAS) == []
    (problem,) = verify_bound_certificate(_info(cert_id="1-cn-hangzhou", type_="CAS"), CAS)
    assert "1-cn-hangzhou" in problem
    assert CAS in problem


def test_naive_now_is_taken_as_utc(tmp_path: Path, leaf: Issued) -> None:
    lc = check_certificate(*write_pem(tmp_path, leaf), "example.com",
                           now=datetime.now(UTC).replace(tzinfo=None))
    naive_end = lc.not_after.replace(tzinfo=None)
    assert lc.days_left(naive_end - timedelta(days=1)) == pytest.approx(1.0)


def test_key_mode_0600_gives_no_warning(tmp_path: Path, leaf: Issued) -> None:
    assert check_certificate(*write_pem(tmp_path, leaf), "example.com").warnings == ()

"""End to end: certificates through `cname-flow bind`, `cert remove` and `cert status`."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import alibabacloud_oss_v2 as oss
import pytest

from cname_flow.sandbox.config import CasCertificateConfig
from tests.certgen import days, make_ca, make_cert, new_key, write_pem
from tests.e2e.bindkit import SandboxEnv, count_calls, sandbox_env, world

pytestmark = pytest.mark.e2e

DOMAIN = "img.example.com"
CAS_ID = "4930000-cn-hangzhou"


def _bound(sb: SandboxEnv) -> dict[str, object]:
    cname = sb.sandbox.state.buckets["examplebucket"].cnames[DOMAIN]
    cert = cname.certificate
    return {"cert_id": cert.cert_id, "fingerprint": cert.fingerprint, "type": cert.type} \
        if cert else {}


def _pem_files(tmp: Path, name: str, names: list[str] | None = None, **kw: object) -> list[str]:
    ca = make_ca()
    leaf = make_cert(names or [DOMAIN], issuer=ca, **kw)  # type: ignore[arg-type]
    (tmp / name).mkdir()
    cert_file, key_file = write_pem(tmp / name, leaf, chain=[ca])
    return ["--cert-file", str(cert_file), "--key-file", str(key_file)]


def _fingerprint(args: list[str]) -> str:
    from cname_flow.certs import parse_certificate_chain, sha1_fingerprint

    return sha1_fingerprint(parse_certificate_chain(Path(args[1]).read_bytes())[0])


@pytest.fixture
def cas_world(tmp_path: Path) -> Iterator[SandboxEnv]:
    leaf = make_cert([DOMAIN, f"*.{DOMAIN}"])
    cfg = world().model_copy(update={"cas_certificates": [
        CasCertificateConfig(cert_id=CAS_ID, pem=leaf.cert_pem)]})
    with sandbox_env(tmp_path, cfg) as sb:
        yield sb


def test_certificate_lifecycle_bind_rotate_cas_conflict_force_remove(
    cas_world: SandboxEnv, tmp_path: Path
) -> None:
    sb = cas_world
    first = _pem_files(tmp_path, "a")
    done = sb.cli("bind", DOMAIN, *first)
    assert done.returncode == 0, done.stderr
    assert _bound(sb)["fingerprint"] == _fingerprint(first) and _bound(sb)["type"] == "CAS"

    second = _pem_files(tmp_path, "b")                 # rotate to a new PEM (PreviousCertId)
    done = sb.cli("bind", DOMAIN, *second, "--json")
    assert done.returncode == 0, done.stderr
    assert _bound(sb)["fingerprint"] == _fingerprint(second)
    assert json.loads(done.stdout)["outputs"]["fingerprint"] == _fingerprint(second)

    done = sb.cli("bind", DOMAIN, "--cert-id", CAS_ID)  # rotate to a CAS certificate
    assert done.returncode == 0, done.stderr
    assert _bound(sb) | {"fingerprint": ""} == {"cert_id": CAS_ID, "type": "CAS", "fingerprint": ""}

    # someone swaps the certificate out of band, through the real SDK with Force
    intruder = make_cert([DOMAIN])
    cfg = oss.config.load_default()
    cfg.region, cfg.endpoint = "cn-hangzhou", sb.sandbox.info.oss_endpoint
    cfg.credentials_provider = oss.credentials.StaticCredentialsProvider(
        sb.env["OSS_ACCESS_KEY_ID"], sb.env["OSS_ACCESS_KEY_SECRET"])
    oss.Client(cfg).put_cname(oss.PutCnameRequest(
        bucket="examplebucket",
        bucket_cname_configuration=oss.BucketCnameConfiguration(cname=oss.Cname(
            domain=DOMAIN, certificate_configuration=oss.CertificateConfiguration(
                certificate=intruder.cert_pem, private_key=intruder.key_pem, force=True)))))
    swapped = _bound(sb)

    third = _pem_files(tmp_path, "c")
    done = sb.cli("bind", DOMAIN, *third)               # no --force-cert: refused, untouched
    assert done.returncode == 1
    assert "changed outside cname-flow" in done.stderr and "--force-cert" in done.stderr
    assert _bound(sb) == swapped

    done = sb.cli("bind", DOMAIN, *third, "--force-cert")
    assert done.returncode == 0, done.stderr
    assert _bound(sb)["fingerprint"] == _fingerprint(third)

    status = sb.cli("cert", "status", "--json")
    assert status.returncode == 0, status.stderr
    [row] = [r for r in json.loads(status.stdout)["certificates"] if r["domain"] == DOMAIN]
    assert row["fingerprint"] == _fingerprint(third) and 85 < row["days_left"] <= 90

    done = sb.cli("cert", "remove", DOMAIN, "--yes")
    assert done.returncode == 0, done.stderr
    assert _bound(sb) == {}
    assert sb.sandbox.state.buckets["examplebucket"].cnames[DOMAIN].status == "Enabled"


@pytest.mark.parametrize(("case", "kwargs", "message"), [
    ("expired", {"not_after": days(-1), "not_before": days(-30)}, "expired"),
    ("other-name", {"names": ["other.example.org"]}, "other.example.org"),
    ("mismatched-key", {}, "does not match"),
])
def test_bad_certificate_is_refused_before_any_api_call(
    tmp_path: Path, case: str, kwargs: dict[str, object], message: str
) -> None:
    with sandbox_env(tmp_path) as sb:
        ops = ["CreateCnameToken", "GetCnameToken", "PutCname", "ListCname",
               "DescribeDomains", "AddDomainRecord", "DescribeSubDomainRecords"]
        calls = count_calls(sb.sandbox, ops)
        names = kwargs.pop("names", None)
        leaf = make_cert(names or [DOMAIN], **kwargs)  # type: ignore[arg-type]
        key = new_key() if case == "mismatched-key" else None
        (tmp_path / case).mkdir()
        cert_file, key_file = write_pem(tmp_path / case, leaf, key=key)
        done = sb.cli("bind", DOMAIN, "--cert-file", str(cert_file), "--key-file", str(key_file))
        assert done.returncode == 2, done.stderr
        named = str(key_file) if case == "mismatched-key" else str(cert_file)
        assert named in done.stderr or cert_file.name in done.stderr
        assert message in done.stderr.lower()
        assert all(not c for c in calls.values()), calls


def test_sentinel_private_key_never_reaches_output_logs_journal_or_report(tmp_path: Path) -> None:
    with sandbox_env(tmp_path) as sb:
        leaf = make_cert([DOMAIN])
        (tmp_path / "k").mkdir()
        cert_file, key_file = write_pem(tmp_path / "k", leaf)
        key_body = [ln for ln in leaf.key_pem.splitlines() if "-----" not in ln]
        runs = [sb.cli("--verbose", "bind", DOMAIN, "--cert-file", str(cert_file),
                       "--key-file", str(key_file), "--json"),
                sb.cli("cert", "status", "--json"), sb.cli("status", "--json"),
                sb.cli("plan", DOMAIN, "--cert-file", str(cert_file), "--key-file",
                       str(key_file), "--json")]
        assert all(r.returncode == 0 for r in runs), [r.stderr for r in runs]
        text = "".join(r.stdout + r.stderr for r in runs) + sb.journal.read_text()
        assert "certificate.plan" in text            # logs were captured
        assert not any(line in text for line in key_body)
        assert "PRIVATE KEY" not in text

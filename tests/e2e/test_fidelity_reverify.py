"""End to end: a certificate change on a bound domain needs a fresh ownership proof.

certimate-go/certimate#1042 shows a real PutCname changing the certificate of a bound, verified
domain answered 403 NeedVerifyDomainOwnership. The sandbox's ``oss.reverify_bound`` (on by
default) models it; ``cname-flow bind`` must put the proof back before PutCname, and say what to
do when the token has expired (OSS answers NoNeedCreateCnameToken for a bound domain).
"""

from __future__ import annotations

from pathlib import Path

import alibabacloud_oss_v2 as oss
import pytest

from cname_flow.sandbox.config import OssLimits
from tests.certgen import make_ca, make_cert, write_pem
from tests.e2e.bindkit import SandboxEnv, sandbox_env, world
from tests.e2e.test_reconcile_sandbox import oss_client

pytestmark = pytest.mark.e2e

DOMAIN = "rot.example.com"
PROOF = f"_dnsauth.{DOMAIN}"


def _pem(tmp: Path, name: str) -> list[str]:
    ca = make_ca()
    (tmp / name).mkdir()
    cert_file, key_file = write_pem(tmp / name, make_cert([DOMAIN], issuer=ca), chain=[ca])
    return ["--cert-file", str(cert_file), "--key-file", str(key_file)]


def _sdk_code(call: object) -> str:
    try:
        call()  # type: ignore[operator]
    except oss.exceptions.OperationError as exc:
        return str(exc.unwrap().code)
    return "ok"


def _fingerprint(sb: SandboxEnv) -> str | None:
    cert = sb.sandbox.state.buckets["examplebucket"].cnames[DOMAIN].certificate
    return cert.fingerprint if cert else None


def _expire_token(sb: SandboxEnv) -> None:
    with sb.sandbox.state.lock:
        token = sb.sandbox.state.buckets["examplebucket"].tokens[DOMAIN]
        token.expires_at = sb.sandbox.state.clock() - 1


def test_rotation_after_txt_removal_puts_the_proof_back(tmp_path: Path) -> None:
    with sandbox_env(tmp_path) as sb:
        done = sb.cli("bind", DOMAIN, *_pem(tmp_path, "a"), "--remove-txt")
        assert done.returncode == 0, done.stderr
        assert sb.records(PROOF) == []
        sb.sandbox.fleet.resolver.flush()  # the verifier's resolver still held the TXT (600 s)
        client = oss_client(sb)
        # the sandbox, through the real SDK: a certificate change now needs the TXT again
        inline = make_cert([DOMAIN])
        assert _sdk_code(lambda: client.put_cname(oss.PutCnameRequest(
            bucket="examplebucket",
            bucket_cname_configuration=oss.BucketCnameConfiguration(cname=oss.Cname(
                domain=DOMAIN, certificate_configuration=oss.CertificateConfiguration(
                    certificate=inline.cert_pem, private_key=inline.key_pem, force=True)))))
        ) == "NeedVerifyDomainOwnership"
        # ... while a re-put without a certificate still skips the proof
        assert _sdk_code(lambda: client.put_cname(oss.PutCnameRequest(
            bucket="examplebucket",
            bucket_cname_configuration=oss.BucketCnameConfiguration(
                cname=oss.Cname(domain=DOMAIN))))) == "ok"
        before = _fingerprint(sb)

        done = sb.cli("bind", DOMAIN, *_pem(tmp_path, "b"))
        assert done.returncode == 0, done.stderr
        assert _fingerprint(sb) not in (None, before)
        assert [r.value for r in sb.records(PROOF)] == [sb.token("examplebucket", DOMAIN)]


def test_expired_token_on_a_bound_domain_is_a_clear_dead_end(tmp_path: Path) -> None:
    with sandbox_env(tmp_path) as sb:
        done = sb.cli("bind", DOMAIN, *_pem(tmp_path, "a"))
        assert done.returncode == 0, done.stderr
        before = _fingerprint(sb)
        _expire_token(sb)
        client = oss_client(sb)
        assert _sdk_code(lambda: client.create_cname_token(oss.CreateCnameTokenRequest(
            bucket="examplebucket", bucket_cname_configuration=oss.BucketCnameConfiguration(
                cname=oss.Cname(domain=DOMAIN))))) == "NoNeedCreateCnameToken"
        assert _sdk_code(lambda: client.get_cname_token(oss.GetCnameTokenRequest(
            bucket="examplebucket", cname=DOMAIN))) == "CnameTokenNotFound"

        done = sb.cli("bind", DOMAIN, *_pem(tmp_path, "b"), timeout=120)
        assert done.returncode != 0
        assert "token has expired" in done.stderr and "unbind" in done.stderr, done.stderr
        assert "NeedVerifyDomainOwnership" not in done.stderr or "OwnershipProof" in done.stderr
        assert _fingerprint(sb) == before


def test_with_reverify_off_a_rotation_needs_no_proof(tmp_path: Path) -> None:
    cfg = world().model_copy(update={"oss": OssLimits(reverify_bound=False)})
    with sandbox_env(tmp_path, cfg) as sb:
        done = sb.cli("bind", DOMAIN, *_pem(tmp_path, "a"), "--remove-txt")
        assert done.returncode == 0, done.stderr
        before = _fingerprint(sb)
        _expire_token(sb)
        done = sb.cli("bind", DOMAIN, *_pem(tmp_path, "b"))
        assert done.returncode == 0, done.stderr
        assert _fingerprint(sb) not in (None, before)
        assert sb.records(PROOF) == []

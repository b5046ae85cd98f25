"""The sandbox OSS API driven by the real ``alibabacloud_oss_v2`` clients over loopback sockets."""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
import threading
import time
import xml.etree.ElementTree as ET
from base64 import b64encode
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import partial
from typing import Any
from urllib.parse import quote

import alibabacloud_oss_v2 as oss
import alibabacloud_oss_v2.aio as oss_aio
import pytest
import requests
import uvicorn
from alibabacloud_oss_v2 import serde, serde_utils
from alibabacloud_oss_v2.signer import SignerV4
from alibabacloud_oss_v2.types import (
    CaseInsensitiveDict,
    Credentials,
    HttpRequest,
    OperationInput,
    SigningContext,
)
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from starlette.types import ASGIApp, Receive, Scope, Send

from cname_flow.certs import sha1_fingerprint
from cname_flow.sandbox.config import (
    CasCertificateConfig,
    FaultsConfig,
    OpFaults,
    OssLimits,
    SandboxConfig,
    StsConfig,
)
from cname_flow.sandbox.faults import FaultPlan
from cname_flow.sandbox.oss.api import create_oss_app, uvicorn_config
from cname_flow.sandbox.state import SandboxState

pytestmark = pytest.mark.e2e

AK, SK, ACCOUNT = (
    "LTAI5tSandboxExampleKey",
    "sandbox-secret-do-not-use-in-production",
    "1234567890123456",
)
OTHER_AK, OTHER_SK = "LTAI5tSandboxOtherAccount", "sandbox-other-account-secret"
STS_AK, STS_SK, STS_TOKEN = "STS.NUexample", "sts-secret", "CAIS-sts-token-example"
BUCKET, DOMAIN, REGION = "examplebucket", "img.example.com", "cn-hangzhou"


class StateVerifier:
    """The OSS ownership verifier reading the sandbox state directly (no cache, lag 0)."""

    def __init__(self, state: SandboxState) -> None:
        self.state = state

    async def txt_values(self, name: str) -> frozenset[str]:
        zone = self.state.zone_for(name)
        if zone is None:
            return frozenset()
        versions = self.state.rrsets_at(zone, name, self.state.clock())
        return frozenset(v.value for v in versions if v.type == "TXT")


class SwitchApp:
    """One server for the module; each test swaps in a fresh app over a fresh state."""

    def __init__(self) -> None:
        self.inner: ASGIApp | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        assert self.inner is not None
        await self.inner(scope, receive, send)


@dataclass
class Sandbox:
    state: SandboxState
    faults: FaultPlan
    port: int

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def client(
        self,
        *,
        v1: bool = False,
        ak: str = AK,
        sk: str = SK,
        token: str | None = None,
        attempts: int = 1,
    ) -> oss.Client:
        return oss.Client(self.config(v1=v1, ak=ak, sk=sk, token=token, attempts=attempts))

    def config(
        self,
        *,
        v1: bool = False,
        ak: str = AK,
        sk: str = SK,
        token: str | None = None,
        attempts: int = 1,
    ) -> oss.config.Config:
        cfg = oss.config.load_default()
        cfg.region = REGION
        cfg.endpoint = self.endpoint
        cfg.retry_max_attempts = attempts
        cfg.credentials_provider = oss.credentials.StaticCredentialsProvider(ak, sk, token)
        if v1:
            cfg.signature_version = "v1"
        return cfg

    def publish_txt(self, domain: str, value: str) -> None:
        zone = self.state.zone_for(domain)
        assert zone is not None
        self.state.add_record(zone, f"_dnsauth.{domain}"[: -len(zone.name) - 1], "TXT", value, 600)


@pytest.fixture(scope="module")
def server() -> Iterator[tuple[SwitchApp, int]]:
    switch = SwitchApp()
    srv = uvicorn.Server(uvicorn_config(switch))
    thread = threading.Thread(target=srv.run, daemon=True)
    thread.start()
    while not srv.started:
        time.sleep(0.01)
    port = srv.servers[0].sockets[0].getsockname()[1]
    yield switch, port
    srv.should_exit = True
    thread.join(5)


def _config(**oss_limits: int) -> SandboxConfig:
    base = SandboxConfig()
    accounts = [
        base.accounts[0].model_copy(
            update={
                "sts": [
                    StsConfig(
                        access_key_id=STS_AK, access_key_secret=STS_SK, security_token=STS_TOKEN
                    )
                ]
            }
        ),
        base.accounts[1],
    ]
    limits = OssLimits.model_validate(oss_limits)
    return base.model_copy(update={"accounts": accounts, "oss": limits})


@pytest.fixture
def make_sandbox(server: tuple[SwitchApp, int]) -> Callable[..., Sandbox]:
    switch, port = server

    def make(
        config: SandboxConfig | None = None, clock: Callable[[], float] = time.time
    ) -> Sandbox:
        state = SandboxState(config or _config(), clock)
        faults = FaultPlan(state.config.faults)
        switch.inner = create_oss_app(state, faults, StateVerifier(state))
        return Sandbox(state, faults, port)

    return make


@pytest.fixture
def oss_sandbox(make_sandbox: Callable[..., Sandbox]) -> Sandbox:
    """The OSS API alone, fresh state per test (with an STS key), on the module's server."""
    return make_sandbox()


def cname_config(domain: str = DOMAIN, cert: Any = None) -> oss.BucketCnameConfiguration:
    return oss.BucketCnameConfiguration(
        cname=oss.Cname(domain=domain, certificate_configuration=cert)
    )


def service_error(call: Callable[[], object]) -> oss.exceptions.ServiceError:
    """Run an SDK call that must fail with a service error; check the common error facts."""
    with pytest.raises(oss.exceptions.OperationError) as info:
        call()
    err = info.value.unwrap()
    assert isinstance(err, oss.exceptions.ServiceError), repr(err)
    assert len(err.request_id) == 24
    assert err.headers.get("x-oss-request-id") == err.request_id
    return err


def bind(box: Sandbox, client: oss.Client, domain: str = DOMAIN, cert: Any = None) -> None:
    token = client.create_cname_token(
        oss.CreateCnameTokenRequest(bucket=BUCKET, bucket_cname_configuration=cname_config(domain))
    ).cname_token.token
    box.publish_txt(domain, token)
    client.put_cname(
        oss.PutCnameRequest(bucket=BUCKET, bucket_cname_configuration=cname_config(domain, cert))
    )


def put_cname(client: oss.Client, domain: str = DOMAIN, cert: Any = None) -> Any:
    return client.put_cname(
        oss.PutCnameRequest(bucket=BUCKET, bucket_cname_configuration=cname_config(domain, cert))
    )


def list_cnames(client: oss.Client) -> list[Any]:
    return client.list_cname(oss.ListCnameRequest(bucket=BUCKET)).cnames or []


# -- the happy path with every client flavour ------------------------------------------------


def _happy_path_sync(box: Sandbox, client: oss.Client) -> None:
    req = oss.CreateCnameTokenRequest(bucket=BUCKET, bucket_cname_configuration=cname_config())
    created = client.create_cname_token(req)
    token = created.cname_token
    assert (token.bucket, token.cname, len(token.token)) == (BUCKET, DOMAIN, 32)
    assert len(created.request_id) == 24
    assert client.create_cname_token(req).cname_token.token == token.token
    got = client.get_cname_token(oss.GetCnameTokenRequest(bucket=BUCKET, cname=DOMAIN))
    assert (got.cname_token.token, got.cname_token.expire_time) == (token.token, token.expire_time)
    err = service_error(lambda: put_cname(client))
    assert (err.status_code, err.code, err.ec) == (
        403,
        "NeedVerifyDomainOwnership",
        "0018-00000115",
    )
    box.publish_txt(DOMAIN, token.token)
    assert put_cname(client).status_code == 200
    [entry] = list_cnames(client)
    assert (entry.domain, entry.status, entry.certificate) == (DOMAIN, "Enabled", None)
    assert entry.last_modified.endswith("Z") and len(entry.last_modified) == 24
    deleted = client.delete_cname(
        oss.DeleteCnameRequest(bucket=BUCKET, bucket_cname_configuration=cname_config())
    )
    assert deleted.status_code == 200
    assert list_cnames(client) == []


@pytest.mark.parametrize("flavour", ["v4", "v1", "sts-v4", "sts-v1"])
def test_happy_path_sync(oss_sandbox: Sandbox, flavour: str) -> None:
    sts = flavour.startswith("sts")
    client = oss_sandbox.client(
        v1=flavour.endswith("v1"),
        ak=STS_AK if sts else AK,
        sk=STS_SK if sts else SK,
        token=STS_TOKEN if sts else None,
    )
    _happy_path_sync(oss_sandbox, client)


# alibabacloud_oss_v2.aio.AsyncClient 1.4.1 has no CNAME methods: drive the five operations
# through its public invoke_operation with the same wire shape the sync operations build.
_AIO_CNAME_OPS: dict[str, tuple[str, dict[str, str], list[str]]] = {
    "CreateCnameToken": ("POST", {"cname": "", "comp": "token"}, ["cname", "comp"]),
    "GetCnameToken": ("GET", {"comp": "token"}, ["comp", "cname"]),
    "PutCname": ("POST", {"cname": "", "comp": "add"}, ["cname", "comp"]),
    "ListCname": ("GET", {"cname": ""}, ["cname"]),
    "DeleteCname": ("POST", {"cname": "", "comp": "delete"}, ["cname", "comp"]),
}


async def aio_cname(client: oss_aio.AsyncClient, op: str, request: Any, result: Any) -> Any:
    method, params, sub = _AIO_CNAME_OPS[op]
    op_input = serde.serialize_input(
        request=request,
        op_input=OperationInput(
            op_name=op,
            method=method,
            parameters=dict(params),
            bucket=request.bucket,
            headers=CaseInsensitiveDict({"Content-Type": "application/xml"}),
            op_metadata={"sub-resource": sub},
        ),
        custom_serializer=[serde_utils.add_content_md5],
    )
    output = await client.invoke_operation(op_input)
    return serde.deserialize_output(
        result=result, op_output=output, custom_deserializer=[serde.deserialize_output_xmlbody]
    )


def test_happy_path_async(oss_sandbox: Sandbox) -> None:
    async def run() -> None:
        async with oss_aio.AsyncClient(oss_sandbox.config()) as client:
            assert (
                await client.put_bucket(oss.PutBucketRequest(bucket="async-1"))
            ).status_code == 200
            listed_buckets = await client.list_buckets(oss.ListBucketsRequest(prefix="async"))
            assert [b.name for b in listed_buckets.buckets] == ["async-1"]
            create = oss.CreateCnameTokenRequest(
                bucket=BUCKET, bucket_cname_configuration=cname_config()
            )
            created = await aio_cname(
                client, "CreateCnameToken", create, oss.CreateCnameTokenResult()
            )
            token = created.cname_token.token
            get = oss.GetCnameTokenRequest(bucket=BUCKET, cname=DOMAIN)
            got = await aio_cname(client, "GetCnameToken", get, oss.GetCnameTokenResult())
            assert got.cname_token.token == token
            put = oss.PutCnameRequest(bucket=BUCKET, bucket_cname_configuration=cname_config())
            with pytest.raises(oss.exceptions.OperationError) as info:
                await aio_cname(client, "PutCname", put, oss.PutCnameResult())
            err = info.value.unwrap()
            assert (err.status_code, err.code, len(err.request_id)) == (
                403,
                "NeedVerifyDomainOwnership",
                24,
            )
            oss_sandbox.publish_txt(DOMAIN, token)
            assert (
                await aio_cname(client, "PutCname", put, oss.PutCnameResult())
            ).status_code == 200
            listing = oss.ListCnameRequest(bucket=BUCKET)
            listed = await aio_cname(client, "ListCname", listing, oss.ListCnameResult())
            assert [c.domain for c in listed.cnames] == [DOMAIN]
            delete = oss.DeleteCnameRequest(
                bucket=BUCKET, bucket_cname_configuration=cname_config()
            )
            deleted = await aio_cname(client, "DeleteCname", delete, oss.DeleteCnameResult())
            assert deleted.status_code == 200

    asyncio.run(run())


def test_domain_case_and_repeat_put_are_one_binding(oss_sandbox: Sandbox) -> None:
    client = oss_sandbox.client()
    bind(oss_sandbox, client, "IMG.Example.COM")
    assert put_cname(client, "img.example.com").status_code == 200
    assert [c.domain for c in list_cnames(client)] == [DOMAIN]


# -- authentication ---------------------------------------------------------------------------


def test_unknown_access_key(oss_sandbox: Sandbox) -> None:
    err = service_error(lambda: list_cnames(oss_sandbox.client(ak="LTAI5tNobody")))
    assert (err.status_code, err.code) == (403, "InvalidAccessKeyId")


@pytest.mark.parametrize("v1", [False, True])
def test_wrong_secret(oss_sandbox: Sandbox, v1: bool) -> None:
    err = service_error(lambda: list_cnames(oss_sandbox.client(v1=v1, sk="wrong")))
    assert (err.status_code, err.code) == (403, "SignatureDoesNotMatch")


@pytest.mark.parametrize("token", [None, "forged"])
def test_sts_token_missing_or_wrong(oss_sandbox: Sandbox, token: str | None) -> None:
    err = service_error(lambda: list_cnames(oss_sandbox.client(ak=STS_AK, sk=STS_SK, token=token)))
    assert (err.status_code, err.code) == (403, "InvalidAccessKeyId")


@pytest.mark.parametrize("v1", [False, True])
def test_clock_skew(make_sandbox: Callable[..., Sandbox], v1: bool) -> None:
    box = make_sandbox(clock=lambda: time.time() + 16 * 60)
    err = service_error(lambda: list_cnames(box.client(v1=v1)))
    assert (err.status_code, err.code) == (403, "RequestTimeTooSkewed")


# -- bucket checks and buckets ----------------------------------------------------------------


def test_cname_ops_on_missing_or_foreign_bucket(oss_sandbox: Sandbox) -> None:
    client = oss_sandbox.client()
    err = service_error(lambda: client.list_cname(oss.ListCnameRequest(bucket="nosuchbucket")))
    assert (err.status_code, err.code) == (404, "NoSuchBucket")
    err = service_error(lambda: client.list_cname(oss.ListCnameRequest(bucket="otherbucket")))
    assert (err.status_code, err.code) == (403, "AccessDenied")


def test_bucket_lifecycle(oss_sandbox: Sandbox) -> None:
    client = oss_sandbox.client()
    for name in ("alpha-1", "alpha-2", "beta-1"):
        assert client.put_bucket(oss.PutBucketRequest(bucket=name)).status_code == 200
    assert client.put_bucket(oss.PutBucketRequest(bucket="alpha-1")).status_code == 200
    page = client.list_buckets(oss.ListBucketsRequest(prefix="alpha", max_keys=1))
    assert ([b.name for b in page.buckets], page.is_truncated) == (["alpha-1"], True)
    page = client.list_buckets(oss.ListBucketsRequest(prefix="alpha", marker=page.next_marker))
    assert ([b.name for b in page.buckets], page.is_truncated) == (["alpha-2"], False)
    everything = client.list_buckets(oss.ListBucketsRequest())
    assert [b.name for b in everything.buckets] == ["alpha-1", "alpha-2", "beta-1", BUCKET]
    assert everything.owner.id == ACCOUNT and everything.buckets[0].region == REGION
    info = client.get_bucket_info(oss.GetBucketInfoRequest(bucket="beta-1")).bucket_info
    assert (info.name, info.owner.id, info.acl, info.location) == (
        "beta-1",
        ACCOUNT,
        "private",
        "oss-cn-hangzhou",
    )
    assert client.delete_bucket(oss.DeleteBucketRequest(bucket="beta-1")).status_code == 204
    err = service_error(lambda: client.get_bucket_info(oss.GetBucketInfoRequest(bucket="beta-1")))
    assert (err.status_code, err.code) == (404, "NoSuchBucket")


def test_bucket_errors(oss_sandbox: Sandbox) -> None:
    client = oss_sandbox.client()
    err = service_error(lambda: client.put_bucket(oss.PutBucketRequest(bucket="otherbucket")))
    assert (err.status_code, err.code) == (409, "BucketAlreadyExists")
    err = service_error(lambda: client.delete_bucket(oss.DeleteBucketRequest(bucket="otherbucket")))
    assert (err.status_code, err.code) == (403, "AccessDenied")
    bind(oss_sandbox, client)
    err = service_error(lambda: client.delete_bucket(oss.DeleteBucketRequest(bucket=BUCKET)))
    assert (err.status_code, err.code) == (409, "BucketNotEmpty")
    err = service_error(lambda: client.list_buckets(oss.ListBucketsRequest(max_keys=5000)))
    assert (err.status_code, err.code) == (400, "InvalidArgument")


# -- tokens -----------------------------------------------------------------------------------


def test_token_errors(make_sandbox: Callable[..., Sandbox]) -> None:
    box = make_sandbox(_config(max_tokens_per_bucket=2))
    client = box.client()

    def create(domain: str) -> Any:
        return client.create_cname_token(
            oss.CreateCnameTokenRequest(
                bucket=BUCKET, bucket_cname_configuration=cname_config(domain)
            )
        )

    err = service_error(lambda: create("taken.example.com"))  # another account's
    assert (err.status_code, err.code) == (403, "CnameDenied")
    create("a.example.com")
    create("b.example.com")
    err = service_error(lambda: create("c.example.com"))
    assert (err.status_code, err.code) == (400, "TooManyCnameToken")
    box.state.buckets[BUCKET].tokens["a.example.com"].expires_at = time.time() - 1
    create("c.example.com")  # the expired token no longer counts
    bind(box, client, "b.example.com")
    err = service_error(lambda: create("b.example.com"))
    assert (err.status_code, err.code, err.ec) == (403, "NoNeedCreateCnameToken", "0018-00000302")


@pytest.mark.parametrize("expired", [False, True])
def test_get_token_not_found(oss_sandbox: Sandbox, expired: bool) -> None:
    client = oss_sandbox.client()
    if expired:
        client.create_cname_token(
            oss.CreateCnameTokenRequest(bucket=BUCKET, bucket_cname_configuration=cname_config())
        )
        oss_sandbox.state.buckets[BUCKET].tokens[DOMAIN].expires_at = time.time() - 1
    err = service_error(
        lambda: client.get_cname_token(oss.GetCnameTokenRequest(bucket=BUCKET, cname=DOMAIN))
    )
    assert (err.status_code, err.code, err.ec) == (404, "CnameTokenNotFound", "0018-00000301")
    assert err.error_fileds.get("Cname") == DOMAIN


# -- PutCname / DeleteCname -------------------------------------------------------------------


def test_put_cname_errors(make_sandbox: Callable[..., Sandbox]) -> None:
    box = make_sandbox(_config(max_cnames_per_bucket=1))
    client = box.client()
    err = service_error(lambda: put_cname(client, "taken.example.com"))  # another account's
    assert (err.status_code, err.code) == (403, "CnameDenied")
    err = service_error(lambda: put_cname(client, "never.example.com"))
    assert (err.status_code, err.code) == (403, "NeedVerifyDomainOwnership")
    client.create_cname_token(
        oss.CreateCnameTokenRequest(bucket=BUCKET, bucket_cname_configuration=cname_config())
    )
    box.publish_txt(DOMAIN, "some-other-value")
    err = service_error(lambda: put_cname(client))
    assert (err.status_code, err.code) == (403, "NeedVerifyDomainOwnership")
    bind(box, client, "one.example.com")
    err = service_error(lambda: bind(box, client, "two.example.com"))
    assert (err.status_code, err.code) == (400, "TooManyCname")


def test_other_account_cannot_take_a_bound_domain(oss_sandbox: Sandbox) -> None:
    bind(oss_sandbox, oss_sandbox.client())
    other = oss_sandbox.client(ak=OTHER_AK, sk=OTHER_SK)
    put = oss.PutCnameRequest(bucket="otherbucket", bucket_cname_configuration=cname_config())
    err = service_error(lambda: other.put_cname(put))
    assert (err.status_code, err.code) == (403, "CnameDenied")
    assert err.message == "The cname belongs to another user."


def test_delete_cname(oss_sandbox: Sandbox) -> None:
    client = oss_sandbox.client()

    def delete(domain: str) -> Any:
        return client.delete_cname(
            oss.DeleteCnameRequest(bucket=BUCKET, bucket_cname_configuration=cname_config(domain))
        )

    assert delete("nothing.example.com").status_code == 200  # idempotent, as documented
    client.create_cname_token(
        oss.CreateCnameTokenRequest(bucket=BUCKET, bucket_cname_configuration=cname_config())
    )
    assert delete(DOMAIN).status_code == 200  # token only
    assert DOMAIN not in oss_sandbox.state.buckets[BUCKET].tokens
    assert delete(DOMAIN).status_code == 200


# -- certificates -----------------------------------------------------------------------------


def make_cert(name: str = DOMAIN) -> tuple[str, str, x509.Certificate]:
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    start = dt.datetime(2026, 1, 2, 3, 4, 5, tzinfo=dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(start + dt.timedelta(days=90))
        .sign(key, hashes.SHA256())
    )
    pem = cert.public_bytes(serialization.Encoding.PEM).decode()
    key_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()
    return pem, key_pem, cert


def test_certificate_upload_rotate_and_delete(oss_sandbox: Sandbox) -> None:
    client = oss_sandbox.client()
    pem, key, cert = make_cert()
    bind(oss_sandbox, client, cert=oss.CertificateConfiguration(certificate=pem, private_key=key))
    [entry] = list_cnames(client)
    first = entry.certificate
    assert (first.type, first.status, first.fingerprint) == (
        "CAS",
        "Enabled",
        sha1_fingerprint(cert),
    )
    assert first.cert_id.endswith("-cn-hangzhou")
    assert first.valid_start_date == "Fri, 2 Jan 2026 03:04:05 GMT"
    assert first.valid_end_date == "Thu, 2 Apr 2026 03:04:05 GMT"

    pem2, key2, cert2 = make_cert()
    stale = oss.CertificateConfiguration(
        certificate=pem2, private_key=key2, previous_cert_id="1-cn-hangzhou"
    )
    err = service_error(lambda: put_cname(client, cert=stale))
    assert (err.status_code, err.code, err.ec) == (400, "InvalidArgument", "0018-00000209")
    rotate = oss.CertificateConfiguration(
        certificate=pem2, private_key=key2, previous_cert_id=first.cert_id
    )
    put_cname(client, cert=rotate)
    second = list_cnames(client)[0].certificate
    assert second.fingerprint == sha1_fingerprint(cert2) and second.cert_id != first.cert_id
    forced = oss.CertificateConfiguration(certificate=pem, private_key=key, force=True)
    put_cname(client, cert=forced)
    assert list_cnames(client)[0].certificate.fingerprint == sha1_fingerprint(cert)
    put_cname(client, cert=oss.CertificateConfiguration(delete_certificate=True))
    assert list_cnames(client)[0].certificate is None


def test_certificate_errors(oss_sandbox: Sandbox) -> None:
    client = oss_sandbox.client()
    pem, key, _ = make_cert()
    _, other_key, _ = make_cert()
    err = service_error(
        lambda: put_cname(
            client, cert=oss.CertificateConfiguration(certificate=pem, private_key=key)
        )
    )
    assert err.code == "NeedVerifyDomainOwnership"  # ownership is checked before the certificate
    bind(oss_sandbox, client)
    cases = [
        (oss.CertificateConfiguration(certificate=pem, private_key=other_key), None),
        (oss.CertificateConfiguration(certificate="not a pem", private_key=key), None),
        (oss.CertificateConfiguration(certificate=pem, private_key="not a key"), None),
        (oss.CertificateConfiguration(private_key=key), "0018-00000210"),
        (oss.CertificateConfiguration(certificate=pem), None),
    ]
    for conf, ec_code in cases:
        err = service_error(partial(put_cname, client, cert=conf))
        assert (err.status_code, err.code, err.ec or None) == (400, "InvalidArgument", ec_code)
        assert key not in err.message and "PRIVATE" not in err.snapshot.decode()
    both = oss.CertificateConfiguration(delete_certificate=True, force=True)
    err = service_error(lambda: put_cname(client, cert=both))
    assert (err.status_code, err.code) == (400, "MalformedXML")
    assert list_cnames(client)[0].certificate is None


def test_cas_certificate(make_sandbox: Callable[..., Sandbox]) -> None:
    pem, _, cert = make_cert()
    config = _config().model_copy(
        update={"cas_certificates": [CasCertificateConfig(cert_id="4930001-cn-hangzhou", pem=pem)]}
    )
    box = make_sandbox(config)
    client = box.client()
    bind(box, client, cert=oss.CertificateConfiguration(cert_id="4930001-cn-hangzhou"))
    bound = list_cnames(client)[0].certificate
    assert (bound.type, bound.cert_id, bound.fingerprint) == (
        "CAS",
        "4930001-cn-hangzhou",
        sha1_fingerprint(cert),
    )
    unknown = oss.CertificateConfiguration(cert_id="123-cn-hangzhou", force=True)
    err = service_error(lambda: put_cname(client, cert=unknown))
    assert (err.status_code, err.code, err.ec) == (400, "CertificateInvalidCasId", "0018-00000204")


# -- faults -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fault", "code"),
    [("error_rate", "ServiceUnavailable"), ("throttle_rate", "MetaOperationQpsLimitExceeded")],
)
def test_faults_answer_503(make_sandbox: Callable[..., Sandbox], fault: str, code: str) -> None:
    faults = FaultsConfig(ops={"ListCname": OpFaults(**{fault: 1.0})})
    box = make_sandbox(_config().model_copy(update={"faults": faults}))
    err = service_error(lambda: list_cnames(box.client()))
    assert (err.status_code, err.code) == (503, code)
    assert box.faults.injected == {f"ListCname:{fault.split('_')[0]}": 1}


def test_fault_drop_is_a_transport_error(make_sandbox: Callable[..., Sandbox]) -> None:
    faults = FaultsConfig(ops={"ListCname": OpFaults(drop_rate=1.0)})
    box = make_sandbox(_config().model_copy(update={"faults": faults}))
    with pytest.raises(oss.exceptions.OperationError) as info:
        list_cnames(box.client())
    assert not isinstance(info.value.unwrap(), oss.exceptions.ServiceError)
    assert box.client().get_bucket_info(oss.GetBucketInfoRequest(bucket=BUCKET)).status_code == 200


# -- raw requests: virtual-host style, bodies the SDK never sends, fuzzing --------------------


def raw(
    box: Sandbox,
    method: str,
    query: str,
    body: bytes = b"",
    *,
    bucket: str | None = BUCKET,
    host: str | None = None,
    headers: dict[str, str] | None = None,
    session: requests.Session | None = None,
) -> requests.Response:
    """A request signed with the SDK's V4 signer and sent as-is (path-style unless ``host``)."""
    path = "/" if host or not bucket else f"/{bucket}/"
    all_headers = {
        "Content-Type": "application/xml",
        "Content-MD5": b64encode(hashlib.md5(body).digest()).decode(),
        **(headers or {}),
    }
    url = f"{box.endpoint}{path}" + (f"?{query}" if query else "")
    request = HttpRequest(method, url, headers=all_headers)
    SignerV4().sign(
        SigningContext(
            product="oss",
            region=REGION,
            bucket=bucket,
            request=request,
            credentials=Credentials(AK, SK),
        )
    )
    sent = dict(request.headers)
    if host:
        sent["Host"] = host
    send = session.request if session is not None else requests.request
    return send(method, request.url, headers=sent, data=body, timeout=10)


def assert_oss_answer(resp: requests.Response) -> None:
    assert resp.status_code < 500 or resp.status_code in (501, 503), resp.content
    assert len(resp.headers["x-oss-request-id"]) == 24
    assert resp.headers["Date"].endswith(" GMT") and "," not in resp.headers["Date"][5:]
    if resp.status_code >= 300:
        assert resp.headers["Content-Type"] == "application/xml"
        root = ET.fromstring(resp.content)
        assert root.tag == "Error" and root.findtext("Code")
        assert root.findtext("RequestId") == resp.headers["x-oss-request-id"]


def test_virtual_host_addressing(oss_sandbox: Sandbox) -> None:
    resp = raw(oss_sandbox, "GET", "cname=", host=f"{BUCKET}.oss-cn-hangzhou.aliyuncs.com")
    assert resp.status_code == 200
    assert ET.fromstring(resp.content).findtext("Bucket") == BUCKET
    resp = raw(oss_sandbox, "GET", "cname=", host=f"{BUCKET}.localhost")
    assert resp.status_code == 200


@pytest.mark.parametrize(
    ("body", "headers", "status", "code"),
    [
        (b"<BucketCnameConfiguration><Cname>", None, 400, "MalformedXML"),
        (
            b"<Other><Cname><Domain>a.example.com</Domain></Cname></Other>",
            None,
            400,
            "MalformedXML",
        ),
        (
            b'<!DOCTYPE x [<!ENTITY a "aaaa">]><BucketCnameConfiguration><Cname>'
            b"<Domain>&a;</Domain></Cname></BucketCnameConfiguration>",
            None,
            400,
            "MalformedXML",
        ),
        (
            b"<BucketCnameConfiguration>" + b" " * 70_000 + b"</BucketCnameConfiguration>",
            None,
            400,
            "MalformedXML",
        ),
        (
            b"<BucketCnameConfiguration><Cname><Domain>bad_domain!</Domain></Cname>"
            b"</BucketCnameConfiguration>",
            None,
            400,
            "InvalidArgument",
        ),
        (
            b"<BucketCnameConfiguration/>",
            {"Content-MD5": "AAAAAAAAAAAAAAAAAAAAAA=="},
            400,
            "InvalidDigest",
        ),
    ],
    ids=["truncated", "root", "entities", "oversized", "domain", "md5"],
)
def test_bad_bodies(
    oss_sandbox: Sandbox, body: bytes, headers: dict[str, str] | None, status: int, code: str
) -> None:
    resp = raw(oss_sandbox, "POST", "cname=&comp=token", body, headers=headers)
    assert_oss_answer(resp)
    assert (resp.status_code, ET.fromstring(resp.content).findtext("Code")) == (status, code)


_QUERY_KEYS = st.sampled_from(
    [
        "cname",
        "comp",
        "wildcard",
        "bucketInfo",
        "max-keys",
        "prefix",
        "marker",
        "x",
        "%2A",
        "&",
        "=",
    ]
)
_QUERY_VALUES = st.one_of(
    st.sampled_from(["", "token", "add", "delete", "img.example.com", "%2A.example.com", "5000"]),
    st.text(max_size=20),
)
_BODIES = st.one_of(
    st.binary(max_size=200),
    st.builds(
        lambda d, extra: (
            f"<BucketCnameConfiguration><Cname><Domain>{d}</Domain>{extra}</Cname>"
            "</BucketCnameConfiguration>"
        ).encode(),
        st.text(max_size=30),
        st.sampled_from(
            [
                "",
                "<CertificateConfiguration><CertId>x</CertId></CertificateConfiguration>",
                "<CertificateConfiguration><DeleteCertificate>true</DeleteCertificate>"
                "<Force>true</Force></CertificateConfiguration>",
                "<Domain>b</Domain>",
            ]
        ),
    ),
)


@settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck))
@given(
    method=st.sampled_from(["GET", "POST", "PUT", "DELETE", "HEAD"]),
    pairs=st.lists(st.tuples(_QUERY_KEYS, _QUERY_VALUES), max_size=4),
    body=_BODIES,
    extra=st.dictionaries(
        st.sampled_from(["x-oss-meta-a", "x-oss-security-token", "Content-Type", "security-token"]),
        st.from_regex(r"[!-~]([ -~]{0,18}[!-~])?", fullmatch=True),
        max_size=2,
    ),
    bucket=st.sampled_from([BUCKET, "otherbucket", "nosuchbucket", None]),
)
def test_fuzzed_requests_always_get_an_oss_answer(
    fuzz_box: tuple[Sandbox, requests.Session],
    method: str,
    pairs: list[tuple[str, str]],
    body: bytes,
    extra: dict[str, str],
    bucket: str | None,
) -> None:
    box, session = fuzz_box
    query = "&".join(f"{k}={quote(v, safe='')}" if v else k for k, v in pairs)
    resp = raw(box, method, query, body, bucket=bucket, headers=extra, session=session)
    if method != "HEAD":
        assert_oss_answer(resp)
    else:
        assert resp.status_code != 500 and len(resp.headers["x-oss-request-id"]) == 24


@pytest.fixture
def fuzz_box(server: tuple[SwitchApp, int]) -> Iterator[tuple[Sandbox, requests.Session]]:
    switch, port = server
    state = SandboxState(_config())
    faults = FaultPlan(state.config.faults)
    switch.inner = create_oss_app(state, faults, StateVerifier(state))
    box = Sandbox(state, faults, port)
    with requests.Session() as session:
        yield box, session
    # the app keeps serving after the fuzzing: a normal flow still works
    assert box.client().list_buckets(oss.ListBucketsRequest()).status_code == 200

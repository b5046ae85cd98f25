"""The adapter of the OSS CNAME port (:class:`~cname_flow.oss.base.OssCnameApi`) over
alibabacloud-oss-v2.

The five OSS bucket-CNAME operations: CreateCnameToken, GetCnameToken, PutCname, ListCname,
DeleteCname (https://www.alibabacloud.com/help/en/oss/developer-reference/putcname and
siblings), and GetBucketInfo for the bucket's region
(https://www.alibabacloud.com/help/en/oss/developer-reference/getbucketinfo). One instance
signs for one region; :class:`~cname_flow.oss.regions.RegionalOss` holds one per region.
Every SDK failure leaves this module as an :class:`~cname_flow.errors.OssError` (see
:mod:`cname_flow.oss.errors`).

One retry layer per call, ours: the SDK's retryer is off (``NopRetryer``, one attempt) and every
operation runs through :class:`~cname_flow.retry.RetriedCalls`, which retries what the SDK
used to (transport errors, 5xx, 408/429 and throttling codes; see ``map_oss_error``) with the
shared :class:`~cname_flow.retry.RetryPolicy` backoff, and passes every attempt through the
optional ``rate_limiter``/``on_error`` hooks. ``NeedVerifyDomainOwnership`` is not retried here:
its wait belongs to the PutCname step (:mod:`cname_flow.workflow.putcname`).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any, TypeVar
from urllib.parse import urlsplit

import alibabacloud_oss_v2 as oss

from cname_flow.config.credentials import Credentials, secret_values
from cname_flow.errors import OssError, OwnershipPending
from cname_flow.logs import get_logger
from cname_flow.model import CertificateInfo, CertificateRequest, CnameEntry, CnameToken
from cname_flow.oss.errors import OSS_SDK_ERRORS, SERVICE, map_oss_error
from cname_flow.oss.transport import http_client_for
from cname_flow.retry import RetriedCalls, RetryPolicy, is_retryable

_log = get_logger(__name__)
_T = TypeVar("_T")


class AlibabaOss:
    """:class:`OssCnameApi` over the synchronous ``alibabacloud_oss_v2.Client`` (one region).

    Args:
        region: OSS region id (``"cn-hangzhou"``); part of the V4 signing scope.
        credentials: AccessKey pair, optionally with an STS token.
        endpoint: ``None`` for the SDK's production endpoint (https), or an explicit one such
            as ``"http://127.0.0.1:PORT"`` (the sandbox). A host outside ``aliyuncs.com`` is
            addressed path-style (``/<bucket>/?cname``); a scheme-less endpoint means https.
        signature_version: ``"v4"`` (default) or ``"v1"``.
        connect_timeout_s: TCP connect timeout, seconds.
        read_timeout_s: read/write timeout, seconds.
        use_path_style: ``None`` infers the style from ``endpoint`` as above; ``True``/``False``
            forces path-style / virtual-hosted addressing (the ``oss.use_path_style`` setting).
        rate_limiter: called with the operation name before every attempt (may block).
        on_error: called with the operation name and the mapped error after every failed
            attempt, retried or not (e.g. ``ApiStats.count_error``); it must not raise.
        retry: retry policy for retryable failures.
        sleep: the sleep between attempts, seconds (injected in tests).
    """

    def __init__(
        self,
        *,
        region: str,
        credentials: Credentials,
        endpoint: str | None = None,
        signature_version: str = "v4",
        connect_timeout_s: float = 10,
        read_timeout_s: float = 20,
        use_path_style: bool | None = None,
        rate_limiter: Callable[[str], None] | None = None,
        on_error: Callable[[str, OssError], None] | None = None,
        retry: RetryPolicy | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        cfg = oss.config.load_default()
        cfg.retryer, cfg.retry_max_attempts = oss.retry.NopRetryer(), 1  # one layer: ours
        cfg.region = region
        cfg.signature_version = signature_version
        cfg.connect_timeout = connect_timeout_s
        cfg.readwrite_timeout = read_timeout_s
        cfg.credentials_provider = oss.credentials.StaticCredentialsProvider(
            credentials.access_key_id,
            credentials.access_key_secret,
            credentials.security_token,
        )
        if endpoint:
            cfg.endpoint = endpoint
            cfg.use_path_style = _needs_path_style(endpoint)
        if use_path_style is not None:
            cfg.use_path_style = use_path_style
        http_client = http_client_for(
            endpoint,
            region=region,
            connect_timeout_s=connect_timeout_s,
            read_timeout_s=read_timeout_s,
        )
        if http_client is not None:  # None: a proxy applies; the SDK's requests client does it
            cfg.http_client = http_client
        self.region = region
        #: ``(bucket, domain)`` → the CertId the last PutCname with a certificate bound, as its
        #: answer header :data:`CERT_ID_HEADER` named it (absent when the answer had none).
        self.certificate_ids: dict[tuple[str, str], str] = {}
        self._secrets = secret_values(credentials)
        self._client = oss.Client(cfg)
        self._calls = RetriedCalls(
            retry or RetryPolicy(), sdk_errors=OSS_SDK_ERRORS,
            map_error=lambda exc, op: map_oss_error(exc, op, self._secrets),
            sleep=sleep, retry_if=_call_retryable, rate_limiter=rate_limiter,
            on_error=on_error, log_fields={"service": SERVICE},
        )

    def bucket_region(self, bucket: str) -> str:
        """GetBucketInfo: the bucket's region id, read from ``Location`` (``oss-cn-hangzhou`` →
        ``"cn-hangzhou"``). Asked anew on every call (the caching is the router's).

        Raises:
            BucketNotFound: ``NoSuchBucket``.
            BucketInOtherRegion: this client's region is not the bucket's (OSS names the right
                endpoint; ``.region`` holds its region).
            OssError: any other failure, or an answer without ``Location``.
        """
        request = oss.models.GetBucketInfoRequest(bucket=bucket)
        result = self._call("GetBucketInfo", lambda: self._client.get_bucket_info(request),
                            bucket)
        info = result.bucket_info
        location = str(info.location or "") if info is not None else ""
        if not location:
            raise _invalid("GetBucketInfo", f"no Location for bucket {bucket!r}")
        return location.removeprefix("oss-")

    def create_token(self, bucket: str, domain: str) -> CnameToken:
        """CreateCnameToken. Returns the token with its aware-UTC expiry.

        Raises:
            CnameAlreadyBound: ``NoNeedCreateCnameToken``, the domain is bound to this bucket.
            CnameTaken: ``CnameAlreadyExists``, the domain is bound to a bucket (maybe this one).
            OssError: any other failure, e.g. ``TooManyCnameToken``.
        """
        request = oss.models.CreateCnameTokenRequest(
            bucket=bucket, bucket_cname_configuration=_cname_config(domain)
        )
        result = self._call("CreateCnameToken", lambda: self._wild(
            "CreateCnameToken", request, "token", oss.models.CreateCnameTokenResult()
        ) if domain.startswith("*.") else self._client.create_cname_token(request), bucket)
        return _token(result.cname_token, bucket, domain, "CreateCnameToken")

    def get_token(self, bucket: str, domain: str) -> CnameToken | None:
        """GetCnameToken. ``None`` when OSS answers ``CnameTokenNotFound`` (none or expired).

        Raises:
            OssError: any other failure.
        """
        wild = domain.startswith("*.")
        request = oss.models.GetCnameTokenRequest(
            bucket=bucket, cname=domain.removeprefix("*."), wildcard=True if wild else None)
        try:
            result = self._call("GetCnameToken", lambda: self._client.get_cname_token(request),
                                bucket)
        except OssError as exc:
            if exc.code == "CnameTokenNotFound":
                return None
            raise
        return _token(result.cname_token, bucket, domain, "GetCnameToken")

    def put_cname(
        self, bucket: str, domain: str, certificate: CertificateRequest | None = None
    ) -> str:
        """PutCname, optionally with a CertificateConfiguration. Returns the request id.

        The CertId the answer names in :data:`CERT_ID_HEADER` (an inline certificate becomes a
        CAS certificate with a new id) is logged and kept in :attr:`certificate_ids`.

        Raises:
            OwnershipPending: ``NeedVerifyDomainOwnership``, the TXT proof is not visible to
                OSS yet (retryable).
            CnameTaken: ``CnameAlreadyExists``, bound to a bucket (maybe this one).
            IcpFilingMissing: ``NoSuchCnameInRecord``, the domain has no ICP filing.
            OssCertificateConflict: ``PreviousCertId`` no longer matches the bound certificate,
                or ``CasRenewCertificateConflict`` (a replacement sent without either).
            DomainOfOtherAccount: ``CnameDenied``, another account's domain.
            OssError: any other failure.
        """
        request = oss.models.PutCnameRequest(
            bucket=bucket, bucket_cname_configuration=_cname_config(domain, certificate)
        )
        result = self._call("PutCname", lambda: self._client.put_cname(request), bucket)
        cert_id = header(result.headers, CERT_ID_HEADER)
        if cert_id:
            self.certificate_ids[(bucket, domain)] = cert_id
        _log.info("oss.cname.put", bucket=bucket, domain=domain, request_id=result.request_id,
                  cert_id=cert_id or None)
        return str(result.request_id or "")

    def list_cnames(self, bucket: str) -> list[CnameEntry]:
        """ListCname. Returns one :class:`CnameEntry` per bound domain, ``[]`` when none.

        Raises:
            OssError: e.g. ``NoSuchBucket``.
        """
        request = oss.models.ListCnameRequest(bucket=bucket)
        result = self._call("ListCname", lambda: self._client.list_cname(request), bucket)
        return [_entry(info) for info in result.cnames or []]

    def delete_cname(self, bucket: str, domain: str) -> None:
        """DeleteCname; 200 for a domain not mapped (the documented idempotent answer) and the
        older ``NoSuchCname`` both count as success.

        Raises:
            OssError: any other failure (``NoSuchBucket`` included).
        """
        request = oss.models.DeleteCnameRequest(
            bucket=bucket, bucket_cname_configuration=_cname_config(domain)
        )
        try:
            self._call("DeleteCname", lambda: self._wild(
                "DeleteCname", request, "delete", oss.models.DeleteCnameResult()
            ) if domain.startswith("*.") else self._client.delete_cname(request), bucket)
        except OssError as exc:
            if exc.code != "NoSuchCname":
                raise
            _log.debug("oss.cname.absent", bucket=bucket, domain=domain)
            return
        _log.info("oss.cname.deleted", bucket=bucket, domain=domain)

    def _wild(self, op: str, request: Any, comp: str, result: _T) -> _T:
        """``op`` (CreateCnameToken / DeleteCname) with ``wildcard=true``, which SDK 1.4.1 does
        not model on these requests: the SDK's own serialization plus the parameter, through
        its public ``Client.invoke_operation`` (CreateCnameToken, DeleteCname references,
        https://help.aliyun.com/en/oss/developer-reference/createcnametoken)."""
        from alibabacloud_oss_v2 import serde, serde_utils
        from alibabacloud_oss_v2.types import CaseInsensitiveDict, OperationInput

        op_input = serde.serialize_input(request=request, op_input=OperationInput(
            op_name=op, method="POST",
            headers=CaseInsensitiveDict({"Content-Type": "application/xml"}),
            parameters={"cname": "", "comp": comp, "wildcard": "true"},
            bucket=request.bucket, op_metadata={"sub-resource": ["cname", "comp"]},
        ), custom_serializer=[serde_utils.add_content_md5])
        output = self._client.invoke_operation(op_input)
        out: _T = serde.deserialize_output(result=result, op_output=output,
                                           custom_deserializer=[serde.deserialize_output_xmlbody])
        return out

    def _call(self, op: str, fn: Callable[[], _T], bucket: str = "") -> _T:
        """One SDK call of ``op`` through the retry layer; its errors name ``bucket``."""

        def map_error(exc: BaseException, action: str) -> OssError:
            return map_oss_error(exc, action, self._secrets, bucket=bucket)

        return self._calls(op, fn, map_error=map_error)


#: PutCname's answer header naming the CAS certificate it bound, an inline upload's new id
#: included (the Java SDK's ``OSSHeaders.OSS_HEADER_CERT_ID``, read by its
#: ``AddBucketCnameResponseParser``).
CERT_ID_HEADER = "x-oss-yundun-certificate-id"


def header(headers: Mapping[str, str] | None, name: str) -> str:
    """The value of header ``name`` (any case) in an SDK result's headers, or ``""``."""
    wanted = name.lower()
    return next((str(v) for k, v in (headers or {}).items() if k.lower() == wanted), "")


def _call_retryable(exc: BaseException) -> bool:
    """Retryable at the call level: not ``OwnershipPending``, whose wait is the PutCname step's."""
    return is_retryable(exc) and not isinstance(exc, OwnershipPending)


def _needs_path_style(endpoint: str) -> bool:
    host = urlsplit(endpoint if "://" in endpoint else f"//{endpoint}").hostname or ""
    return not host.endswith(".aliyuncs.com")


def _cname_config(
    domain: str, certificate: CertificateRequest | None = None
) -> oss.models.BucketCnameConfiguration:
    """``*.<base>`` goes out as ``<Domain>base</Domain>`` (plus ``<IsWildCard>true`` for
    PutCname; the token operations carry ``wildcard=true`` instead, see ``AlibabaOss._wild``)."""
    cert = _certificate_config(certificate) if certificate is not None else None
    wild = domain.startswith("*.")
    return oss.models.BucketCnameConfiguration(cname=oss.models.Cname(
        domain=domain.removeprefix("*."), certificate_configuration=cert,
        is_wild_card=True if wild else None))


def _certificate_config(req: CertificateRequest) -> oss.models.CertificateConfiguration:
    """The SDK model of a CertificateRequest; false booleans are left out of the XML, and
    ``Force`` never goes with ``DeleteCertificate`` (OSS answers MalformedXML to the pair whatever
    Force's value: terraform-provider-alicloud commit 6e2693809)."""
    return oss.models.CertificateConfiguration(
        cert_id=req.cert_id,
        certificate=req.certificate,
        private_key=req.private_key,
        previous_cert_id=req.previous_cert_id,
        force=True if req.force and not req.delete_certificate else None,
        delete_certificate=True if req.delete_certificate else None,
    )


def _invalid(op: str, what: str) -> OssError:
    return OssError(f"OSS {op}: {what}", service=SERVICE, code="InvalidResponse", retryable=False)


def _token(raw: oss.models.CnameToken | None, bucket: str, domain: str, op: str) -> CnameToken:
    if raw is None or not raw.token:
        raise _invalid(op, "the answer carries no CnameToken")
    expires = parse_http_date(raw.expire_time)
    if expires is None:
        raise _invalid(op, f"unreadable ExpireTime {raw.expire_time!r}")
    return CnameToken(
        bucket=raw.bucket or bucket,
        domain=_domain(raw.cname or domain),
        token=raw.token,
        expires_at=expires,
    )


def _entry(info: oss.models.CnameInfo) -> CnameEntry:
    return CnameEntry(
        domain=("*." if info.is_wild_card else "") + _domain(info.domain or ""),
        status=info.status or "",
        last_modified=parse_http_date(info.last_modified),
        certificate=_certificate_info(info.certificate),
    )


def _certificate_info(raw: oss.models.CnameCertificate | None) -> CertificateInfo | None:
    if raw is None or not (raw.cert_id or raw.fingerprint):
        return None
    return CertificateInfo(
        type=raw.type or "",
        cert_id=raw.cert_id or "",
        status=raw.status or "",
        fingerprint=raw.fingerprint or "",
        valid_start=parse_http_date(raw.valid_start_date),
        valid_end=parse_http_date(raw.valid_end_date),
    )


def _domain(raw: str) -> str:
    return raw.strip().rstrip(".").lower()


def parse_http_date(raw: str | None) -> datetime | None:
    """Parse an OSS date into an aware UTC datetime, or ``None`` when absent or unreadable.

    Accepts RFC 1123 (``"Wed, 23 Feb 2022 21:16:37 GMT"``, also with a one-digit day, as in
    ListCname certificate dates) and ISO 8601 (``"2021-09-15T02:35:07.000Z"``, LastModified).
    A datetime without a zone is taken as UTC.
    """
    if not raw or not raw.strip():
        return None
    text = raw.strip()
    try:
        parsed = parsedate_to_datetime(text)
    except (TypeError, ValueError):
        try:
            parsed = datetime.fromisoformat(text)
        except ValueError:
            return None
    if parsed.tzinfo is None:
        return parsed.replace(tzinfo=UTC)
    return parsed.astimezone(UTC)

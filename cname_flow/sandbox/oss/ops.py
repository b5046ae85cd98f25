"""The sandbox's OSS operations over :class:`SandboxState`: buckets and the five CNAME calls.

Each method takes the authenticated :class:`Caller` and returns the response body (or ``b""``),
or raises :class:`OssErrorResponse`. Mutations hold ``state.lock`` and call ``state.touch()``; the
only await (the ownership proof in PutCname) happens outside the lock. Error codes, statuses and ECs
follow the operations' API references; ``docs/sandbox-oss.md`` links them and lists every guess.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Protocol

from cname_flow.errors import InputError
from cname_flow.model import normalize_domain
from cname_flow.sandbox.oss import xml as oss_xml
from cname_flow.sandbox.oss.certs import resolve_certificate
from cname_flow.sandbox.oss.xml import MalformedXml, OssErrorResponse
from cname_flow.sandbox.state import (
    Bucket,
    CnameRecord,
    SandboxState,
    TokenRecord,
)

_BUCKET_NAME = re.compile(r"^[a-z0-9][a-z0-9-]{1,61}[a-z0-9]$")

#: OSS reads the CNAME token from the TXT record ``_dnsauth.<domain>`` ("Map a custom domain name",
#: https://www.alibabacloud.com/help/en/oss/user-guide/map-custom-domain-names-5). Spelled here on
#: its own rather than through the client's ``txt_name``, so a client bug cannot hide in the
#: emulator.
PROOF_PREFIX = "_dnsauth."


class OwnershipVerifier(Protocol):
    """Reads TXT records the way OSS's verifier does (through a caching resolver)."""

    async def txt_values(self, name: str) -> frozenset[str]:
        """TXT values (character-strings joined) the verifier's caching resolver returns for
        `name`; empty on NXDOMAIN/NODATA/failure."""
        ...


#: OSS's answer to a request that reached a region the bucket is not in (message: the 403
#: page, https://www.alibabacloud.com/help/en/oss/how-to-troubleshoot-403-status-code-when-you-access-oss;
#: EC and the ``Bucket``/``Endpoint`` children: a real answer, see ``docs/sandbox-oss.md``).
WRONG_ENDPOINT = (
    "The bucket you are attempting to access must be addressed using the specified endpoint."
    " Please send all future requests to this endpoint."
)
WRONG_ENDPOINT_EC = "0003-00001403"


@dataclass(frozen=True, slots=True)
class Caller:
    """Who signed the request: account id, for V4 the signing region, and the region the
    request's host names (``<bucket>.oss-<region>.aliyuncs.com``), if any."""

    account: str
    region: str | None = field(default=None)
    host_region: str | None = field(default=None)

    @property
    def endpoint_region(self) -> str | None:
        """The region this request reached: the host's when it names one, else (the sandbox's
        one loopback endpoint stands for every region) the V4 signing region; ``None`` for a V1
        request to a host that names no region."""
        return self.host_region or self.region


def malformed(reason: str = "The XML you provided was not well-formed.") -> OssErrorResponse:
    """400 MalformedXML."""
    return OssErrorResponse(400, "MalformedXML", reason)


class OssOperations:
    """Bucket and CNAME operations of the sandbox.

    Args:
        state: the shared store.
        verifier: TXT lookups for PutCname's ownership proof.
    """

    def __init__(self, state: SandboxState, verifier: OwnershipVerifier) -> None:
        self.state = state
        self.verifier = verifier
        self.limits = state.config.oss

    # -- buckets ------------------------------------------------------------------------------

    def put_bucket(self, caller: Caller, name: str) -> None:
        """PutBucket: create ``name`` for the caller (idempotent for its owner).

        Raises:
            OssErrorResponse: 400 InvalidBucketName, 409 BucketAlreadyExists (another account's).
        """
        if not _BUCKET_NAME.match(name):
            raise OssErrorResponse(400, "InvalidBucketName", "The specified bucket is not valid.")
        with self.state.lock:
            existing = self.state.buckets.get(name)
            if existing is not None:
                if existing.owner != caller.account:
                    raise OssErrorResponse(
                        409, "BucketAlreadyExists", "The requested bucket name is not available."
                    )
                return
            region = caller.endpoint_region or self.state.config.region
            self.state.buckets[name] = Bucket(name, region, caller.account, self.state.clock())
            self.state.touch()

    def list_buckets(self, caller: Caller, query: Mapping[str, str]) -> bytes:
        """ListBuckets: the caller's buckets by name, filtered by ``prefix``, after ``marker``.

        Raises:
            OssErrorResponse: 400 InvalidArgument for ``max-keys`` outside 1..1000.
        """
        prefix, marker = query.get("prefix", ""), query.get("marker", "")
        max_keys = _max_keys(query.get("max-keys"))
        with self.state.lock:
            names = sorted(
                b.name
                for b in self.state.buckets.values()
                if b.owner == caller.account and b.name.startswith(prefix) and b.name > marker
            )
            page = [self.state.buckets[n] for n in names[:max_keys]]
        next_marker = page[-1].name if len(names) > max_keys else None
        return oss_xml.list_buckets_body(
            caller.account, page, prefix, marker, max_keys, next_marker
        )

    def get_bucket_info(self, caller: Caller, name: str) -> bytes:
        """GetBucketInfo. Raises OssErrorResponse 404 NoSuchBucket / 403 AccessDenied (another
        account's bucket, or a region the bucket is not in: see :meth:`_bucket`)."""
        with self.state.lock:
            return oss_xml.bucket_info_body(self._bucket(caller, name))

    def delete_bucket(self, caller: Caller, name: str) -> None:
        """DeleteBucket; refused (409 BucketNotEmpty) while domains are bound to it."""
        with self.state.lock:
            bucket = self._bucket(caller, name)
            if bucket.cnames:
                raise OssErrorResponse(
                    409, "BucketNotEmpty", "The bucket has custom domains bound to it."
                )
            del self.state.buckets[name]
            self.state.touch()

    def _bucket(self, caller: Caller, name: str) -> Bucket:
        """The bucket, checked in order: exists (404 NoSuchBucket), reached in its own region
        (403 AccessDenied naming the right ``Endpoint``), the caller's (403 AccessDenied)."""
        bucket = self.state.buckets.get(name)
        if bucket is None:
            raise OssErrorResponse(
                404,
                "NoSuchBucket",
                "The specified bucket does not exist.",
                fields={"BucketName": oss_xml.xml_text(name)},
            )
        region = caller.endpoint_region
        if region is not None and region != bucket.region:
            raise OssErrorResponse(
                403, "AccessDenied", WRONG_ENDPOINT, WRONG_ENDPOINT_EC,
                {"Bucket": bucket.name, "Endpoint": f"oss-{bucket.region}.aliyuncs.com"},
            )
        if bucket.owner != caller.account:
            raise OssErrorResponse(403, "AccessDenied", "You have no right to access this bucket.")
        return bucket

    # -- CNAME tokens ---------------------------------------------------------------------------

    def create_cname_token(
        self, caller: Caller, bucket_name: str, body: bytes, wildcard: str | None = None
    ) -> bytes:
        """CreateCnameToken: a token valid ``token_validity_s``; the same one while valid.
        ``wildcard``: the query parameter as sent (see :func:`_wildcard_key`).

        Raises:
            OssErrorResponse: 403 NoNeedCreateCnameToken (bound here), 409 CnameAlreadyExists
                (bound to another bucket of the account), 403 CnameDenied (another account's),
                refused names (:func:`_bindable`), 400 TooManyCnameToken, plus the bucket and
                body errors.
        """
        domain = _domain(_parse(body).domain)
        with self.state.lock:
            bucket = self._bucket(caller, bucket_name)
            _bindable(domain)
            domain = _wildcard_key(bucket, domain, wildcard)
            if domain in bucket.cnames:
                raise OssErrorResponse(
                    403,
                    "NoNeedCreateCnameToken",
                    "The CNAME is already bound to this bucket.",
                    "0018-00000302",
                )
            self._not_bound_elsewhere(bucket, domain)
            now = self.state.clock()
            token = self._valid_token(bucket, domain, now) or self._new_token(bucket, domain, now)
            return oss_xml.cname_token_body(bucket.name, token)

    def _new_token(self, bucket: Bucket, domain: str, now: float) -> TokenRecord:
        for stale in [d for d, t in bucket.tokens.items() if t.expires_at <= now]:
            del bucket.tokens[stale]
        if len(bucket.tokens) >= self.limits.max_tokens_per_bucket:
            raise OssErrorResponse(
                400, "TooManyCnameToken", "The number of CNAME tokens exceeds the limit."
            )
        token = TokenRecord(domain, secrets.token_hex(16), now, now + self.limits.token_validity_s)
        bucket.tokens[domain] = token
        self.state.touch()
        return token

    def get_cname_token(
        self, caller: Caller, bucket_name: str, raw_domain: str, wildcard: str | None = None
    ) -> bytes:
        """GetCnameToken: the valid token for the domain, else 404 CnameTokenNotFound."""
        domain = _domain(raw_domain)
        with self.state.lock:
            bucket = self._bucket(caller, bucket_name)
            domain = _wildcard_key(bucket, domain, wildcard)
            token = self._valid_token(bucket, domain, self.state.clock())
            if token is None:
                raise OssErrorResponse(
                    404,
                    "CnameTokenNotFound",
                    "The CNAME token does not exist.",
                    "0018-00000301",
                    {"Bucket": bucket.name, "Cname": domain},
                )
            return oss_xml.cname_token_body(bucket.name, token)

    @staticmethod
    def _valid_token(bucket: Bucket, domain: str, now: float) -> TokenRecord | None:
        token = bucket.tokens.get(domain)
        return token if token is not None and token.expires_at > now else None

    def _not_bound_elsewhere(self, bucket: Bucket, domain: str) -> None:
        """409 CnameAlreadyExists when another bucket of the account holds the domain; 403
        CnameDenied, the real service's "The cname belongs to another user." (seed doc 003;
        a real answer quoted in ``docs/sandbox-oss.md``), when another account's does."""
        holder = self.state.bucket_binding(domain)
        if holder is not None and holder is not bucket and holder.owner != bucket.owner:
            raise _denied()
        if holder is not None and holder is not bucket:
            raise OssErrorResponse(
                409,
                "CnameAlreadyExists",
                "The CNAME already exists on another bucket.",
                fields={"Cname": domain, "CnameType": "CNAME_OSS"},
            )

    # -- CNAME bindings -------------------------------------------------------------------------

    async def put_cname(self, caller: Caller, bucket_name: str, body: bytes) -> str | None:
        """PutCname: bind (or update the certificate of) a domain after the TXT ownership proof.

        Order: bucket → refused name → bound elsewhere (409, or 403 CnameDenied for another
        account's) → ownership (403 NeedVerifyDomainOwnership) → ICP filing (404
        NoSuchCnameInRecord, new bindings on buckets :meth:`_icp_required`) → domain limit →
        certificate. A domain already bound to this bucket skips the ownership proof unless
        the body carries a CertificateConfiguration and ``oss.reverify_bound`` is on (the
        default; certimate-go/certimate#1042). Its token then is the one issued before the
        binding, while still valid: CreateCnameToken answers NoNeedCreateCnameToken for a
        bound domain, so once that token expired no new proof can be made (the dead end
        ``docs/sandbox-oss.md`` describes).

        Returns:
            The CertId bound when the request carried a certificate, else None (the API layer
            sends it as ``x-oss-yundun-certificate-id``).
        """
        conf = _parse(body)
        domain = _domain(conf.domain)
        wild = None if conf.is_wildcard is None else str(conf.is_wildcard).lower()
        with self.state.lock:
            bucket = self._bucket(caller, bucket_name)
            _bindable(domain)
            domain = _wildcard_key(bucket, domain, wild)
            self._not_bound_elsewhere(bucket, domain)
            bound_here = domain in bucket.cnames
            token = self._valid_token(bucket, domain, self.state.clock())
        if not bound_here or (conf.certificate is not None and self.limits.reverify_bound):
            await self._prove_ownership(domain, token)
        with self.state.lock:
            bucket = self._bucket(caller, bucket_name)
            self._not_bound_elsewhere(bucket, domain)
            current = bucket.cnames.get(domain)
            if current is None and self._icp_required(bucket, domain):
                raise OssErrorResponse(
                    404, "NoSuchCnameInRecord", "No such cname be found in record."
                )
            if current is None and len(bucket.cnames) >= self.limits.max_cnames_per_bucket:
                raise OssErrorResponse(
                    400, "TooManyCname", "The number of CNAMEs exceeds the bucket limit."
                )
            now = self.state.clock()
            cert = resolve_certificate(self.state, bucket, current, conf.certificate, now)
            bucket.cnames[domain] = CnameRecord(domain, "Enabled", now, cert)
            self.state.touch()
        return cert.cert_id if cert is not None and conf.certificate is not None else None

    def _icp_required(self, bucket: Bucket, domain: str) -> bool:
        """Whether binding ``domain`` to ``bucket`` is refused for want of an ICP filing: the
        switch is on, the bucket's region needs filings (mainland China: ``cn-*`` but
        ``cn-hongkong``, unless the config lists the regions) and neither the domain nor a name
        above it is filed."""
        icp = self.state.config.icp
        mainland = bucket.region.startswith("cn-") and bucket.region != "cn-hongkong"
        needs = mainland if icp.regions is None else bucket.region in icp.regions
        if not icp.enforce or not needs:
            return False
        name = domain.removeprefix("*.")
        filed = {f.lower().rstrip(".") for f in icp.filed}
        return not any(name == f or name.endswith("." + f) for f in filed)

    async def _prove_ownership(self, domain: str, token: TokenRecord | None) -> None:
        if token is not None:
            # a wildcard token is assumed to be read at _dnsauth.<base> (undocumented; see
            # docs/sandbox-oss.md)
            proof = await self.verifier.txt_values(PROOF_PREFIX + domain.removeprefix("*."))
            if token.token in proof:
                return
        raise OssErrorResponse(
            403,
            "NeedVerifyDomainOwnership",
            "Please verify domain ownership by CreateCnameToken and try again.",
            "0018-00000115",
        )

    def list_cname(self, caller: Caller, bucket_name: str) -> bytes:
        """ListCname: every domain bound to the bucket, with its certificate block."""
        with self.state.lock:
            return oss_xml.list_cname_body(self._bucket(caller, bucket_name))

    def delete_cname(
        self, caller: Caller, bucket_name: str, body: bytes, wildcard: str | None = None
    ) -> None:
        """DeleteCname: remove the binding, or the pending token when not bound.

        Idempotent, as the current DeleteCname reference documents: a domain neither bound nor
        pending here answers 200 too
        (https://www.alibabacloud.com/help/en/oss/developer-reference/deletecname). A domain
        bound to another account's bucket answers 403 CnameDenied (a real answer quoted in
        ``docs/sandbox-oss.md``). ``wildcard``: the query parameter as sent.
        """
        domain = _domain(_parse(body).domain)
        with self.state.lock:
            bucket = self._bucket(caller, bucket_name)
            domain = _wildcard_key(bucket, domain, wildcard)
            removed = bucket.cnames.pop(domain, None) or bucket.tokens.pop(domain, None)
            if removed is None:
                holder = self.state.bucket_binding(domain)
                if holder is not None and holder.owner != bucket.owner:
                    raise _denied()
                return
            self.state.touch()


def _parse(body: bytes) -> oss_xml.CnameConfiguration:
    try:
        return oss_xml.parse_cname_configuration(body)
    except MalformedXml as exc:
        raise malformed() from exc


def _domain(raw: str) -> str:
    """The domain lowercased as an A-label. A wildcard is never written ``*.`` on the wire (the
    ``wildcard`` parameter / ``<IsWildCard>`` selects it), so ``*`` fails like any bad label."""
    try:
        return normalize_domain(raw)
    except (InputError, UnicodeError):
        raise OssErrorResponse(400, "InvalidArgument", "The domain name is not valid.") from None


def _wildcard_key(bucket: Bucket, domain: str, flag: str | None) -> str:
    """The bucket's key for ``domain``: ``*.<domain>`` when ``flag`` (the ``wildcard`` query
    parameter of Create/Get/DeleteCname, or PutCname's ``<IsWildCard>``) is ``true``.

    Wildcards exist on Agentic Buckets only; on a standard bucket ``wildcard`` is optional and
    defaults to false (CreateCnameToken, PutCname references,
    https://help.aliyun.com/en/oss/developer-reference/putcname). The refusal's code is a guess.

    Raises:
        OssErrorResponse: 400 InvalidArgument for a value other than true/false, or a wildcard
            on a standard bucket.
    """
    value = (flag or "false").lower()
    if value not in ("true", "false"):
        raise OssErrorResponse(400, "InvalidArgument", "wildcard must be true or false.")
    if value == "false":
        return domain
    if bucket.kind != "agentic":
        raise OssErrorResponse(
            400, "InvalidArgument", "Wildcard CNAMEs are supported only on Agentic Buckets."
        )
    return f"*.{domain}"


#: Domains OSS reserves (EC 0018-00000401, https://help.aliyun.com/zh/oss/support/0018-00000401):
#: each of them and every name under it is refused by CreateCnameToken and PutCname.
RESERVED_SUFFIXES = ("aliyuncs.com", "aliyun.com", "aliyun-inc.com", "taobao.com", "taobaocdn.com")


def _bindable(domain: str) -> None:
    """Refuse the names OSS refuses as custom domains.

    Raises:
        OssErrorResponse: 403 CnameIsForbidden, EC 0018-00000401, for a reserved domain (code
            and status: the PutCname error table; EC: its help page); 400 InvalidArgument,
            EC 0017-00000249, "Entire hostname must be longer than 3 ASCII characters."
            (https://help.aliyun.com/zh/oss/support/0017-00000249) for 3 characters or fewer.
    """
    name = domain.removeprefix("*.")
    if any(name == s or name.endswith("." + s) for s in RESERVED_SUFFIXES):
        raise OssErrorResponse(
            403, "CnameIsForbidden", "The cname is forbidden to use.", "0018-00000401"
        )
    if len(name) <= 3:
        raise OssErrorResponse(
            400, "InvalidArgument", "Entire hostname must be longer than 3 ASCII characters.",
            "0017-00000249",
        )


def _denied() -> OssErrorResponse:
    """403 CnameDenied: the domain is bound by another account."""
    return OssErrorResponse(403, "CnameDenied", "The cname belongs to another user.")


def _max_keys(raw: str | None) -> int:
    if raw is None or raw == "":
        return 100
    if not (len(raw) <= 4 and raw.isascii() and raw.isdigit()) or not 1 <= int(raw) <= 1000:
        raise OssErrorResponse(
            400, "InvalidArgument", "max-keys must be an integer from 1 to 1000."
        )
    return int(raw)

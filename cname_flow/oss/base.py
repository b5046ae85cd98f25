"""The OSS CNAME port: the five bucket-CNAME operations the workflow needs, as a Protocol.

CreateCnameToken, GetCnameToken, PutCname, ListCname, DeleteCname
(https://www.alibabacloud.com/help/en/oss/developer-reference/putcname and siblings), plus the
bucket's region from GetBucketInfo
(https://www.alibabacloud.com/help/en/oss/developer-reference/getbucketinfo). This module
imports no vendor SDK: the workflow codes against it, and :mod:`cname_flow.oss.adapter` implements
it over alibabacloud-oss-v2.
"""

from __future__ import annotations

from typing import Protocol

from cname_flow.errors import OssError
from cname_flow.model import CertificateRequest, CnameEntry, CnameToken

__all__ = ["OssCnameApi", "OssError"]


class OssCnameApi(Protocol):
    """Port: the OSS bucket-CNAME API. All methods raise :class:`OssError` (or a subclass);
    a bucket that does not exist raises :class:`~cname_flow.errors.BucketNotFound`."""

    def bucket_region(self, bucket: str) -> str:
        """GetBucketInfo: the region id the bucket is in (``"cn-hangzhou"``). Implementations
        may cache it: a bucket never moves."""
        ...

    def create_token(self, bucket: str, domain: str) -> CnameToken:
        """CreateCnameToken: mint (or, within 72 h, return the same) ownership token."""
        ...

    def get_token(self, bucket: str, domain: str) -> CnameToken | None:
        """GetCnameToken: the current token, or ``None`` when none is valid."""
        ...

    def put_cname(
        self, bucket: str, domain: str, certificate: CertificateRequest | None = None
    ) -> str:
        """PutCname: bind ``domain`` (optionally with a certificate); returns the request id."""
        ...

    def list_cnames(self, bucket: str) -> list[CnameEntry]:
        """ListCname: every domain bound to ``bucket`` (``[]`` when none)."""
        ...

    def delete_cname(self, bucket: str, domain: str) -> None:
        """DeleteCname: unbind ``domain``; a domain that is not bound counts as done."""
        ...

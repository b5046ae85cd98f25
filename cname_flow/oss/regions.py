"""One OSS client per region behind the :class:`~cname_flow.oss.base.OssCnameApi` port.

OSS serves a bucket only in the bucket's own region: a request that reaches another region's
endpoint is answered ``403 AccessDenied`` with the right ``<Endpoint>`` ("must be addressed
using the specified endpoint",
https://www.alibabacloud.com/help/en/oss/how-to-troubleshoot-403-status-code-when-you-access-oss),
and a V4 signature must be scoped to the endpoint's region (EC 0002-00000226,
https://help.aliyun.com/zh/oss/support/0002-00000226). So :class:`RegionalOss` sends each
bucket's calls through a client built for that bucket's region.

The region of a bucket is learned once, with GetBucketInfo
(https://www.alibabacloud.com/help/en/oss/developer-reference/getbucketinfo) asked through the
client of the home region (``oss.region``). When OSS answers that the bucket lives elsewhere
(:class:`~cname_flow.errors.BucketInOtherRegion`), GetBucketInfo is asked again in the region
that answer names, whose ``Location`` is the one believed. The result is cached for the life of
the router (a bucket never changes region). Thread-safe: one lookup per bucket however many
threads ask at once.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

from cname_flow.errors import BucketInOtherRegion
from cname_flow.logs import get_logger
from cname_flow.model import CertificateRequest, CnameEntry, CnameToken
from cname_flow.oss.base import OssCnameApi

__all__ = ["ClientFactory", "RegionalOss"]

_log = get_logger(__name__)

#: Builds the single-region client of a region id (``"cn-shanghai"`` → an ``AlibabaOss``
#: signing for it).
ClientFactory = Callable[[str], OssCnameApi]


class RegionalOss:
    """:class:`OssCnameApi` over one client per region, each bucket routed to its own region.

    Args:
        factory: builds the client of a region, called at most once per region; the home
            region's client is built at once (a bad setting fails here, not mid-run).
        home_region: the region asked first for a bucket's region (``oss.region``).
    """

    def __init__(self, factory: ClientFactory, home_region: str) -> None:
        self.home_region = home_region
        self._factory = factory
        self._clients: dict[str, OssCnameApi] = {}
        self._regions: dict[str, str] = {}
        self._lookups: dict[str, threading.Lock] = {}
        self._lock = threading.Lock()
        self.client(home_region)

    def client(self, region: str) -> OssCnameApi:
        """The client of ``region``, built on first use."""
        with self._lock:
            found = self._clients.get(region)
            if found is None:
                found = self._clients[region] = self._factory(region)
            return found

    @property
    def regions(self) -> dict[str, str]:
        """A copy of what has been learned so far: bucket → region id."""
        with self._lock:
            return dict(self._regions)

    def bucket_region(self, bucket: str) -> str:
        """The bucket's region: cached, else learned with GetBucketInfo (module docstring).

        Raises:
            BucketNotFound: OSS has no such bucket.
            BucketInOtherRegion: the region OSS pointed to disowned the bucket as well.
            OssError: GetBucketInfo failed otherwise (access denied, network...).
        """
        with self._lock:
            known = self._regions.get(bucket)
            lookup = self._lookups.setdefault(bucket, threading.Lock())
        if known is not None:
            return known
        with lookup:
            with self._lock:
                known = self._regions.get(bucket)
            if known is None:
                known = self._learn(bucket)
                with self._lock:
                    self._regions[bucket] = known
        return known

    def _learn(self, bucket: str) -> str:
        try:
            region = self.client(self.home_region).bucket_region(bucket)
        except BucketInOtherRegion as exc:
            if not exc.region or exc.region == self.home_region:
                raise
            _log.debug("oss.bucket.elsewhere", bucket=bucket, region=exc.region)
            region = self.client(exc.region).bucket_region(bucket)
        _log.info("oss.bucket.region", bucket=bucket, region=region)
        return region

    def for_bucket(self, bucket: str) -> OssCnameApi:
        """The client of the bucket's region (learning the region first if needed)."""
        return self.client(self.bucket_region(bucket))

    def create_token(self, bucket: str, domain: str) -> CnameToken:
        """CreateCnameToken in the bucket's region."""
        return self.for_bucket(bucket).create_token(bucket, domain)

    def get_token(self, bucket: str, domain: str) -> CnameToken | None:
        """GetCnameToken in the bucket's region."""
        return self.for_bucket(bucket).get_token(bucket, domain)

    def put_cname(
        self, bucket: str, domain: str, certificate: CertificateRequest | None = None
    ) -> str:
        """PutCname in the bucket's region."""
        return self.for_bucket(bucket).put_cname(bucket, domain, certificate)

    def list_cnames(self, bucket: str) -> list[CnameEntry]:
        """ListCname in the bucket's region."""
        return self.for_bucket(bucket).list_cnames(bucket)

    def delete_cname(self, bucket: str, domain: str) -> None:
        """DeleteCname in the bucket's region."""
        self.for_bucket(bucket).delete_cname(bucket, domain)

"""Batch jobs' ListCname discipline (the pacing every entry point shares, token buckets per
action and call counts, is :mod:`cname_flow.quotas`).

* :class:`BatchOss` wraps an :class:`~cname_flow.oss.base.OssCnameApi`: ListCname is coalesced
  per bucket so one call answers every binding of the bucket that asked meanwhile; an inner port
  without hooks of its own (a fake) can be given a limiter to call per call.

Everything here is called from worker threads and is thread-safe.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TypeVar

from cname_flow.errors import CnameFlowError
from cname_flow.model import CertificateRequest, CnameEntry, CnameToken
from cname_flow.oss.base import OssCnameApi
from cname_flow.quotas import ApiStats

_T = TypeVar("_T")

@dataclass(slots=True)
class _Listing:
    """Coalescing state of one bucket's ListCname."""

    cond: threading.Condition = field(default_factory=threading.Condition)
    running: bool = False
    generation: int = 0  # completed calls
    result: list[CnameEntry] | None = None
    error: BaseException | None = None
    started_at: float = 0.0  # monotonic start of the call that gave ``result``


class BatchOss:
    """The OSS port for a batch job: rate-limited calls and coalesced ListCname per bucket.

    ListCname coalescing keeps reads linearizable: a caller is answered by a ListCname that
    *started after it asked*, never by one already in flight (that one may predate the
    caller's own PutCname). Callers arriving while a call runs wait for the next one, which
    then serves all of them: at most one call in flight and one queued per bucket, however
    many bindings verify at once.

    Args:
        inner: the real port (:class:`~cname_flow.oss.adapter.AlibabaOss`, built with the
            job's limiter and error hook, so it limits and counts each attempt itself).
        limiter: called with the action name before each call; ``None`` when ``inner`` limits
            its own attempts.
        stats: where throttled answers of ``inner`` are counted; ``None`` when ``inner``
            counts its own attempts.
    """

    def __init__(self, inner: OssCnameApi, limiter: Callable[[str], None] | None = None,
                 stats: ApiStats | None = None) -> None:
        self.inner = inner
        self._limiter = limiter
        self._stats = stats
        self._lists: dict[str, _Listing] = {}
        self._lock = threading.Lock()

    def bucket_region(self, bucket: str) -> str:
        """GetBucketInfo's region, passed through unlimited: the inner port asks once per
        bucket and caches the answer (:class:`~cname_flow.oss.regions.RegionalOss`)."""
        return self.inner.bucket_region(bucket)

    def create_token(self, bucket: str, domain: str) -> CnameToken:
        """CreateCnameToken, rate-limited."""
        return self._call("CreateCnameToken", lambda: self.inner.create_token(bucket, domain))

    def get_token(self, bucket: str, domain: str) -> CnameToken | None:
        """GetCnameToken, rate-limited."""
        return self._call("GetCnameToken", lambda: self.inner.get_token(bucket, domain))

    def put_cname(
        self, bucket: str, domain: str, certificate: CertificateRequest | None = None
    ) -> str:
        """PutCname, rate-limited."""
        return self._call("PutCname", lambda: self.inner.put_cname(bucket, domain, certificate))

    def delete_cname(self, bucket: str, domain: str) -> None:
        """DeleteCname, rate-limited."""
        self._call("DeleteCname", lambda: self.inner.delete_cname(bucket, domain))

    def list_cnames(self, bucket: str) -> list[CnameEntry]:
        """ListCname from a call that started after this request (coalesced per bucket).

        Raises:
            OssError: the call that would have answered failed (every waiter sees it).
        """
        with self._lock:
            listing = self._lists.setdefault(bucket, _Listing())
        with listing.cond:
            # the call in flight (if any) may predate us: we need the one after it
            wanted = listing.generation + (2 if listing.running else 1)
            while listing.generation < wanted:
                if not listing.running:
                    listing.running = True
                    listing.cond.release()
                    started_at = time.monotonic()
                    try:
                        result, error = self._list_once(bucket)
                    finally:
                        listing.cond.acquire()
                    listing.result, listing.error = result, error
                    listing.started_at = started_at
                    listing.running = False
                    listing.generation += 1
                    listing.cond.notify_all()
                else:
                    listing.cond.wait()
            if listing.error is not None:
                raise listing.error
            return list(listing.result or [])

    def recent_list(self, bucket: str, max_age_s: float = 30.0) -> list[CnameEntry]:
        """The bucket's last ListCname if it started at most ``max_age_s`` seconds ago, else a
        new one (:meth:`list_cnames`).

        For reads that only save work when they see a binding (the fast path of a domain already
        bound): a stale answer costs nothing there, since CreateCnameToken answers
        NoNeedCreateCnameToken / CnameAlreadyExists for a domain bound meanwhile. Verification
        and certificate plans use :meth:`list_cnames`.

        Raises:
            OssError: the call that would have answered failed.
        """
        with self._lock:
            listing = self._lists.get(bucket)
        if listing is not None:
            with listing.cond:
                if (listing.result is not None and listing.error is None
                        and time.monotonic() - listing.started_at <= max_age_s):
                    return list(listing.result)
        return self.list_cnames(bucket)

    def _list_once(self, bucket: str) -> tuple[list[CnameEntry] | None, BaseException | None]:
        try:
            return self._call("ListCname", lambda: self.inner.list_cnames(bucket)), None
        except CnameFlowError as exc:
            return None, exc

    def _call(self, action: str, fn: Callable[[], _T]) -> _T:
        if self._limiter is not None:
            self._limiter(action)
        try:
            return fn()
        except CnameFlowError as exc:
            if self._stats is not None:
                self._stats.count_error(action, exc)
            raise

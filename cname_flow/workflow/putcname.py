"""Handing over to OSS: PutCname with a bounded retry on NeedVerifyDomainOwnership.

Once every authoritative nameserver serves the token, only caches upstream of the OSS verifier
can still be wrong, and they cannot outlive the TTLs involved (RFC 2181 §8 for positive answers,
RFC 2308 §5 for negative ones; README, "How a binding flows", PutCname): retry until
``max(min_window, cache_floor + 15)`` seconds have passed, capped at ``cap``, where
``cache_floor`` is the old TTL of a stale TXT RRset, or the zone's negative TTL when a PutCname
for this domain already failed within that TTL (its lookup may have primed the verifier's cache).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from tenacity import (
    RetryCallState,
    Retrying,
    retry_if_exception,
    stop_after_delay,
    wait_exponential_jitter,
)

from cname_flow.config.sections import OwnershipSettings
from cname_flow.errors import (
    CertificateConflict,
    OssCertificateConflict,
    OwnershipNotVerified,
    OwnershipPending,
)
from cname_flow.journal import BindingRecord
from cname_flow.logs import get_logger
from cname_flow.model import Binding, CertificateRequest
from cname_flow.oss.base import OssCnameApi

log = get_logger(__name__)


#: The ``ownership`` settings' defaults are the policy's (one source of truth, validated there).
_DEFAULTS = OwnershipSettings()


@dataclass(frozen=True, slots=True)
class OwnershipPolicy:
    """Bounds of the NeedVerifyDomainOwnership retry, in seconds.

    The fields and their defaults are those of
    :class:`~cname_flow.config.sections.OwnershipSettings` (``ownership:`` in the config), which
    validates them; :meth:`from_settings` carries a loaded section over.
    """

    initial_s: float = _DEFAULTS.initial_s
    exp_base: float = _DEFAULTS.exp_base
    max_s: float = _DEFAULTS.max_s
    jitter_s: float = _DEFAULTS.jitter_s
    min_window_s: float = _DEFAULTS.min_window_s
    cap_s: float = _DEFAULTS.cap_s

    @classmethod
    def from_settings(cls, section: OwnershipSettings) -> OwnershipPolicy:
        """The policy of a validated ``ownership`` settings section (same fields, same names)."""
        return cls(**section.model_dump())

    def window_s(self, record: BindingRecord, now: datetime | None = None) -> float:
        """How long to keep retrying, seconds, from the TTLs journaled by the write step."""
        floor = 0.0
        if record.old_ttl is not None:
            floor = max(floor, float(record.old_ttl))
        neg_ttl, last_fail = record.neg_ttl, record.ownership_failed_at
        if neg_ttl is not None and last_fail is not None:
            age = ((now or datetime.now(UTC)) - last_fail).total_seconds()
            if age < neg_ttl:
                floor = max(floor, float(neg_ttl))
        return min(self.cap_s, max(self.min_window_s, floor + 15.0))


def put_with_retry(
    oss: OssCnameApi, binding: Binding, request: CertificateRequest | None, window_s: float,
    policy: OwnershipPolicy, sleep: Callable[[float], None],
) -> str:
    """Call PutCname; on NeedVerifyDomainOwnership back off and retry for ``window_s`` seconds.

    OSS PutCname: https://www.alibabacloud.com/help/en/oss/developer-reference/putcname

    Args:
        oss: the OSS port.
        binding: the domain and bucket to bind.
        request: the CertificateConfiguration to send, or None.
        window_s: how long to keep retrying, seconds (:meth:`OwnershipPolicy.window_s`).
        policy: the backoff between attempts.
        sleep: blocking sleep, seconds.

    Returns:
        The request id of the successful PutCname.

    Raises:
        OwnershipNotVerified: still NeedVerifyDomainOwnership when the window closed.
        CertificateConflict: PreviousCertId no longer matches the bound certificate.
        OssError: any other OSS failure, unchanged.
    """
    def _log_retry(state: RetryCallState) -> None:
        log.info("putcname.ownership_pending", attempt=state.attempt_number,
                 next_in_s=round(state.upcoming_sleep, 1))

    retrying = Retrying(
        retry=retry_if_exception(lambda exc: isinstance(exc, OwnershipPending)),
        wait=wait_exponential_jitter(multiplier=policy.initial_s, max=policy.max_s,
                                     exp_base=policy.exp_base, jitter=policy.jitter_s),
        stop=stop_after_delay(window_s),
        sleep=sleep,
        before_sleep=_log_retry,
        reraise=True,
    )
    b = binding
    try:
        return retrying(oss.put_cname, b.bucket, b.domain, request)
    except OwnershipPending as exc:
        raise OwnershipNotVerified(
            f"OSS still cannot see TXT _dnsauth.{b.domain} after {window_s:.0f} s although "
            "every authoritative nameserver serves it",
            hint="a resolver on OSS's side still caches an old answer; run the same command "
            "again in a few minutes (the journal resumes at PutCname)",
        ) from exc
    except OssCertificateConflict as exc:
        raise CertificateConflict(
            f"the certificate bound to {b.domain} changed since it was read (OSS {exc.code}); "
            "nothing was changed",
            hint="check who changed it; re-run with --force-cert to overwrite it",
        ) from exc

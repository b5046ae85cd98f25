"""The whole exception tree of cname-flow.

Adapters (``oss/``, ``dns/``, ``propagation/``) are the only places that catch SDK, HTTP or
dnspython exceptions; they map them once, with ``raise OurError(...) from exc``, into the class
that says what happened (a vendor code string means nothing outside its adapter).
Exit codes are decided in ``cli/common.py`` only (its ``Outcome`` table).

::

    CnameFlowError                    root; .code .request_id .retryable; .binding_key and
                                      .step filled in by the runner
    ├── ConfigError                   .reasons: every problem, each "file:line: key: what"
    │   └── SecretNotFound            an environment variable named by the config is unset
    ├── InputError                    bad domain name, manifest row, certificate file (exit 2)
    │   ├── CertificateError          a certificate or key fails pre-flight; names the file
    │   ├── RegionMismatch            the binding's region is not its bucket's; .given .actual
    │   └── BucketNotFound            also an OssError (below)
    ├── JournalError
    │   └── JournalCorrupt            unreadable journal (not a torn last line, which is dropped)
    ├── Locked                        another process holds the journal or the run lock; .holder
                                      (exit 75)
    ├── Interrupted                   SIGINT/SIGTERM stopped a run gracefully; .signum (exit
                                      128 + signum); resumable
    ├── TransitionNotAllowed          .phase; a bug or a tampered journal
    ├── UnsafePlan                    refused without --force (exit 3)
    │   └── StalePlan                 a reviewed reconcile plan no longer matches the state
    └── StepError                     anything that fails a step; .retryable
        ├── RemoteError               a remote API call failed; .service .code .request_id .status
        │   ├── Throttled             rate limited; retryable=True; base of every *Throttled
        │   ├── OssError
        │   │   ├── OssAuthError      credentials, permission or clock refused; .refused
        │   │   ├── OssThrottled      also Throttled
        │   │   ├── BucketNotFound    NoSuchBucket; also an InputError (exit 2)
        │   │   ├── BucketInOtherRegion  AccessDenied + <Endpoint>: the wrong region; .region
        │   │   ├── CnameTaken        CnameAlreadyExists: bound to some bucket (maybe ours)
        │   │   ├── DomainOfOtherAccount  CnameDenied: bound by another account; not retryable
        │   │   ├── CnameAlreadyBound NoNeedCreateCnameToken: bound here, no token needed
        │   │   ├── OwnershipPending  NeedVerifyDomainOwnership: TXT proof not seen; retryable
        │   │   ├── IcpFilingMissing  NoSuchCnameInRecord: the domain has no ICP filing;
                                      terminal (not retryable)
        │   │   └── OssCertificateConflict  also a CertificateConflict (below)
        │   └── DnsProviderError      .provider
        │       ├── DnsThrottled      also Throttled
        │       ├── DnsAuthError      credentials or permission refused; .refused
        │       └── ZoneNotFound      retryable=False; (ManualZone, in manual/errors.py:
                                      dns.zones marks the zone "manual")
        ├── DomainBoundElsewhere      the domain belongs to another bucket or owner; not retryable
        ├── TokenExpired              retryable=True; the machine goes back to PENDING
        ├── PropagationTimeout        retryable=True; .name, .expected, .table
        ├── OwnershipNotVerified      PutCname kept answering NeedVerifyDomainOwnership
        │   └── OwnershipProofUnavailable  bound domain, token expired, no new one issued
        ├── CertificateConflict       PreviousCertId no longer matches (changed out of band)
        │   └── OssCertificateConflict  OSS's answer: CasRenewCertificateConflict / EC ...209
        ├── VerificationFailed        ListCname lacks the domain or its status is wrong
        └── (manual mode, in cname_flow/manual/errors.py) AwaitingCustomerDns (retryable:
            the record is not in place yet), CustomerDnsAbandoned (no record after
            manual.give_up_after_s), CheckTooSoon (`check` rate limit; retryable)

No exception message ever carries an AccessKey secret, an STS token or a private key.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

#: What an authentication error says was refused: the credentials (unknown key, wrong secret or
#: TSIG key, expired STS token), a permission (the key is valid, its policy lacks the action) or
#: the request's clock (OSS's RequestTimeTooSkewed: the key could not even be checked).
Refused = Literal["credentials", "permission", "clock"]


class CnameFlowError(Exception):
    """Root of every error cname-flow raises on purpose.

    Every error carries ``code``, ``request_id`` and ``retryable``, so no caller needs
    ``getattr(exc, "code", ...)``: the journal, the logs and the metrics read them directly.

    Attributes:
        code: the remote service's error code (:class:`RemoteError`), else the class name
            (``"TokenExpired"``).
        request_id: the remote service's request id, or ``""`` (none, or not a remote error).
        retryable: True when trying the same thing again later can succeed (exit 75).
        binding_key: ``"<bucket>/<domain>"`` of the binding being driven, when known.
        step: name of the step that failed, when known.
        hint: one sentence telling the user what to do about it, or ``""``.
    """

    retryable: bool = False

    def __init__(self, message: str, *, hint: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint
        self.code: str = type(self).__name__
        self.request_id: str = ""
        self.binding_key: str | None = None
        self.step: str | None = None

    def __str__(self) -> str:
        return f"{self.message} ({self.hint})" if self.hint else self.message


class ConfigError(CnameFlowError):
    """Configuration or manifest is invalid; ``reasons`` lists every problem at once.

    Each reason reads ``"<file>:<line>: <key>: <what is wrong>"`` where the location is known.
    """

    def __init__(self, reasons: Sequence[str], *, source: str = "") -> None:
        self.reasons = list(reasons)
        self.source = source
        head = f"invalid configuration in {source}" if source else "invalid configuration"
        super().__init__(head + ":\n  " + "\n  ".join(self.reasons))


class SecretNotFound(ConfigError):
    """An environment variable the configuration refers to is not set."""


class InputError(CnameFlowError):
    """Bad user input other than the config: a domain name, a manifest row, a file."""


class CertificateError(InputError):
    """A certificate or private key fails pre-flight; the message names the file."""


class RegionMismatch(InputError):
    """The region given for a binding (``--region``, a manifest's ``region``) is not the region
    its bucket is in, as OSS's GetBucketInfo reports it; raised before any side effect (exit 2).

    Attributes:
        bucket: the bucket's name.
        given: the region the user gave (``"cn-hangzhou"``).
        actual: the bucket's region (``"cn-shanghai"``).
    """

    def __init__(self, bucket: str, given: str, actual: str) -> None:
        super().__init__(
            f"bucket {bucket} is in region {actual}, not {given}",
            hint=f"drop the region to use the bucket's own, or give {actual}",
        )
        self.bucket = bucket
        self.given = given
        self.actual = actual


class JournalError(CnameFlowError):
    """The journal cannot be used."""


class JournalCorrupt(JournalError):
    """The journal holds something other than a torn last line that cannot be read."""


class Locked(CnameFlowError):
    """Another process holds a lock we need: a journal's, or the reconcile run lock (exit 75).

    Not a :class:`JournalError`: the journal is fine, only busy, and not every lock guards a
    journal (the run lock guards a whole reconcile run). Raised at once, never after waiting.

    Attributes:
        holder: the holder read from the lock's side file, ``"pid N on host H (since …)"``,
            or ``""`` when unknown.
    """

    retryable = True

    def __init__(self, message: str, *, holder: str = "", hint: str = "") -> None:
        super().__init__(message, hint=hint)
        self.holder = holder


class Interrupted(CnameFlowError):
    """A signal (SIGINT or SIGTERM) stopped a run gracefully: waits cancelled, steps in flight
    finished and journaled, so a re-run resumes (exit ``128 + signum``, as a shell reports it).

    Attributes:
        signum: the signal's number.
    """

    retryable = True

    def __init__(self, signum: int, binding_key: str | None = None) -> None:
        super().__init__(f"stopped by signal {signum}; the state is saved: re-run to resume")
        self.signum = signum
        self.binding_key = binding_key


class TransitionNotAllowed(CnameFlowError):
    """The machine was asked to leave a phase that has no step (a bug or a tampered journal)."""

    def __init__(self, message: str, *, phase: str) -> None:
        super().__init__(message)
        self.phase = phase


class UnsafePlan(CnameFlowError):
    """A plan or situation that is refused unless the user insists (exit 3)."""


class StalePlan(UnsafePlan):
    """A reviewed reconcile plan was given back but the observed state changed since (exit 3)."""


class StepError(CnameFlowError):
    """A step failed; ``retryable`` says whether trying again later can succeed."""

    def __init__(self, message: str, *, hint: str = "", retryable: bool | None = None) -> None:
        super().__init__(message, hint=hint)
        if retryable is not None:
            self.retryable = retryable


class RemoteError(StepError):
    """A remote API answered with an error or could not be reached.

    Attributes:
        service: ``"oss"`` or the DNS provider id (``"alidns"``).
        code: the service's error code (``"NeedVerifyDomainOwnership"``), or ``"NetworkError"``.
        request_id: the service's request id, when it answered.
        status: HTTP status, or 0 when no answer came.
        ec: OSS's finer error code (``"0018-00000209"``), or ``""``.
        unreachable: no connection could be made at all (connection refused, the endpoint's
            name does not resolve, no route): retried only briefly
            (:attr:`cname_flow.retry.RetryPolicy.unreachable_attempts`), as a wrong endpoint
            or an offline machine will not heal in seconds.
    """

    unreachable: bool = False

    def __init__(
        self,
        message: str,
        *,
        service: str,
        code: str,
        request_id: str = "",
        status: int = 0,
        hint: str = "",
        retryable: bool | None = None,
        ec: str = "",
    ) -> None:
        super().__init__(message, hint=hint, retryable=retryable)
        self.ec = ec
        self.service = service
        self.code = code
        self.request_id = request_id
        self.status = status


class Throttled(RemoteError):
    """The service asked us to slow down (rate limit): trying again after a pause succeeds.

    The one notion of throttling: every adapter's throttle class derives from it
    (:class:`OssThrottled`, :class:`DnsThrottled`), and each adapter's error module holds
    its API's list of throttle codes. Rate accounting and backoff test
    ``isinstance(exc, Throttled)``, never a code string.
    """

    retryable = True


class OssError(RemoteError):
    """An OSS API call failed."""


class OssAuthError(OssError):
    """OSS refused the request; ``.refused`` says what (:data:`Refused`); not retryable."""

    retryable = False
    refused: Refused = "credentials"


class OssThrottled(OssError, Throttled):
    """OSS asked us to slow down (``SlowDown``, ``QpsLimitExceeded``…, HTTP 429)."""


class BucketNotFound(OssError, InputError):
    """OSS answered ``NoSuchBucket``: no bucket of that name in this account and region.

    Both an :class:`OssError` (``.code``, ``.status``, ``.request_id``) and an
    :class:`InputError`: a typo'd bucket name is bad input, refused with exit 2 by the region
    pre-flight before anything is written.
    """

    retryable = False


class BucketInOtherRegion(OssError):
    """OSS answered ``AccessDenied`` naming an ``<Endpoint>``: the bucket lives in another
    region than the endpoint (or, in the sandbox, the V4 signing scope) the request went to.

    Attributes:
        region: the bucket's region read from that endpoint (``"cn-shanghai"``), or ``""``.
    """

    retryable = False
    region: str = ""


class CnameTaken(OssError):
    """OSS answered ``CnameAlreadyExists``: the domain is bound to a bucket already.

    That bucket may be another one (of this account or of legacy image processing), or this
    very bucket: only ListCname tells, so the workflow checks it and raises
    :class:`DomainBoundElsewhere` when the binding is not ours.
    """

    retryable = False


class DomainOfOtherAccount(OssError):
    """OSS answered ``CnameDenied`` ("The cname belongs to another user."): the domain is bound
    to a bucket of another Alibaba Cloud account. Unlike :class:`CnameTaken` (another bucket of
    this account, which ``cname-flow unbind`` can release) only that account can release it, so
    no retry or unbind here helps. Sources: the 403 page
    (https://www.alibabacloud.com/help/en/oss/how-to-troubleshoot-403-status-code-when-you-access-oss)
    and a real answer quoted in ``docs/sandbox-oss.md``.
    """

    retryable = False


class CnameAlreadyBound(OssError):
    """OSS answered ``NoNeedCreateCnameToken``: no token is needed, the domain is bound here."""

    retryable = False


class OwnershipPending(OssError):
    """OSS answered ``NeedVerifyDomainOwnership``: it cannot see the TXT proof yet.

    Retryable: the proof (TXT ``_dnsauth.<domain>``) may still be propagating or cached away
    from OSS's verifier. :class:`OwnershipNotVerified` is what the workflow raises once its
    bounded retry of PutCname gives up.
    """

    retryable = True


class IcpFilingMissing(OssError):
    """OSS answered ``NoSuchCnameInRecord``: a mainland-China bucket needs an ICP filing.

    Terminal: waiting does not file a domain, so neither the retry layer nor ``batch`` retries
    it; the hint says to file it (or use a bucket outside mainland China) and run again.
    """

    retryable = False


class DnsProviderError(RemoteError):
    """A DNS provider API call failed."""

    @property
    def provider(self) -> str:
        """The provider id, e.g. ``"alidns"``."""
        return self.service


class DnsThrottled(DnsProviderError, Throttled):
    """The DNS provider asked us to slow down (Alidns ``Throttling.User``…)."""


class DnsAuthError(DnsProviderError):
    """The DNS provider refused the request; ``.refused`` says what (:data:`Refused`)."""

    retryable = False
    refused: Refused = "credentials"


class ZoneNotFound(DnsProviderError):
    """No zone of the account is a suffix of the name."""

    retryable = False


class DomainBoundElsewhere(StepError):
    """OSS reports that the domain is bound to another bucket or to another account."""

    retryable = False


class TokenExpired(StepError):
    """The CNAME token ran out (72 h); the machine goes back to PENDING."""

    retryable = True


class PropagationTimeout(StepError):
    """The authoritative nameservers did not all serve the TXT record before the deadline.

    Attributes:
        name: the queried name (``_dnsauth.<domain>``).
        expected: the TXT value waited for.
        table: the per-address table of the last round, already rendered as text.
    """

    retryable = True

    def __init__(self, message: str, *, name: str, expected: str, table: str) -> None:
        super().__init__(message)
        self.name = name
        self.expected = expected
        self.table = table


class OwnershipNotVerified(StepError):
    """PutCname kept answering NeedVerifyDomainOwnership past the bound derived from the TTLs."""

    retryable = True


class OwnershipProofUnavailable(OwnershipNotVerified):
    """A bound domain's certificate change needs a fresh ownership proof that cannot be made.

    PutCname answered NeedVerifyDomainOwnership (as in certimate-go/certimate#1042), the
    domain's CNAME token has expired (72 h, CreateCnameToken) and OSS issues no new one for a
    bound domain (403 NoNeedCreateCnameToken, EC 0018-00000302). Retrying cannot help.
    """

    retryable = False


class CertificateConflict(StepError):
    """The certificate bound now is not the one the rotation expected (PreviousCertId mismatch)."""

    retryable = False


class OssCertificateConflict(OssError, CertificateConflict):
    """OSS's own answer to a PreviousCertId mismatch (``CasRenewCertificateConflict``, EC
    ``0018-00000209``): both an :class:`OssError` (``.code``, ``.ec``, ``.request_id``) and a
    :class:`CertificateConflict`."""

    retryable = False


class VerificationFailed(StepError):
    """ListCname does not show the domain Enabled on the bucket after PutCname."""

    retryable = True


"""One function per step of the machine; each observes remote state first and acts only if needed.

Every step takes the binding's :class:`~cname_flow.workflow.context.StepContext`, the run's
:class:`~cname_flow.workflow.context.BindingRun` (reads made once per run) and the binding's
replayed :class:`BindingRecord`, and returns a :class:`StepResult` (the next phase and the
outputs to journal). Steps raise :mod:`cname_flow.errors` classes only; the driver
(:mod:`cname_flow.workflow.driver`) records them.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import datetime

from cname_flow.certs import plan_certificate, verify_bound_certificate
from cname_flow.dns.base import OWNER_REMARK, RecordRef, Zone
from cname_flow.errors import (
    CertificateConflict,
    CnameAlreadyBound,
    CnameTaken,
    DomainBoundElsewhere,
    InputError,
    OssError,
    OwnershipNotVerified,
    OwnershipProofUnavailable,
    TokenExpired,
    VerificationFailed,
)
from cname_flow.journal import BindingOutputs, BindingRecord
from cname_flow.logs import get_logger
from cname_flow.manual import wait as manual_wait
from cname_flow.manual.mode import ManualMode, effective
from cname_flow.model import CnameEntry, CnameToken, Phase, txt_name
from cname_flow.propagation.model import NameserverAddress, Round
from cname_flow.workflow import putcname
from cname_flow.workflow.context import BindingRun, StepContext, StepResult

log = get_logger(__name__)


# -- PENDING → TOKEN_READY ------------------------------------------------------------------------

def create_token(ctx: StepContext, run: BindingRun, record: BindingRecord) -> StepResult:
    """Pre-flight the zone, then obtain the CNAME token with CreateCnameToken.

    No GetCnameToken first: while a token is valid (72 h) CreateCnameToken answers that same
    token (OSS CreateCnameToken,
    https://www.alibabacloud.com/help/en/oss/developer-reference/createcnametoken), so creating
    is already idempotent and the read would only cost a call per binding. (A token that
    expires within the hour is still the one OSS hands out; an expiry before PutCname sends the
    machine back here.)

    Fast paths: a domain already listed Enabled on the bucket goes to VERIFIED (or to
    TXT_VISIBLE when its certificate must change).

    Raises:
        ZoneNotFound: no zone of the account holds the domain (nothing was written).
        InputError: ``--route`` asked for a zone apex.
        DomainBoundElsewhere: the domain belongs to another bucket or account.
    """
    zone = run.zone()
    if ctx.binding.options.route and ctx.binding.domain == zone.name:
        raise InputError(
            f"{ctx.binding.domain} is the apex of zone {zone.name}: a zone apex cannot hold a "
            "CNAME record (RFC 1912 §2.4), so --route cannot point it at the bucket",
            hint="use an A/ALIAS record at your DNS provider, or bind a subdomain such as www",
        )
    entry = run.cname_entry()
    if entry is not None and entry.status == "Enabled":
        return _bound_next(ctx, entry, BindingOutputs(zone=zone.name, fast_path=True))
    token = _create_token(ctx, run)
    if token is None:  # NoNeedCreateCnameToken: bound on this bucket meanwhile
        return StepResult(Phase.CNAME_PUT, BindingOutputs(zone=zone.name))
    log.info("token.ready", expires_at=token.expires_at.isoformat())
    return StepResult(Phase.TOKEN_READY, BindingOutputs(
        zone=zone.name, token=token.token, token_expires_at=token.expires_at.isoformat(),
    ))


def _create_token(ctx: StepContext, run: BindingRun) -> CnameToken | None:
    try:
        return ctx.ports.oss.create_token(ctx.binding.bucket, ctx.binding.domain)
    except CnameAlreadyBound:
        return None
    except CnameTaken as exc:
        raise_if_elsewhere(ctx, run, exc)
        return None


def raise_if_elsewhere(ctx: StepContext, run: BindingRun, exc: OssError) -> None:
    """After :class:`CnameTaken`: return if ListCname shows the domain on our bucket, else raise.

    Raises:
        DomainBoundElsewhere: the domain is bound to another bucket or account.
    """
    if run.cname_entry(fresh=True) is not None:
        return
    raise DomainBoundElsewhere(
        f"{ctx.binding.domain} is bound to another bucket or account (OSS {exc.code}, "
        f"request id {exc.request_id}); nothing was changed",
        hint="unbind it there first (DeleteCname on that bucket), or bind another domain",
    ) from exc


def _bound_next(ctx: StepContext, entry: CnameEntry, outputs: BindingOutputs) -> StepResult:
    """Where a domain already bound here goes: VERIFIED, or, for a certificate change, through
    the ownership proof again.

    A real PutCname changing the certificate of a bound, verified domain answered 403
    NeedVerifyDomainOwnership (certimate-go/certimate#1042), so the TXT record must hold a valid
    token first. CreateCnameToken refuses a bound domain (NoNeedCreateCnameToken), so the token
    is read with GetCnameToken: valid → TOKEN_READY (the TXT record is written if missing and
    waited for); none (expired after 72 h) → TXT_VISIBLE, PutCname is tried as is, and
    :func:`put_cname` explains the dead end if OSS asks for the proof.
    """
    if ctx.certificate is None:
        return StepResult(Phase.VERIFIED, outputs)
    plan = plan_certificate(entry.certificate, ctx.certificate,
                            force=ctx.binding.options.force_cert)
    if plan.action == "none":
        return StepResult(Phase.VERIFIED, outputs)
    token = ctx.ports.oss.get_token(ctx.binding.bucket, ctx.binding.domain)
    if token is None or token.expires_at <= ctx.ports.now():
        log.info("token.unavailable", note="bound domain; OSS issues no new token")
        return StepResult(Phase.TXT_VISIBLE,
                          outputs | BindingOutputs(token=None, token_expires_at=None))
    log.info("token.reproof", expires_at=token.expires_at.isoformat())
    return StepResult(Phase.TOKEN_READY, outputs | BindingOutputs(
        token=token.token, token_expires_at=token.expires_at.isoformat()))


# -- TOKEN_READY → TXT_WRITTEN --------------------------------------------------------------------

def write_txt(ctx: StepContext, run: BindingRun, record: BindingRecord) -> StepResult:
    """Publish the token as TXT ``_dnsauth.<domain>``; our own stale record is updated in place.

    A record that holds exactly this binding's token is ours, marked or not: the token is minted
    by OSS for this bucket and domain (CreateCnameToken), so an unmarked one is our own add whose
    answer or remark was lost to a crash or a dropped connection. It is claimed (remark
    :data:`~cname_flow.dns.base.OWNER_REMARK` written) and its id journaled, so ``unbind`` and
    ``reconcile`` find it. One that carries another remark was marked by someone else on
    purpose and is left alone.

    Raises:
        TokenExpired: the token ran out; the machine goes back to PENDING.
        DnsProviderError: the provider failed.

    A manual binding (:mod:`cname_flow.manual`) writes nothing: the record to add is
    journaled and published instead (:func:`cname_flow.manual.wait.give_instructions`).
    """
    mode = manual_of(ctx, record)
    if mode is not None:
        return manual_wait.give_instructions(ctx, run, record, mode)
    token = valid_token(ctx, record)
    zone, name = run.zone(), txt_name(ctx.binding.domain)
    dns = ctx.ports.dns
    existing = dns.list_records(zone, name, "TXT")
    pre = ctx.ports.checker.pre_state(name, run.authoritative_addresses())
    ours = _our_record(existing, record)
    foreign = [r for r in existing if r is not ours and r.value != token]
    if foreign:
        log.warning("txt.foreign_values", count=len(foreign), note="left alone; ours added beside")
    ttl = record_ttl(ctx.txt_ttl, zone)
    ref, changed = dns.upsert(zone, name, "TXT", token, ttl, replace=ours, observed=existing)
    if not ref.remark:
        ref = dns.claim(ref)
        log.info("txt.claimed", record_id=ref.record_id)
    log.info("txt.upserted", record_id=ref.record_id, changed=changed, ttl=ref.ttl)
    outputs = BindingOutputs(
        txt_written_at=ctx.ports.now().isoformat(),
        neg_ttl=pre.neg_ttl,
        old_ttl=pre.old_ttl if pre.values - {token} else None,
    )
    if changed or ours is not None or ref.remark == OWNER_REMARK:
        outputs["txt_record_id"] = ref.record_id
    return StepResult(Phase.TXT_WRITTEN, outputs)


def manual_of(ctx: StepContext, record: BindingRecord | None) -> ManualMode | None:
    """The binding's active manual mode, or None when cname-flow writes its record."""
    return effective(ctx.manual, record)


def record_ttl(preferred: int | None, zone: Zone) -> int:
    """TTL for a record we write, seconds: ``preferred`` raised to the zone's floor, or
    clamp(MinTtl, 60, 600) when no preference is set."""
    if preferred is not None:
        return max(preferred, zone.min_ttl)
    return min(max(zone.min_ttl, 60), 600)


def valid_token(ctx: StepContext, record: BindingRecord) -> str:
    """The journaled CNAME token, if it is still valid at ``ctx.ports.now()``.

    Raises:
        TokenExpired: no token journaled, or it ran out (the machine goes back to PENDING).
    """
    token, expires = record.token, record.token_expires_at
    if token is None or expires is None or expires <= ctx.ports.now():
        raise TokenExpired(f"the CNAME token for {ctx.binding.domain} expired; getting a new one")
    return token


def _our_record(existing: list[RecordRef], record: BindingRecord) -> RecordRef | None:
    recorded = record.txt_record_id
    mine = [r for r in existing if r.record_id == recorded or r.remark == OWNER_REMARK]
    return mine[0] if mine else None


# -- TXT_WRITTEN → TXT_VISIBLE --------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class WaitPlan:
    """What the propagation wait needs, read before it starts.

    Attributes:
        token: the TXT value to wait for.
        addresses: every authoritative nameserver address of the zone.
        written_at: ``time.monotonic()`` reading of the write, None when unknown or long past.
    """

    token: str
    addresses: list[NameserverAddress]
    written_at: float | None


def plan_wait(ctx: StepContext, run: BindingRun, record: BindingRecord) -> WaitPlan:
    """The synchronous part of WAIT_PROPAGATION, shared by :func:`wait_propagation` and
    :func:`await_propagation`.

    Raises:
        TokenExpired: the token ran out while we were away.
        StepError: no authoritative nameserver address was found.

    A manual binding's token is not checked here: its wait re-mints it.
    """
    if manual_of(ctx, record) is not None:
        return WaitPlan(record.token or "", run.authoritative_addresses(), None)
    token = valid_token(ctx, record)
    return WaitPlan(token, run.authoritative_addresses(),
                    monotonic_of(record.txt_written_at, ctx.ports.now()))


def wait_propagation(ctx: StepContext, run: BindingRun, record: BindingRecord) -> StepResult:
    """Poll every authoritative nameserver address until all serve the token (two rounds).

    A manual binding is checked once (when due) instead of polled: synchronous drivers
    continue it on their next run.

    Raises:
        TokenExpired: the token ran out while we were away.
        PropagationTimeout: the deadline passed; the message holds the per-address table.
        AwaitingCustomerDns: manual mode, the record is not served everywhere yet.
    """
    mode = manual_of(ctx, record)
    if mode is not None:
        return manual_wait.check_once(ctx, run, record, mode)
    plan = plan_wait(ctx, run, record)
    final = ctx.ports.checker.wait(txt_name(ctx.binding.domain), plan.token, plan.addresses,
                                   written_at=plan.written_at, on_round=ctx.on_round)
    return converged(ctx, final)


async def await_propagation(ctx: StepContext, plan: WaitPlan) -> StepResult:
    """:func:`wait_propagation` on the event loop, holding no thread (a batch job's wait).

    Raises:
        PropagationTimeout: the deadline passed; the message holds the per-address table.
    """
    final = await ctx.ports.checker.wait_async(
        txt_name(ctx.binding.domain), plan.token, plan.addresses,
        written_at=plan.written_at, on_round=ctx.on_round)
    return converged(ctx, final)


def converged(ctx: StepContext, final: Round) -> StepResult:
    """The outcome of WAIT_PROPAGATION given its last (all-OK) round."""
    return StepResult(Phase.TXT_VISIBLE, BindingOutputs(
        converged_at=ctx.ports.now().isoformat(), nameserver_addresses=len(final.answers),
    ))


def monotonic_of(written: datetime | None, now: datetime) -> float | None:
    """Map a journaled wall-clock time onto time.monotonic (None when unknown or long past)."""
    if written is None:
        return None
    age = (now - written).total_seconds()
    return time.monotonic() - age if 0 <= age < 60 else None


# -- TXT_VISIBLE → CNAME_PUT ----------------------------------------------------------------------

def put_cname(ctx: StepContext, run: BindingRun, record: BindingRecord) -> StepResult:
    """PutCname (with the certificate plan), retrying NeedVerifyDomainOwnership for a bounded time.

    Raises:
        DomainBoundElsewhere: CnameAlreadyExists and the domain is not ours.
        OwnershipNotVerified: OSS still cannot see the token past the TTL-derived bound.
        CertificateConflict: the bound certificate changed since it was read.
    """
    # Without a certificate to plan, the listing this run took before writing the TXT record
    # suffices (it showed the domain not bound; a re-put on the same bucket is an update and
    # a PutCname without CertificateConfiguration leaves a bound certificate alone, OSS
    # PutCname). A certificate plan needs the CertId bound right now, and a run that resumed
    # here has no listing of its own yet (nor may it trust a job's shared one): both read afresh.
    entry = run.cname_entry(fresh=ctx.certificate is not None, shared=False)
    request = None
    if ctx.certificate is not None and entry is not None:
        _refuse_out_of_band_change(ctx, record, entry)
    if ctx.certificate is not None or (entry is not None and entry.certificate is not None):
        plan = plan_certificate(
            entry.certificate if entry else None, ctx.certificate,
            force=ctx.binding.options.force_cert,
        )
        request = plan.request
        log.info("certificate.plan", action=plan.action, reason=plan.reason)
    if entry is not None and entry.status == "Enabled" and request is None:
        return StepResult(Phase.CNAME_PUT, BindingOutputs(put="skipped: already bound"))
    policy = ctx.ownership_policy
    no_proof = entry is not None and entry.status == "Enabled" and not _token_valid(ctx, record)
    window = 0.0 if no_proof else policy.window_s(record)
    args = (ctx.ports.oss, ctx.binding, request, window, policy, ctx.ports.sleep)
    try:
        try:
            request_id = putcname.put_with_retry(*args)
        except CnameTaken as exc:
            raise_if_elsewhere(ctx, run, exc)
            request_id = putcname.put_with_retry(*args)
    except OwnershipNotVerified as exc:
        if no_proof:
            raise _proof_unavailable(ctx) from exc
        raise
    return StepResult(Phase.CNAME_PUT, BindingOutputs(put_request_id=request_id))


def _token_valid(ctx: StepContext, record: BindingRecord) -> bool:
    expires = record.token_expires_at
    return record.token is not None and expires is not None and expires > ctx.ports.now()


def _proof_unavailable(ctx: StepContext) -> OwnershipProofUnavailable:
    b = ctx.binding
    return OwnershipProofUnavailable(
        f"OSS asks for a fresh ownership proof to change the certificate of {b.domain}, but its "
        "CNAME token has expired and OSS issues no new token for a domain bound to "
        f"{b.bucket} (NoNeedCreateCnameToken); the binding and its certificate are unchanged",
        hint=f"unbind {b.domain} and bind it again with the certificate (HTTPS on the domain "
        "is interrupted in between), or ask Alibaba Cloud support to re-verify the domain",
    )


def _refuse_out_of_band_change(ctx: StepContext, record: BindingRecord, entry: CnameEntry) -> None:
    """Refuse to rotate over a certificate someone else bound since our last run.

    The journal remembers the CertId we bound (None: we bound none). PreviousCertId only guards
    the gap between our ListCname and our PutCname; this guards the gap between two runs.

    Raises:
        CertificateConflict: ListCname shows another certificate and ``--force-cert`` is off.
    """
    if ctx.binding.options.force_cert or record.cname_status != "Enabled":
        return  # forced, or we never verified this binding: nothing to compare with
    expected = record.cert_id
    current = entry.certificate.cert_id if entry.certificate else None
    if current != expected:
        raise CertificateConflict(
            f"the certificate on {ctx.binding.domain} changed outside cname-flow: ListCname "
            f"shows {current or 'none'}, the journal recorded {expected or 'none'}; "
            "nothing was changed",
            hint="check who changed it; re-run with --force-cert to replace it anyway",
        )


# -- CNAME_PUT → VERIFIED -------------------------------------------------------------------------

def verify(ctx: StepContext, run: BindingRun, record: BindingRecord) -> StepResult:
    """ListCname must show the domain Enabled (and the expected certificate).

    Raises:
        VerificationFailed: missing, not Enabled, or a certificate mismatch.
    """
    entry = run.cname_entry(fresh=True)
    if entry is None or entry.status != "Enabled":
        state = "missing" if entry is None else f"status {entry.status}"
        raise VerificationFailed(f"ListCname on {ctx.binding.bucket}: {ctx.binding.domain} {state}")
    outputs = BindingOutputs(status=entry.status)
    if ctx.certificate is not None:
        problems = verify_bound_certificate(entry.certificate, ctx.certificate)
        if problems:
            raise VerificationFailed(
                f"certificate on {ctx.binding.domain} does not match: " + "; ".join(problems),
                retryable=False,
            )
    cert = entry.certificate
    outputs |= BindingOutputs(cert_id=None, fingerprint=None, cert_not_after=None)
    if cert is not None:
        outputs |= BindingOutputs(
            cert_id=cert.cert_id, fingerprint=cert.fingerprint,
            cert_not_after=cert.valid_end.isoformat() if cert.valid_end else None,
        )
    return StepResult(Phase.VERIFIED, outputs)


# -- VERIFIED → BOUND -----------------------------------------------------------------------------

def finish(ctx: StepContext, run: BindingRun, record: BindingRecord) -> StepResult:
    """Optional tail: upsert the routing CNAME and check it; remove our ``_dnsauth`` record.

    A manual binding has neither (cname-flow writes nothing in its zone)."""
    outputs = BindingOutputs()
    if manual_of(ctx, record) is not None:
        return StepResult(Phase.BOUND, outputs)
    if ctx.binding.options.route:
        outputs |= _route(ctx, run, record)
    if ctx.binding.options.remove_txt and record.txt_record_id:
        zone, dns = run.zone(), ctx.ports.dns
        name = txt_name(ctx.binding.domain)
        ref = next((r for r in dns.list_records(zone, name, "TXT")
                    if r.record_id == record.txt_record_id), None)
        if ref is not None:
            dns.delete_record(ref)
            log.info("txt.removed", record_id=ref.record_id)
        outputs["txt_record_id"] = None
    return StepResult(Phase.BOUND, outputs)


def _route(ctx: StepContext, run: BindingRun, record: BindingRecord) -> BindingOutputs:
    zone, domain, dns = run.zone(), ctx.binding.domain, ctx.ports.dns
    target = ctx.binding.route_target
    existing = dns.list_records(zone, domain, "CNAME")
    recorded = record.route_record_id
    ours = next((r for r in existing if r.record_id == recorded or r.remark == OWNER_REMARK), None)
    foreign = [r for r in existing if r is not ours]
    if foreign and all(r.value.rstrip(".") != target for r in foreign):
        raise InputError(
            f"{domain} already has a CNAME to {foreign[0].value} that cname-flow did not create",
            hint="remove it or drop --route; cname-flow never changes records it does not own",
        )
    ref, _ = dns.upsert(zone, domain, "CNAME", target, record_ttl(ctx.txt_ttl, zone),
                        replace=ours)
    addresses = run.authoritative_addresses()
    ctx.ports.checker.wait_cname(domain, target, addresses, on_round=ctx.on_round)
    return BindingOutputs(route_record_id=ref.record_id if ref.remark == OWNER_REMARK else None,
                          route_target=target)

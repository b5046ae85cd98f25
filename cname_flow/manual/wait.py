"""The manual binding's wait: record the instructions, check on a durable schedule, re-mint
the CNAME token, and let the binding go on once every authoritative nameserver serves it.

Every check is one round of RD=0 queries to each authoritative address of the zone (the
propagation checker's ``observe``), at ``_dnsauth.<domain>`` plus the two wrong places customers
put the record (the doubled zone suffix, the zone apex); nothing goes through a recursive
resolver, so no negative answer is cached on the way (RFC 2308 §5). Each check is journaled as a
``dns_check`` event carrying its findings and the next check time, so any later process
(``reconcile`` from cron, ``cname-flow check``, a worker) continues the same schedule.

OSS hands out the same token while it is valid and a new one after its 72 h (CreateCnameToken,
https://www.alibabacloud.com/help/en/oss/developer-reference/createcnametoken), so within
``renew_before_s`` of the expiry each check asks CreateCnameToken again; a new value is journaled
(``token_renew``) and published as ``binding.token_renewed`` with the new instructions.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Awaitable, Callable, Sequence
from datetime import timedelta
from typing import Protocol, runtime_checkable

from cname_flow.errors import CnameAlreadyBound, CnameTaken, StepError, TokenExpired
from cname_flow.events import Event
from cname_flow.journal import BindingOutputs, BindingRecord, JournalEvent
from cname_flow.logs import get_logger
from cname_flow.manual import detect, instructions
from cname_flow.manual.errors import AwaitingCustomerDns, CustomerDnsAbandoned
from cname_flow.manual.mode import ManualMode
from cname_flow.manual.outputs import ManualOutputs, time_of, to_journal
from cname_flow.model import AuxStep, Phase, txt_name
from cname_flow.propagation.model import NameserverAddress, Round
from cname_flow.workflow.context import BindingRun, StepContext, StepResult

log = get_logger(__name__)

#: Journals events and returns the record after them (the engine's group commit).
Commit = Callable[[JournalEvent], Awaitable[BindingRecord]]


@runtime_checkable
class ObservePort(Protocol):
    """One authoritative round, as :class:`~cname_flow.propagation.checker.PropagationChecker`
    offers it (:meth:`observe` blocking, :meth:`observe_async` on the loop)."""

    def observe(self, name: str, value: str, targets: Sequence[NameserverAddress]) -> Round:
        """Ask every address for ``name`` TXT once (RD=0) and judge the answers."""
        ...

    async def observe_async(self, name: str, value: str,
                            targets: Sequence[NameserverAddress]) -> Round:
        """:meth:`observe` without a thread."""
        ...


def _observer(ctx: StepContext) -> ObservePort:
    checker = ctx.ports.checker
    if not isinstance(checker, ObservePort):
        raise StepError("manual mode needs a propagation checker that can observe one round",
                        retryable=False)
    return checker


# -- the instructions (the WRITE_TXT step of a manual binding) ---------------------------------

def give_instructions(ctx: StepContext, run: BindingRun, record: BindingRecord,
                      mode: ManualMode) -> StepResult:
    """Record and publish the TXT record to add; write nothing (TOKEN_READY → TXT_WRITTEN).

    Raises:
        TokenExpired: no valid token is journaled.
    """
    token, now = record.token, ctx.ports.now()
    expires = record.token_expires_at
    if token is None or expires is None or expires <= now:
        raise TokenExpired(f"the CNAME token for {ctx.binding.domain} expired; getting a new one")
    instr = instructions.instructions_for(ctx.binding.domain, run.zone().name, token,
                                          record.token_expires_at)
    since = time_of(record, "manual_since") or now
    ctx.ports.events.publish(Event("binding.instructions", ctx.binding.key,
                                   instr.as_json(), now))
    log.info("manual.instructions", fqdn=instr.fqdn, host=instr.host, zone=instr.zone)
    first = mode.cadence.next_delay_s(0.0, None)
    outputs = to_journal(instructions.outputs(instr, since) | ManualOutputs(
        dns_check_delay_s=None, dns_next_check_at=(now + timedelta(seconds=first)).isoformat()),
        BindingOutputs(txt_written_at=now.isoformat()))
    return StepResult(Phase.TXT_WRITTEN, outputs)


# -- one check -----------------------------------------------------------------------------------

def _names(domain: str, zone: str) -> tuple[str, str, str | None]:
    main = txt_name(domain)
    return main, f"{main}.{zone}", (f"_dnsauth.{zone}" if domain != zone else None)


def _previous(record: BindingRecord) -> tuple[str, ...]:
    old = record.get("token_previous")
    return (old,) if isinstance(old, str) else ()


async def observe_async(ctx: StepContext, run: BindingRun, record: BindingRecord,
                        token: str) -> detect.Observation:
    """One check's three rounds, concurrently, on the loop."""
    zone, targets, checker = run.zone().name, run.authoritative_addresses(), _observer(ctx)
    main, doubled, apex = _names(ctx.binding.domain, zone)
    rounds = await asyncio.gather(
        checker.observe_async(main, token, targets), checker.observe_async(doubled, token, targets),
        *([checker.observe_async(apex, token, targets)] if apex else []))
    return detect.Observation(ctx.binding.domain, zone, token, _previous(record), rounds[0],
                              rounds[1], rounds[2] if apex else None)


def observe_now(ctx: StepContext, run: BindingRun, record: BindingRecord,
                token: str) -> detect.Observation:
    """:func:`observe_async` on blocking sockets (``cname-flow check``, synchronous drivers)."""
    zone, targets, checker = run.zone().name, run.authoritative_addresses(), _observer(ctx)
    main, doubled, apex = _names(ctx.binding.domain, zone)
    return detect.Observation(
        ctx.binding.domain, zone, token, _previous(record),
        checker.observe(main, token, targets), checker.observe(doubled, token, targets),
        checker.observe(apex, token, targets) if apex else None)


def check_event(ctx: StepContext, record: BindingRecord, mode: ManualMode,
                obs: detect.Observation, *, check_now: bool = False) -> JournalEvent:
    """The ``dns_check`` event of one check: findings, count, and the next check's time."""
    now = ctx.ports.now()
    findings = detect.detect(obs)
    since = time_of(record, "manual_since") or now
    previous = record.get("dns_check_delay_s")
    gap = float(previous) if isinstance(previous, int | float) else mode.cadence.first_check_s
    delay = mode.cadence.next_delay_s((now - since).total_seconds(), gap)
    due = mode.cadence.next_check_at(now, delay, started=since,
                                     token_expires_at=record.token_expires_at)
    count = record.get("dns_check_count")
    outputs = ManualOutputs(
        dns_checked_at=now.isoformat(), dns_check_count=(count if isinstance(count, int)
                                                         else 0) + 1,
        dns_check_delay_s=delay, dns_next_check_at=due.isoformat(), dns_check_ok=obs.main.ok,
        dns_findings=detect.encode(findings))
    if check_now:
        outputs["check_now_at"] = now.isoformat()
    log.info("manual.checked", ok=obs.main.ok, findings=[f.code for f in findings],
             next_check_at=due.isoformat())
    return JournalEvent(ctx.binding.key, AuxStep.DNS_CHECK, "done", Phase.TXT_WRITTEN,
                        to_journal(outputs))


def seen(ctx: StepContext, obs: detect.Observation) -> StepResult:
    """WAIT_PROPAGATION's outcome once every authoritative address serves the token."""
    return StepResult(Phase.TXT_VISIBLE, BindingOutputs(
        converged_at=ctx.ports.now().isoformat(), nameserver_addresses=len(obs.main.answers)))


# -- the token ------------------------------------------------------------------------------------

def renewal(ctx: StepContext, record: BindingRecord, mode: ManualMode) -> JournalEvent | None:
    """Re-mint the token when it expires within ``renew_before_s``: CreateCnameToken; a new
    value is journaled (``token_renew``) and published (``binding.token_renewed`` and new
    ``binding.instructions``). OSS answers the same value while the old one is valid: then
    nothing changes (the next check is scheduled at the expiry at the latest).

    Returns:
        The event to journal, or None (no renewal due, or the same value came back).

    Raises:
        OssError: CreateCnameToken failed.
    """
    now = ctx.ports.now()
    if not mode.cadence.wants_renewal(now, record.token_expires_at):
        return None
    try:
        token = ctx.ports.oss.create_token(ctx.binding.bucket, ctx.binding.domain)
    except (CnameAlreadyBound, CnameTaken):
        return None  # bound meanwhile: the check and PutCname sort it out
    old = record.token
    if token.token == old:
        return None
    renewals = record.get("token_renewals")
    outputs = to_journal(ManualOutputs(
        token_previous=old, token_renewals=(renewals if isinstance(renewals, int) else 0) + 1,
        token_renewed_at=now.isoformat(), dns_next_check_at=now.isoformat()),
        BindingOutputs(token=token.token, token_expires_at=token.expires_at.isoformat()))
    zone = record.get("manual_zone") or mode.zone or ""
    data: dict[str, object] = {"domain": ctx.binding.domain, "old_value": old,
                               "new_value": token.token,
                               "token_expires_at": token.expires_at.isoformat()}
    ctx.ports.events.publish(Event("binding.token_renewed", ctx.binding.key, data, now))
    if zone:
        instr = instructions.instructions_for(ctx.binding.domain, str(zone), token.token,
                                              token.expires_at)
        ctx.ports.events.publish(Event("binding.instructions", ctx.binding.key,
                                       instr.as_json(), now))
    log.info("manual.token_renewed", expires_at=token.expires_at.isoformat())
    return JournalEvent(ctx.binding.key, AuxStep.TOKEN_RENEW, "done", Phase.TXT_WRITTEN, outputs)


# -- the wait -------------------------------------------------------------------------------------

def pending(record: BindingRecord) -> AwaitingCustomerDns:
    """The error that leaves a binding waiting in the store, with its last findings."""
    found = detect.decode(record.get("dns_findings"))
    due = time_of(record, "dns_next_check_at")
    summary = "; ".join(f"{f.get('code')}: {f.get('message')}" for f in found
                        if f.get("severity") == "error") or "no check yet"
    return AwaitingCustomerDns(
        f"{record.domain}: waiting for TXT _dnsauth.{record.domain} at every authoritative "
        f"nameserver ({summary}); next check at {due.isoformat() if due else 'once due'}",
        hint="the binding stays in the store: `cname-flow reconcile` (cron) or "
             f"`cname-flow check {record.domain}` continue it; `cname-flow status` shows the "
             "record to add",
        findings=[(f.get("code", ""), f.get("message", "")) for f in found],
        next_check_at=due.isoformat() if due else "")


def abandoned(ctx: StepContext, record: BindingRecord, mode: ManualMode) -> None:
    """Raise when the wait has lasted ``give_up_after_s``.

    Raises:
        CustomerDnsAbandoned: not retryable; the binding goes FAILED.
    """
    since = time_of(record, "manual_since")
    if since is not None and mode.cadence.gives_up(ctx.ports.now(), since):
        raise CustomerDnsAbandoned(
            f"TXT _dnsauth.{ctx.binding.domain} was not seen at every authoritative nameserver "
            f"within {mode.cadence.give_up_after_s / 86400:g} days of the instructions",
            hint=f"add the record and run `cname-flow bind {ctx.binding.domain}` again")


async def wait_async(ctx: StepContext, run: BindingRun, record: BindingRecord,
                     mode: ManualMode, commit: Commit,
                     offload: Callable[[Callable[[], JournalEvent | None]],
                                       Awaitable[JournalEvent | None]]) -> StepResult:
    """WAIT_PROPAGATION of a manual binding on the loop: check when due, sleep in between,
    for at most ``mode.patience_s`` (then :class:`AwaitingCustomerDns`).

    Args:
        commit: journals one event, returns the record after it.
        offload: runs a blocking call (CreateCnameToken) off the loop.

    Raises:
        AwaitingCustomerDns: the record is not served everywhere yet; the run leaves it.
        CustomerDnsAbandoned: ``give_up_after_s`` has passed.
    """
    loop = asyncio.get_running_loop()
    until = loop.time() + mode.patience_s
    while True:
        abandoned(ctx, record, mode)
        renewed = await offload(functools.partial(renewal, ctx, record, mode))
        if renewed is not None:
            record = await commit(renewed)
        now = ctx.ports.now()
        due = time_of(record, "dns_next_check_at") or now
        wait_s = (due - now).total_seconds()
        if wait_s > 0:
            if loop.time() + wait_s > until:
                raise pending(record)
            await asyncio.sleep(wait_s)
            continue
        obs = await observe_async(ctx, run, record, record.token or "")
        record = await commit(check_event(ctx, record, mode, obs))
        if obs.main.ok:
            return seen(ctx, obs)


def check_once(ctx: StepContext, run: BindingRun, record: BindingRecord,
               mode: ManualMode) -> StepResult:
    """WAIT_PROPAGATION of a manual binding for synchronous drivers: one check now, on
    blocking sockets. It journals nothing itself and re-mints no token (the engine's
    :func:`wait_async` does both; ``reconcile`` and ``cname-flow check`` run that).

    Raises:
        AwaitingCustomerDns: the record is not served everywhere yet (the findings in it).
        CustomerDnsAbandoned: ``give_up_after_s`` has passed.
    """
    abandoned(ctx, record, mode)
    obs = observe_now(ctx, run, record, record.token or "")
    if obs.main.ok:
        return seen(ctx, obs)
    event = check_event(ctx, record, mode, obs)
    found = [f for f in detect.detect(obs) if f.severity == "error"]
    raise AwaitingCustomerDns(
        f"{record.domain}: " + ("; ".join(f"{f.code}: {f.message}" for f in found)
                                or "the record is not served everywhere yet"),
        hint="the binding stays in the store; `cname-flow reconcile` continues it",
        findings=[(f.code, f.message) for f in found],
        next_check_at=str(record_due(event)))


def record_due(event: JournalEvent) -> str:
    """The next check time a ``dns_check`` event schedules, ``""`` when none."""
    due = dict(event.outputs).get("dns_next_check_at")
    return due if isinstance(due, str) else ""

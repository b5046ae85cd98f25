"""``cname-flow check DOMAIN``: check a manual binding's record now, and go on if it is there.

"Check now" makes the binding's next check due at once and runs one pass of the engine with no
patience (:func:`cname_flow.service.bind` machinery): one authoritative check (RD=0 to every
authoritative address, as every manual check), a token re-mint if one is due, and PutCname →
ListCname → BOUND when the record is served everywhere. It is rate-limited per domain
(``manual.check_now_interval_s``, 30 s by default), as Fly.io's and Vercel's "verify" buttons
are, so an impatient caller cannot hammer the customer's nameservers.
"""

from __future__ import annotations

from datetime import timedelta

from cname_flow import service
from cname_flow.errors import InputError
from cname_flow.journal import BindingRecord, JournalEvent
from cname_flow.manual.errors import CheckTooSoon
from cname_flow.manual.mode import effective, mode_for
from cname_flow.manual.outputs import ManualOutputs, time_of, to_journal
from cname_flow.model import AuxStep, Binding, Phase
from cname_flow.store import BindingStore
from cname_flow.workflow import runner


def check_now(clients: service.Clients, binding: Binding, store: BindingStore) -> BindingRecord:
    """Check ``binding``'s record now and drive it on as far as it can go.

    Returns:
        The record after the check (BOUND when the record was served everywhere and OSS
        accepted it; TXT_WRITTEN with the check's findings otherwise; unchanged when already
        BOUND).

    Raises:
        InputError: the store has no such binding, or it is not a manual binding.
        CheckTooSoon: the last check now of this domain is less than
            ``manual.check_now_interval_s`` old (nothing was asked).
        AwaitingCustomerDns: the record is not served everywhere yet (retryable).
        CnameFlowError: a later step failed (PutCname, ListCname), recorded in the store.
    """
    settings, key = clients.settings, binding.key
    record = store.get(key)
    if record is None:
        raise InputError(f"no binding {key} in the store",
                         hint=f"start it with `cname-flow bind {binding.domain} --dns manual`")
    if effective(mode_for(settings, binding.domain), record) is None:
        raise InputError(f"{key} is not a manual binding: cname-flow writes its record itself",
                         hint=f"`cname-flow bind {binding.domain}` continues it")
    if record.phase == Phase.BOUND:
        return record
    _refuse_too_soon(record, settings.manual.check_now_interval_s, clients)
    now = service.ports(clients).now()
    due_now = ManualOutputs(check_now_at=now.isoformat(), dns_next_check_at=now.isoformat())
    store.record(JournalEvent(key, AuxStep.DNS_CHECK, "done", record.phase, to_journal(due_now)))
    ctx = service.step_context(clients, binding)
    return runner.run_one(store, ctx, locks=store, lock_wait_s=settings.journal.lock_wait_s)


def _refuse_too_soon(record: BindingRecord, interval_s: float,
                     clients: service.Clients) -> None:
    last = time_of(record, "check_now_at")
    if last is None:
        return
    allowed = last + timedelta(seconds=interval_s)
    if service.ports(clients).now() < allowed:
        raise CheckTooSoon(
            f"{record.domain} was checked at {last.isoformat()}; the next check now is allowed "
            f"from {allowed.isoformat()} (manual.check_now_interval_s = {interval_s:g} s)",
            hint="the scheduled checks go on meanwhile; `cname-flow status` shows the next one",
            retry_at=allowed.isoformat())

"""Manual mode on the command line: ``check``, and the instructions in ``bind`` and ``status``.

The logic is in :mod:`cname_flow.manual`; this module only parses and renders.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, NoReturn

import click
from rich.console import Console

from cname_flow import service
from cname_flow.cli import render
from cname_flow.cli.common import CliState, fail, guarded
from cname_flow.journal import BindingRecord
from cname_flow.manual import instructions
from cname_flow.manual.check import check_now
from cname_flow.manual.errors import AwaitingCustomerDns
from cname_flow.manual.status import manual_view


def with_manual(data: dict[str, Any], record: BindingRecord) -> dict[str, Any]:
    """``data`` (a record's JSON) with its ``manual`` part added, for manual bindings."""
    view = manual_view(record)
    return data if view is None else {**data, "manual": view}


def print_manual(out: Console, record: BindingRecord) -> None:
    """The instructions, the last check's findings and the next check, as text."""
    view = manual_view(record)
    if view is None:
        return
    instr = instructions.from_record(record)
    out.print(f"\n[bold]{record.domain}[/bold] (manual DNS, {record.phase})")
    if instr is not None:
        out.print(instr.text(), markup=False)
    check = view["last_check"]
    if isinstance(check, dict):
        out.print(f"last check: {check['at']} (#{check['count']}), "
                  f"{'record seen everywhere' if check['ok'] else 'not there yet'}")
        for f in check["findings"]:
            out.print(f"  {f['severity']} {f['code']}: {f['message']}", markup=False)
            out.print(f"    → {f['remediation']}", markup=False)
    token = view["token"]
    if isinstance(token, dict) and token["renewals"]:
        out.print(f"token renewed {token['renewals']}× (last {token['renewed_at']}); "
                  "the value above is the current one")
    if view["next_check_at"]:
        out.print(f"next check: {view['next_check_at']} "
                  f"(now: `cname-flow check {record.domain}`)")


def print_statuses(out: Console, records: Iterable[BindingRecord]) -> None:
    """:func:`print_manual` for each manual binding of ``records``."""
    for record in records:
        print_manual(out, record)


def waiting(exc: AwaitingCustomerDns, store_record: BindingRecord | None,
            as_json: bool) -> NoReturn:
    """A one-shot ``bind`` that ran out of time: print the instructions (stdout, text or JSON)
    and the note that the binding stays in the store, then exit 75."""
    if store_record is not None:
        if as_json:
            render.emit_json({**with_manual(render.record_json(store_record), store_record),
                              "waiting": True, "message": exc.message, "hint": exc.hint},
                             "manual-waiting")
        else:
            print_manual(render.console(), store_record)
    fail(exc)


@click.command()
@click.argument("domain")
@click.option("--bucket", help="OSS bucket (default: defaults.bucket).")
@click.option("--json", "as_json", is_flag=True, help="Print JSON on stdout.")
@click.pass_obj
@guarded
def check(obj: CliState, domain: str, bucket: str | None, as_json: bool) -> None:
    """Check a manual binding's TXT record now, at every authoritative nameserver.

    When the record is served everywhere the binding goes on to PutCname and ends BOUND (exit
    0); otherwise the findings are printed and the exit code is 75 (the scheduled checks go
    on). At most one check per domain per manual.check_now_interval_s (30 s).
    """
    clients = obj.clients()
    binding = service.make_binding(obj.settings, domain, bucket=bucket)
    with service.open_store(obj.settings) as store:
        try:
            record = check_now(clients, binding, store)
        except AwaitingCustomerDns as exc:
            waiting(exc, store.get(binding.key), as_json)
    if as_json:
        render.emit_json(with_manual(render.record_json(record), record), "check")
        return
    out = render.console()
    out.print(f"[green]{record.phase.lower()}[/green] {record.domain} → {record.bucket}")
    print_manual(out, record)

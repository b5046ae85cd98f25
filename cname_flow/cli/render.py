"""Human output for a terminal (rich) and JSON output for machines. No business logic here.

Consoles are built when a command prints (:func:`console`, :func:`err_console`), not at import:
whether stdout is a terminal is asked of the stream the command really writes to (a pipe, a
terminal, click's ``CliRunner`` capture). They never read emoji codes (``:cd:`` is part of a
SHA-1 fingerprint, not a disc), and every data cell is :func:`~cname_flow.cli.output.plain`
text; a fingerprint column never wraps (:func:`fingerprint_column`).
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

from rich.console import Console
from rich.status import Status
from rich.table import Table
from rich.text import Text

from cname_flow.certificates import CertificateRow
from cname_flow.cli.output import document, plain, write_json
from cname_flow.journal import BindingRecord
from cname_flow.model import CnameEntry, Phase, Step, display_domain
from cname_flow.propagation.checker import AnswerState, Round
from cname_flow.reconcile.run import ReconcileReport
from cname_flow.workflow.plan import Plan

#: Width of tables written to a pipe or a capture (rich would squeeze them into 80 columns);
#: wide enough for the certificate table with a whole fingerprint and CAS id on one line.
PIPE_WIDTH = 200


def console() -> Console:
    """A console on the current ``sys.stdout``: terminal width on a terminal, else
    :data:`PIPE_WIDTH` columns."""
    out = Console(highlight=False, emoji=False)
    return out if out.is_terminal else Console(highlight=False, emoji=False, width=PIPE_WIDTH)


def err_console() -> Console:
    """A console on the current ``sys.stderr`` (progress lines, step lines)."""
    return Console(stderr=True, highlight=False, emoji=False)


#: Characters of a SHA-1 fingerprint as OSS shows it: 20 hex pairs joined by colons.
FINGERPRINT_WIDTH = 59


def fingerprint_column(table: Table, header: str = "fingerprint") -> None:
    """Add a column that holds a whole fingerprint on one line, on a terminal or off one."""
    table.add_column(header, no_wrap=True, min_width=FINGERPRINT_WIDTH, overflow="ignore")


def emit_json(data: object, kind: str | None = None) -> None:
    """Print one JSON document on stdout; with ``kind``, a dict gets its ``"schema"``
    (:func:`cname_flow.cli.output.emit`)."""
    if kind is not None and isinstance(data, dict):
        data = document(kind, data)
    write_json(data)


def record_json(record: BindingRecord) -> dict[str, Any]:
    """A binding record as JSON: key, phase, timestamps, token expiry, outputs, last error."""
    err = record.last_error
    return {
        "key": record.key,
        "domain": record.domain,
        "bucket": record.bucket,
        "phase": record.phase,
        "started_at": record.started_at.isoformat(),
        "updated_at": record.updated_at.isoformat(),
        "token_expires_at": _iso(record.token_expires_at),
        "attempts": record.attempts,
        "outputs": {k: v for k, v in record.outputs.items() if k != "token"},
        "last_error": None if err is None else {
            "code": err.code, "message": err.message, "retryable": err.retryable,
            "request_id": err.request_id,
        },
    }


def bind_json(record: BindingRecord) -> dict[str, Any]:
    """``bind --json``: :func:`record_json` plus ``route_cname`` (``{"name", "target"}`` of the
    routing CNAME this binding made with ``--route``, else None)."""
    target = record.outputs.get("route_target")
    route = {"name": record.domain, "target": target} if target else None
    return record_json(record) | {"route_cname": route}


def print_bound(out: Console, record: BindingRecord) -> None:
    """The one binding's result: phase and status, its certificate, its routing CNAME."""
    o = record.outputs
    colour = "green" if record.phase == Phase.BOUND else "yellow"
    out.print(Text.assemble((record.phase.lower(), colour), " ",
                            f"{display_domain(record.domain)} → {record.bucket}",
                            f" ({o['status']})" if o.get("status") else ""))
    if o.get("cert_id") or o.get("fingerprint"):
        out.print(plain(f"  certificate    {o.get('cert_id') or '-'}  SHA-1 "
                        f"{o.get('fingerprint') or '-'}  valid until "
                        f"{o.get('cert_not_after') or '-'}"))
    if o.get("route_target"):
        out.print(plain(f"  routing CNAME  {record.domain} → {o['route_target']}"))


def status_table(records: Iterable[BindingRecord]) -> Table:
    """One row per binding: phase, updated, token expiry, last error."""
    table = Table(title="bindings")
    for col in ("domain", "bucket", "phase", "updated (UTC)", "token expires", "last error"):
        table.add_column(col)
    for r in records:
        err = r.last_error
        table.add_row(*map(plain, (
            display_domain(r.domain), r.bucket, r.phase, _short(r.updated_at),
            _short(r.token_expires_at) if r.token_expires_at else "-",
            f"{err.code}: {err.message}" if err else "",
        )))
    return table


def cname_table(bucket: str, entries: Sequence[CnameEntry]) -> Table:
    """ListCname as a table (domain, status, certificate id, fingerprint, valid until)."""
    table = Table(title=plain(f"ListCname {bucket}"))
    for col in ("domain", "status", "certificate"):
        table.add_column(col)
    fingerprint_column(table)
    table.add_column("valid until")
    for e in entries:
        table.add_row(*map(plain, cname_row(e)))
    return table


def cname_row(e: CnameEntry) -> tuple[str, str, str, str, str]:
    """One ListCname row as strings: domain, status, certificate id, fingerprint, valid until."""
    c = e.certificate
    return (display_domain(e.domain), e.status, c.cert_id or "-" if c else "-",
            c.fingerprint or "-" if c else "-",
            _short(c.valid_end) if c and c.valid_end else "-")


def plan_table(plan: Plan) -> Table:
    """A plan as a table of steps, actions and reasons."""
    table = Table(title=plain(f"plan for {display_domain(plan.binding)}"))
    for col in ("step", "action", "why"):
        table.add_column(col)
    if plan.blocked:
        table.add_row("-", "[red]blocked[/red]", plain(plan.blocked))
    for a in plan.actions:
        table.add_row(*map(plain, (a.step, a.action, a.reason)))
    return table


def nameserver_table(rows: Mapping[str, Round]) -> Table:
    """What each authoritative nameserver address answers for each ``_dnsauth`` name."""
    table = Table(title="authoritative nameservers")
    for col in ("name", "nameserver", "address", "state", "TXT"):
        table.add_column(col)
    for name, rnd in rows.items():
        for a in rnd.answers:
            table.add_row(*map(plain, (
                name, a.target.host, f"{a.target.address}:{a.target.port}", a.state,
                ", ".join(sorted(a.values)) or "-")))
    return table


class StepPrinter:
    """Prints one line per completed step with its duration: an ``on_step`` callback."""

    def __init__(self, out: Console) -> None:
        self.out = out
        self._started = time.monotonic()

    def __call__(self, key: str, step: Step, phase: Phase) -> None:
        took = time.monotonic() - self._started
        self.out.print(f"  {step:<17} → {phase:<12} {took:6.2f} s")
        self._started = time.monotonic()


@contextmanager
def propagation_progress(enabled: bool) -> Iterator[Any]:
    """A live status line for the propagation wait; yields an ``on_round`` callback."""
    if not enabled:
        yield None
        return
    status = Status("waiting for the authoritative nameservers", console=err_console())
    rounds = 0

    def on_round(rnd: Round) -> None:
        nonlocal rounds
        rounds += 1
        ok = sum(1 for a in rnd.answers if a.state is AnswerState.OK)
        status.update(f"propagation: {ok}/{len(rnd.answers)} nameserver addresses serve the "
                      f"token (round {rounds})")

    with status:
        yield on_round


def _iso(dt: datetime | None) -> str | None:
    return dt.isoformat() if dt else None


def _short(dt: datetime | None) -> str:
    return dt.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S") if dt else "-"


def certificate_table(rows: Sequence[CertificateRow]) -> Table:
    """Bound certificates: domain, type, id, fingerprint, valid until, days left."""
    table = Table(title="certificates")
    for col in ("bucket", "domain", "type"):
        table.add_column(col)
    table.add_column("cert id", no_wrap=True)
    fingerprint_column(table)
    for col in ("valid until", "days left"):
        table.add_column(col)
    for r in rows:
        if r.error is not None:  # the bucket could not be listed
            table.add_row(plain(r.bucket), "-", Text(r.error, style="red"), "", "", "", "")
            continue
        days = "-" if r.days_left is None else f"{r.days_left:.0f}"
        style = "red" if r.days_left is not None and r.days_left < 30 else ""
        table.add_row(*map(plain, (r.bucket, display_domain(r.domain), r.type or "-",
                                   r.cert_id or "-", r.fingerprint or "-", _short(r.valid_end))),
                      Text(days, style=style))
    return table


def findings_table(report: ReconcileReport) -> Table:
    """One row per finding: key, kind, action (and whether the policy allows it), detail."""
    allowed = set(report.plan.actions())
    table = Table(title=plain(f"reconcile {report.plan.manifest} ({report.plan.policy})"))
    for col in ("binding", "kind", "action"):
        table.add_column(col)
    # a detail may quote two fingerprints: wide enough that neither is cut across lines
    table.add_column("detail", min_width=FINGERPRINT_WIDTH + 10)
    for f in report.plan.findings:
        action = str(f.action)
        if f.action != "none" and (f.key, f.action) not in allowed:
            action += f" (not under {report.plan.policy})"
        table.add_row(*map(plain, (f.key, f.kind, action, f.detail)))
    return table


def results_table(report: ReconcileReport) -> Table:
    """One row per action run: key, action, status, code and message."""
    table = Table(title="actions")
    for col in ("binding", "action", "status", "code", "message"):
        table.add_column(col)
    for r in report.results:
        table.add_row(*map(plain, (r.key, r.action, r.status, r.code, r.message)))
    return table


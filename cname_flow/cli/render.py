"""Human output for a terminal (rich) and JSON output for machines. No business logic here.

Consoles are built when a command prints (:func:`console`, :func:`err_console`), not at import:
whether stdout is a terminal is asked of the stream the command really writes to (a pipe, a
terminal, click's ``CliRunner`` capture).
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

from rich.console import Console
from rich.status import Status
from rich.table import Table

from cname_flow.certificates import CertificateRow
from cname_flow.journal import BindingRecord
from cname_flow.model import CnameEntry, Phase, Step, display_domain
from cname_flow.propagation.checker import AnswerState, Round
from cname_flow.reconcile.run import ReconcileReport
from cname_flow.workflow.plan import Plan

#: Width of tables written to a pipe or a capture (rich would squeeze them into 80 columns).
PIPE_WIDTH = 160


def console() -> Console:
    """A console on the current ``sys.stdout``: terminal width on a terminal, else
    :data:`PIPE_WIDTH` columns."""
    out = Console(highlight=False)
    return out if out.is_terminal else Console(highlight=False, width=PIPE_WIDTH)


def err_console() -> Console:
    """A console on the current ``sys.stderr`` (progress lines, step lines)."""
    return Console(stderr=True, highlight=False)


def emit_json(data: object) -> None:
    """Print one JSON document on stdout."""
    sys.stdout.write(json.dumps(data, indent=2, default=str, ensure_ascii=False) + "\n")


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


def status_table(records: Iterable[BindingRecord]) -> Table:
    """One row per binding: phase, updated, token expiry, last error."""
    table = Table(title="bindings")
    for col in ("domain", "bucket", "phase", "updated (UTC)", "token expires", "last error"):
        table.add_column(col)
    for r in records:
        err = r.last_error
        table.add_row(
            display_domain(r.domain), r.bucket, r.phase, _short(r.updated_at),
            _short(r.token_expires_at) if r.token_expires_at else "-",
            f"{err.code}: {err.message}" if err else "",
        )
    return table


def cname_table(bucket: str, entries: Sequence[CnameEntry]) -> Table:
    """ListCname as a table (domain, status, certificate id, fingerprint, valid until)."""
    table = Table(title=f"ListCname {bucket}")
    for col in ("domain", "status", "certificate", "fingerprint", "valid until"):
        table.add_column(col)
    for e in entries:
        c = e.certificate
        table.add_row(display_domain(e.domain), e.status, c.cert_id if c else "-",
                      c.fingerprint[:23] + "…" if c else "-",
                      _short(c.valid_end) if c and c.valid_end else "-")
    return table


def plan_table(plan: Plan) -> Table:
    """A plan as a table of steps, actions and reasons."""
    table = Table(title=f"plan for {display_domain(plan.binding)}")
    for col in ("step", "action", "why"):
        table.add_column(col)
    if plan.blocked:
        table.add_row("-", "[red]blocked[/red]", plan.blocked)
    for a in plan.actions:
        table.add_row(str(a.step), a.action, a.reason)
    return table


def nameserver_table(rows: Mapping[str, Round]) -> Table:
    """What each authoritative nameserver address answers for each ``_dnsauth`` name."""
    table = Table(title="authoritative nameservers")
    for col in ("name", "nameserver", "address", "state", "TXT"):
        table.add_column(col)
    for name, rnd in rows.items():
        for a in rnd.answers:
            table.add_row(name, a.target.host, f"{a.target.address}:{a.target.port}",
                          str(a.state), ", ".join(sorted(a.values)) or "-")
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
    for col in ("bucket", "domain", "type", "cert id", "fingerprint", "valid until", "days left"):
        table.add_column(col)
    for r in rows:
        if r.error is not None:  # the bucket could not be listed
            table.add_row(r.bucket, "-", f"[red]{r.error}[/red]", "", "", "", "")
            continue
        days = "-" if r.days_left is None else f"{r.days_left:.0f}"
        style = "red" if r.days_left is not None and r.days_left < 30 else ""
        table.add_row(r.bucket, display_domain(r.domain), r.type or "-", r.cert_id or "-",
                      r.fingerprint or "-",
                      _short(r.valid_end), f"[{style}]{days}[/{style}]" if style else days)
    return table


def findings_table(report: ReconcileReport) -> Table:
    """One row per finding: key, kind, action (and whether the policy allows it), detail."""
    allowed = set(report.plan.actions())
    table = Table(title=f"reconcile {report.plan.manifest} ({report.plan.policy})")
    for col in ("binding", "kind", "action", "detail"):
        table.add_column(col)
    for f in report.plan.findings:
        action = str(f.action)
        if f.action != "none" and (f.key, f.action) not in allowed:
            action += f" (not under {report.plan.policy})"
        table.add_row(f.key, str(f.kind), action, f.detail)
    return table


def results_table(report: ReconcileReport) -> Table:
    """One row per action run: key, action, status, code and message."""
    table = Table(title="actions")
    for col in ("binding", "action", "status", "code", "message"):
        table.add_column(col)
    for r in report.results:
        table.add_row(r.key, str(r.action), r.status, r.code, r.message)
    return table


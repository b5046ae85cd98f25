"""``cname-flow doctor``: render the checks of :mod:`cname_flow.doctor` (a table, or JSON).

Exit 0 when no check failed (warnings and notes allowed), 1 otherwise; 2 for bad input (a bad
config, a bad ``--domain``). ``--policy-only`` prints the minimal RAM policy alone (no
credentials, no network). Mounted in :mod:`cname_flow.cli.main`; docs/doctor.md.
"""

from __future__ import annotations

import json
import sys
from typing import TYPE_CHECKING

import click

from cname_flow.cli.common import CliState, Outcome, guarded

if TYPE_CHECKING:
    from rich.table import Table

    from cname_flow.doctor import DoctorReport

#: Status → rich style of the table's status cell.
STYLES = {"ok": "green", "warn": "yellow", "note": "cyan", "fail": "bold red", "skip": "dim"}


@click.command()
@click.option("--bucket", help="Bucket to probe (default: defaults.bucket).")
@click.option("--domain", help="A domain to probe the DNS side with: its zone, records and "
              "delegation.")
@click.option("--parent-server", "parent_servers", multiple=True, metavar="ADDR[:PORT]",
              help="A server of the zone's parent to ask for the delegation (repeatable; "
                   "default: found through the system resolver).")
@click.option("--cas", is_flag=True, help="Add the certificate (CAS) statement to the policy "
              "(certificates attached with --cert-id).")
@click.option("--policy-only", is_flag=True, help="Print the minimal RAM policy (JSON) and "
              "exit; no credentials or network needed.")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON on stdout.")
@click.pass_obj
@guarded
def doctor(obj: CliState, bucket: str | None, domain: str | None,
           parent_servers: tuple[str, ...], cas: bool, policy_only: bool, as_json: bool) -> None:
    """Check credentials, clock, RAM permissions, the bucket's region and the zone's
    delegation; print the minimal RAM policy. Changes nothing.

    \b
    Examples:
      cname-flow doctor --domain img.example.com
      cname-flow doctor --policy-only > cname-flow-policy.json
    """
    from cname_flow.doctor import minimal_policy, run_doctor

    if policy_only:
        click.echo(json.dumps(minimal_policy(bucket, cas=cas), indent=2))
        return
    report = run_doctor(obj.settings, clients_factory=obj.clients_factory, bucket=bucket,
                        domain=domain, parent_servers=parent_servers or None, cas=cas)
    if as_json:
        click.echo(json.dumps(report.to_json(), indent=2, ensure_ascii=False))
    else:
        from cname_flow.cli import render

        out = render.console()
        out.print(_table(report))
        out.print("Minimal RAM policy (attach it to the RAM user or role cname-flow runs as):",
                  markup=False)
        click.echo(json.dumps(report.policy, indent=2))
        verdict = "all checks passed" if report.ok else "some checks failed"
        click.echo(verdict, err=True)
    if not report.ok:
        sys.exit(Outcome.FAILED)


def _table(report: DoctorReport) -> Table:
    from rich.table import Table
    from rich.text import Text

    table = Table(title="cname-flow doctor")
    for column in ("check", "status", "detail", "hint"):
        table.add_column(column, overflow="fold")
    for c in report.checks:
        table.add_row(Text(c.name), Text(c.status, style=STYLES[c.status]), Text(c.detail),
                      Text(c.hint))
    return table

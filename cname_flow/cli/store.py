"""``cname-flow store``: the store of record itself (``migrate``: a JSON journal into
PostgreSQL; ``info``: which store the config picks and what it holds).

Mounted in :mod:`cname_flow.cli.main` with ``main.add_command(store)``.
"""

from __future__ import annotations

from pathlib import Path

import click

from cname_flow import service
from cname_flow.cli import render
from cname_flow.cli.common import CliState, guarded
from cname_flow.cli.lazy import LazyGroup
from cname_flow.errors import ConfigError


@click.group(cls=LazyGroup)
def store() -> None:
    """The store of record: migrate a JSON journal into PostgreSQL, show which store is used."""


@store.command("migrate")
@click.option("--from", "source", type=click.Path(path_type=Path, file_okay=False),
              default=None, help="The JSON journal's directory (default: journal.dir).")
@click.option("--json", "as_json", is_flag=True, help="Print JSON on stdout.")
@click.pass_obj
@guarded
def migrate(obj: CliState, source: Path | None, as_json: bool) -> None:
    """Copy a JSON journal (bindings with their history, and jobs) into the PostgreSQL store
    of store.url; a second run copies nothing new."""
    from cname_flow.store.migrate import migrate as copy_in
    from cname_flow.store.postgres import PgStore

    settings = obj.settings
    if not settings.store.url:
        raise ConfigError(["store.url: not set; `store migrate` copies into PostgreSQL (set "
                           "store.url in the config, or CNAME_FLOW_STORE_URL)"])
    directory = source or Path(settings.journal.dir)
    with PgStore(settings.store.url, lock_wait_s=settings.journal.lock_wait_s) as target:
        report = copy_in(directory, target)
    if as_json:
        render.emit_json(kind="store-migrate", data={
                          "source": report.source, "target": report.target,
                          "events": report.events, "forgets": report.forgets,
                          "bindings": report.bindings, "already": report.already,
                          "conflicts": report.conflicts, "jobs": report.jobs,
                          "job_members": report.job_members, "job_events": report.job_events,
                          "copied": report.copied})
        return
    out = render.console()
    if not report.copied:
        out.print(f"nothing new to copy from {report.source} into {report.target} "
                  f"({report.already} lines copied by an earlier run)")
    else:
        out.print(f"copied {report.source} into {report.target}: {report.events} events and "
                  f"{report.forgets} forgets ({report.bindings} bindings), {report.jobs} new "
                  f"jobs, {report.job_members} job members, {report.job_events} job events; "
                  f"{report.already} lines were copied before")
    for key in report.conflicts:
        out.print(f"[yellow]left alone[/yellow] {key}: PostgreSQL already has it from "
                  "elsewhere")


@store.command("info")
@click.option("--json", "as_json", is_flag=True, help="Print JSON on stdout.")
@click.pass_obj
@guarded
def info(obj: CliState, as_json: bool) -> None:
    """Which store the config picks (PostgreSQL or the JSON journal) and how many bindings and
    jobs it holds."""
    settings = obj.settings
    if settings.store.url:
        with service.open_store(settings) as opened:
            found = {"kind": "postgresql", "location": opened.location,
                     "bindings": len(opened.bindings()), "jobs": len(opened.job_ids())}
    else:  # read-only: a fresh machine gets no journal made for it
        unopened = service.open_store(settings)
        found = {"kind": "json", "location": unopened.location,
                 "bindings": len(service.read_bindings(settings)), "jobs": len(unopened.job_ids())}
    if as_json:
        render.emit_json(found, "store-info")
        return
    render.console().print(f"{found['kind']} store at {found['location']}: "
                           f"{found['bindings']} bindings, {found['jobs']} jobs")

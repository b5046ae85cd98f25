"""``cname-flow events``: read the JSON Lines event stream (``events.jsonl``), or re-send the
webhook outbox (``--resend``). What the events are: docs/events.md.

Mounted in :mod:`cname_flow.cli.main` with ``main.add_command(events)``.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from cname_flow.cli.common import CliState, Outcome, guarded
from cname_flow.errors import ConfigError
from cname_flow.events import EVENT_TYPES
from cname_flow.events.sinks import outbox_path, resend
from cname_flow.events.stream import read_events


@click.command()
@click.option("--follow", "-f", is_flag=True,
              help="Keep printing events as they are appended (until Ctrl-C).")
@click.option("--type", "types", multiple=True, type=click.Choice(EVENT_TYPES),
              help="Only events of this type (repeatable).")
@click.option("--resend", "resend_outbox", is_flag=True,
              help="Re-send the webhook outbox (deliveries that failed) instead; exit 75 "
                   "when some still fail.")
@click.pass_obj
@guarded
def events(obj: CliState, follow: bool, types: tuple[str, ...], resend_outbox: bool) -> None:
    """Print the event stream (events.jsonl), one JSON object per line, oldest first."""
    settings = obj.settings
    if resend_outbox:
        _resend(obj)
        return
    path = settings.events.jsonl
    if path is None:
        raise ConfigError(["events.jsonl: not set; `cname-flow events` reads the event stream "
                           "(set events.jsonl in the config, e.g. events.jsonl: events.jsonl)"],
                          source=str(settings.source or ""))
    _print(path, types, follow)


def _print(path: Path, types: tuple[str, ...], follow: bool) -> None:
    for event in read_events(path, types=types, follow=follow):
        sys.stdout.write(json.dumps(event, separators=(",", ":"), ensure_ascii=False) + "\n")
        sys.stdout.flush()


def _resend(obj: CliState) -> None:
    settings = obj.settings
    journal_dir = Path(settings.journal.dir)
    sent, kept = resend(settings.events, journal_dir, where=settings.where("events"))
    where = outbox_path(settings.events, journal_dir)
    click.echo(f"re-sent {sent} event(s) from {where}; {kept} still undelivered")
    if kept:
        sys.exit(Outcome.RETRYABLE)

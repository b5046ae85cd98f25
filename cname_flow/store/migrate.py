"""Copying a JSON journal (``journal.dir``) into the PostgreSQL store: ``cname-flow store migrate``.

What is copied: every line of ``bindings.jsonl`` after its header, in file order (events with
their history, compacted lines, forgets), folded into ``cname_flow.bindings`` with the journal's
own replay; and every job (meta, members, events). The JSON store is opened once first, so a
previous-format journal is folded in and a torn tail dropped exactly as the JSON store does.

Idempotent: each copied line's identity (the file's ``created_at``, the SHA-256 of the line,
its occurrence) goes into ``cname_flow.migrated`` in the same transaction as what it changed,
so a second run copies nothing new. A binding PostgreSQL already knows from elsewhere (none of
its lines migrated before) is left alone and reported: migrating is for moving a host's
journal in, not for merging two histories.
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cname_flow.errors import InputError
from cname_flow.journal.codec import (
    EventLine,
    ForgetLine,
    check_header,
    decode_line,
    encode_event,
    encode_job_event,
)
from cname_flow.journal.records import BindingRecord, JobEvent, apply_event, format_ts
from cname_flow.store.jobs import job_files
from cname_flow.store.jsonl import STORE_FILE, JsonStore
from cname_flow.store.pg_conn import SCHEMA
from cname_flow.store.postgres import PgStore, decode_record, encode_record


@dataclass
class MigrationReport:
    """What one ``store migrate`` run did.

    Attributes:
        source: the JSON store file copied from.
        target: the PostgreSQL store (URL without password).
        events: binding events copied now.
        forgets: forget lines copied now.
        bindings: bindings whose record was written now.
        already: lines copied by an earlier run (skipped).
        conflicts: bindings left alone: PostgreSQL knows them from elsewhere.
        jobs: jobs created now; job_members, job_events: rows added now.
    """

    source: str
    target: str
    events: int = 0
    forgets: int = 0
    bindings: int = 0
    already: int = 0
    conflicts: list[str] = field(default_factory=list)
    jobs: int = 0
    job_members: int = 0
    job_events: int = 0

    @property
    def copied(self) -> int:
        """Rows added in all."""
        return self.events + self.forgets + self.jobs + self.job_members + self.job_events


def migrate(directory: Path, store: PgStore) -> MigrationReport:
    """Copy the JSON store under ``directory`` into the open ``store`` (see the module docstring).

    Raises:
        InputError: ``directory`` holds no JSON store (no ``bindings.jsonl``, no job).
        ConfigError, JournalCorrupt, Locked: the JSON store cannot be read (as
            :meth:`JsonStore.open`).
        JournalError: PostgreSQL unreachable (nothing of the failed transaction is kept).
    """
    directory = Path(directory)
    path = directory / STORE_FILE
    if not path.exists() and not job_files(directory):
        raise InputError(f"no JSON journal at {directory} (no {STORE_FILE}, no jobs/)",
                         hint="give the journal's directory with --from DIR")
    report = MigrationReport(str(path), store.location)
    with JsonStore(directory) as source:  # folds version 1 in, drops a torn tail
        if path.exists():
            _copy_bindings(path, store, report)
        for job_id in source.job_ids():
            state = source.job(job_id)
            if state is not None:
                _copy_job(store, report, job_id, dict(state.meta), state.members,
                          [(e.name, dict(e.values), e.ts) for e in state.events])
    return report


def _lines(path: Path) -> tuple[list[str], list[Any]]:
    """Origins and decoded lines of the store file after its header (complete lines only)."""
    origins: list[str] = []
    lines: list[Any] = []
    seen: Counter[str] = Counter()
    created = ""
    with path.open("rb") as handle:
        for number, raw in enumerate(handle, start=1):
            if not raw.endswith(b"\n") or not raw.strip():
                continue
            value = json.loads(raw)
            if number == 1:
                created = format_ts(check_header(value)[0])
                continue
            digest = hashlib.sha256(raw).hexdigest()
            seen[digest] += 1
            origins.append(f"{created}:{digest}:{seen[digest]}")
            lines.append(decode_line(value))
    return origins, lines


def _copy_bindings(path: Path, store: PgStore, report: MigrationReport) -> None:
    origins, lines = _lines(path)
    with store.transaction("migrate into") as cur:
        cur.execute(f"SELECT origin FROM {SCHEMA}.migrated WHERE origin = ANY(%s)", (origins,))
        done = {str(r[0]) for r in cur.fetchall()}
        report.already = len(done)
        fresh = [(o, line) for o, line in zip(origins, lines, strict=True) if o not in done]
        touched_before = {_key(line) for o, line in zip(origins, lines, strict=True)
                          if o in done} - {None}
        keys = sorted({k for _, line in fresh if (k := _key(line)) is not None})
        cur.execute(f"SELECT key, record FROM {SCHEMA}.bindings WHERE key = ANY(%s) "
                    "ORDER BY key FOR UPDATE", (keys,))
        current: dict[str, BindingRecord | None] = {
            str(k): None if v is None else decode_record(v, str(k)) for k, v in cur.fetchall()}
        report.conflicts = [k for k in keys
                            if current.get(k) is not None and k not in touched_before]
        skip = set(report.conflicts)
        changed: set[str] = set()
        for origin, line in fresh:
            key = _key(line)
            if key is None or key in skip:
                continue
            if isinstance(line, EventLine):
                current[key] = apply_event(current.get(key), line.event, line.snapshot)
                cur.execute(f"INSERT INTO {SCHEMA}.events (key, event) VALUES (%s, %s::jsonb)",
                            (key, _event_json(line)))
                report.events += 1
            else:
                current[key] = None
                report.forgets += 1
            changed.add(key)
            cur.execute(f"INSERT INTO {SCHEMA}.migrated (origin) VALUES (%s)", (origin,))
        for key in sorted(changed):
            record = current.get(key)
            if record is None:
                cur.execute(f"DELETE FROM {SCHEMA}.bindings WHERE key = %s", (key,))
                continue
            cur.execute(f"INSERT INTO {SCHEMA}.bindings (key, record, updated_at) "
                        "VALUES (%s, %s::jsonb, now()) ON CONFLICT (key) DO UPDATE SET "
                        "record = excluded.record, updated_at = now()",
                        (key, encode_record(record)))
            report.bindings += 1


def _key(line: object) -> str | None:
    if isinstance(line, EventLine):
        return line.event.key
    if isinstance(line, ForgetLine):
        return line.key
    return None  # job lines never appear in the store file; nothing to copy


def _event_json(line: EventLine) -> str:
    return encode_event(line.event).decode("utf-8")


def _copy_job(store: PgStore, report: MigrationReport, job_id: str, meta: dict[str, Any],
              members: tuple[str, ...], events: list[tuple[str, dict[str, Any], Any]]) -> None:
    with store.transaction("migrate a job into") as cur:
        cur.execute(f"INSERT INTO {SCHEMA}.jobs (job_id, meta) VALUES (%s, %s::jsonb) "
                    "ON CONFLICT (job_id) DO NOTHING", (job_id, json.dumps(meta)))
        report.jobs += cur.rowcount
        for key in members:
            cur.execute(f"INSERT INTO {SCHEMA}.job_members (job_id, key) VALUES (%s, %s) "
                        "ON CONFLICT DO NOTHING", (job_id, key))
            report.job_members += cur.rowcount
        seen: Counter[str] = Counter()
        for name, values, ts in events:
            line = encode_job_event(JobEvent(name, values, ts))
            digest = hashlib.sha256(line).hexdigest()
            seen[digest] += 1
            cur.execute(f"INSERT INTO {SCHEMA}.migrated (origin) VALUES (%s) "
                        "ON CONFLICT DO NOTHING", (f"job:{job_id}:{digest}:{seen[digest]}",))
            if cur.rowcount:
                cur.execute(f"INSERT INTO {SCHEMA}.job_events (job_id, event) "
                            "VALUES (%s, %s::jsonb)", (job_id, line.decode("utf-8")))
                report.job_events += 1

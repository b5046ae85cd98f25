"""The journal's line format (JSON Lines, UTF-8, one ``\\n``-terminated object per line).

* header, always line 1: ``{"journal": "cname-flow", "version": 1, "created_at": "…Z"}``
  (a compacted journal adds ``"compacted_at"``);
* event: ``{"ts": "…Z", "key": "<bucket>/<domain>", "step": "…", "status": "running|done|failed",
  "phase": "…", "outputs": {…}, "error": {"code", "message", "retryable", "request_id"}}``;
  ``outputs`` and ``error`` are left out when empty; a compacted line adds ``"attempts"`` and
  ``"started_at"``, which replay restores verbatim;
* job metadata: ``{"ts": "…Z", "meta": {…}}``;
* (version 2) forgetting a binding: ``{"ts": "…Z", "forget": "<bucket>/<domain>"}``;
* (version 2) a job's members: ``{"ts": "…Z", "members": ["<bucket>/<domain>", …]}``;
* (version 2) a job event: ``{"ts": "…Z", "job": "started|stopped", "values": {…}}``.

Version 2 (the shared store of record, :mod:`cname_flow.store`) adds the last three line kinds;
version 1 files (one exclusive writer per file) are still read, and folded into the store on
first use (:mod:`cname_flow.store.legacy`).

Timestamps are ISO-8601 in UTC with microseconds and a ``Z`` suffix. Pure code, no I/O.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Final, TypeAlias, TypeVar, cast

from cname_flow.journal.records import (
    STATUSES,
    TIME_OUTPUTS,
    BindingOutputs,
    BindingRecord,
    ErrorInfo,
    EventStatus,
    EventStep,
    JobEvent,
    JournalEvent,
    OutputValue,
    Snapshot,
    check_event,
    format_ts,
    guard_values,
    parse_ts,
)
from cname_flow.model import AuxStep, Phase, Step

FORMAT_NAME: Final = "cname-flow"
FORMAT_VERSION: Final = 2
#: Every version this code reads (1: before the shared store; see the module docstring).
READABLE_VERSIONS: Final = frozenset({1, 2})

_STEPS: Final[dict[str, EventStep]] = {s.value: s for s in (*Step, *AuxStep)}
_PHASES: Final[dict[str, Phase]] = {p.value: p for p in Phase}


class LineError(ValueError):
    """A line that is valid JSON but not a valid journal line (the reader adds the line number)."""


@dataclass(frozen=True, slots=True)
class MetaLine:
    """A decoded job-metadata line."""

    values: dict[str, OutputValue]
    ts: datetime


@dataclass(frozen=True, slots=True)
class ForgetLine:
    """A decoded forget line: the binding ``key`` is dropped from the replayed state."""

    key: str
    ts: datetime


@dataclass(frozen=True, slots=True)
class MembersLine:
    """A decoded members line: binding keys that join a job (in order)."""

    keys: tuple[str, ...]
    ts: datetime


@dataclass(frozen=True, slots=True)
class JobLine:
    """A decoded job-event line (``started``, ``stopped``…) with its values."""

    event: JobEvent


@dataclass(frozen=True, slots=True)
class EventLine:
    """A decoded event line, with the compaction extras when present."""

    event: JournalEvent
    snapshot: Snapshot | None = None


#: Any line after the header.
Line: TypeAlias = EventLine | MetaLine | ForgetLine | MembersLine | JobLine


# --- encoding ---------------------------------------------------------------------------------


def _dump(obj: Mapping[str, object]) -> bytes:
    return (json.dumps(obj, ensure_ascii=False, allow_nan=False) + "\n").encode("utf-8")


def encode_header(created_at: datetime, compacted_at: datetime | None = None) -> bytes:
    """The header line (with its newline) of a journal created at ``created_at``."""
    header: dict[str, object] = {
        "journal": FORMAT_NAME,
        "version": FORMAT_VERSION,
        "created_at": format_ts(created_at),
    }
    if compacted_at is not None:
        header["compacted_at"] = format_ts(compacted_at)
    return _dump(header)


def encode_event(event: JournalEvent) -> bytes:
    """One event line (with its newline), after the secret guard.

    Raises:
        ValueError: bad key or status, naive ``ts``, a refused secret, or a NaN/infinite number.
    """
    check_event(event)
    return _dump(_event_dict(event))


def _event_dict(event: JournalEvent) -> dict[str, object]:
    line: dict[str, object] = {
        "ts": format_ts(event.ts),
        "key": event.key,
        "step": event.step,
        "status": event.status,
        "phase": event.phase,
    }
    if event.outputs:
        line["outputs"] = dict(event.outputs)
    if event.error is not None:
        line["error"] = {
            "code": event.error.code,
            "message": event.error.message,
            "retryable": event.error.retryable,
            "request_id": event.error.request_id,
        }
    return line


def encode_snapshot(record: BindingRecord) -> bytes:
    """The single synthetic line that replaces a binding's history on compaction."""
    event = JournalEvent(
        key=record.key,
        step=record.last_step or AuxStep.JOB,
        status=record.last_status or "done",
        phase=record.phase,
        outputs=record.outputs,
        error=record.last_error,
        ts=record.updated_at,
    )
    line = _event_dict(event)
    line["attempts"] = record.attempts
    line["started_at"] = format_ts(record.started_at)
    return _dump(line)


def encode_meta(values: Mapping[str, OutputValue], ts: datetime) -> bytes:
    """A job-metadata line, after the secret guard.

    Raises:
        ValueError: a refused secret or a value that is not an ``OutputValue``.
    """
    guard_values(values, what="journal meta")
    return _dump({"ts": format_ts(ts), "meta": dict(values)})


def encode_forget(key: str, ts: datetime) -> bytes:
    """A forget line for ``key`` (``"<bucket>/<domain>"``).

    Raises:
        ValueError: ``key`` is not ``"<bucket>/<domain>"``, or ``ts`` is naive.
    """
    _check_key(key)
    return _dump({"ts": format_ts(ts), "forget": key})


def encode_members(keys: Sequence[str], ts: datetime) -> bytes:
    """A members line: ``keys`` join the job, in order.

    Raises:
        ValueError: a key is not ``"<bucket>/<domain>"``, or ``ts`` is naive.
    """
    for key in keys:
        _check_key(key)
    return _dump({"ts": format_ts(ts), "members": list(keys)})


def encode_job_event(event: JobEvent) -> bytes:
    """A job-event line, after the secret guard.

    Raises:
        ValueError: a refused secret, a value that is not an ``OutputValue``, or a naive ``ts``.
    """
    guard_values(event.values, what=f"job event {event.name}")
    return _dump({"ts": format_ts(event.ts), "job": event.name, "values": dict(event.values)})


def _check_key(key: str) -> None:
    bucket, slash, domain = key.partition("/")
    if not (bucket and slash and domain):
        raise ValueError(f"journal key {key!r} is not '<bucket>/<domain>'")


# --- decoding ---------------------------------------------------------------------------------


def check_header(obj: object) -> tuple[datetime, int]:
    """Validate a decoded header line; return its ``created_at`` and version.

    Raises:
        LineError: not a cname-flow header, or a version this code does not read.
    """
    if not isinstance(obj, dict) or obj.get("journal") != FORMAT_NAME:
        raise LineError("not a cname-flow journal header")
    version = obj.get("version")
    if not isinstance(version, int) or version not in READABLE_VERSIONS:
        raise LineError(
            f"unsupported journal version {version!r} "
            f"(this cname-flow reads versions {sorted(READABLE_VERSIONS)})"
        )
    return _field_ts(obj, "created_at"), version


def decode_line(obj: object) -> Line:
    """Turn one decoded JSON value (not the header) into an event, metadata, forget, members or
    job-event line.

    Raises:
        LineError: a field is missing or has the wrong type.
    """
    if not isinstance(obj, dict):
        raise LineError("a journal line must be a JSON object")
    if "meta" in obj:
        return MetaLine(_outputs(obj, "meta"), _field_ts(obj, "ts"))
    if "forget" in obj:
        return ForgetLine(_field_key(obj, "forget"), _field_ts(obj, "ts"))
    if "members" in obj:
        return MembersLine(_keys(obj), _field_ts(obj, "ts"))
    if "job" in obj:
        return JobLine(JobEvent(_field_str(obj, "job"), _outputs(obj, "values"),
                                _field_ts(obj, "ts")))
    key, step = _field_key(obj, "key"), _field_str(obj, "step")
    status = _status(obj)
    event = JournalEvent(
        key=key,
        step=_known(_STEPS, step, "step"),
        status=status,
        phase=_known(_PHASES, _field_str(obj, "phase"), "phase"),
        outputs=cast(BindingOutputs, _outputs(obj, "outputs")),
        error=_error(obj.get("error")),
        ts=_field_ts(obj, "ts"),
    )
    if "attempts" not in obj:
        return EventLine(event)
    attempts = obj["attempts"]
    if not isinstance(attempts, int) or isinstance(attempts, bool) or attempts < 0:
        raise LineError("field 'attempts' must be a non-negative integer")
    return EventLine(event, Snapshot(attempts, _field_ts(obj, "started_at")))


def _keys(obj: dict[str, object]) -> tuple[str, ...]:
    keys = obj.get("members")
    if not isinstance(keys, list):
        raise LineError("field 'members' must be a list of strings")
    return tuple(_field_key({"members": key}, "members") for key in keys)


def _status(obj: dict[str, object]) -> EventStatus:
    status = _field_str(obj, "status")
    if status not in STATUSES:
        raise LineError(f"status {status!r} is not one of {sorted(STATUSES)}")
    return cast(EventStatus, status)


_Named = TypeVar("_Named")


def _known(names: Mapping[str, _Named], value: str, field: str) -> _Named:
    try:
        return names[value]
    except KeyError:
        raise LineError(f"field {field!r}: {value!r} is not a known {field}") from None


def _field_str(obj: dict[str, object], name: str) -> str:
    value = obj.get(name)
    if not isinstance(value, str):
        raise LineError(f"field {name!r} must be a string")
    return _text(value, name)


def _field_key(obj: dict[str, object], name: str) -> str:
    key = _field_str(obj, name)
    try:
        _check_key(key)
    except ValueError as exc:
        raise LineError(f"field {name!r}: {exc}") from None
    return key


def _text(value: str, name: str) -> str:
    """``value`` when it is valid Unicode (JSON's ``\\ud800`` escapes can make a lone
    surrogate, which could never be written back as UTF-8)."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise LineError(f"field {name!r} holds an invalid Unicode escape") from None
    return value


def _field_ts(obj: dict[str, object], name: str) -> datetime:
    try:
        return parse_ts(_field_str(obj, name))
    except LineError:
        raise
    except ValueError as exc:
        raise LineError(f"field {name!r}: {exc}") from None


def _outputs(obj: dict[str, object], name: str) -> dict[str, OutputValue]:
    value = obj.get(name, {})
    if not isinstance(value, dict):
        raise LineError(f"field {name!r} must be an object")
    for key, item in value.items():
        where = f"{name}.{_text(key, name)}"
        if item is not None and not isinstance(item, str | int | float | bool):
            raise LineError(f"field '{where}' must be a string, number, boolean or null")
        if isinstance(item, float) and not math.isfinite(item):
            raise LineError(f"field '{where}' must be a finite number")
        if isinstance(item, str):
            _text(item, where)
            if name == "outputs" and key in TIME_OUTPUTS:
                _field_ts(value, key)
        elif name == "outputs" and key in TIME_OUTPUTS and item is not None:
            raise LineError(f"field '{where}' must be a timestamp string or null")
    return cast(dict[str, OutputValue], value)


def _error(value: object) -> ErrorInfo | None:
    if value is None:
        return None
    if not isinstance(value, dict):
        raise LineError("field 'error' must be an object or null")
    retryable = value.get("retryable")
    if not isinstance(retryable, bool):
        raise LineError("field 'error.retryable' must be a boolean")
    request_id = value.get("request_id", "")
    return ErrorInfo(
        code=_field_str(value, "code"),
        message=_field_str(value, "message"),
        retryable=retryable,
        request_id=_text(request_id, "error.request_id") if isinstance(request_id, str) else "",
    )

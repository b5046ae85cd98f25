"""Journal values: events, the replayed record of a binding, the secret guard, and replay.

Pure code, no I/O. Replaying an event costs time proportional to the outputs of its one
binding, never to the size of the journal.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Final, Literal, TypeAlias, get_args

from cname_flow.model import Step

EventStatus: TypeAlias = Literal["running", "done", "failed"]
OutputValue: TypeAlias = str | int | float | bool | None

STATUSES: Final[frozenset[str]] = frozenset(get_args(EventStatus))
_STEP_NAMES: Final[frozenset[str]] = frozenset(step.value for step in Step)
_SECRET_KEY_WORDS: Final = ("secret", "privatekey", "securitytoken", "password")
PEM_MARK: Final = "-----BEGIN"


@dataclass(frozen=True, slots=True)
class ErrorInfo:
    """Why a step failed, as the journal keeps it.

    Attributes:
        code: service or cname-flow error code, e.g. ``"NeedVerifyDomainOwnership"``.
        message: one-line human message; never carries a secret.
        retryable: whether trying again later can succeed.
        request_id: the service's request id, ``""`` when none.
    """

    code: str
    message: str
    retryable: bool
    request_id: str = ""


def _now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True, slots=True)
class JournalEvent:
    """One state transition of one binding, as appended to the journal.

    Attributes:
        key: ``"<bucket>/<domain>"``.
        step: a :class:`~cname_flow.model.Step` value, or ``"job"``, ``"backoff"``, ``"unbind"``…
            for events that are not steps.
        status: ``"running"`` (intent, written before the side effect), ``"done"`` or ``"failed"``.
        phase: the :class:`~cname_flow.model.Phase` value the binding is in AFTER this event.
        outputs: values to merge into the binding's outputs (``token``, ``token_expires_at`` as
            ISO-8601, ``txt_record_id``, ``cert_id``, ``next_attempt_at``…); ``None`` deletes a key.
        error: why the step failed, for ``"failed"`` events.
        ts: aware datetime of the event (defaults to now, UTC).
    """

    key: str
    step: str
    status: EventStatus
    phase: str
    outputs: Mapping[str, OutputValue] = field(default_factory=dict)
    error: ErrorInfo | None = None
    ts: datetime = field(default_factory=_now)


@dataclass(slots=True)
class BindingRecord:
    """The replayed state of one binding: what every event recorded so far adds up to.

    A record is replaced, never mutated, by later events; treat it as read-only.

    Attributes:
        key: ``"<bucket>/<domain>"``.
        domain: the part of ``key`` after the first ``/``.
        bucket: the part of ``key`` before the first ``/``.
        phase: phase after the last event.
        outputs: merged outputs of every event (later wins; ``None`` deleted the key).
        last_step: step of the last event.
        last_status: status of the last event.
        last_error: error of the last failed event; cleared when a step is done.
        attempts: failed events since the last ``done`` event of a :class:`~cname_flow.model.Step`
            (``done`` events of ``"job"``, ``"backoff"``… do not reset it).
        started_at: time of the first event.
        updated_at: time of the last event.
    """

    key: str
    domain: str
    bucket: str
    phase: str
    outputs: dict[str, OutputValue]
    last_step: str | None
    last_status: EventStatus | None
    last_error: ErrorInfo | None
    attempts: int
    started_at: datetime
    updated_at: datetime

    def get(self, name: str) -> OutputValue:
        """The output ``name``, or ``None`` when absent."""
        return self.outputs.get(name)

    @property
    def token(self) -> str | None:
        """The CNAME token (the TXT value), when one was recorded."""
        return _as_str(self.outputs.get("token"))

    @property
    def token_expires_at(self) -> datetime | None:
        """Expiry of the CNAME token as an aware UTC datetime."""
        return _as_datetime(self.outputs.get("token_expires_at"))

    @property
    def txt_record_id(self) -> str | None:
        """The DNS provider's id of the ``_dnsauth`` TXT record we wrote."""
        return _as_str(self.outputs.get("txt_record_id"))

    @property
    def next_attempt_at(self) -> datetime | None:
        """When a backed-off binding may be tried again, as an aware UTC datetime."""
        return _as_datetime(self.outputs.get("next_attempt_at"))


def _as_str(value: OutputValue) -> str | None:
    return None if value is None else str(value)


def _as_datetime(value: OutputValue) -> datetime | None:
    return parse_ts(value) if isinstance(value, str) else None


def format_ts(moment: datetime) -> str:
    """ISO-8601 UTC with microseconds and ``Z``: ``"2024-05-01T12:00:00.000000Z"``.

    Raises:
        ValueError: ``moment`` is naive.
    """
    if moment.utcoffset() is None:
        raise ValueError(f"journal timestamps must be timezone-aware, got {moment!r}")
    text = moment.astimezone(UTC).isoformat(timespec="microseconds")
    return text.removesuffix("+00:00") + "Z"


def parse_ts(text: str) -> datetime:
    """Parse an ISO-8601 timestamp into an aware UTC datetime.

    Raises:
        ValueError: not ISO-8601, or without a UTC offset.
    """
    moment = datetime.fromisoformat(text)
    if moment.tzinfo is None:
        raise ValueError(f"timestamp {text!r} has no UTC offset")
    return moment.astimezone(UTC)


def guard_values(values: Mapping[str, OutputValue], *, what: str) -> None:
    """Refuse values that must never reach the journal.

    Raises:
        ValueError: a key naming a secret (``secret``, ``private_key``, ``security_token``,
            ``password``, in any case or separator style), a PEM block among the values, or a
            value that is not ``str | int | float | bool | None``. The message names the key,
            never the value.
    """
    for name, value in values.items():
        folded = name.lower().replace("_", "").replace("-", "")
        if any(word in folded for word in _SECRET_KEY_WORDS):
            raise ValueError(f"{what} {name!r}: secrets are never written to the journal")
        if value is not None and not isinstance(value, str | int | float | bool):
            raise ValueError(f"{what} {name!r}: {type(value).__name__} is not a journal value")
        if isinstance(value, str) and PEM_MARK in value:
            raise ValueError(f"{what} {name!r}: PEM blocks are never written to the journal")


def check_event(event: JournalEvent) -> None:
    """Refuse an event that is malformed or would write a secret.

    Raises:
        ValueError: key not ``"<bucket>/<domain>"``, empty step, unknown status, a secret or
            PEM block among the outputs, or a PEM block in the error message.
    """
    bucket, slash, domain = event.key.partition("/")
    if not (bucket and slash and domain):
        raise ValueError(f"journal key {event.key!r} is not '<bucket>/<domain>'")
    if not event.step:
        raise ValueError(f"{event.key}: journal event without a step")
    if event.status not in STATUSES:
        raise ValueError(f"{event.key}: journal status {event.status!r} is not one of {STATUSES}")
    guard_values(event.outputs, what=f"{event.key}: output")
    if event.error is not None and PEM_MARK in event.error.message:
        raise ValueError(f"{event.key}: error message holds a PEM block; not written")


def merge_outputs(
    base: Mapping[str, OutputValue], update: Mapping[str, OutputValue]
) -> dict[str, OutputValue]:
    """``base`` updated by ``update``, where a ``None`` in ``update`` deletes the key."""
    merged = dict(base)
    for name, value in update.items():
        if value is None:
            merged.pop(name, None)
        else:
            merged[name] = value
    return merged


@dataclass(frozen=True, slots=True)
class Snapshot:
    """The extra fields of a compacted line, restored verbatim on replay."""

    attempts: int
    started_at: datetime


def apply_event(
    previous: BindingRecord | None, event: JournalEvent, snapshot: Snapshot | None = None
) -> BindingRecord:
    """The record that ``event`` turns ``previous`` into (a new object; ``previous`` is kept)."""
    attempts = previous.attempts if previous else 0
    last_error = previous.last_error if previous else None
    if event.status == "failed":
        attempts += 1
    elif event.status == "done" and event.step in _STEP_NAMES:
        attempts, last_error = 0, None
    if event.error is not None:
        last_error = event.error
    bucket, _, domain = event.key.partition("/")
    return BindingRecord(
        key=event.key,
        domain=domain,
        bucket=bucket,
        phase=event.phase,
        outputs=merge_outputs(previous.outputs if previous else {}, event.outputs),
        last_step=event.step,
        last_status=event.status,
        last_error=last_error,
        attempts=snapshot.attempts if snapshot else attempts,
        started_at=_started_at(previous, event, snapshot),
        updated_at=event.ts,
    )


def _started_at(
    previous: BindingRecord | None, event: JournalEvent, snapshot: Snapshot | None
) -> datetime:
    if snapshot is not None:
        return snapshot.started_at
    return previous.started_at if previous is not None else event.ts


@dataclass(slots=True)
class ReplayState:
    """Every binding's record and the job metadata, as of the last applied event."""

    records: dict[str, BindingRecord] = field(default_factory=dict)
    meta: dict[str, OutputValue] = field(default_factory=dict)

    def apply(self, event: JournalEvent, snapshot: Snapshot | None = None) -> BindingRecord:
        """Fold ``event`` into its binding's record and return the new record."""
        record = apply_event(self.records.get(event.key), event, snapshot)
        self.records[event.key] = record
        return record

    def apply_meta(self, values: Mapping[str, OutputValue]) -> None:
        """Merge job metadata (``None`` deletes a key)."""
        self.meta = merge_outputs(self.meta, values)

"""Journal values: events, the replayed record of a binding, the secret guard, and replay.

Pure code, no I/O. Replaying an event costs time proportional to the outputs of its one
binding, never to the size of the journal.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Final, Generic, Literal, TypeAlias, TypedDict, TypeVar, cast, get_args, overload

from cname_flow.model import AuxStep, Phase, Step

EventStatus: TypeAlias = Literal["running", "done", "failed"]
OutputValue: TypeAlias = str | int | float | bool | None
#: What a journal event is about: a step of the machine, or an event beside it.
EventStep: TypeAlias = Step | AuxStep

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


class BindingOutputs(TypedDict, total=False):
    """Every output a binding's events carry: the journal's schema (format version 1).

    An event's ``outputs`` hold the keys it sets; ``None`` deletes a key, an absent key leaves
    it as it was. Values are the JSON values stored on disk: times are ISO-8601 strings
    (:meth:`datetime.isoformat` of an aware UTC time); read them through the typed accessors of
    :class:`BindingRecord`, which parse them. Written by:

    * the start event: ``domain``, ``bucket``, ``region``;
    * create_token: ``zone``, ``fast_path`` (the domain was bound already), ``token``,
      ``token_expires_at`` (72 h after creation); the expired-token back-edge clears both;
    * write_txt: ``txt_written_at``, ``neg_ttl`` and ``old_ttl`` (seconds, RFC 2308 §5 / the
      TTL of a stale TXT RRset, None when none), ``txt_record_id``;
    * wait_propagation: ``converged_at``, ``nameserver_addresses`` (how many were polled);
    * put_cname: ``put_request_id`` (OSS request id), or ``put`` when it was skipped;
    * verify: ``status`` (ListCname's ``Enabled``), ``cert_id``, ``fingerprint`` (SHA-1,
      colon-hex), ``cert_not_after``;
    * finish: ``route_record_id``, ``route_target``, ``txt_record_id`` (None once removed);
    * failures: ``ownership_failed_at`` (a PutCname ownership failure), ``next_attempt_at``
      (a batch's persisted backoff).
    """

    domain: str | None
    bucket: str | None
    region: str | None
    zone: str | None
    fast_path: bool | None
    token: str | None
    token_expires_at: str | None
    txt_record_id: str | None
    txt_written_at: str | None
    neg_ttl: int | None
    old_ttl: int | None
    converged_at: str | None
    nameserver_addresses: int | None
    put: str | None
    put_request_id: str | None
    status: str | None
    cert_id: str | None
    fingerprint: str | None
    cert_not_after: str | None
    route_record_id: str | None
    route_target: str | None
    ownership_failed_at: str | None
    next_attempt_at: str | None


def _now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True, slots=True)
class JournalEvent:
    """One state transition of one binding, as appended to the journal.

    Attributes:
        key: ``"<bucket>/<domain>"``.
        step: a :class:`~cname_flow.model.Step`, or an :class:`~cname_flow.model.AuxStep`
            (``start``, ``token``, ``unbind``…) for events that are not steps.
        status: ``"running"`` (intent, written before the side effect), ``"done"`` or ``"failed"``.
        phase: the phase the binding is in AFTER this event.
        outputs: values to merge into the binding's outputs (:class:`BindingOutputs`);
            ``None`` deletes a key.
        error: why the step failed, for ``"failed"`` events.
        ts: aware datetime of the event (defaults to now, UTC).
    """

    key: str
    step: EventStep
    status: EventStatus
    phase: Phase
    outputs: BindingOutputs = field(default_factory=lambda: BindingOutputs())
    error: ErrorInfo | None = None
    ts: datetime = field(default_factory=_now)


_T = TypeVar("_T")


class _Output(Generic[_T]):
    """A typed read of one key of :attr:`BindingRecord.outputs` (None when absent).

    The key is the attribute's name unless ``key`` is given.
    """

    __slots__ = ("_convert", "key")

    def __init__(self, convert: Callable[[object], _T | None], key: str = "") -> None:
        self._convert = convert
        self.key = key

    def __set_name__(self, owner: type, name: str) -> None:
        self.key = self.key or name

    @overload
    def __get__(self, record: None, owner: type | None = None) -> _Output[_T]: ...
    @overload
    def __get__(self, record: BindingRecord, owner: type | None = None) -> _T | None: ...
    def __get__(
        self, record: BindingRecord | None, owner: type | None = None
    ) -> _T | _Output[_T] | None:
        if record is None:
            return self
        return self._convert(record.outputs.get(self.key))


def _as_str(value: object) -> str | None:
    return None if value is None else str(value)


def _as_int(value: object) -> int | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return int(value)


def _as_bool(value: object) -> bool | None:
    return value if isinstance(value, bool) else None


def _as_datetime(value: object) -> datetime | None:
    return parse_ts(value) if isinstance(value, str) else None


@dataclass(slots=True)
class BindingRecord:
    """The replayed state of one binding: what every event recorded so far adds up to.

    A record is replaced, never mutated, by later events; treat it as read-only. Each key of
    :class:`BindingOutputs` is read through a typed attribute of the same name (times as aware
    UTC datetimes, TTLs as seconds), except ``status`` (:attr:`cname_status`) and ``put``
    (:attr:`put_note`); ``domain`` and ``bucket`` are fields.

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
    phase: Phase
    outputs: BindingOutputs
    last_step: EventStep | None
    last_status: EventStatus | None
    last_error: ErrorInfo | None
    attempts: int
    started_at: datetime
    updated_at: datetime

    #: OSS region id the binding was started with.
    region = _Output(_as_str)
    #: The zone apex holding ``_dnsauth.<domain>``.
    zone = _Output(_as_str)
    #: True when the first pass found the domain bound already (nothing was put).
    fast_path = _Output(_as_bool)
    #: The CNAME token (the TXT value), when one was recorded.
    token = _Output(_as_str)
    #: Expiry of the CNAME token.
    token_expires_at = _Output(_as_datetime)
    #: The DNS provider's id of the ``_dnsauth`` TXT record we wrote.
    txt_record_id = _Output(_as_str)
    #: When the TXT record was written.
    txt_written_at = _Output(_as_datetime)
    #: The zone's negative-caching TTL seen before the write, seconds (RFC 2308 §5).
    neg_ttl = _Output(_as_int)
    #: TTL of a stale TXT RRset seen before the write, seconds.
    old_ttl = _Output(_as_int)
    #: When every authoritative address served the token.
    converged_at = _Output(_as_datetime)
    #: How many authoritative addresses the propagation wait polled.
    nameserver_addresses = _Output(_as_int)
    #: Why PutCname was skipped (``"skipped: already bound"``).
    put_note = _Output(_as_str, key="put")
    #: The OSS request id of our successful PutCname.
    put_request_id = _Output(_as_str)
    #: The domain's ListCname status when verified (``"Enabled"``).
    cname_status = _Output(_as_str, key="status")
    #: The certificate id bound when verified (None: none).
    cert_id = _Output(_as_str)
    #: SHA-1 fingerprint of that certificate, upper-case colon-hex.
    fingerprint = _Output(_as_str)
    #: End of that certificate's validity.
    cert_not_after = _Output(_as_datetime)
    #: The DNS provider's id of the routing CNAME we wrote (``--route``).
    route_record_id = _Output(_as_str)
    #: Where the routing CNAME points.
    route_target = _Output(_as_str)
    #: When a PutCname last failed with NeedVerifyDomainOwnership for good.
    ownership_failed_at = _Output(_as_datetime)
    #: When a backed-off binding may be tried again.
    next_attempt_at = _Output(_as_datetime)

    def get(self, name: str) -> OutputValue:
        """The output ``name`` as stored, or ``None``: for keys outside
        :class:`BindingOutputs` (the typed attributes read the keys inside it)."""
        return cast(OutputValue, self.outputs.get(name))


#: The outputs read as times (ISO-8601 strings on disk, parsed by the typed attributes): the
#: reader refuses a line holding one that does not parse, rather than a later read crashing.
TIME_OUTPUTS: Final[frozenset[str]] = frozenset(
    attr.key for attr in vars(BindingRecord).values()
    if isinstance(attr, _Output) and attr._convert is _as_datetime
)


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
        ValueError: not ISO-8601, without a UTC offset, or out of range once in UTC
            (``0001-01-01T00:00:00+01:00``).
    """
    moment = datetime.fromisoformat(text)
    if moment.tzinfo is None:
        raise ValueError(f"timestamp {text!r} has no UTC offset")
    try:
        return moment.astimezone(UTC)
    except OverflowError:
        raise ValueError(f"timestamp {text!r} is out of range in UTC") from None


def guard_values(values: Mapping[str, object], *, what: str) -> None:
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


_Values = TypeVar("_Values", BindingOutputs, dict[str, OutputValue])


def merge_outputs(base: _Values, update: Mapping[str, object]) -> _Values:
    """A copy of ``base`` updated by ``update``, where a ``None`` in ``update`` deletes the key."""
    merged: dict[str, object] = dict(base)
    for name, value in update.items():
        if value is None:
            merged.pop(name, None)
        else:
            merged[name] = value
    return cast(_Values, merged)


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
        outputs=merge_outputs(previous.outputs if previous else BindingOutputs(), event.outputs),
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


@dataclass(frozen=True, slots=True)
class JobEvent:
    """Something that happened to a job as a whole (not to one binding).

    Attributes:
        name: ``"started"`` or ``"stopped"`` (the batch engine's), or another word.
        values: details (pid, signal, counts…); never a secret (guarded when written).
        ts: aware datetime of the event.
    """

    name: str
    values: dict[str, OutputValue] = field(default_factory=dict)
    ts: datetime = field(default_factory=_now)


@dataclass(slots=True)
class ReplayState:
    """Every binding's record, the job metadata, members and events, as of the last line.

    ``members`` is an ordered set (a dict of keys to ``None``).
    """

    records: dict[str, BindingRecord] = field(default_factory=dict)
    meta: dict[str, OutputValue] = field(default_factory=dict)
    members: dict[str, None] = field(default_factory=dict)
    job_events: list[JobEvent] = field(default_factory=list)

    def forget(self, key: str) -> None:
        """Drop ``key``'s record (a later event starts it afresh)."""
        self.records.pop(key, None)

    def apply(self, event: JournalEvent, snapshot: Snapshot | None = None) -> BindingRecord:
        """Fold ``event`` into its binding's record and return the new record."""
        record = apply_event(self.records.get(event.key), event, snapshot)
        self.records[event.key] = record
        return record

    def apply_meta(self, values: Mapping[str, OutputValue]) -> None:
        """Merge job metadata (``None`` deletes a key)."""
        self.meta = merge_outputs(self.meta, values)

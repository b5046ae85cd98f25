"""Events for customer-facing products: what happened to a binding, as data.

This module is the contract: :class:`Event` (one occurrence, with a stable ``id`` for
de-duplication at the receiver) and the :class:`EventSink` port that the workflow, reconcile and
the certificate checks publish to through :attr:`cname_flow.workflow.context.Ports.events`.
Sinks (a JSON Lines stream, signed webhooks) live in this package's other modules and are chosen
by the ``events`` settings section; the default, :class:`NullSink`, drops every event.

Event types (:data:`EVENT_TYPES`):

* ``binding.instructions``: the TXT record a person must add (manual mode), with the host name,
  type and value;
* ``binding.token_renewed``: the CNAME token was re-minted before its 72 h expiry (old and new
  value);
* ``binding.verified``: OSS accepted the binding (PutCname answered, ListCname shows it);
* ``binding.failed``: the binding stopped for good (a terminal error), with its code and hint;
* ``certificate.expiring``: a bound certificate expires within the warning window;
* ``drift.found``: reconcile found the cloud differing from the desired state.

Importing this package loads no HTTP client.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal, Protocol, cast, get_args

#: The event types a sink may receive; a receiver should ignore types it does not know.
EventType = Literal[
    "binding.instructions",
    "binding.token_renewed",
    "binding.verified",
    "binding.failed",
    "certificate.expiring",
    "drift.found",
]
EVENT_TYPES: tuple[str, ...] = get_args(EventType)


@dataclass(frozen=True, slots=True)
class Event:
    """One occurrence.

    Attributes:
        type: one of :data:`EVENT_TYPES`.
        subject: what it is about: ``"<bucket>/<domain>"`` for a binding or certificate,
            ``"reconcile"`` for a drift summary.
        data: JSON-serialisable details (never a secret: no AccessKey secret, private key or
            webhook secret may appear here).
        created_at: when it happened, aware UTC.
        id: a unique id (``evt_`` + 32 hex digits) a receiver de-duplicates on; deliveries are
            at-least-once.
    """

    type: EventType
    subject: str
    data: Mapping[str, object]
    created_at: datetime
    id: str = field(default_factory=lambda: f"evt_{uuid.uuid4().hex}")

    def as_json(self) -> dict[str, object]:
        """The event as the JSON object sinks write and webhooks send:
        ``{"schema": "cname-flow/event/v1", "id", "type", "subject", "created_at" (RFC 3339),
        "data"}``."""
        return {
            "schema": "cname-flow/event/v1",
            "id": self.id,
            "type": self.type,
            "subject": self.subject,
            "created_at": self.created_at.isoformat(),
            "data": dict(self.data),
        }

    @classmethod
    def from_json(cls, obj: Mapping[str, object]) -> Event:
        """The event back from :meth:`as_json`'s object (the stream, the outbox, a receiver).

        Raises:
            ValueError: a field is missing or of the wrong kind, or ``type`` is unknown.
        """
        kind, data, created = obj.get("type"), obj.get("data"), obj.get("created_at")
        if kind not in EVENT_TYPES:
            raise ValueError(f"unknown event type {kind!r}")
        if not isinstance(data, Mapping) or not isinstance(created, str):
            raise ValueError("data must be an object and created_at a string")
        ident, subject = obj.get("id"), obj.get("subject")
        if not isinstance(ident, str) or not isinstance(subject, str):
            raise ValueError("id and subject must be strings")
        when = datetime.fromisoformat(created)
        return cls(type=cast(EventType, kind), subject=subject, data=dict(data),
                   created_at=when, id=ident)


class EventSink(Protocol):
    """Where events go. ``publish`` must not raise for a delivery problem (a sink records and
    retries its own failures) and must return quickly: a slow receiver never holds a binding."""

    def publish(self, event: Event) -> None:
        """Accept ``event`` for delivery."""
        ...


class NullSink:
    """The default sink: drops every event."""

    def publish(self, event: Event) -> None:
        """Drop ``event``."""
        del event


__all__ = ["EVENT_TYPES", "Event", "EventSink", "EventType", "NullSink"]

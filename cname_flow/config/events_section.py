"""The ``events`` settings section: where events go (docs/events.md).

A JSON Lines stream (``jsonl``) and signed webhooks (``webhooks``), each optional; with neither
set events are dropped. A webhook's secret is never a setting: ``secret`` names the environment
variable holding it (``{env: NAME}`` or ``env/NAME``), as ``rfc2136.secret`` does. Example::

    events:
      jsonl: events.jsonl                 # relative: against the config file's folder
      webhooks:
        - url: https://hooks.example.com/cname-flow
          secret: {env: CNAME_FLOW_WEBHOOK_SECRET}
          events: [binding.verified, binding.failed]   # default: every type
          timeout_s: 10
          retry_window_s: 86400           # keep retrying a failed delivery for a day
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any
from urllib.parse import urlsplit

from pydantic import Field, PositiveFloat, ValidationInfo, field_validator, model_validator

from cname_flow.config.sections import EnvRef, SettingsModel, _env_ref
from cname_flow.events import EventType

#: Longest retry window accepted, seconds (7 days; the reference proposes 24 to 72 h).
MAX_RETRY_WINDOW_S = 7 * 86400.0


class WebhookSettings(SettingsModel):
    """One webhook endpoint.

    Attributes:
        url: ``http://`` or ``https://`` URL the events are POSTed to; no ``user:password@``
            (put a credential in ``secret``).
        secret: the environment variable holding the HMAC-SHA256 signing secret (required).
        events: the event types sent to this endpoint; None: every type.
        timeout_s: one request's timeout (connect, read, write), seconds.
        retry_window_s: how long a failing delivery is retried, seconds, counted from its
            first attempt; then it is logged and kept in the outbox for ``cname-flow events
            --resend``.
        retry_initial_s: the first wait between attempts, seconds; each next one doubles.
        retry_max_s: the longest wait between two attempts, seconds.
    """

    url: str
    secret: EnvRef
    events: tuple[EventType, ...] | None = None
    timeout_s: PositiveFloat = 10.0
    retry_window_s: Annotated[float, Field(ge=0, le=MAX_RETRY_WINDOW_S)] = 86400.0
    retry_initial_s: PositiveFloat = 1.0
    retry_max_s: PositiveFloat = 600.0

    @field_validator("url")
    @classmethod
    def _url(cls, value: str) -> str:
        try:
            parts = urlsplit(value)
            parts.port  # noqa: B018  (raises ValueError on a bad port)
        except ValueError:
            raise ValueError("not a URL with a valid port") from None
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError("must be an http:// or https:// URL with a host")
        if parts.username is not None or parts.password is not None:
            raise ValueError("must not carry user:password@ (it is not shown); the "
                             "signature authenticates the sender")
        return value

    @field_validator("secret", mode="before")
    @classmethod
    def _ref(cls, value: Any) -> Any:
        return _env_ref(value)

    @model_validator(mode="after")
    def _waits(self) -> WebhookSettings:
        if self.retry_max_s < self.retry_initial_s:
            raise ValueError("retry_max_s must be at least retry_initial_s")
        return self


class EventsSettings(SettingsModel):
    """The ``events`` section.

    Attributes:
        jsonl: the JSON Lines event stream (one event per line, appended, fsynced, mode
            0600), read by ``cname-flow events``; None: no stream. Relative: against the
            config file's folder.
        outbox: where deliveries that failed for good are kept for a re-send; None:
            ``<journal.dir>/events-outbox.jsonl``.
        webhooks: the webhook endpoints.
        flush_timeout_s: at exit, how long deliveries still queued may take, seconds; what
            is left then goes to the outbox.
    """

    jsonl: Path | None = None
    outbox: Path | None = None
    webhooks: tuple[WebhookSettings, ...] = ()
    flush_timeout_s: Annotated[float, Field(ge=0, le=3600)] = 10.0

    @field_validator("jsonl", "outbox")
    @classmethod
    def _resolve(cls, value: Path | None, info: ValidationInfo) -> Path | None:
        base = (info.context or {}).get("base_dir")
        if value is None or value.is_absolute() or base is None:
            return value
        return Path(base) / value

"""Sinks from the ``events`` settings: the stream, the webhooks, and the fan-out over them.

:func:`sink_from_settings` is what :meth:`cname_flow.service.Clients.from_settings` calls: it
returns a :class:`NullSink` when nothing is configured, else a :class:`FanOutSink` over a
:class:`~cname_flow.events.stream.JsonlSink` (``events.jsonl``) and one
:class:`~cname_flow.events.webhook.WebhookSink` per ``events.webhooks`` entry. Sinks with a
background thread are closed (flushed) at interpreter exit (:mod:`atexit`). One sink is built
per distinct configuration per process, so entry points that build clients many times share it.

:func:`resend` re-sends the outbox (``cname-flow events --resend``).
"""

from __future__ import annotations

import atexit
import os
import threading
from collections.abc import Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

from cname_flow.config.credentials import read_secret
from cname_flow.config.events_section import EventsSettings, WebhookSettings
from cname_flow.events import Event, EventSink, NullSink
from cname_flow.events.outbox import Outbox, OutboxEntry
from cname_flow.events.stream import JsonlSink
from cname_flow.logs import get_logger

if TYPE_CHECKING:
    from cname_flow.events.webhook import Endpoint

log = get_logger(__name__)

#: The outbox's file inside ``journal.dir`` when ``events.outbox`` is not set.
OUTBOX_FILE = "events-outbox.jsonl"


class FanOutSink:
    """Publishes every event to each of ``sinks`` in turn (each sink filters for itself).

    A sink that raises (against its contract) is logged and the others still get the event.

    Args:
        sinks: the sinks.
    """

    def __init__(self, sinks: Sequence[EventSink]) -> None:
        self.sinks = tuple(sinks)

    def publish(self, event: Event) -> None:
        """Give ``event`` to every sink."""
        for sink in self.sinks:
            try:
                sink.publish(event)
            except Exception:
                log.exception("event.sink_failed", sink=type(sink).__name__, event_id=event.id)

    def close(self) -> None:
        """Close every sink that can be closed (webhooks flush their queues)."""
        for sink in self.sinks:
            close = getattr(sink, "close", None)
            if callable(close):
                close()


def outbox_path(section: EventsSettings, journal_dir: Path) -> Path:
    """``events.outbox``, else ``<journal.dir>/events-outbox.jsonl``."""
    return section.outbox or journal_dir / OUTBOX_FILE


def _secret(hook: WebhookSettings, index: int, env: Mapping[str, str], where: str) -> str:
    return read_secret(hook.secret, env, at=where, setting=f"events.webhooks.{index}.secret")


def endpoints(section: EventsSettings, env: Mapping[str, str] | None = None, *,
              where: str = "<config>") -> list[Endpoint]:
    """The configured webhook endpoints, each secret read from its environment variable.

    Args:
        section: the ``events`` section.
        env: the environment (``os.environ`` when None).
        where: the config's location, for messages.

    Raises:
        SecretNotFound: a ``secret`` names an unset or empty variable (the value is never shown).
    """
    from cname_flow.events.webhook import Endpoint, RetryPolicy

    environ = os.environ if env is None else env
    out = []
    for i, hook in enumerate(section.webhooks):
        retry = RetryPolicy(hook.retry_window_s, hook.retry_initial_s, hook.retry_max_s)
        types = None if hook.events is None else frozenset(hook.events)
        out.append(Endpoint(hook.url, _secret(hook, i, environ, where), types, hook.timeout_s,
                            retry))
    return out


_built: dict[tuple[object, ...], EventSink] = {}
_built_lock = threading.Lock()


def sink_from_settings(section: EventsSettings, journal_dir: Path,
                       env: Mapping[str, str] | None = None, *,
                       where: str = "<config>") -> EventSink:
    """The sink the ``events`` section asks for (see the module docstring), shared per process.

    Args:
        section: the ``events`` section.
        journal_dir: ``journal.dir`` (the outbox's default folder).
        env: the environment holding the webhook secrets (``os.environ`` when None).
        where: the config's location, for messages.

    Raises:
        SecretNotFound: a webhook's secret variable is unset.
    """
    hooks = endpoints(section, env, where=where)
    if section.jsonl is None and not hooks:
        return NullSink()
    key = (section, journal_dir, tuple((h.url, h.secret) for h in hooks))
    with _built_lock:
        sink = _built.get(key)
        if sink is None:
            sink = _built[key] = _build(section, journal_dir, hooks)
    return sink


def _build(section: EventsSettings, journal_dir: Path, hooks: list[Endpoint]) -> EventSink:
    sinks: list[EventSink] = []
    if section.jsonl is not None:
        sinks.append(JsonlSink(section.jsonl))
    if hooks:
        from cname_flow.events.webhook import WebhookSink

        outbox = Outbox(outbox_path(section, journal_dir))
        sinks.extend(WebhookSink(h, outbox, flush_timeout_s=section.flush_timeout_s)
                     for h in hooks)
    fan = FanOutSink(sinks)
    if hooks:
        atexit.register(fan.close)
    return fan


def resend(section: EventsSettings, journal_dir: Path, env: Mapping[str, str] | None = None,
           *, where: str = "<config>") -> tuple[int, int]:
    """Send the outbox's entries again, one attempt each, in order; keep those that fail.

    An entry whose endpoint is no longer configured is kept (and logged).

    Returns:
        (entries delivered, entries kept).

    Raises:
        SecretNotFound: a webhook's secret variable is unset.
        JournalError: the outbox cannot be read or rewritten.
    """
    import httpx

    from cname_flow.events.webhook import RetryPolicy, deliver

    by_url = {h.shown: h for h in endpoints(section, env, where=where)}

    def send(entry: OutboxEntry) -> bool:
        hook = by_url.get(entry.url)
        if hook is None:
            log.warning("event.resend_unknown_endpoint", url=entry.url, event_id=entry.event.id)
            return False
        once = replace(hook, retry=RetryPolicy(window_s=0.0))
        result = deliver(client, once, entry.event)
        if not result.delivered:
            log.warning("event.resend_failed", url=entry.url, event_id=entry.event.id,
                        error=result.error)
        return result.delivered

    with httpx.Client(follow_redirects=False) as client:
        return Outbox(outbox_path(section, journal_dir)).drain(send)


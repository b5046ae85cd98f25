"""The library's loggers: structlog events that stay silent unless the host application asks.

Every module of the package logs through :func:`get_logger` (events such as ``"step.start"``
with key=value fields, the binding bound per run with ``structlog.contextvars``). Where an
event goes is decided at each call, never by importing or calling the library:

* structlog is configured (``structlog.is_configured()``: the CLI's
  :func:`cname_flow.cli.log.configure`, or a host application that configures structlog itself):
  the event goes through that configuration, unchanged.
* otherwise (structlog's own default would print to **stdout**): the event goes to the stdlib
  logger of the module's name, under ``cname_flow``, which has only a ``NullHandler``, as the
  Python logging guide asks of libraries
  (https://docs.python.org/3/howto/logging.html#configuring-logging-for-a-library). Nothing
  is written unless the host configures :mod:`logging`; then each record's message is the event
  and its fields in logfmt (``event=step.start binding=examplebucket/a.example.com``), and the
  record's ``cname_flow`` attribute holds them as a dict.

Either way :func:`redact_secrets` runs before rendering, as a second line of defence: the library
never passes a secret to a logger in the first place.
"""

from __future__ import annotations

import logging
from collections.abc import MutableMapping
from typing import Any

import structlog

#: The stdlib logger every library logger sits under.
ROOT_LOGGER = "cname_flow"

_SECRET_KEYS = ("secret", "password", "private_key", "security_token", "sts_token")

logging.getLogger(ROOT_LOGGER).addHandler(logging.NullHandler())


def redact_secrets(
    logger: object, method: str, event: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    """structlog processor: replace the value of any field whose name says it is a secret.

    Returns:
        ``event``, with such values set to ``"[redacted]"``.
    """
    for key in list(event):
        if any(s in key.lower() for s in _SECRET_KEYS):
            event[key] = "[redacted]"
    return event


_LOGFMT = structlog.processors.LogfmtRenderer(key_order=["event"], bool_as_flag=False)


def _to_stdlib(
    logger: object, method: str, event: MutableMapping[str, Any]
) -> dict[str, Any]:
    """Last processor of the stdlib route: the keyword arguments of ``logging.Logger.<method>``."""
    exc_info = event.pop("exc_info", None)
    fields = dict(event)
    return {"msg": _LOGFMT(logger, method, event), "exc_info": exc_info,
            "extra": {ROOT_LOGGER: fields}}


_STDLIB_PROCESSORS: list[structlog.types.Processor] = [
    structlog.stdlib.filter_by_level,  # first: a disabled level costs one comparison
    structlog.contextvars.merge_contextvars,
    redact_secrets,
    _to_stdlib,
]


class LibraryLogger:
    """A module's logger: ``debug``/``info``/``warning``/``error``/``exception(event, **fields)``.

    Args:
        name: the module's ``__name__`` (``cname_flow.<part>.<module>``), also the stdlib
            logger's name on the silent route (see the module docstring).
    """

    __slots__ = ("_configured", "_name", "_stdlib")

    def __init__(self, name: str) -> None:
        self._name = name
        self._configured: Any = structlog.get_logger(name)  # reads the config at each call
        self._stdlib: Any = structlog.wrap_logger(
            logging.getLogger(name), processors=_STDLIB_PROCESSORS,
            wrapper_class=structlog.stdlib.BoundLogger, cache_logger_on_first_use=True,
        )

    def _route(self) -> Any:
        return self._configured if structlog.is_configured() else self._stdlib

    def debug(self, event: str, **fields: Any) -> None:
        """Log ``event`` at DEBUG."""
        self._route().debug(event, **fields)

    def info(self, event: str, **fields: Any) -> None:
        """Log ``event`` at INFO."""
        self._route().info(event, **fields)

    def warning(self, event: str, **fields: Any) -> None:
        """Log ``event`` at WARNING."""
        self._route().warning(event, **fields)

    def error(self, event: str, **fields: Any) -> None:
        """Log ``event`` at ERROR."""
        self._route().error(event, **fields)

    def exception(self, event: str, **fields: Any) -> None:
        """Log ``event`` at ERROR with the exception being handled."""
        self._route().exception(event, **fields)


def get_logger(name: str) -> LibraryLogger:
    """The logger of module ``name`` (pass ``__name__``); see the module docstring for routing."""
    return LibraryLogger(name)

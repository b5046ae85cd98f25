"""What every command prints for machines and asks of people: versioned JSON documents, the
JSON error object, data cells that rich does not reinterpret, and the confirmation of a
destructive command.

JSON: every ``--json`` document is an object whose ``"schema"`` is ``cname-flow/<kind>/v1``
(:func:`emit`); a command that fails with ``--json`` prints ``{"schema": "cname-flow/error/v1",
"error": {...}}`` (:func:`error_document`) on stdout and still exits with its code. The kinds
and their fields are documented in ``docs/json-output.md``.

Text: rich reads ``:cd:`` as an emoji code and ``[red]`` as markup, so a SHA-1 fingerprint
``…F0:A7:CD:4A…`` would print as ``…F0:A7💿4A…``. Every value that comes from data (a domain,
a fingerprint, an error message) goes into a table as :func:`plain` text, which rich prints as
is; consoles are built with ``emoji=False`` too.
"""

from __future__ import annotations

import json
import sys
from typing import TYPE_CHECKING, Any

import click

from cname_flow.errors import CnameFlowError, InputError

if TYPE_CHECKING:
    from rich.text import Text

#: The version suffix of every schema id; bumped only when a field changes meaning or goes away.
SCHEMA_VERSION = "v1"
#: What a message about a temporary failure (exit 75) or an interruption (130/143) ends with.
RESUME_HINT = "run the same command again to resume"


def schema(kind: str) -> str:
    """The schema id of a JSON document of ``kind``: ``"cname-flow/<kind>/v1"``."""
    return f"cname-flow/{kind}/{SCHEMA_VERSION}"


def document(kind: str, data: dict[str, Any]) -> dict[str, Any]:
    """``data`` with ``"schema"`` first (its other keys kept as they are)."""
    return {"schema": schema(kind), **{k: v for k, v in data.items() if k != "schema"}}


#: The encoder of every document: indented by 2, unknown types as ``str``, UTF-8 kept.
_ENCODER = json.JSONEncoder(indent=2, default=str, ensure_ascii=False)
#: Encoder chunks joined per write in :func:`write_json`.
_CHUNKS_PER_WRITE = 4096


def write_json(data: object) -> None:
    """Print ``data`` on stdout as one JSON document, indented by 2, UTF-8, with a newline.

    Streams: the encoder's chunks are written in groups as they come, never joined into one
    string, so a 10,000-binding ``batch run --json`` report costs the host no second copy of
    itself (the text is the same as ``json.dumps(data, indent=2, default=str,
    ensure_ascii=False)``).
    """
    out = sys.stdout
    chunks: list[str] = []
    for chunk in _ENCODER.iterencode(data):
        chunks.append(chunk)
        if len(chunks) >= _CHUNKS_PER_WRITE:
            out.write("".join(chunks))
            chunks.clear()
    chunks.append("\n")
    out.write("".join(chunks))


def emit(kind: str, data: dict[str, Any]) -> None:
    """Print one JSON document of ``kind`` on stdout (:func:`document`, :func:`write_json`)."""
    write_json(document(kind, data))


def error_document(exc: BaseException, *, message: str | None = None) -> dict[str, Any]:
    """The ``cname-flow/error/v1`` document of an error that ended a command.

    Args:
        exc: the error (ours, ``KeyboardInterrupt`` or a click usage error).
        message: overrides the message (e.g. the one printed on stderr).

    Returns:
        ``{"schema", "error": {"code", "message", "hint", "retryable", "step", "binding",
        "request_id"}}``; strings are ``""`` when unknown, never a secret (our messages carry
        none).
    """
    if isinstance(exc, CnameFlowError):
        body = {"code": exc.code, "message": message or exc.message, "hint": exc.hint,
                "retryable": bool(exc.retryable), "step": str(exc.step or ""),
                "binding": exc.binding_key or "", "request_id": exc.request_id or ""}
    elif isinstance(exc, KeyboardInterrupt):
        body = {"code": "Interrupted", "message": message or "interrupted by SIGINT",
                "hint": RESUME_HINT, "retryable": True, "step": "", "binding": "",
                "request_id": ""}
    else:
        body = {"code": type(exc).__name__, "message": message or str(exc), "hint": "",
                "retryable": False, "step": "", "binding": "", "request_id": ""}
    return document("error", {"error": body})


def emit_error(exc: BaseException, *, message: str | None = None) -> None:
    """Print :func:`error_document` of ``exc`` on stdout."""
    write_json(error_document(exc, message=message))


def plain(value: object) -> Text:
    """``value`` as rich text printed exactly: no markup, no emoji codes, no highlighting."""
    from rich.text import Text  # here: the error path (cli/common) must not load rich

    return Text("" if value is None else str(value))


def confirm(action: str, *, yes: bool) -> None:
    """Ask before a destructive ``action`` (``"unbind www.example.com from examplebucket"``).

    With ``yes`` nothing is asked. On a terminal (stdin and stderr both), the person is asked
    and a "no" aborts with exit 2, touching nothing. Off a terminal nobody can answer: refused.

    Raises:
        InputError: off a terminal without ``--yes``, or declined (exit 2); nothing was done.
    """
    if yes:
        return
    if not (sys.stdin.isatty() and sys.stderr.isatty()):
        raise InputError(f"refusing to {action} without confirmation: no terminal to ask on",
                         hint="pass --yes to confirm (or --dry-run to see what would change)")
    try:
        agreed = click.confirm(f"{action}?", default=False, err=True)
    except click.Abort:  # Ctrl-C or end of input at the question: a "no"
        agreed = False
    if not agreed:
        raise InputError(f"not confirmed: did not {action}; nothing was changed",
                         hint="pass --yes to skip the question")

"""A crash logged on a terminal (``log.exception``, e.g. the batch engine's ``step.crashed``) is
rendered with a rich traceback that never shows local variables: a secret held in a local (an
AccessKey secret, a token) must not reach the screen or a captured terminal session."""

from __future__ import annotations

import io

import pytest

from cname_flow.cli.log import configure
from cname_flow.logs import get_logger

SENTINEL = "SENTINEL-not-for-screens-8f3a"


class _Terminal(io.StringIO):
    """A stream that says it is a terminal, as stderr does for a person at a console."""

    def isatty(self) -> bool:
        return True


def _crash(access_key_secret: str) -> None:
    token = f"sts-{access_key_secret}"
    raise RuntimeError(f"boom ({len(token)} chars)")


@pytest.mark.parametrize("json_logs", [None, False])
def test_a_crash_logged_on_a_terminal_shows_no_locals(json_logs: bool | None) -> None:
    out = _Terminal()
    configure(json_logs=json_logs, stream=out)  # None: picked by isatty, i.e. the console
    try:
        _crash(SENTINEL)
    except RuntimeError:
        get_logger("cname_flow.batch.engine").exception("step.crashed", binding="b/d.example")
    text = out.getvalue()
    assert "step.crashed" in text and "_crash" in text and "RuntimeError" in text  # rendered
    assert SENTINEL not in text

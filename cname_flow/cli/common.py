"""What every command module shares: exit codes, error rendering, the global-options object.

Exit codes are decided here and only here (:func:`exit_code`):
0 success / no drift; 1 a binding failed for good; 2 usage, config or input error;
3 unsafe plan refused (re-run with ``--force``); 75 (EX_TEMPFAIL) every failure was retryable.
Command modules (``cli``, ``cli_batch``, ``cli_reconcile``) import from here, never from each
other, so ``cli`` can mount them without an import cycle.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, NoReturn

import click

from cname_flow.config import Settings
from cname_flow.errors import (
    CnameFlowError,
    ConfigError,
    InputError,
    Locked,
    UnsafePlan,
)

EX_OK, EX_FAILED, EX_USAGE, EX_UNSAFE, EX_TEMPFAIL = 0, 1, 2, 3, 75


def exit_code(exc: BaseException) -> int:
    """The process exit code for an error that ended a command."""
    if isinstance(exc, ConfigError | InputError | click.UsageError):
        return EX_USAGE
    if isinstance(exc, UnsafePlan):
        return EX_UNSAFE
    if isinstance(exc, Locked):
        return EX_TEMPFAIL
    if isinstance(exc, CnameFlowError) and exc.retryable:
        return EX_TEMPFAIL
    return EX_FAILED


def fail(exc: CnameFlowError) -> NoReturn:
    """Print the error (and its hint) on stderr and exit with its code."""
    where = f"{exc.binding_key}: " if exc.binding_key else ""
    step = f" (step {exc.step})" if exc.step else ""
    click.echo(f"{click.style('error', fg='red')}{step}: {where}{exc.message}", err=True)
    if exc.hint:
        click.echo(f"hint: {exc.hint}", err=True)
    sys.exit(exit_code(exc))


class Ctx:
    """What the global options give every command."""

    def __init__(self, config: Path | None) -> None:
        self.config_path = config
        self._settings: Settings | None = None

    @property
    def settings(self) -> Settings:
        """Settings, loaded once (ConfigError on a bad file)."""
        if self._settings is None:
            from cname_flow.config import load_settings

            self._settings = load_settings(self.config_path)
        return self._settings


def guarded(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Turn our exceptions into a message and an exit code."""
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except CnameFlowError as exc:
            fail(exc)
    wrapper.__name__ = fn.__name__
    wrapper.__doc__ = fn.__doc__
    return wrapper

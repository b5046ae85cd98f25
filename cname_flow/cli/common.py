"""What every command module shares: the exit-code table, error rendering, the global options.

Exit codes are decided here and only here: :class:`Outcome` is the table, :func:`outcome_of`
the one function that maps whatever ended a command into it (an exception, a batch
:class:`~cname_flow.batch.jobs.JobResult`, a :class:`~cname_flow.reconcile.run.ReconcileReport`).
Values follow the README's exit-code table, ``sysexits.h`` (75 = EX_TEMPFAIL) and the shell's
``128 + signal number`` for a run stopped by a signal.

Command modules (``main``, ``batch``, ``reconcile``) import from here, never from each other, so
``main`` can mount them without an import cycle.
"""

from __future__ import annotations

import signal
import sys
from collections.abc import Callable
from enum import IntEnum
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

import click

from cname_flow.cli.conventions import GlobalOptions, load_with_conventions, real_clients
from cname_flow.cli.output import RESUME_HINT, emit_error
from cname_flow.errors import (
    CnameFlowError,
    ConfigError,
    DnsAuthError,
    InputError,
    Interrupted,
    JournalCorrupt,
    Locked,
    OssAuthError,
    UnsafePlan,
    ZoneNotFound,
)

if TYPE_CHECKING:  # imported where used: the SDKs load only when a command needs them
    from cname_flow import service
    from cname_flow.batch.jobs import JobResult
    from cname_flow.config import Settings
    from cname_flow.quotas import ApiStats
    from cname_flow.reconcile.run import ReconcileReport


class Outcome(IntEnum):
    """The process exit codes of every command (the README's table).

    ``OK`` success (for ``reconcile``: no drift left); ``FAILED`` a binding failed for good (or
    drift is left); ``USAGE`` usage, config (``journal.dir`` that cannot be used included),
    manifest or input error (a zone the account does not host, credentials refused or lacking
    a permission included), or a corrupt journal (the journal is one of the inputs the one
    validation pass reads: a person must repair it, and it is refused naming ``<file>:<line>``);
    ``UNSAFE`` an unsafe plan refused without ``--force``; ``RETRYABLE`` (EX_TEMPFAIL of
    ``sysexits.h``) every failure was retryable (a full disk under the journal included) or
    another run holds the lock; ``SIGINT`` / ``SIGTERM`` interrupted by that signal,
    ``128 + signum`` as a shell reports it.
    """

    OK = 0
    FAILED = 1
    USAGE = 2
    UNSAFE = 3
    RETRYABLE = 75
    SIGINT = 128 + signal.SIGINT     # 130
    SIGTERM = 128 + signal.SIGTERM   # 143

    @classmethod
    def interrupted(cls, signum: int) -> Outcome:
        """The outcome of a run stopped by signal ``signum`` (``128 + signum``).

        Raises:
            ValueError: a signal the commands do not handle (only SIGINT and SIGTERM are).
        """
        return cls(128 + signum)


_JOB_STATUS = {"ok": Outcome.OK, "failed": Outcome.FAILED, "retryable": Outcome.RETRYABLE}
_RECONCILE = {"clean": Outcome.OK, "retry": Outcome.RETRYABLE, "drift": Outcome.FAILED}


def outcome_of(ended: BaseException | JobResult | ReconcileReport) -> Outcome:
    """The one mapping into :class:`Outcome` of whatever ended a command.

    Args:
        ended: the exception that stopped a command (``KeyboardInterrupt`` is SIGINT); a batch
            job's result, by its ``exit_status`` (``ok|failed|retryable|interrupted``); or a
            reconcile report, by its ``outcome()`` (``clean|retry|drift``).

    Raises:
        KeyError: a status string this table does not know (a new vocabulary word).
    """
    from cname_flow.batch.jobs import JobResult
    from cname_flow.reconcile.run import ReconcileReport

    if isinstance(ended, JobResult):
        if ended.interrupted is not None:
            return Outcome.interrupted(ended.interrupted)
        return _JOB_STATUS[ended.exit_status]
    if isinstance(ended, ReconcileReport):
        return _RECONCILE[ended.outcome()]
    return _error_outcome(ended)


def _error_outcome(exc: BaseException) -> Outcome:
    if isinstance(exc, KeyboardInterrupt):
        return Outcome.SIGINT
    if isinstance(exc, Interrupted):
        return Outcome.interrupted(exc.signum)
    if isinstance(exc, ConfigError | InputError | JournalCorrupt | click.UsageError
                  | ZoneNotFound | OssAuthError | DnsAuthError):
        # a corrupt journal is bad input too; so are a zone the account does not host and
        # credentials refused or lacking a permission: a person must change something
        return Outcome.USAGE
    if isinstance(exc, UnsafePlan):
        return Outcome.UNSAFE
    if isinstance(exc, Locked):
        return Outcome.RETRYABLE
    if isinstance(exc, CnameFlowError) and exc.retryable:
        return Outcome.RETRYABLE
    return Outcome.FAILED


#: Outcomes after which the same command, run again, resumes where this one stopped.
RESUMABLE = frozenset({Outcome.RETRYABLE, Outcome.SIGINT, Outcome.SIGTERM})


def fail(exc: CnameFlowError, *, as_json: bool = False) -> NoReturn:
    """Print the error (and its hint) on stderr and exit with its :class:`Outcome`.

    With ``as_json`` the ``cname-flow/error/v1`` document goes to stdout too
    (:func:`cname_flow.cli.output.error_document`). A temporary failure (75) or an
    interruption (130/143) ends with :data:`~cname_flow.cli.output.RESUME_HINT`.
    """
    code = outcome_of(exc)
    if as_json:
        emit_error(exc)
    where = f"{exc.binding_key}: " if exc.binding_key else ""
    step = f" (step {exc.step})" if exc.step else ""
    click.echo(f"{click.style('error', fg='red')}{step}: {where}{exc.message}", err=True)
    if exc.hint:
        click.echo(f"hint: {exc.hint}", err=True)
    if code in RESUMABLE:
        click.echo(resume_line(code), err=True)
    sys.exit(code)


def resume_line(code: Outcome) -> str:
    """The last line after a resumable stop: what happened, then :data:`RESUME_HINT`."""
    what = "temporary failure" if code is Outcome.RETRYABLE else \
        f"interrupted by {signal.Signals(code - 128).name}; the state is saved"
    return f"{what}: {RESUME_HINT}"


ClientsFactory = Callable[["Settings"], "service.Clients"]


def no_wait_option(fn: Callable[..., Any]) -> Callable[..., Any]:
    """``--no-wait`` (``bind``, ``batch run``, ``reconcile --apply``): with ``store.url``,
    submit to the workers, print the job id and exit 0 at once (see :func:`check_no_wait`)."""
    return click.option(
        "--no-wait", "no_wait", is_flag=True,
        help="With store.url: submit to the workers, print the job id, return at once "
             "(follow later with `batch status JOB --follow`).")(fn)


def check_no_wait(settings: Settings, no_wait: bool) -> None:
    """Refuse ``--no-wait`` without workers to submit to.

    Raises:
        InputError: ``--no-wait`` given and ``store.url`` not set (exit 2).
    """
    if no_wait and not settings.store.url:
        raise InputError("--no-wait needs workers: store.url (or CNAME_FLOW_STORE_URL) is not "
                         "set, so this command runs here", hint="drop --no-wait, or set "
                         "store.url and start `cname-flow worker`")


class CliState:
    """What the global options give every command (the click context object).

    Args:
        config: the ``--config`` file, or None for the defaults.
        clients_factory: builds the adapters from the settings (default: the real SDK adapters,
            :meth:`cname_flow.service.Clients.from_settings`); tests pass fakes here through
            ``CliRunner.invoke(main, ..., obj=CliState(clients_factory=...))``.
    """

    def __init__(self, config: Path | None = None, *,
                 clients_factory: ClientsFactory | None = None) -> None:
        self.config_path = config
        self._clients_factory = clients_factory
        self._settings: Settings | None = None
        self.globals = GlobalOptions()

    def set_globals(self, *, profile: str | None = None, region: str | None = None,
                    endpoint: str | None = None) -> None:
        """Record the root group's ``--profile/--region/--endpoint`` (None: not given)."""
        self.globals = GlobalOptions(profile=profile, region=region, endpoint=endpoint)

    @property
    def clients_factory(self) -> ClientsFactory:
        """The factory of :meth:`clients` (default: the real SDK adapters, honouring the
        global options and the standard variables, :mod:`cname_flow.cli.conventions`)."""
        if self._clients_factory is not None:
            return self._clients_factory
        return lambda settings: real_clients(settings, self.globals)

    @property
    def settings(self) -> Settings:
        """Settings, loaded once (ConfigError on a bad file)."""
        if self._settings is None:
            self._settings = load_with_conventions(self.config_path, self.globals)
        return self._settings

    def clients(self, *, api: ApiStats | None = None) -> service.Clients:
        """The adapters of this command, built from :attr:`settings` by the factory; the real
        ones count their API attempts in ``api`` when given (a factory a test injects is used
        as it is).

        Raises:
            ConfigError: bad settings or no usable credentials.
        """
        if api is not None and self._clients_factory is None:
            return real_clients(self.settings, self.globals, api=api)
        return self.clients_factory(self.settings)


def guarded(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Turn our exceptions (and Ctrl-C) into a message and an :class:`Outcome` exit code; a
    command called with ``as_json=True`` also gets the JSON error document on stdout."""
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        as_json = bool(kwargs.get("as_json", False))
        try:
            return fn(*args, **kwargs)
        except CnameFlowError as exc:
            fail(exc, as_json=as_json)
        except KeyboardInterrupt as exc:
            if as_json:
                emit_error(exc)
            click.echo(resume_line(Outcome.SIGINT), err=True)
            sys.exit(outcome_of(exc))
    wrapper.__name__ = fn.__name__
    wrapper.__doc__ = fn.__doc__
    return wrapper

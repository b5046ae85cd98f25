"""Start-up in milliseconds: modules and sub-commands load when a command needs them.

``cname-flow --help`` must not pay for the OSS SDK, dnspython, httpx, rich, psycopg or DBOS (a
second and more of imports). Two tools do it:

- :class:`LazyModule`, a stand-in for a module that imports it on first attribute access. A
  command module writes ``service = LazyModule("cname_flow.service")`` (with the real import
  under ``TYPE_CHECKING`` for mypy), and its command bodies use ``service.bind(...)`` unchanged.
- :class:`LazyGroup`, click's lazy group (the pattern of click's documentation, "Lazily Loading
  Subcommands"): sub-commands named ``"module:attribute"`` are imported when invoked. Their
  one-line help is given with them, so the group's ``--help`` imports none of them.

The group also shows each command's one-line help whole (click cuts it at the terminal width)
and appends the command's examples (:mod:`cname_flow.cli.examples`) to its ``--help``.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from types import ModuleType
from typing import Any

import click

from cname_flow.cli.examples import EXAMPLES


class LazyModule:
    """A module imported on first attribute access (``importlib.import_module``).

    Args:
        name: dotted module name, e.g. ``"cname_flow.service"``.

    Raises:
        ImportError: on first access, when the module cannot be imported.
    """

    def __init__(self, name: str) -> None:
        self._name = name

    def module(self) -> ModuleType:
        """The real module (imported now if it was not yet)."""
        return importlib.import_module(self._name)

    def __getattr__(self, attr: str) -> Any:
        return getattr(self.module(), attr)

    def __repr__(self) -> str:
        return f"<lazy module {self._name!r}>"


#: ``ctx.meta`` key: True when the sub-command line holds ``-h``/``--help``.
HELP_ONLY = "cname_flow.help_only"


def with_examples(cmd: click.Command, path: str) -> click.Command:
    """Append the examples of command ``path`` (``"batch run"``) to its help epilog, once."""
    examples = EXAMPLES.get(path)
    if examples and not getattr(cmd, "_cname_flow_examples", False):
        text = "\b\nExamples:\n" + "\n".join(f"  {line}" for line in examples)
        cmd.epilog = f"{cmd.epilog}\n\n{text}" if cmd.epilog else text
        cmd._cname_flow_examples = True  # type: ignore[attr-defined]
    return cmd


def _path(ctx: click.Context) -> list[str]:
    """The sub-command names from the root to ``ctx`` (the root's own name left out)."""
    names: list[str] = []
    while ctx.parent is not None:
        names.append(ctx.info_name or "")
        ctx = ctx.parent
    return names[::-1]


class LazyGroup(click.Group):
    """A click group whose sub-commands may be named ``"module:attribute"`` and imported when
    used (click's "Lazily Loading Subcommands" pattern).

    Args:
        lazy_commands: sub-command name → (``"module:attribute"``, one-line help). The help is
            what the group's ``--help`` lists, so listing imports nothing.
        **kwargs: passed to :class:`click.Group`.
    """

    def __init__(self, *args: Any,
                 lazy_commands: Mapping[str, tuple[str, str]] | None = None,
                 **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.lazy_commands = dict(lazy_commands or {})

    def resolve_command(self, ctx: click.Context, args: list[str],
                        ) -> tuple[str | None, click.Command | None, list[str]]:
        """As click's, noting in ``ctx.meta[HELP_ONLY]`` whether the rest of the command line
        asks for help (the group's callback then skips set-up that help does not need)."""
        ctx.meta[HELP_ONLY] = any(arg in ctx.help_option_names for arg in args[1:])
        return super().resolve_command(ctx, args)

    def list_commands(self, ctx: click.Context) -> list[str]:
        """Every sub-command name, eager and lazy, sorted."""
        return sorted({*super().list_commands(ctx), *self.lazy_commands})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        """The sub-command ``cmd_name``, importing its module if it is a lazy one.

        Raises:
            ValueError: a lazy entry that does not name a click command.
        """
        cmd = super().get_command(ctx, cmd_name)
        if cmd is None and cmd_name in self.lazy_commands:
            target, _ = self.lazy_commands[cmd_name]
            module_name, attr = target.split(":")
            cmd = getattr(importlib.import_module(module_name), attr)
            if not isinstance(cmd, click.Command):
                raise ValueError(f"{target} is not a click command")
        if cmd is None:
            return None
        with_examples(cmd, " ".join([*_path(ctx), cmd_name]))
        return cmd

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        """The command list, each one-line help whole (wrapped, never cut with "...")."""
        rows = []
        for name in self.list_commands(ctx):
            if name in self.lazy_commands and super().get_command(ctx, name) is None:
                rows.append((name, self.lazy_commands[name][1]))
                continue
            cmd = super().get_command(ctx, name)
            if cmd is None or cmd.hidden:
                continue
            rows.append((name, cmd.get_short_help_str(limit=10_000)))
        if rows:
            with formatter.section("Commands"):
                formatter.write_dl(rows)

"""Fuzzing the command line: generated argv for every real command, run through click's
``CliRunner`` over the in-memory fakes (issue 13).

The command is drawn from the real command tree (:data:`COMMANDS`, read from
:func:`cname_flow.cli.main`; ``demo`` and ``sandbox serve`` start servers and are left out);
its options from that command's own click parameters, each value from what the parameter's
type takes plus text, integers, floats and paths (existing files, manifests, a directory, a
path under a file, paths that do not exist). Before it, the world is fresh, or holds a binding
(``bind``), or a finished batch job ``j1``.

Whatever the argv, the command ends through ``sys.exit`` (``result.exception`` is None or
``SystemExit``), prints no traceback, exits with a code of the README's table (0, 1, 2, 3, 75),
and an exit 2 ("nothing touched") leaves OSS and DNS without one more mutating call.
"""

from __future__ import annotations

import functools
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, cast

import click
import pytest
import structlog
from hypothesis import event, given
from hypothesis import strategies as st

from cname_flow import service
from cname_flow.batch import jobs
from cname_flow.batch.limits import BatchOss
from cname_flow.cli import main
from cname_flow.config.settings import Settings
from cname_flow.propagation.checker import PropagationChecker
from cname_flow.quotas import ApiStats
from cname_flow.workflow.engine import BackoffPolicy
from tests.fakes import FakeChecker
from tests.fuzz.budget import FUZZ
from tests.unit.cli.clikit import BUCKET, CliWorld

#: Commands that start servers: not run here (the demo and the sandbox have their own tests).
SERVERS = {("demo",), ("sandbox", "serve")}

#: The OSS and Alidns actions that change something (the fakes count calls per action).
MUTATIONS = frozenset({
    "CreateCnameToken", "PutCname", "DeleteCname",
    "AddDomainRecord", "UpdateDomainRecord", "UpdateDomainRecordRemark", "DeleteDomainRecord",
})

#: Exit codes of the README's table a command may end with here (no signal is sent).
EXIT_CODES = {0, 1, 2, 3, 75}


def _commands(group: click.Group, path: tuple[str, ...] = ()) -> dict[tuple[str, ...],
                                                                       click.Command]:
    found: dict[tuple[str, ...], click.Command] = {}
    ctx = click.Context(group)  # the lazy sub-commands (cli/lazy.py) load through get_command
    for name in group.list_commands(ctx):
        command = group.get_command(ctx, name)
        assert command is not None, name
        if isinstance(command, click.Group):
            found |= _commands(command, (*path, name))
        elif (*path, name) not in SERVERS:
            found[(*path, name)] = command
    return found


#: Every command to fuzz, by its words: ``("batch", "run")`` → the click command.
COMMANDS = _commands(main)


def _command_of(argv: list[str]) -> str:
    """The command's words in ``argv`` (after the global flags), for the statistics."""
    rest = [a for a in argv if a not in ("-v", "--json-logs")]
    found = [w for w in COMMANDS if tuple(rest[:len(w)]) == w]
    if not found:
        return f"({' '.join(rest[:2])})"
    longest: tuple[str, ...] = max(found, key=len)
    return " ".join(longest)


DOMAINS = ["www.example.com", "example.com", "a.example.com.cn", "例子.example.com",
           "p\u0430ypal.example.com", "ex\u200bample.com", "WWW.Example.COM.", "1.2.3.4",
           "www.not-hosted.test", "bad..example.com", "a" * 64 + ".example.com", "", "-x",
           "*.example.com", "_dnsauth.example.com"]
WORDS = ["examplebucket", "otherbucket", "Bad_Bucket", "cn-hangzhou", "cn-shanghai", "CN",
         "j1", "j2", "../j1", "a" * 300, "cas-1234-cn-hangzhou", "upsert-only", "sync",
         "cdn.example.net", "http://cdn.example.net/", "caf\udce9.example.com"]
NUMBERS = ["0", "1", "-1", "3", "64", "1e3", "nan", "inf", "-inf", "1e309", "x",
           "99999999999999999999999"]
#: Paths by name, made in each example's world by :func:`_paths`.
PATHS = ["manifest.yaml", "manifest.csv", "suspicious.yaml", "broken.yaml", "cert.pem",
         "plan.json", "config", "dir", "missing", "missing-dir/file", "under-a-file/file",
         "/dev/null"]

#: Text an argv can hold: anything but NUL (a C string ends there; ``caf\udce9`` above is how
#: Python passes on a byte that is not UTF-8).
texts = st.text(st.characters(exclude_characters="\x00"), max_size=16)
# one_of draws its branches evenly: a branch given twice is drawn twice as often
words = st.sampled_from(DOMAINS + WORDS)
strings = st.one_of(words, words, texts)
numbers = st.one_of(st.sampled_from(NUMBERS), st.integers(-3, 200).map(str),
                    st.floats().map(str))
paths = st.one_of(st.sampled_from(PATHS), texts.map(lambda t: f"@{t}"))
manifests = st.sampled_from(["manifest.yaml", "manifest.csv", "suspicious.yaml"])
#: Positional arguments by name: mostly a value that names something in the world.
ARGUMENTS = {"domain": st.sampled_from(DOMAINS[:6]), "job_id": st.sampled_from(["j1", "j2"])}


def _value(param: click.Parameter) -> st.SearchStrategy[str]:
    """Values for ``param``: mostly what its type takes, sometimes anything."""
    kind = param.type
    if isinstance(kind, click.Choice):
        choices = st.sampled_from([str(c) for c in kind.choices])
        return st.one_of(choices, choices, strings)
    if isinstance(kind, click.Path) and param.required:  # the manifest: mostly one
        return st.one_of(manifests, manifests, paths, strings)
    if isinstance(kind, click.Path):
        return st.one_of(paths, paths, strings)
    if isinstance(kind, click.types.IntParamType | click.types.FloatParamType):
        return st.one_of(numbers, numbers, strings)
    return strings


@st.composite
def argvs(draw: st.DrawFn) -> list[str]:
    """``[*words, *options, *arguments]`` of one command; values of paths as names (``PATHS``,
    or ``@text``: a relative path) that :func:`_resolve` turns into paths of the world."""
    words = draw(st.sampled_from(sorted(COMMANDS)))
    command = COMMANDS[words]
    argv = list(draw(st.lists(st.sampled_from(["-v", "--json-logs"]), max_size=1)))
    argv += list(words)
    options = [p for p in command.params if isinstance(p, click.Option)]
    required = [p for p in options if p.required and not _one_in(draw, 20)]  # mostly given
    optional = [p for p in options if not p.required]
    chosen: list[click.Option] = required + \
        draw(st.permutations(optional))[:draw(st.integers(0, 3))]
    for param in chosen:
        name = draw(st.sampled_from(param.opts))
        if param.is_flag:
            argv.append(name)
        else:
            value = draw(_value(param))
            argv += [name] if _one_in(draw, 20) else [name, _tag(param, value)]
    for argument in command.params:
        if isinstance(argument, click.Argument) and not _one_in(draw, 10):
            argv.append(draw(st.one_of(ARGUMENTS.get(argument.name or "", strings), strings)))
    if _one_in(draw, 30):  # an option or argument the command does not have
        argv.insert(draw(st.integers(len(words), len(argv))), draw(st.sampled_from(
            ["--nope", "extra", "--json=1", "--", "-"])))
    return argv


def _one_in(draw: st.DrawFn, n: int) -> bool:
    """True about once in ``n`` draws. Not ``integers(0, n - 1) == 0``: Hypothesis draws the
    bounds of a range far more often than 1 in n; a value in the middle is drawn as often as
    any other, and a shrunk example (0) says False: the well-formed case."""
    return draw(st.integers(0, n - 1)) == n // 2


def _tag(param: click.Parameter, value: str) -> str:
    return f"path:{value}" if isinstance(param.type, click.Path) else value


def _paths(tmp: Path, world: CliWorld) -> dict[str, str]:
    """The files of :data:`PATHS` in ``tmp``."""
    manifest = world.manifest("www.example.com", "a.example.com.cn")
    (tmp / "manifest.csv").write_text("domain,bucket\nwww.example.com,examplebucket\n",
                                      encoding="utf-8")
    (tmp / "suspicious.yaml").write_text(
        f"defaults: {{bucket: {BUCKET}}}\nbindings:\n  - domain: p\u0430ypal.example.com\n",
        encoding="utf-8")
    (tmp / "broken.yaml").write_text("bindings: [\n", encoding="utf-8")
    (tmp / "cert.pem").write_text("-----BEGIN CERTIFICATE-----\nnot base64\n", encoding="utf-8")
    (tmp / "plan.json").write_text('{"policy": "sync"', encoding="utf-8")
    (tmp / "dir").mkdir()
    (tmp / "under-a-file").write_text("a file", encoding="utf-8")
    named = {name: str(tmp / name) for name in PATHS}
    return named | {"manifest.yaml": str(manifest), "config": str(world.config),
                    "/dev/null": "/dev/null"}


def _resolve(argv: list[str], named: dict[str, str], tmp: Path) -> list[str]:
    out = []
    for arg in argv:
        if arg.startswith("path:"):
            key = arg.removeprefix("path:")
            arg = named.get(key) or (str(tmp / key[1:]) if key.startswith("@") else key)
        out.append(arg)
    return out


class _BatchChecker(FakeChecker):
    """The fake checker with the hooks a batch job calls on its :class:`CachingChecker`."""

    def attach_loop(self, loop: object) -> None:
        """Nothing to attach: the fake answers at once."""

    async def aclose(self) -> None:
        """Nothing to close on the loop."""

    def close(self) -> None:
        """Nothing to close."""


@contextmanager
def _world(monkeypatch: pytest.MonkeyPatch) -> Iterator[CliWorld]:
    """A fresh world in a fresh folder, also the working directory (relative paths written
    land there); batch jobs run over its fakes (no real DNS query)."""
    with tempfile.TemporaryDirectory() as folder, monkeypatch.context() as patch:
        world = CliWorld(Path(folder))
        patch.chdir(folder)

        def batch_clients(settings: Settings, stats: ApiStats, env: object = None,
                          ) -> tuple[service.Clients, Any]:
            checker = _BatchChecker(world.dns)
            oss = BatchOss(world.oss, lambda action: None, stats)
            return service.Clients(settings, oss, world.dns,
                                   cast("PropagationChecker", checker)), checker

        patch.setattr(jobs, "batch_clients", batch_clients)
        patch.setattr(jobs, "BackoffPolicy",
                      functools.partial(BackoffPolicy, initial_s=0.001, max_s=0.001))
        try:
            yield world
        finally:
            structlog.reset_defaults()


def _mutations(world: CliWorld) -> int:
    return sum(n for action, n in (world.oss.calls + world.dns.calls).items()
               if action in MUTATIONS)


def test_the_fuzzed_commands_are_the_real_ones() -> None:
    words = {" ".join(w) for w in COMMANDS}
    assert {"bind", "unbind", "plan", "status", "forget", "cert remove", "cert status",
            "batch run", "batch resume", "batch status", "batch list", "reconcile"} <= words


@FUZZ
@given(argv=argvs(), seed=st.sampled_from(["fresh", "fresh", "bound", "job"]))
def test_any_argv_ends_with_a_table_exit_code_and_exit_2_touches_nothing(
        monkeypatch: pytest.MonkeyPatch, argv: list[str], seed: str) -> None:
    with _world(monkeypatch) as world:
        named = _paths(world.tmp, world)
        if seed == "bound":
            assert world.invoke("bind", "www.example.com").exit_code == 0
        elif seed == "job":
            done = world.invoke("batch", "run", "-f", named["manifest.yaml"], "--job", "j1")
            assert done.exit_code == 0, done.output
        before = _mutations(world)
        result = world.invoke(*_resolve(argv, named, world.tmp))
        event(f"{_command_of(argv)} exit {result.exit_code}")
        assert result.exception is None or isinstance(result.exception, SystemExit), \
            result.exc_info
        assert "Traceback" not in result.output, result.output
        assert result.exit_code in EXIT_CODES, (result.exit_code, result.output)
        if result.exit_code == 2:
            assert result.output.strip(), "exit 2 without a word"
            assert _mutations(world) == before, (world.oss.calls, world.dns.calls)

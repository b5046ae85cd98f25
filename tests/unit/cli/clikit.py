"""A command-line world for unit tests: click's ``CliRunner`` over the in-memory fakes.

The commands build their adapters through :class:`~cname_flow.cli.common.CliState`'s clients
factory, so :meth:`CliWorld.invoke` passes a state whose factory returns the fakes. Batch jobs
build their adapters inside :mod:`cname_flow.batch.jobs` (``batch_clients``); :meth:`batch`
swaps that function for one that wraps the same fakes the way the real one wraps the adapters.
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import cast

import pytest
from click.testing import CliRunner, Result

from cname_flow import service
from cname_flow.batch import jobs
from cname_flow.batch.checker import CachingChecker
from cname_flow.batch.limits import BatchOss
from cname_flow.cli import main
from cname_flow.cli.common import CliState
from cname_flow.config.settings import Settings
from cname_flow.propagation.checker import PropagationChecker
from cname_flow.quotas import ApiStats
from cname_flow.workflow.engine import BackoffPolicy
from tests.fakes import FakeChecker, FakeDnsProvider, FakeOss

BUCKET = "examplebucket"


class CliWorld:
    """Fakes wired together as the services are, a config file, and a way to run commands.

    Args:
        tmp: a fresh folder for the config file and the journals.
        oss: the OSS fake (default: one bucket, PutCname proven through the DNS fake).
    """

    def __init__(self, tmp: Path, oss: FakeOss | None = None) -> None:
        self.tmp = tmp
        self.dns = FakeDnsProvider()
        self.oss = oss or FakeOss(txt_lookup=self.dns.txt_values)
        self.checker = FakeChecker(self.dns)
        self.config = tmp / "cname-flow.yaml"
        self.config.write_text(
            f"journal:\n  dir: {tmp / 'journal'}\n"
            f"defaults:\n  bucket: {BUCKET}\n  region: cn-hangzhou\n", encoding="utf-8")

    def clients(self, settings: Settings) -> service.Clients:
        """The clients factory of the commands: the fakes, never an SDK."""
        return service.Clients(settings, self.oss, self.dns,
                               cast("PropagationChecker", self.checker))

    def invoke(self, *args: str) -> Result:
        """Run ``cname-flow --config <config> ARGS`` in-process; the result has ``exit_code``."""
        state = CliState(clients_factory=self.clients)
        return CliRunner().invoke(main, ["--config", str(self.config), *args], obj=state)

    def manifest(self, *domains: str) -> Path:
        """A YAML manifest binding ``domains`` to the bucket."""
        path = self.tmp / "manifest.yaml"
        rows = "".join(f"  - domain: {d}\n" for d in domains)
        path.write_text(f"defaults:\n  bucket: {BUCKET}\nbindings:\n{rows}", encoding="utf-8")
        return path

    def batch(self, monkeypatch: pytest.MonkeyPatch) -> None:
        """Make batch jobs run over the fakes, with backoffs of a millisecond."""

        def batch_clients(settings: Settings, stats: ApiStats, env: object = None,
                          ) -> tuple[service.Clients, CachingChecker]:
            checker = CachingChecker(PropagationChecker(), threads=2)
            oss = BatchOss(self.oss, lambda action: None, stats)
            return service.Clients(settings, oss, self.dns, checker), checker

        monkeypatch.setattr(jobs, "batch_clients", batch_clients)
        monkeypatch.setattr(jobs, "BackoffPolicy",
                            functools.partial(BackoffPolicy, initial_s=0.001, max_s=0.001))

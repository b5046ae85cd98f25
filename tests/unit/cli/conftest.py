"""Fixtures of the command-line tests: a :class:`CliWorld` per test, logging reset after it."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import structlog

from tests.unit.cli.clikit import CliWorld


@pytest.fixture
def world(tmp_path: Path) -> CliWorld:
    """Fakes, a config file in ``tmp_path`` and an ``invoke`` that runs commands over them."""
    return CliWorld(tmp_path)


@pytest.fixture(autouse=True)
def _reset_logging() -> Iterator[None]:
    """The commands configure structlog onto CliRunner's streams; undo that after each test."""
    yield
    structlog.reset_defaults()

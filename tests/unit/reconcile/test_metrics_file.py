"""The metrics file's mode and atomicity: 0644 whatever the umask (the collector reads it, no
one else writes it), replaced whole or not at all."""

from __future__ import annotations

import errno
import os
import stat
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from cname_flow.reconcile.metrics import LAST_SUCCESS, METRICS_MODE, write_metrics


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.mark.usefixtures("open_umask")
def test_the_metrics_file_is_0644_whatever_the_umask(tmp_path: Path) -> None:
    path = tmp_path / "cname_flow.prom"
    write_metrics(path, None, duration_s=0.5, error_code="Locked", now=1000.0)
    assert METRICS_MODE == 0o644 and _mode(path) == 0o644
    path.chmod(0o666)  # a world-writable file left by an older version…
    write_metrics(path, None, duration_s=0.5, error_code="Locked", now=2000.0)
    assert _mode(path) == 0o644  # …is replaced by one that is not
    assert not _mode(path) & (stat.S_IWGRP | stat.S_IWOTH)


def test_a_failed_write_keeps_the_previous_file_whole(tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "cname_flow.prom"
    write_metrics(path, None, duration_s=0.5, now=1000.0)
    before = path.read_bytes()

    def full(fd: int, data: object) -> int:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(os, "write", full)
    with pytest.raises(OSError):
        write_metrics(path, None, duration_s=0.5, now=2000.0)
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cname_flow.prom"]  # no temp left
    names = {s.name for f in text_string_to_metric_families(before.decode()) for s in f.samples}
    assert "cnameflow_reconcile_duration_seconds" in names and LAST_SUCCESS not in names

"""A line of the store that is not a journal line (an unknown phase, step or status, a wrong
type) is refused when read, naming ``<file>:<line>``, whether it is read at open or caught up
with while the store is open."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from cname_flow.errors import JournalCorrupt
from cname_flow.journal import JournalEvent
from cname_flow.model import AuxStep, Phase
from cname_flow.store import JsonStore

KEY = "bk/www.example.com"


def _line(**fields: object) -> bytes:
    base: dict[str, object] = {"ts": "2025-01-01T00:00:00.000000Z", "key": KEY, "step": "start",
                               "status": "done", "phase": "PENDING"}
    return (json.dumps({**base, **fields}) + "\n").encode()


def _lines(path: Path) -> int:
    return path.read_bytes().count(b"\n")


@pytest.mark.parametrize(("fields", "says"), [
    ({"phase": "WEIRD"}, "'WEIRD' is not a known phase"),
    ({"step": "teleport"}, "'teleport' is not a known step"),
    ({"status": "maybe"}, "status 'maybe'"),
    ({"phase": 7}, "'phase' must be a string"),
])
def test_a_bad_line_is_refused_at_open_naming_file_and_line(
        tmp_path: Path, fields: dict[str, object], says: str) -> None:
    with JsonStore(tmp_path, fsync=False) as store:
        store.record(JournalEvent(KEY, AuxStep.START, "done", Phase.PENDING))
    path = tmp_path / "bindings.jsonl"
    with path.open("ab") as handle:
        handle.write(_line(**fields))
        handle.write(_line())  # not the last line: not a torn tail
    with pytest.raises(JournalCorrupt, match=f"{path}:{_lines(path) - 1}: .*{says}"):
        JsonStore(tmp_path, fsync=False).open()


def test_a_bad_line_appended_by_another_process_is_refused_on_catch_up(tmp_path: Path) -> None:
    path = tmp_path / "bindings.jsonl"
    with JsonStore(tmp_path, fsync=False) as store:
        store.record(JournalEvent(KEY, AuxStep.START, "done", Phase.PENDING))
        with path.open("ab") as handle:
            handle.write(_line(phase="WEIRD"))
        with pytest.raises(JournalCorrupt, match=f"{path}:{_lines(path)} .*not a known phase"):
            store.refresh()

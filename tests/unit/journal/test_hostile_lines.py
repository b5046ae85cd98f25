"""Lines the journal fuzzing suite (tests/fuzz/test_journal_fuzz.py) found accepted or crashing,
kept as examples: each is refused when read, as ``JournalCorrupt`` naming ``<file>:<line>``,
never an ``OverflowError``/``RecursionError`` or a record that crashes a later read or the
compaction that re-encodes it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from cname_flow.errors import JournalCorrupt
from cname_flow.journal.reader import load

HEADER = '{"journal": "cname-flow", "version": 2, "created_at": "2025-01-01T00:00:00.000000Z"}'
TS = "2025-01-01T00:00:00.000000Z"
EVENT = {"ts": TS, "key": "bk/a.example.com", "step": "start", "status": "done",
         "phase": "PENDING"}


def _event(**fields: object) -> str:
    return json.dumps({**EVENT, **fields})


@pytest.mark.parametrize(("line", "says"), [
    ("[" * 100_000 + "]" * 100_000, "invalid JSON"),  # nested past the decoder's recursion
    (json.dumps({"ts": "0001-01-01T00:00:00+01:00", "meta": {}}), "out of range"),
    (_event(ts="9999-12-31T23:59:59-01:00"), "out of range"),
    (json.dumps({"ts": TS, "members": [""]}), "'<bucket>/<domain>'"),
    (json.dumps({"ts": TS, "forget": "no-slash"}), "'<bucket>/<domain>'"),
    (_event(key="nobucket"), "'<bucket>/<domain>'"),
    (_event(outputs={"neg_ttl": float("nan")}), "finite"),
    (_event(outputs={"neg_ttl": 1e400}), "finite"),
    (_event(outputs={"token_expires_at": "next week"}), "token_expires_at"),
    (_event(outputs={"cert_not_after": 5}), "timestamp string"),
    (_event(outputs={"zone": "\ud800"}), "invalid Unicode"),
    (_event(step="\udfff"), "invalid Unicode"),
])
def test_a_hostile_line_is_refused_naming_file_and_line(tmp_path: Path, line: str,
                                                        says: str) -> None:
    path = tmp_path / "job.jsonl"
    path.write_text(f"{HEADER}\n{line}\n{_event()}\n", encoding="utf-8")
    with pytest.raises(JournalCorrupt, match=f"{path}:2: .*{says}"):
        load(path)


def test_the_same_fields_in_range_are_replayed(tmp_path: Path) -> None:
    path = tmp_path / "job.jsonl"
    outputs = {"neg_ttl": 300, "token_expires_at": "2025-01-04T00:00:00+08:00", "zone": "é.cn",
               "cert_not_after": None}
    path.write_text(f"{HEADER}\n{_event(outputs=outputs)}\n", encoding="utf-8")
    record = load(path).state.records["bk/a.example.com"]
    assert record.neg_ttl == 300 and record.zone == "é.cn"
    assert record.token_expires_at is not None and record.token_expires_at.hour == 16

"""Typed journal outputs and events: the on-disk format of version 1 loads into typed values,
and writing typed events produces that same format."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import get_type_hints

import pytest

from cname_flow.errors import JournalCorrupt
from cname_flow.journal import BindingOutputs, BindingRecord, Journal, JournalEvent
from cname_flow.model import AuxStep, Phase, Step

KEY = "examplebucket/www.example.com"

#: A journal as cname-flow wrote it before outputs and events were typed (verbatim lines).
TODAY = (Path(__file__).parent / "journal_v1.jsonl").read_text(encoding="utf-8")


@pytest.fixture
def path(tmp_path: Path) -> Path:
    path = tmp_path / "bindings.jsonl"
    path.write_text(TODAY, encoding="utf-8")
    return path


def _at(text: str) -> datetime:
    return datetime.fromisoformat(text).astimezone(UTC)


def test_a_journal_in_today_s_format_loads_into_typed_phases_steps_and_outputs(path: Path) -> None:
    record = Journal.read_only(path).get(KEY)
    assert record is not None
    assert record.phase is Phase.BOUND and record.last_step is Step.FINISH
    assert (record.domain, record.bucket, record.region) == (
        "www.example.com", "examplebucket", "cn-hangzhou")
    assert (record.zone, record.token, record.txt_record_id) == ("example.com", "tok-2", "100001")
    assert record.token_expires_at == _at("2025-01-04T00:00:05+00:00")
    assert record.txt_written_at == _at("2025-01-01T00:00:03+00:00")
    assert (record.neg_ttl, record.old_ttl, record.nameserver_addresses) == (600, None, 4)
    assert record.converged_at == _at("2025-01-01T00:00:06+00:00")
    assert record.ownership_failed_at == _at("2025-01-01T00:00:07+00:00")
    assert record.next_attempt_at == _at("2025-01-01T00:01:07+00:00")
    assert (record.put_request_id, record.cname_status, record.cert_id, record.fingerprint) == (
        "RID-9", "Enabled", "4930000-cn-hangzhou", "AB:CD")
    assert record.cert_not_after == _at("2026-01-01T00:00:00+00:00")
    assert (record.route_record_id, record.route_target) == (
        "100002", "examplebucket.oss-cn-hangzhou.aliyuncs.com")
    assert record.fast_path is None and record.put_note is None


def test_aux_steps_and_flags_load_typed(path: Path) -> None:
    journal = Journal.read_only(path)
    unbound, reconciled = journal.get("examplebucket/a.example.com"), journal.get(
        "examplebucket/b.example.com")
    assert unbound is not None and reconciled is not None
    assert unbound.last_step is AuxStep.UNBIND and unbound.phase is Phase.PENDING
    assert unbound.fast_path is True and unbound.put_note == "skipped: already bound"
    assert reconciled.last_step is AuxStep.CERT_REMOVE and reconciled.txt_record_id is None
    steps = [e.step for e in journal.events(KEY)]
    assert steps[0] is AuxStep.START and AuxStep.TOKEN in steps
    assert all(isinstance(e.phase, Phase) for e in journal.events())


def test_typed_events_are_written_in_the_same_format(path: Path, tmp_path: Path) -> None:
    again = tmp_path / "again.jsonl"
    with Journal(again) as journal:
        for event in Journal.read_only(path).events():
            journal.record(event)
    written = again.read_text(encoding="utf-8").splitlines()[1:]
    assert [json.loads(line) for line in written] == [
        json.loads(line) for line in TODAY.splitlines()[1:]]
    assert Journal.read_only(again).bindings() == Journal.read_only(path).bindings()


@pytest.mark.parametrize(("field", "value"), [("step", "teleport"), ("phase", "LIMBO")])
def test_an_unknown_step_or_phase_is_a_corrupt_line(path: Path, field: str, value: str) -> None:
    line = {"ts": "2025-01-02T00:00:00Z", "key": KEY, "step": "verify", "status": "done",
            "phase": "BOUND", field: value}
    with path.open("a", encoding="utf-8") as handle:
        handle.write(json.dumps(line) + "\n")
    with pytest.raises(JournalCorrupt, match=rf":17: field '{field}': '{value}' is not a known"):
        Journal.read_only(path)


def test_every_output_key_has_one_typed_accessor_on_the_record() -> None:
    keys = set(get_type_hints(BindingOutputs))
    accessors = {name: getattr(BindingRecord, name).key for name in dir(BindingRecord)
                 if hasattr(getattr(BindingRecord, name, None), "key")
                 and not name.startswith("_") and name != "key"}
    assert set(accessors.values()) == keys - {"domain", "bucket"}  # those two are fields
    assert len(set(accessors.values())) == len(accessors)
    assert {"domain", "bucket"} <= set(BindingRecord.__dataclass_fields__)


def test_outputs_none_deletes_and_absent_keeps(tmp_path: Path) -> None:
    with Journal(tmp_path / "j.jsonl") as journal:
        journal.record(JournalEvent(KEY, Step.CREATE_TOKEN, "done", Phase.TOKEN_READY,
                                    BindingOutputs(token="t", zone="example.com")))
        record = journal.record(JournalEvent(KEY, AuxStep.TOKEN, "done", Phase.PENDING,
                                             BindingOutputs(token=None)))
    assert record.token is None and record.zone == "example.com"
    assert "token" not in record.outputs

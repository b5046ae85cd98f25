"""Fuzzing the journal boundary: generated JSON Lines files replayed through the public readers,
and job ids through the job file path function.

Files start from valid lines (header, events, meta, forget, members, job events) which are then
mutated: a field given a wrong type, an unknown phase/step/status, a huge or non-finite number,
deep nesting, a field dropped; and bytes: a torn tail, invalid UTF-8, NUL bytes. Whatever the
input, a reader either replays it or raises a :class:`~cname_flow.errors.CnameFlowError`
(``JournalCorrupt``); what it replays can be used (every typed output read, every record
re-encoded as compaction does) without raising anything else.
"""

from __future__ import annotations

import json
import re
import tempfile
from datetime import timedelta, timezone
from pathlib import Path
from typing import Any, cast

from hypothesis import event, given
from hypothesis import strategies as st

from cname_flow.errors import CnameFlowError, InputError
from cname_flow.journal import BindingRecord, Journal
from cname_flow.journal.codec import encode_snapshot
from cname_flow.journal.reader import load
from cname_flow.model import AuxStep, Phase, Step
from cname_flow.store import JsonStore
from cname_flow.store.jobs import MAX_JOB_ID_BYTES, job_file
from tests.fuzz.budget import FUZZ

NAME_MAX = 255
TS = "2025-01-01T00:00:00.000000Z"
STEPS = [s.value for s in (*Step, *AuxStep)]
PHASES = [p.value for p in Phase]
#: Every typed output of a record (BindingRecord's attributes over ``outputs``).
TYPED = ["region", "zone", "fast_path", "token", "token_expires_at", "txt_record_id",
         "txt_written_at", "neg_ttl", "old_ttl", "converged_at", "nameserver_addresses",
         "put_note", "put_request_id", "cname_status", "cert_id", "fingerprint",
         "cert_not_after", "route_record_id", "route_target", "ownership_failed_at",
         "next_attempt_at"]
OUTPUT_KEYS = ["domain", "region", "token", "token_expires_at", "neg_ttl", "fast_path",
               "converged_at", "cert_not_after", "next_attempt_at", "x"]

# -- values ----------------------------------------------------------------------------------

timestamps = st.one_of(
    st.just(TS),
    st.builds(lambda d, h: d.replace(tzinfo=timezone(timedelta(hours=h))).isoformat(),
              st.datetimes(), st.integers(-23, 23)),
)
#: Strings that are not usable timestamps (out of range in UTC, naive, invalid).
BAD_TIMES = ["0001-01-01T00:00:00+01:00", "9999-12-31T23:59:59-01:00", "2025-01-01T00:00:00",
             "2025-13-01T00:00:00Z", "", "yesterday"]
scalars = st.one_of(
    st.none(), st.booleans(), st.integers(), st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=20), st.integers(min_value=10**30, max_value=10**40),
)
json_values = st.recursive(
    scalars, lambda inner: st.lists(inner, max_size=3) | st.dictionaries(
        st.text(max_size=5), inner, max_size=3), max_leaves=5)
words = st.one_of(st.sampled_from([*STEPS, *PHASES, "running", "done", "failed",
                                   "\ud800", "nul\x00", "WEIRD", *BAD_TIMES]),
                  st.text(max_size=12))


def outputs() -> st.SearchStrategy[dict[str, Any]]:
    value = st.one_of(scalars, timestamps, timestamps)
    return st.dictionaries(st.sampled_from(OUTPUT_KEYS), value, max_size=4)


events = st.fixed_dictionaries(
    {"ts": timestamps, "key": st.sampled_from(["bk/a.example.com", "bk/b.example.com"]),
     "step": st.sampled_from(STEPS), "status": st.sampled_from(["running", "done", "failed"]),
     "phase": st.sampled_from(PHASES)},
    optional={"outputs": outputs(),
              "error": st.fixed_dictionaries({"code": st.text(max_size=8),
                                              "message": st.text(max_size=20),
                                              "retryable": st.booleans()}),
              "attempts": st.integers(min_value=0, max_value=5), "started_at": timestamps})
others = st.one_of(
    st.fixed_dictionaries({"ts": timestamps, "meta": outputs()}),
    st.fixed_dictionaries({"ts": timestamps, "forget": st.just("bk/a.example.com")}),
    st.fixed_dictionaries({"ts": timestamps, "members": st.lists(st.text(max_size=8),
                                                                 max_size=3)}),
    st.fixed_dictionaries({"ts": timestamps, "job": st.sampled_from(["started", "stopped"]),
                           "values": outputs()}),
)


@st.composite
def mutated(draw: st.DrawFn, line: dict[str, Any]) -> object:
    """``line``, or one of its fields dropped, retyped or renamed, or something else entirely."""
    how = draw(st.sampled_from(["keep", "keep", "retype", "word", "drop", "replace"]))
    event(f"line: {how}")
    field = draw(st.sampled_from(sorted(line)))
    if how == "retype":
        return {**line, field: draw(json_values)}
    if how == "word":
        return {**line, field: draw(words)}
    if how == "drop":
        return {k: v for k, v in line.items() if k != field}
    if how == "replace":
        return draw(json_values)
    return line


def header(version: int = 2) -> dict[str, Any]:
    return {"journal": "cname-flow", "version": version, "created_at": TS}


@st.composite
def journals(draw: st.DrawFn) -> bytes:
    """A journal file's bytes: a header, mutated lines, then byte-level damage."""
    head: object = header(draw(st.sampled_from([1, 2])))
    if draw(st.integers(0, 4)) == 0:
        head = draw(mutated(header()))
    body: list[object] = list(draw(st.lists(st.one_of(events, others), max_size=6)))
    if draw(st.booleans()) and body:  # one line mutated: most files differ from a valid one
        at = draw(st.integers(0, len(body) - 1))  # by one thing, so replay goes deep too
        body[at] = draw(mutated(cast(dict[str, Any], body[at])))
    lines = [json.dumps(v, allow_nan=True).encode() for v in [head, *body]]
    damage = draw(st.sampled_from(["none", "none", "torn", "bad-utf8", "nul", "deep", "blank",
                                   "huge"]))
    event(f"bytes: {damage}")
    if damage != "none" and lines:
        at = draw(st.integers(0, len(lines) - 1))
        if damage == "bad-utf8":  # inside a string value: only the UTF-8 is wrong
            lines[at] = lines[at].replace(b': "', b': "\xff\xfe\xc3\x28', 1)
        elif damage == "nul":  # a raw NUL, inside a string or between tokens
            lines[at] = lines[at].replace(draw(st.sampled_from([b': "', b":"])), b': "\x00', 1)
        elif damage == "deep":
            depth = draw(st.sampled_from([100, 5_000, 50_000]))
            lines.insert(at, b"[" * depth + b"]" * depth)
        elif damage == "blank":
            lines.insert(at, b"   ")
        elif damage == "huge":  # a number of more digits than int() parses by default
            lines[at] = re.sub(rb"\d+", b"9" * 5000, lines[at], count=1)
    data = b"".join(line + b"\n" for line in lines)
    if damage == "torn":
        data = data[:draw(st.integers(0, len(data)))]
    return data


def _use(records: dict[str, BindingRecord]) -> None:
    """What bind, status and compaction do with replayed records."""
    for record in records.values():
        for name in TYPED:
            getattr(record, name)
        encode_snapshot(record)


# -- the properties --------------------------------------------------------------------------

@FUZZ
@given(data=journals())
def test_any_journal_file_is_replayed_or_refused_as_corrupt(tmp_path: Path, data: bytes) -> None:
    path = tmp_path / "job.jsonl"  # the same file for every example, rewritten each time
    path.write_bytes(data)
    try:
        loaded = load(path)
    except CnameFlowError:
        event("load: refused")
        return
    event("load: replayed")
    _use(loaded.state.records)
    snapshot = Journal.read_only(path)
    assert dict(snapshot.bindings()) == loaded.state.records
    list(snapshot.events())


@FUZZ
@given(data=journals())
def test_the_store_opens_any_file_or_refuses_it(data: bytes) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        (Path(tmp) / "bindings.jsonl").write_bytes(data)
        try:
            with JsonStore(Path(tmp), fsync=False) as store:
                _use(dict(store.bindings()))
                store.compact()
        except CnameFlowError:
            event("store: refused")
            return
        event("store: opened")


@FUZZ
@given(job_id=st.one_of(st.text(), st.text(alphabet="ab-_.é", max_size=300),
                        st.sampled_from(["..", ".", "a/b", "../x", "a" * 201, "a" * 200])))
def test_a_job_id_is_a_file_name_in_jobs_or_bad_input(tmp_path: Path, job_id: str) -> None:
    try:
        path = job_file(tmp_path, job_id)
    except InputError:
        event("job id: refused")
        return
    event("job id: accepted")
    assert path.parent == tmp_path / "jobs" and path.name == f"{job_id}.jsonl"
    assert len(job_id.encode()) <= MAX_JOB_ID_BYTES
    assert len(f".{path.name}.abcdefgh.tmp".encode()) <= NAME_MAX
    path.parent.mkdir(exist_ok=True)
    holder = path.with_suffix(".jsonl.holder")
    holder.write_bytes(b"")  # the longest suffixed name can exist
    holder.unlink()


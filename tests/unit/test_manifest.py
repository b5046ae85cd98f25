"""load_manifest at its input boundary (issue 13): encodings, CSV headers and fields, hostile YAML.

Every bad file is one :class:`ConfigError` whose reasons name ``<file>:<line>``; nothing else
escapes. The YAML cases shared with the config file live in ``tests/unit/config``.
"""

from __future__ import annotations

import hashlib
import os
import threading
from pathlib import Path

import pytest
from structlog.testing import capture_logs

from cname_flow.errors import ConfigError
from cname_flow.manifest import load_manifest
from cname_flow.reconcile.run import manifest_digest

HEADER = "domain,bucket\n"


def write(tmp_path: Path, data: bytes, name: str = "domains.csv") -> Path:
    path = tmp_path / name
    path.write_bytes(data)
    return path


def reasons_of(path: Path) -> list[str]:
    with pytest.raises(ConfigError) as info:
        load_manifest(path)
    return info.value.reasons


# -- encodings ---------------------------------------------------------------------------------

def test_utf8_bom_header_should_be_accepted(tmp_path: Path) -> None:
    path = write(tmp_path, b"\xef\xbb\xbf" + f"{HEADER}a.example.com,bucket1\n".encode())
    manifest = load_manifest(path)
    assert [(b.domain, b.bucket) for b in manifest.bindings] == [("a.example.com", "bucket1")]


@pytest.mark.parametrize("codec", ["utf-16", "utf-16-le", "utf-16-be"])
def test_utf16_with_a_bom_should_be_decoded(tmp_path: Path, codec: str) -> None:
    text = f"{HEADER}a.example.com,bucket1\n例子.example.com,bucket1\n"
    bom = {"utf-16": b"", "utf-16-le": b"\xff\xfe", "utf-16-be": b"\xfe\xff"}[codec]
    manifest = load_manifest(write(tmp_path, bom + text.encode(codec)))
    assert [b.domain for b in manifest.bindings] == ["a.example.com", "xn--fsqu00a.example.com"]


def test_utf8_bom_yaml_should_be_accepted(tmp_path: Path) -> None:
    yaml_text = "defaults: {bucket: bucket1}\nbindings:\n  - domain: a.example.com\n"
    manifest = load_manifest(write(tmp_path, b"\xef\xbb\xbf" + yaml_text.encode(), "m.yaml"))
    assert [b.domain for b in manifest.bindings] == ["a.example.com"]


def test_latin1_should_be_refused_naming_line_and_byte_offset(tmp_path: Path) -> None:
    data = (f"{HEADER}a.example.com,bucket1\n".encode()
            + "café.example.com,bucket1\n".encode("latin-1"))
    path = write(tmp_path, data)
    [reason] = reasons_of(path)
    offset = data.index(b"\xe9")
    assert reason.startswith(f"{path}:3: not UTF-8 text"), reason
    assert f"byte 0xe9 at offset {offset}" in reason
    assert "UTF-8" in reason


def test_utf16_without_a_bom_should_be_refused(tmp_path: Path) -> None:
    path = write(tmp_path, f"{HEADER}a.example.com,bucket1\n".encode("utf-16-le"))
    [reason] = reasons_of(path)
    assert reason.startswith(f"{path}:1: not UTF-8 text"), reason


def test_utf16_with_a_lone_surrogate_should_be_refused_with_its_line(tmp_path: Path) -> None:
    data = b"\xff\xfe" + f"{HEADER}a".encode("utf-16-le") + b"\x00\xd8" + "\n".encode("utf-16-le")
    path = write(tmp_path, data)
    [reason] = reasons_of(path)
    assert reason.startswith(f"{path}:2: not UTF-16 text"), reason


# -- CSV structure -----------------------------------------------------------------------------

@pytest.mark.parametrize("header", ["domain,bucket,domain", "domain,bucket, bucket "])
def test_duplicate_header_should_be_refused(tmp_path: Path, header: str) -> None:
    path = write(tmp_path, f"{header}\na.example.com,bucket1,c.example.com\n".encode())
    [reason] = reasons_of(path)
    assert reason.startswith(f"{path}:1: header:"), reason
    assert "twice" in reason


def test_field_over_the_csv_limit_should_be_refused_with_its_line(tmp_path: Path) -> None:
    path = write(tmp_path, f"{HEADER}a.example.com,bucket1\n{'a' * 200_000},bucket1\n".encode())
    [reason] = reasons_of(path)
    assert reason.startswith(f"{path}:3: not valid CSV"), reason
    assert "field larger than field limit" in reason


def test_unterminated_quote_should_be_refused(tmp_path: Path) -> None:
    path = write(tmp_path, f'{HEADER}"a.example.com,bucket1\n'.encode())
    [reason] = reasons_of(path)
    assert reason.startswith(f"{path}:"), reason


def test_cells_beyond_the_header_should_be_refused(tmp_path: Path) -> None:
    path = write(tmp_path, f"{HEADER}a.example.com,bucket1,c.example.com\n".encode())
    [reason] = reasons_of(path)
    assert reason == f"{path}:2: 3 cells but the header has 2 columns", reason


def test_blank_cells_beyond_the_header_should_be_ignored(tmp_path: Path) -> None:
    manifest = load_manifest(write(tmp_path, f"{HEADER}a.example.com,bucket1,, \n".encode()))
    assert [b.domain for b in manifest.bindings] == ["a.example.com"]


def test_big_integer_in_yaml_manifest_should_be_refused_with_its_line(tmp_path: Path) -> None:
    text = ("defaults: {bucket: bucket1}\nbindings:\n  - domain: a.example.com\n"
            f"    route: {'7' * 5000}\n")
    path = write(tmp_path, text.encode(), "m.yaml")
    [reason] = reasons_of(path)
    assert reason.startswith(f"{path}:4: not valid YAML"), reason


def test_oversized_manifest_should_be_refused_without_reading_it_all(tmp_path: Path) -> None:
    from cname_flow.config import yaml_source

    path = write(tmp_path, b"domain\n" + b"a.example.com\n" * 10)
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(yaml_source, "MAX_DOCUMENT_BYTES", 64)
        [reason] = reasons_of(path)
        assert reason.startswith(f"{path}: larger than 64 bytes"), reason
        [endless] = reasons_of(Path("/dev/zero"))
        assert endless.startswith("/dev/zero: larger than 64 bytes"), endless


# -- suspicious names: warned once per row, naming the manifest's file:line (as bind warns) ---

def test_a_suspicious_row_is_warned_once_with_its_file_and_line(tmp_path: Path) -> None:
    text = ("defaults: {bucket: bucket1}\nbindings:\n"
            "  - domain: www.example.com\n"          # 3: nothing to say
            "  - domain: p\u0430ypal.example.com\n"  # 4: Cyrillic а
            "  - domain: \"p\u0430y\u00adpal.example.net\"\n")  # 5: Cyrillic а and a soft hyphen
    path = write(tmp_path, text.encode(), "m.yaml")
    with capture_logs() as logs:
        manifest = load_manifest(path)
    assert len(manifest.bindings) == 3  # a warning, not a refusal
    warned = [e for e in logs if e["event"] == "domain.suspicious"]
    assert [(e["log_level"], e["where"]) for e in warned] == [
        ("warning", f"{path}:4"), ("warning", f"{path}:5")]
    assert warned[0]["domain"] == "xn--pypal-4ve.example.com"
    assert "mixes LATIN and CYRILLIC" in warned[0]["warning"]
    assert "U+00AD SOFT HYPHEN" in warned[1]["warning"]
    assert "mixes LATIN and CYRILLIC" in warned[1]["warning"]


def test_a_suspicious_csv_row_names_its_line(tmp_path: Path) -> None:
    path = write(tmp_path, f"{HEADER}a.example.com,bucket1\nex\u0430mple.com,bucket1\n".encode())
    with capture_logs() as logs:
        load_manifest(path)
    assert [e["where"] for e in logs if e["event"] == "domain.suspicious"] == [f"{path}:3"]


# -- the digest is of the bytes read, once ---------------------------------------------------

def test_the_digest_is_of_the_bytes_loaded_not_of_the_file_now(tmp_path: Path) -> None:
    data = f"{HEADER}a.example.com,bucket1\n".encode()
    path = write(tmp_path, data)
    manifest = load_manifest(path)
    path.write_bytes(data + b"b.example.com,bucket1\n")  # changed after it was read
    assert manifest.sha256 == hashlib.sha256(data).hexdigest()
    assert manifest_digest(manifest) == manifest.sha256


def test_a_manifest_given_as_a_pipe_keeps_its_digest(tmp_path: Path) -> None:
    data = f"{HEADER}a.example.com,bucket1\n".encode()
    fifo = tmp_path / "manifest.csv"
    os.mkfifo(fifo)

    def feed(payload: bytes) -> None:
        with fifo.open("wb") as stream:
            stream.write(payload)

    writer = threading.Thread(target=feed, args=(data,))
    writer.start()
    manifest = load_manifest(fifo)
    writer.join(timeout=5)
    # a second reader of the pipe would now read nothing: feed it that, then release the
    # writer should nobody read (os.open of the read end unblocks its open)
    late = threading.Thread(target=feed, args=(b"",), daemon=True)
    late.start()
    try:
        assert manifest_digest(manifest) == hashlib.sha256(data).hexdigest()
    finally:
        os.close(os.open(fifo, os.O_RDONLY | os.O_NONBLOCK))
        late.join(timeout=5)

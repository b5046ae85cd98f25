"""Manifests: the desired bindings of a batch job or a reconciliation, in YAML or CSV.

YAML::

    defaults: {bucket: examplebucket, region: cn-hangzhou, route: false, remove_txt: false}
    bindings:
      - domain: example.com
      - domain: www.example.com
        route: true
      - domain: img.example.com
        cert_file: certs/img.pem
        key_file: certs/img.key

CSV (domain lists often come from spreadsheets): a header row with ``domain`` and any of
``bucket, region, route, route_target, remove_txt, cert_file, key_file, cert_id, force_cert``,
each once; empty cells take the defaults (``--bucket``/``--region`` or the config's
``defaults``); a row with non-empty cells beyond the header is refused.

Files are UTF-8, with or without a byte-order mark, or UTF-16 with one (see
:func:`~cname_flow.config.yaml_source.read_document`); YAML anchors and aliases are refused.

The whole manifest is validated before anything runs; every problem is reported at once with its
file and line; duplicate domains and a domain listed for two buckets are refused. A domain
``bind`` would warn about (hidden characters, mixed scripts:
:func:`cname_flow.names.domain_warnings`) is logged once per row, as a ``domain.suspicious``
warning naming the row's file and line.
"""

from __future__ import annotations

import csv
import difflib
import hashlib
import io
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, ValidationError
from pydantic_core import ErrorDetails

from cname_flow.config.yaml_source import (
    decode_document,
    format_path,
    load_located,
    read_document_bytes,
)
from cname_flow.errors import CnameFlowError, ConfigError
from cname_flow.logs import get_logger
from cname_flow.model import Binding, BindingOptions, CertificateSpec
from cname_flow.names import build_binding, domain_warnings

log = get_logger(__name__)


class _Entry(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    domain: str | None = None
    bucket: str | None = None
    region: str | None = None
    route: bool | None = None
    route_target: str | None = None
    remove_txt: bool | None = None
    force_cert: bool | None = None
    cert_file: Path | None = None
    key_file: Path | None = None
    cert_id: str | None = None


class _Document(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    defaults: _Entry = _Entry()
    bindings: list[_Entry]


@dataclass(frozen=True, slots=True)
class Manifest:
    """A validated manifest.

    Attributes:
        source: the file it was read from.
        bindings: desired bindings in file order (domains normalized to A-labels).
        lines: binding key → ``"<file>:<line>"`` where it was given.
        sha256: SHA-256 (hex) of the bytes the manifest was loaded from, read once: what a
            reviewed reconcile plan is pinned to, even when the file has changed since or
            was a pipe.
    """

    source: Path
    bindings: tuple[Binding, ...]
    lines: Mapping[str, str]
    sha256: str

    @property
    def buckets(self) -> frozenset[str]:
        """Every bucket the manifest names."""
        return frozenset(b.bucket for b in self.bindings)


def load_manifest(path: Path, *, bucket: str | None = None, region: str | None = None) -> Manifest:
    """Read and validate a YAML or CSV manifest.

    Args:
        path: ``.yaml``/``.yml`` or ``.csv`` file.
        bucket: fallback bucket for entries and defaults that name none.
        region: fallback region (``--region``); without one, entries naming no region take
            their bucket's (learned from OSS before the job runs).

    Raises:
        ConfigError: every problem found, each with file and line; a file that is not UTF-8
            (or UTF-16 with a byte-order mark) or is over 64 MiB is refused as a whole.
    """
    data = read_document_bytes(path, what="manifest")
    text = decode_document(data, path)
    if path.suffix.lower() == ".csv":
        defaults, rows = _Entry(), _csv_rows(text, str(path))
    else:
        defaults, rows = _yaml_rows(text, str(path))
    fallback = _Entry(bucket=bucket, region=region or "")
    return _build(path, defaults, rows, fallback, hashlib.sha256(data).hexdigest())


def _yaml_rows(text: str, source: str) -> tuple[_Entry, list[tuple[str, Any]]]:
    doc = load_located(text, source)
    reasons = list(doc.problems)
    try:
        parsed = _Document.model_validate(doc.data)
    except ValidationError as exc:
        reasons += [f"{doc.where(e['loc'])}: {format_path(e['loc']) or '(top level)'}: "
                    f"{plain_words(e)}" for e in exc.errors()]
        raise ConfigError(reasons, source=source) from None
    if reasons:
        raise ConfigError(reasons, source=source)
    rows = [(doc.where(("bindings", i)), e) for i, e in enumerate(parsed.bindings)]
    return parsed.defaults, rows


#: pydantic error types in plain words (the rest keep pydantic's message).
_PLAIN = {
    "missing": "required",
    "bool_parsing": "must be true or false",
    "bool_type": "must be true or false",
    "string_type": "must be text",
    "list_type": "must be a list of bindings (each one a mapping with a domain)",
    "model_type": "must be a mapping of keys to values",
    "model_attributes_type": "must be a mapping of keys to values",
    "dict_type": "must be a mapping of keys to values",
    "path_type": "must be a file path",
}


def did_you_mean(word: str, allowed: Iterable[str]) -> str:
    """``"; did you mean 'domain'?"`` for the closest of ``allowed`` (difflib), else ``""``."""
    close = difflib.get_close_matches(word, list(allowed), n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""


def plain_words(err: ErrorDetails, *, csv: bool = False) -> str:
    """One manifest validation error in plain words: an unknown key names the closest known
    one (difflib) and the keys allowed there.

    Args:
        err: one of pydantic's ``ValidationError.errors()``.
        csv: the error is in a CSV row (its keys are the header's columns).
    """
    loc = tuple(err["loc"])
    if err["type"] == "extra_forbidden" and loc and isinstance(loc[-1], str):
        model = _Document if len(loc) == 1 and not csv else _Entry
        allowed = sorted(model.model_fields)
        return (f"unknown key {loc[-1]!r}{did_you_mean(loc[-1], allowed)}; "
                f"allowed here: {', '.join(allowed)}")
    return _PLAIN.get(err["type"], str(err["msg"]).removeprefix("Value error, "))


def _csv_rows(text: str, source: str) -> list[tuple[str, Any]]:
    reader = csv.DictReader(io.StringIO(text))
    try:
        header = [c.strip() for c in reader.fieldnames or []]
        _check_header(header, source)
        return _csv_entries(reader, source)
    except csv.Error as exc:  # a field over csv.field_size_limit() (128 KiB), a stray quote
        line = reader.reader.line_num  # DictReader's own line_num lags behind on an error
        raise ConfigError([f"{source}:{line}: not valid CSV: {exc}"],
                          source=source) from None


def _check_header(header: list[str], source: str) -> None:
    """ConfigError unless the header names ``domain`` and known columns, each once."""
    known = set(_Entry.model_fields)
    unknown = [c for c in header if c not in known]
    if unknown or "domain" not in header:
        named = ", ".join(f"{c!r}{did_you_mean(c, known)}" for c in unknown) or "none"
        raise ConfigError([f"{source}:1: header: needs a 'domain' column; unknown columns: "
                           f"{named}"], source=source)
    columns: dict[str, list[str]] = {}
    for number, name in enumerate(header, 1):
        columns.setdefault(name, []).append(str(number))
    twice = [f"{name!r} given twice (columns {', '.join(at)})"
             for name, at in columns.items() if len(at) > 1]
    if twice:
        raise ConfigError([f"{source}:1: header: {'; '.join(twice)}"], source=source)


def _csv_entries(reader: csv.DictReader[str], source: str) -> list[tuple[str, Any]]:
    rows: list[tuple[str, Any]] = []
    reasons: list[str] = []
    width = len(reader.fieldnames or [])
    for row in reader:
        where = f"{source}:{reader.line_num}"
        rest = row.pop(None, [])  # cells beyond the header; blank ones are spreadsheet noise
        if any(v.strip() for v in rest):
            reasons.append(f"{where}: {width + len(rest)} cells but the header has {width} "
                           "columns")
            continue
        cells = {k.strip(): v.strip() for k, v in row.items() if k and v and v.strip()}
        try:
            rows.append((where, _Entry.model_validate(cells)))
        except ValidationError as exc:
            reasons += [f"{where}: {format_path(e['loc'])}: {plain_words(e, csv=True)}"
                        for e in exc.errors()]
    if reasons:
        raise ConfigError(reasons, source=source)
    return rows


def _merged(entry: _Entry, *layers: _Entry) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for layer in (*reversed(layers), entry):
        out |= {k: v for k, v in layer.model_dump().items() if v is not None}
    return out


def _build(path: Path, defaults: _Entry, rows: list[tuple[str, Any]], fallback: _Entry,
           sha256: str) -> Manifest:
    reasons: list[str] = []
    bindings: list[Binding] = []
    lines: dict[str, str] = {}
    seen: dict[str, tuple[str, str]] = {}
    suspicious: list[dict[str, str]] = []  # logged once the manifest is accepted
    base = path.parent
    for where, entry in rows:
        v = _merged(entry, defaults, fallback)
        try:
            binding = _binding(v, base)
        except (CnameFlowError, ValueError) as exc:
            reasons.append(f"{where}: {exc}")
            continue
        if warnings := domain_warnings(v["domain"]):
            suspicious.append({"domain": binding.domain, "given": v["domain"], "where": where,
                               "warning": "; ".join(warnings)})
        first = seen.get(binding.domain)
        if first is not None:
            what = ("listed twice" if first[1] == binding.bucket
                    else f"listed for two buckets ({first[1]} and {binding.bucket})")
            reasons.append(f"{where}: {binding.domain}: {what}; first at {first[0]}")
            continue
        seen[binding.domain] = (where, binding.bucket)
        bindings.append(binding)
        lines[binding.key] = where
    if not rows:
        reasons.append(f"{path}: no bindings")
    if reasons:
        raise ConfigError(reasons, source=str(path))
    for fields in suspicious:
        log.warning("domain.suspicious", **fields)
    return Manifest(path, tuple(bindings), lines, sha256)


def _binding(v: dict[str, Any], base: Path) -> Binding:
    if not v.get("domain"):
        raise ValueError("domain: missing")
    if not v.get("bucket"):
        raise ValueError("bucket: missing (give it here, in defaults, or with --bucket)")
    cert = None
    if v.get("cert_file") or v.get("key_file") or v.get("cert_id"):
        if v.get("cert_id") and (v.get("cert_file") or v.get("key_file")):
            raise ValueError("certificate: give cert_id or cert_file + key_file, not both")
        if not v.get("cert_id") and not (v.get("cert_file") and v.get("key_file")):
            raise ValueError("certificate: cert_file and key_file go together")
        cert = CertificateSpec(
            cert_file=base / v["cert_file"] if v.get("cert_file") else None,
            key_file=base / v["key_file"] if v.get("key_file") else None,
            cert_id=v.get("cert_id"),
        )
    options = BindingOptions(route=bool(v.get("route")), route_target=v.get("route_target"),
                             remove_txt=bool(v.get("remove_txt")),
                             force_cert=bool(v.get("force_cert")))
    return build_binding(v["domain"], bucket=v["bucket"], region=v["region"],
                         certificate=cert, options=options)

"""YAML documents that remember where each value came from (file and line).

:func:`load_located` parses a document once with PyYAML's ``SafeLoader``: the composed node tree
gives the line of every mapping key and sequence item, and the constructed document gives the
plain data. Validation errors can then be reported as ``"<file>:<line>: <key>: <problem>"``
(cf. octoDNS ``yaml.py::ContextLoader``). Values set from elsewhere (environment overrides) can be
registered with their own origin string.

The loader is PyYAML's ``SafeLoader`` with three refusals, each a :class:`ConfigError` naming the
line before anything is walked (issue 13): any anchor or alias (``&a``/``*a``, the stuff of
"billion laughs" bombs; no config or manifest needs them, ``defaults:`` does their job), nesting
deeper than :data:`MAX_DEPTH` (PyYAML's composer recurses), and a scalar its type cannot hold
(an integer of more than 4,300 digits, 2024-13-45). Control characters are PyYAML's own refusal,
reported with their line too.
"""

from __future__ import annotations

import codecs
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from cname_flow.errors import ConfigError

#: Deepest nesting of mappings and sequences (the document itself is level 1); a manifest or a
#: config uses 3 or 4.
MAX_DEPTH = 32

#: Largest config or manifest file read, in bytes (100,000 bindings take about 10 MB).
MAX_DOCUMENT_BYTES = 64 * 1024 * 1024

#: Byte-order marks a document may start with, and the codec each means.
_BOMS = ((codecs.BOM_UTF8, "utf-8"), (codecs.BOM_UTF16_LE, "utf-16-le"),
         (codecs.BOM_UTF16_BE, "utf-16-be"))

#: A path into a document: mapping keys (``str``) and sequence indexes (``int``).
KeyPath = tuple[str | int, ...]


@dataclass
class LocatedDocument:
    """Plain data plus the origin of every key in it.

    Attributes:
        data: the constructed document (``None`` for an empty file).
        source: the file name used in locations (``"config.yaml"``), or ``""``.
        origins: key path → origin string, e.g. ``("oss", "region")`` → ``"config.yaml:3"``.
        problems: structural problems found while composing (duplicate keys), already rendered.
    """

    data: Any
    source: str
    origins: dict[KeyPath, str] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)

    def where(self, path: Sequence[str | int]) -> str:
        """Origin of the longest prefix of ``path`` that is known, else ``source``.

        Args:
            path: a key path such as a pydantic error ``loc``; unknown trailing items (a missing
                field, a validator name) fall back to the nearest known ancestor.
        """
        for end in range(len(path), 0, -1):
            origin = self.origins.get(tuple(path[:end]))
            if origin is not None:
                return origin
        return self.source or "<defaults>"


def read_document(path: Path, *, what: str = "the file") -> str:
    """Read a config file or manifest as text: :func:`decode_document` of
    :func:`read_document_bytes` (which see for the errors).
    """
    return decode_document(read_document_bytes(path, what=what), path)


def read_document_bytes(path: Path, *, what: str = "the file") -> bytes:
    """Read a config file or manifest's bytes, once, up to :data:`MAX_DOCUMENT_BYTES`.

    Args:
        path: the file; pipes and process substitutions work too (read up to the cap).
        what: how to call the file in the "cannot read" reason (``"manifest"``).

    Raises:
        ConfigError: one reason: ``"<file>: cannot read <what> (<why>)"`` or ``"<file>: larger
            than 64 MiB"``.
    """
    cap = MAX_DOCUMENT_BYTES
    try:
        with path.open("rb") as stream:
            data = stream.read(cap + 1)
    except OSError as exc:
        reason = f"{path}: cannot read {what} ({exc.strerror or type(exc).__name__})"
        raise ConfigError([reason], source=str(path)) from None
    if len(data) > cap:
        size = f"{cap >> 20} MiB" if cap % (1 << 20) == 0 else f"{cap} bytes"
        raise ConfigError([f"{path}: larger than {size}; is it the right file?"],
                          source=str(path))
    return data


def decode_document(data: bytes, path: Path) -> str:
    """The text of a config file or manifest read from ``path`` as ``data``.

    UTF-8 is expected; a UTF-8 byte-order mark is dropped, and a file starting with a UTF-16
    byte-order mark (a spreadsheet's "Unicode text") is decoded as UTF-16. Anything else is
    refused rather than guessed at (Latin-1 and UTF-8 cannot be told apart reliably).

    Args:
        data: the bytes :func:`read_document_bytes` read.
        path: where they came from, for the reason.

    Returns:
        The text, without its byte-order mark.

    Raises:
        ConfigError: one reason, ``"<file>:<line>: not UTF-8 text (byte 0xe9 at offset 17) …"``
            naming the first undecodable byte (or NUL).
    """
    bom, codec = next(((b, c) for b, c in _BOMS if data.startswith(b)), (b"", "utf-8"))
    body = data[len(bom):]
    try:
        text = body.decode(codec)
    except UnicodeDecodeError as exc:
        start, what = exc.start, f"byte 0x{body[exc.start]:02x}"
    else:
        if "\x00" not in text:
            return text
        # ASCII saved as UTF-16 without a byte-order mark decodes as UTF-8 full of NULs
        start = len(text[:text.index("\x00")].encode(codec))
        what = "NUL byte"
    line = body[:start].decode(codec, errors="replace").count("\n") + 1
    name = "UTF-8" if codec == "utf-8" else "UTF-16"
    reason = (f"{path}:{line}: not {name} text ({what} at offset {len(bom) + start}); "
              "save it as UTF-8 (a spreadsheet's \"CSV UTF-8\")")
    raise ConfigError([reason], source=str(path))


def load_located(text: str, source: str) -> LocatedDocument:
    """Parse one YAML document and record the line (1-based) of every key and item.

    Args:
        text: the YAML text.
        source: the name to put in locations (usually the file path as given).

    Returns:
        The document with ``origins`` filled in and duplicate mapping keys listed in ``problems``
        (PyYAML silently keeps the last one; a config file that says a thing twice is a mistake).

    Raises:
        ConfigError: the text is not valid YAML, holds a control character, an anchor or alias,
            nesting deeper than :data:`MAX_DEPTH` or a value its type cannot hold; one reason
            naming the line. The message is built from the parser's problem description only,
            never from a snippet of the text, so a secret on the offending line is not echoed.
    """
    try:
        loader = _Loader(text)
    except yaml.reader.ReaderError as exc:
        line = text.count("\n", 0, exc.position) + 1
        reason = f"{source}:{line}: not valid YAML: control character U+{exc.character:04X}"
        raise ConfigError([reason], source=source) from None
    try:
        node = loader.get_single_node()
        data = loader.construct_document(node) if node is not None else None
    except yaml.MarkedYAMLError as exc:
        raise ConfigError([_yaml_reason(exc, source)], source=source) from None
    except yaml.YAMLError as exc:  # pragma: no cover - every PyYAML parse error is marked
        reason = f"{source}: not valid YAML ({type(exc).__name__})"
        raise ConfigError([reason], source=source) from None
    finally:
        loader.dispose()
    doc = LocatedDocument(data=data, source=source)
    if node is not None:
        for path, line, dup_of in _walk(node, ()):
            doc.origins.setdefault(path, f"{source}:{line}")
            if dup_of is not None:
                dotted = format_path(path)
                doc.problems.append(
                    f"{source}:{line}: {dotted}: duplicate key (first given at line {dup_of})"
                )
    return doc


class _Loader(yaml.SafeLoader):
    """``SafeLoader`` refusing anchors, aliases and deep nesting, and marking bad scalars."""

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self._depth = 0

    def fetch_flow_collection_start(self, TokenClass: Any) -> None:
        # The scanner looks ahead up to 1,024 characters for a simple key at every open
        # bracket, quadratically: "[[[[…" took 0.7 s before the composer saw depth 33.
        if self.flow_level >= MAX_DEPTH:
            raise yaml.scanner.ScannerError(
                None, None, f"nested deeper than {MAX_DEPTH} levels", self.get_mark())
        super().fetch_flow_collection_start(TokenClass)

    def compose_node(self, parent: yaml.Node | None, index: int) -> yaml.Node | None:
        event: Any = self.peek_event()  # type: ignore[no-untyped-call]  # untyped in the stubs
        if isinstance(event, yaml.AliasEvent) or getattr(event, "anchor", None) is not None:
            raise yaml.composer.ComposerError(
                None, None, "anchors and aliases (&name, *name) are not allowed; "
                "repeat the values, or use the manifest's defaults", event.start_mark)
        if self._depth >= MAX_DEPTH:
            raise yaml.composer.ComposerError(
                None, None, f"nested deeper than {MAX_DEPTH} levels", event.start_mark)
        self._depth += 1
        try:
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1

    def construct_object(self, node: yaml.Node, deep: bool = False) -> Any:
        try:
            return super().construct_object(node, deep)
        except (ValueError, OverflowError):
            kind = node.tag.rpartition(":")[2]
            what = _BAD_SCALAR.get(kind, f"not a valid {kind}")
            raise yaml.constructor.ConstructorError(
                None, None, what, node.start_mark) from None


#: What a scalar of a resolved type that Python cannot construct is, by YAML tag suffix.
_BAD_SCALAR = {
    "int": "integer of more than 4300 digits (Python's limit)",
    "timestamp": "not a valid date/time",
}


def format_path(path: Sequence[str | int]) -> str:
    """Render a key path as a dotted key: ``("a", "b", 0)`` → ``"a.b[0]"``."""
    out = ""
    for item in path:
        if isinstance(item, int):
            out += f"[{item}]"
        else:
            out += f".{item}" if out else str(item)
    return out


def _walk(node: yaml.Node, path: KeyPath) -> Iterator[tuple[KeyPath, int, int | None]]:
    """Yield ``(path, line, first_line_if_duplicate)`` for every key and item below ``node``."""
    if isinstance(node, yaml.MappingNode):
        seen: dict[str, int] = {}
        for key_node, value_node in node.value:
            key = str(key_node.value) if isinstance(key_node, yaml.ScalarNode) else "?"
            line = key_node.start_mark.line + 1
            child = (*path, key)
            yield child, line, seen.get(key)
            seen.setdefault(key, line)
            yield from _walk(value_node, child)
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            child = (*path, index)
            yield child, item.start_mark.line + 1, None
            yield from _walk(item, child)


def _yaml_reason(exc: yaml.MarkedYAMLError, source: str) -> str:
    mark = exc.problem_mark or exc.context_mark
    line = f":{mark.line + 1}" if mark is not None else ""
    what = " ".join(part for part in (exc.context, exc.problem) if part) or "not valid YAML"
    return f"{source}{line}: not valid YAML: {what}"

"""Render one propagation round as a fixed-width text table for errors and the CLI.

Example::

    HOST             ADDRESS           STATE    SERIAL            RTT     VALUES        DETAIL
    ns1.example.net  127.0.0.11:53     OK       2024010102 (max)  1.2ms   tok-abc       nsid=a1
    ns2.example.net  127.0.0.12:53     PENDING  2024010101 (-1)   0.9ms   -             NXDOMAIN
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from cname_flow.propagation.model import AddressAnswer

HEADER = ("HOST", "ADDRESS", "STATE", "SERIAL", "RTT", "VALUES", "DETAIL")
MAX_VALUES_CHARS = 60


def render_table(answers: Sequence[AddressAnswer]) -> str:
    """Return one line per answer under a header, columns padded to the widest cell.

    The SERIAL column shows each SOA serial against the highest serial of the round:
    ``(max)`` for the newest, ``(-N)`` for one N increments behind (RFC 1982 arithmetic
    is not needed for a diagnostic; serials are compared as integers).
    """
    top = max((a.serial for a in answers if a.serial is not None), default=None)
    rows = [HEADER, *(_row(answer, top) for answer in answers)]
    widths = [max(len(row[i]) for row in rows) for i in range(len(HEADER))]
    lines = ["  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True))
             for row in rows]
    return "\n".join(line.rstrip() for line in lines)


def _row(answer: AddressAnswer, top: int | None) -> tuple[str, ...]:
    detail = answer.detail
    if answer.nsid:
        detail = f"{detail}; nsid={answer.nsid}" if detail else f"nsid={answer.nsid}"
    return (
        answer.target.host,
        answer.target.endpoint,
        str(answer.state),
        _serial(answer.serial, top),
        "-" if answer.rtt_s is None else f"{answer.rtt_s * 1000:.1f}ms",
        _values(answer.values),
        detail or "-",
    )


def _serial(serial: int | None, top: int | None) -> str:
    if serial is None or top is None:
        return "-"
    return f"{serial} (max)" if serial == top else f"{serial} ({serial - top})"


def _values(values: frozenset[str]) -> str:
    if not values:
        return "-"
    text = ", ".join(sorted(values))
    return text if len(text) <= MAX_VALUES_CHARS else text[: MAX_VALUES_CHARS - 3] + "..."

"""Rendered UDP answers of one authoritative server, each reused exactly while it stays true.

A server answers from the state as of its own point in time (``now - lag``). An answer rendered
at ``at`` is served again at ``at2 >= at`` only when nothing it read has changed in between as
that server sees it: every subtree it read
(:class:`~cname_flow.sandbox.nameservers.zone.Validity`) shows
the same number of changes at ``at2`` as at ``at``. So a change at one name invalidates only the
answers that read that name (or an ancestor whose existence they relied on), and only once the
change is visible to that server, i.e. after its lag. The SOA serial of negative answers (which
every change of the zone bumps) is patched into the cached bytes instead of invalidating them.
"""

from __future__ import annotations

from dataclasses import dataclass

from cname_flow.sandbox.nameservers.zone import SOA_SERIAL_FROM_END, Validity
from cname_flow.sandbox.state import SandboxState

#: Rendered answers kept per server; the cache is emptied when it is full.
MAX_CACHED_ANSWERS = 20_000
#: A DNS message's ID is its first two bytes (RFC 1035 §4.1.1).
ID_BYTES = 2
_SERIAL_BYTES = 4


@dataclass(slots=True)
class _Entry:
    answer: bytes | None
    validity: Validity | None  # None: the answer depends on the query bytes only
    serial_at: int  # offset of the negative answer's SOA serial, -1 when there is none
    serial: int


class AnswerCache:
    """Rendered UDP answers keyed by the query without its ID.

    Args:
        state: the sandbox state the answers come from.
        max_entries: entries kept before the cache is emptied.

    Attributes:
        hits: lookups answered from the cache so far.
    """

    def __init__(self, state: SandboxState, max_entries: int = MAX_CACHED_ANSWERS) -> None:
        self.state = state
        self.max_entries = max_entries
        self._entries: dict[bytes, _Entry] = {}
        self.hits = 0

    def __len__(self) -> int:
        return len(self._entries)

    def lookup(self, wire: bytes, at: float) -> tuple[bool, bytes | None]:
        """The cached answer to ``wire`` (a query) as served at ``at``, with the query's ID.

        Returns:
            ``(True, answer)`` on a hit (``answer`` None: send nothing); ``(False, None)`` when
            there is no entry or it no longer holds at ``at``.
        """
        entry = self._entries.get(wire[ID_BYTES:])
        if entry is None or not self._holds(entry, at):
            return False, None
        self.hits += 1
        answer = entry.answer
        return True, None if answer is None else wire[:ID_BYTES] + answer[ID_BYTES:]

    def store(self, wire: bytes, answer: bytes | None, validity: Validity | None) -> None:
        """Remember the rendered ``answer`` to ``wire`` and what it depended on.

        Args:
            wire: the query.
            answer: the rendered UDP answer, or None when nothing is sent.
            validity: from :meth:`ZoneAnswerer.answer`; None when the answer depends on the
                query bytes alone (malformed queries, other classes).
        """
        if len(self._entries) >= self.max_entries:
            self._entries.clear()
        serial_at = -1
        if answer is not None and validity is not None and validity.soa_rdata:
            found = answer.rfind(validity.soa_rdata)  # absent when truncated (TC)
            if found >= 0:
                serial_at = found + len(validity.soa_rdata) - SOA_SERIAL_FROM_END
        serial = validity.serial if validity is not None else 0
        self._entries[wire[ID_BYTES:]] = _Entry(answer, validity, serial_at, serial)

    def _holds(self, entry: _Entry, at: float) -> bool:
        """True when ``entry`` is what the server would answer at ``at`` (serial patched)."""
        validity = entry.validity
        if validity is None:
            return True
        state = self.state
        with state.lock:
            if validity.epoch is not state.epoch or at < validity.at:
                return False
            zone = validity.zone
            if zone is None:
                return True
            index = zone.index
            for key, count in validity.seen:
                if index.seen(key, at) != count:
                    return False
            if entry.serial_at >= 0:
                serial = state.serial_at(zone, at)
                if serial != entry.serial and entry.answer is not None:
                    start, end = entry.serial_at, entry.serial_at + _SERIAL_BYTES
                    wire = entry.answer
                    entry.answer = wire[:start] + serial.to_bytes(_SERIAL_BYTES, "big") + wire[end:]
                    entry.serial = serial
        return True

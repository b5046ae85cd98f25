"""What a step may touch: the ports, the binding's inputs, and a memo of one run's reads.

* :class:`Ports`: the OSS and DNS ports, the propagation port, the injected clock and sleep;
  built once per command or job and shared by every binding.
* :class:`StepContext`: one binding's inputs (the desired state, its pre-flighted
  certificate, the TXT TTL, the PutCname retry bounds, a progress callback) over the ports.
  Immutable; it holds no state of a run.
* :class:`BindingRun`: what one run of one binding has read so far (its zone, the zone's
  authoritative nameserver addresses, the bucket's ListCname), read once per run. A resumed
  run starts with an empty memo, so nothing read before a crash is trusted after it.

Everything here is typed against ports (``typing.Protocol``): importing this module loads no
vendor SDK and no dnspython.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Protocol

from cname_flow.certs.pem import LocalCertificate
from cname_flow.dns.base import DnsProvider, Zone
from cname_flow.events import EventSink, NullSink
from cname_flow.journal import BindingOutputs
from cname_flow.manual.mode import ManualMode
from cname_flow.model import Binding, CnameEntry, Phase, txt_name
from cname_flow.oss.base import OssCnameApi
from cname_flow.propagation.model import NameserverAddress, PreState, Round
from cname_flow.workflow.putcname import OwnershipPolicy

#: Called after every propagation round (progress display).
RoundCallback = Callable[[Round], None]


class PropagationPort(Protocol):
    """The propagation check as the workflow uses it (the port of
    :class:`cname_flow.propagation.checker.PropagationChecker`).

    Every query goes to the zone's authoritative nameserver addresses directly (RD=0), never
    to a recursive resolver, so no negative answer is cached on the way (RFC 2308 §5).
    """

    def targets(self, zone: str, provider_nameservers: Sequence[str]) -> list[NameserverAddress]:
        """Every authoritative address of ``zone`` (provider NS set ∪ the apex NS set).

        Raises:
            StepError: no nameserver address was found (not retryable).
        """
        ...

    def pre_state(self, name: str, targets: Sequence[NameserverAddress]) -> PreState:
        """What the addresses serve at ``name`` before a write (TXT values, TTLs, RFC 2308
        negative TTL).

        Raises:
            StepError: ``targets`` is empty, or no address answered authoritatively.
        """
        ...

    def wait(
        self, name: str, value: str, targets: Sequence[NameserverAddress], *,
        written_at: float | None = None, on_round: RoundCallback | None = None,
    ) -> Round:
        """Block until every address serves TXT ``name`` = ``value``; the last round.

        ``written_at`` is a ``time.monotonic()`` reading of the write, or None for now.

        Raises:
            PropagationTimeout: the deadline passed; its table names the lagging addresses.
        """
        ...

    async def wait_async(
        self, name: str, value: str, targets: Sequence[NameserverAddress], *,
        written_at: float | None = None, on_round: RoundCallback | None = None,
    ) -> Round:
        """:meth:`wait` without holding a thread (asyncio).

        Raises:
            PropagationTimeout: the deadline passed; its table names the lagging addresses.
        """
        ...

    def wait_cname(
        self, name: str, target: str, targets: Sequence[NameserverAddress], *,
        written_at: float | None = None, on_round: RoundCallback | None = None,
    ) -> Round:
        """:meth:`wait` for ``name`` CNAME ``target``.

        Raises:
            PropagationTimeout: the deadline passed.
        """
        ...


def _utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True, slots=True)
class Ports:
    """The adapters a run talks through, shared by every binding of a command or job.

    Attributes:
        oss: the OSS CNAME API port.
        dns: the DNS provider holding the domains' zones.
        checker: the propagation port.
        sleep: blocking sleep in seconds (injected for tests).
        now: wall clock, aware UTC (injected for tests).
        bucket_listing: a bucket's ListCname shared by many bindings and possibly some seconds
            old (a batch job's), or None; used for a run's first read only, and trusted to
            show absence only (see :meth:`BindingRun.cname_entry`).
        events: where the run publishes :class:`~cname_flow.events.Event` s (verified, failed,
            instructions, token renewed); drops them by default.
    """

    oss: OssCnameApi
    dns: DnsProvider
    checker: PropagationPort
    sleep: Callable[[float], None] = time.sleep
    now: Callable[[], datetime] = _utc_now
    bucket_listing: Callable[[str], list[CnameEntry]] | None = None
    events: EventSink = field(default_factory=NullSink)


@dataclass(frozen=True, slots=True)
class StepContext:
    """One binding's inputs over the ports; immutable, so one context serves many runs.

    Attributes:
        binding: the desired state.
        ports: the adapters, clock and sleep.
        certificate: the pre-flighted local certificate or CAS id, or None.
        txt_ttl: TTL of the records we write, seconds (raised to the zone's floor); None picks
            clamp(zone MinTtl, 60, 600).
        ownership_policy: bounds of the PutCname NeedVerifyDomainOwnership retry.
        on_round: called after every propagation round (progress display), or None.
        manual: the binding's manual mode (:mod:`cname_flow.manual`): active when a person
            adds its TXT record; None or inactive otherwise (a record marked manual in the
            store still makes it manual, :func:`cname_flow.manual.mode.effective`).
    """

    binding: Binding
    ports: Ports
    certificate: LocalCertificate | str | None = None
    txt_ttl: int | None = None
    ownership_policy: OwnershipPolicy = field(default_factory=OwnershipPolicy)
    on_round: RoundCallback | None = None
    manual: ManualMode | None = None


@dataclass(frozen=True, slots=True)
class StepResult:
    """Where a step leads and what it learned (journaled as the ``done`` event's outputs)."""

    phase: Phase
    outputs: BindingOutputs = field(default_factory=lambda: BindingOutputs())


class BindingRun:
    """The reads one run of one binding makes once: its zone, the zone's authoritative
    addresses, the bucket's ListCname.

    Not thread-safe; a run belongs to one thread (or one task) at a time.

    Args:
        ports: where the reads go.
        binding: whose zone and ListCname row are read.
        manual: the binding's active manual mode: its zone comes from there, not from the
            DNS provider.
    """

    __slots__ = ("_addresses", "_binding", "_entries", "_manual", "_ports", "_zone")

    def __init__(self, ports: Ports, binding: Binding, manual: ManualMode | None = None) -> None:
        self._ports = ports
        self._binding = binding
        self._manual = manual if manual is not None and manual.active else None
        self._zone: Zone | None = None
        self._addresses: list[NameserverAddress] | None = None
        self._entries: list[CnameEntry] | None = None

    def zone(self) -> Zone:
        """The zone holding ``_dnsauth.<domain>`` at the DNS provider (found once per run).

        Raises:
            ZoneNotFound: no zone of the account holds the name.
            InputError: manual mode, and the zone could not be found.
        """
        if self._zone is None and self._manual is not None:
            self._zone = self._manual.zone_of(self._binding.domain)
        if self._zone is None:
            self._zone = self._ports.dns.find_zone(txt_name(self._binding.domain))
        return self._zone

    def authoritative_addresses(self) -> list[NameserverAddress]:
        """Every authoritative nameserver address of the zone (discovered once per run).

        Raises:
            StepError: no address was found (not retryable).
        """
        if self._addresses is None:
            zone = self.zone()
            self._addresses = self._ports.checker.targets(zone.name, zone.nameservers)
        return self._addresses

    def cname_entry(self, *, fresh: bool = False, shared: bool = True) -> CnameEntry | None:
        """The binding's ListCname row on its bucket, or None when the domain is not listed.

        Args:
            fresh: read ListCname now, whatever this run read before.
            shared: when this run has no listing yet, the job's shared
                :attr:`Ports.bucket_listing` may answer; a domain it shows is read again
                afresh, so it only ever saves the read of a domain not bound yet.
                ``shared=False`` reads OSS in that case.
        """
        if fresh or self._entries is None:
            bucket, entries = self._binding.bucket, None
            listing = self._ports.bucket_listing
            if not fresh and shared and listing is not None:
                entries = listing(bucket)
                if any(e.domain == self._binding.domain for e in entries):
                    entries = None  # a shared listing is trusted to show absence only
            self._entries = self._ports.oss.list_cnames(bucket) if entries is None else entries
        return next((e for e in self._entries if e.domain == self._binding.domain), None)

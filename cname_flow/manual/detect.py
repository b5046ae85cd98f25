"""Name the usual mistakes in a customer's ``_dnsauth`` record, from authoritative answers only.

The mistakes are the ones SaaS platforms' users make with verification records (next-wave.md
§1.2: mailgun/documentation#344 and stormkit-io/app-stormkit-io#426 for the doubled zone suffix,
vercel/vercel#912 for the record at the wrong level, is-a-dev/register#45776 for a CNAME beside
the TXT). Each has a distinct code, a message naming what was seen and where, and a remediation.

Input is :class:`~cname_flow.propagation.model.Round` s from the propagation checker (RD=0
queries to every authoritative address); pure: no I/O.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Literal

from cname_flow.propagation.model import AddressAnswer, AnswerState, Round

Severity = Literal["error", "warning"]

#: Every code :func:`detect` may return.
CODES = (
    "dns_txt_missing", "dns_txt_doubled_suffix", "dns_txt_at_zone_apex", "dns_txt_old_token",
    "dns_txt_quoted", "dns_txt_wrong_value", "dns_cname_at_dnsauth", "dns_txt_several_values",
    "dns_txt_lagging", "dns_nameserver_unusable",
)


@dataclass(frozen=True, slots=True)
class Finding:
    """One thing a check found.

    Attributes:
        code: one of :data:`CODES`.
        severity: ``"error"`` (the binding cannot go on) or ``"warning"``.
        message: what was seen, naming the record and the servers.
        remediation: what the customer should do.
    """

    code: str
    severity: Severity
    message: str
    remediation: str

    def as_json(self) -> dict[str, str]:
        """``{code, severity, message, remediation}``."""
        return {"code": self.code, "severity": self.severity, "message": self.message,
                "remediation": self.remediation}


@dataclass(frozen=True, slots=True)
class Observation:
    """One check's answers.

    Attributes:
        domain: the custom domain.
        zone: its zone apex.
        token: the current CNAME token.
        previous: tokens issued before it (older values the customer may have entered).
        main: the round at ``_dnsauth.<domain>``.
        doubled: the round at ``_dnsauth.<domain>.<zone>``, or None when not asked.
        apex: the round at ``_dnsauth.<zone>`` (when the domain is not the apex), or None.
    """

    domain: str
    zone: str
    token: str
    previous: tuple[str, ...]
    main: Round
    doubled: Round | None = None
    apex: Round | None = None


def _hosts(answers: Iterable[AddressAnswer]) -> str:
    return ", ".join(f"{a.target.host} ({a.target.endpoint})" for a in answers)


def _values(answers: Iterable[AddressAnswer]) -> set[str]:
    return {v for a in answers for v in a.values}


def detect(obs: Observation) -> list[Finding]:
    """Every finding of one check, errors first; empty when the record is served everywhere
    and nothing is odd."""
    name = f"_dnsauth.{obs.domain}"
    found = _misplaced(obs, name) + _values_found(obs, name) + _coverage(obs, name)
    return sorted(found, key=lambda f: f.severity != "error")


def _misplaced(obs: Observation, name: str) -> list[Finding]:
    out: list[Finding] = []
    rel = name[: -len(obs.zone) - 1] if name.endswith("." + obs.zone) else name
    if obs.doubled is not None and _values(obs.doubled.answers):
        out.append(Finding(
            "dns_txt_doubled_suffix", "error",
            f"a TXT record is at {name}.{obs.zone}: the DNS panel added the zone {obs.zone} to "
            "the full name that was typed",
            f"delete it and add the record with host {rel} (without {obs.zone}); the panel "
            "appends the zone itself"))
    if obs.apex is not None and obs.token in _values(obs.apex.answers):
        out.append(Finding(
            "dns_txt_at_zone_apex", "error",
            f"the token is at _dnsauth.{obs.zone} (the zone apex) instead of {name}",
            f"add the record at host {rel}, the name of {obs.domain}, not of the zone"))
    cnames = [a for a in obs.main.answers if a.state is AnswerState.CNAME]
    if cnames:
        out.append(Finding(
            "dns_cname_at_dnsauth", "error",
            f"{name} is a CNAME (to {cnames[0].cname}) at {_hosts(cnames)}: a name holding a "
            "CNAME can hold no TXT record (RFC 1034 §3.6.2)",
            f"delete the CNAME at {name} and add the TXT record there"))
    return out


def _values_found(obs: Observation, name: str) -> list[Finding]:
    values = _values(obs.main.answers)
    out: list[Finding] = []
    old = values & set(obs.previous)
    if old and obs.token not in values:
        out.append(Finding(
            "dns_txt_old_token", "error",
            f"{name} holds an earlier token value ({sorted(old)[0]}); OSS issued a new one "
            "because the earlier one expired after 72 h",
            f"change the TXT value at {name} to {obs.token}"))
    quoted = {v for v in values if v != obs.token and v.strip().strip('"').strip() == obs.token}
    if quoted and obs.token not in values:
        out.append(Finding(
            "dns_txt_quoted", "error",
            f"{name} holds the token with quotes or spaces around it ({sorted(quoted)[0]!r})",
            f"enter the value exactly as {obs.token}, without quotes or spaces"))
    others = values - {obs.token} - old - quoted
    if others and obs.token not in values and not old and not quoted:
        out.append(Finding(
            "dns_txt_wrong_value", "error",
            f"{name} holds {', '.join(sorted(others))}, not the token",
            f"change the TXT value at {name} to {obs.token}"))
    several = [a for a in obs.main.answers if obs.token in a.values and len(a.values) > 1]
    if several:
        extra = sorted(_values(several) - {obs.token})
        out.append(Finding(
            "dns_txt_several_values", "warning",
            f"{name} holds {len(extra) + 1} TXT values (the token and {', '.join(extra)})",
            f"remove the other values at {name}; keep only {obs.token}"))
    return out


def _coverage(obs: Observation, name: str) -> list[Finding]:
    answers = obs.main.answers
    ok = [a for a in answers if a.state is AnswerState.OK]
    pending = [a for a in answers if a.state is AnswerState.PENDING]
    odd = [a for a in answers if a.state in (AnswerState.LAME, AnswerState.UNREACHABLE,
                                              AnswerState.SERVFAIL)]
    out: list[Finding] = []
    if ok and pending:
        out.append(Finding(
            "dns_txt_lagging", "error",
            f"{name} is served by {_hosts(ok)} but not yet by {_hosts(pending)}",
            "wait: the lagging nameservers pick the change up on their next zone transfer "
            "(SOA refresh); if this lasts hours, check that they are secondaries of the zone "
            "you edited"))
    elif not ok and not _values(answers) and not any(a.state is AnswerState.CNAME
                                                       for a in answers):
        out.append(Finding(
            "dns_txt_missing", "error",
            f"no TXT record at {name} at any authoritative nameserver of {obs.zone} "
            f"({_hosts(pending or answers)})",
            "add the record as instructed (`cname-flow status` shows it)"))
    if odd:
        out.append(Finding(
            "dns_nameserver_unusable", "error" if not ok else "warning",
            f"{_hosts(odd)} gave no usable authoritative answer "
            f"({', '.join(sorted({a.detail or str(a.state) for a in odd}))})",
            f"check that these servers are authoritative for {obs.zone} (the zone's NS set)"))
    return out


def encode(findings: Sequence[Finding]) -> str:
    """The findings as the JSON string the journal keeps (``dns_findings``)."""
    return json.dumps([f.as_json() for f in findings], separators=(",", ":"))


def decode(text: object) -> list[dict[str, str]]:
    """The findings a record keeps, as JSON objects (empty for anything unreadable)."""
    if not isinstance(text, str):
        return []
    try:
        data = json.loads(text)
    except ValueError:
        return []
    return [dict(d) for d in data if isinstance(d, dict)] if isinstance(data, list) else []

"""Drift: what differs between the desired bindings and what was observed, as values. Pure: no I/O.

:func:`detect` turns the desired bindings and one :class:`Observed` per binding key into
:class:`Finding` values, each naming its :class:`DriftKind`, what a reconcile run would do about it
(:class:`Action`) and the digest of the observed state it was derived from (so a reviewed plan can
be refused when the world changed since). Which actions a policy allows is decided here too
(:func:`allowed`), so the plan shows it before anything runs.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

from cname_flow.certs import LocalCertificate, plan_certificate
from cname_flow.dns.base import OWNER_REMARK, RecordRef
from cname_flow.errors import IcpFilingMissing, UnsafePlan
from cname_flow.journal import BindingRecord
from cname_flow.model import AuxStep, Binding, CnameEntry, Phase
from cname_flow.oss.errors import oss_error_class
from cname_flow.workflow.machine import TERMINAL

#: A journal binding in a non-terminal phase with no event for this long (seconds) is stuck.
STUCK_AFTER_S = 3600.0


class DriftKind(StrEnum):
    """What differs. ``UNMANAGED`` and ``UNDESIRED_KEPT`` are notices, not drift."""

    BINDING_MISSING = "binding_missing"
    ICP_FILING_MISSING = "icp_filing_missing"
    NOT_ENABLED = "not_enabled"
    BOUND_ELSEWHERE = "bound_elsewhere"
    CERTIFICATE_MISMATCH = "certificate_mismatch"
    CERTIFICATE_EXPIRING = "certificate_expiring"
    ROUTE_MISSING = "route_missing"
    ROUTE_WRONG = "route_wrong"
    TXT_MISSING = "txt_missing"
    TXT_LEFTOVER = "txt_leftover"
    NOT_DESIRED = "not_desired"
    STUCK_JOB = "stuck_job"
    UNMANAGED = "unmanaged"
    UNDESIRED_KEPT = "undesired_kept"


#: Kinds that are information only: they never count as drift nor fail a run.
NOTICE_KINDS = frozenset({DriftKind.UNMANAGED, DriftKind.UNDESIRED_KEPT})


class Action(StrEnum):
    """What a run does about a finding."""

    BIND = "bind"                # drive the binding to BOUND (runner; steps observe first)
    UNBIND = "unbind"            # DeleteCname + delete our records (sync only)
    DELETE_TXT = "delete_txt"    # delete our leftover _dnsauth record
    FORGET_TXT = "forget_txt"    # journal only: our _dnsauth record is gone, stop tracking it
    NONE = "none"                # report only


class Policy(StrEnum):
    """Reconcile policies (external-dns vocabulary)."""

    UPSERT_ONLY = "upsert-only"
    SYNC = "sync"
    REPORT_ONLY = "report-only"


_ALLOWED: dict[Policy, frozenset[Action]] = {
    Policy.REPORT_ONLY: frozenset(),
    Policy.UPSERT_ONLY: frozenset({Action.BIND, Action.DELETE_TXT, Action.FORGET_TXT}),
    Policy.SYNC: frozenset({Action.BIND, Action.DELETE_TXT, Action.FORGET_TXT, Action.UNBIND}),
}

#: Actions that change remote state (they count against the change budget).
REMOTE_ACTIONS = frozenset({Action.BIND, Action.UNBIND, Action.DELETE_TXT})


def allowed(policy: Policy, action: Action) -> bool:
    """Whether ``policy`` lets a run take ``action``."""
    return action in _ALLOWED[policy]


@dataclass(frozen=True, slots=True)
class Observed:
    """Everything observed about one binding key.

    Attributes:
        key: ``"<bucket>/<domain>"``.
        entry: the domain's ListCname row on ``bucket``, or None.
        elsewhere: another listed bucket showing the domain, or None.
        txt: the ``_dnsauth.<domain>`` TXT records at the DNS provider.
        route: the ``<domain>`` CNAME records at the DNS provider (only read for route bindings).
        record: the journal's record of the key, or None.
    """

    key: str
    entry: CnameEntry | None
    elsewhere: str | None
    txt: tuple[RecordRef, ...]
    route: tuple[RecordRef, ...]
    record: BindingRecord | None

    @property
    def domain(self) -> str:
        """The domain part of the key."""
        return self.key.partition("/")[2]

    @property
    def made_by_us(self) -> bool:
        """True when the journal shows this tool's own PutCname bound the key (never adopted)."""
        r = self.record
        return (r is not None and r.phase == Phase.BOUND and r.put_request_id is not None
                and not r.fast_path)

    def ours(self, ref: RecordRef) -> bool:
        """Whether a DNS record is ours: its id is in the journal or it carries our remark."""
        ids = {self.record.txt_record_id, self.record.route_record_id} if self.record else set()
        return ref.remark == OWNER_REMARK or ref.record_id in ids

    def digest(self) -> str:
        """SHA-256 (hex, first 16 bytes) of the observed facts a decision depends on."""
        e, c = self.entry, self.entry.certificate if self.entry else None
        facts = {
            "entry": None if e is None else [e.status, c and c.cert_id, c and c.fingerprint,
                                             c and c.valid_end and c.valid_end.isoformat()],
            "elsewhere": self.elsewhere,
            "txt": sorted([r.record_id, r.value, r.remark] for r in self.txt),
            "route": sorted([r.record_id, r.value, r.remark] for r in self.route),
            "journal": None if self.record is None else [
                self.record.phase, self.record.txt_record_id, self.made_by_us],
        }
        blob = json.dumps(facts, sort_keys=True, separators=(",", ":")).encode()
        return hashlib.sha256(blob).hexdigest()[:32]


@dataclass(frozen=True, slots=True)
class Finding:
    """One thing that differs (or a notice), and what a run would do about it.

    Attributes:
        key: ``"<bucket>/<domain>"``.
        kind: the drift kind.
        detail: one sentence for people, naming ids, fingerprints and dates.
        action: what a run does about it.
        digest: :meth:`Observed.digest` of the key when the finding was made.
    """

    key: str
    kind: DriftKind
    detail: str
    action: Action
    digest: str

    @property
    def is_drift(self) -> bool:
        """False for notices."""
        return self.kind not in NOTICE_KINDS

    def to_json(self) -> dict[str, str]:
        """JSON-able form."""
        return {"key": self.key, "kind": str(self.kind), "detail": self.detail,
                "action": str(self.action), "digest": self.digest}

    @classmethod
    def from_json(cls, data: Mapping[str, object]) -> Finding:
        """Inverse of :meth:`to_json`.

        Raises:
            ValueError / KeyError: not a finding.
        """
        return cls(str(data["key"]), DriftKind(str(data["kind"])), str(data["detail"]),
                   Action(str(data["action"])), str(data["digest"]))


@dataclass(frozen=True, slots=True)
class DesiredState:
    """The desired bindings with their pre-flighted certificates and the thresholds.

    Attributes:
        bindings: key → binding.
        certificates: key → pre-flighted local certificate or CAS id (absent: none wanted).
        expiry_days: a bound certificate ending within this many days is drift.
        policy: decides whether an undesired binding of ours is drift (sync, which would
            unbind it) or a notice (upsert-only and report-only, which never unbind: both
            count it the same way).
    """

    bindings: Mapping[str, Binding]
    certificates: Mapping[str, LocalCertificate | str]
    expiry_days: float = 30.0
    policy: Policy = Policy.UPSERT_ONLY


def detect(desired: DesiredState, observed: Iterable[Observed], now: datetime) -> list[Finding]:
    """Every finding, in key order then kind order.

    Args:
        desired: the desired state.
        observed: one observation per key: every desired key, every journal key and every
            domain listed on a desired bucket.
        now: aware UTC time (expiry and stuck-job checks).
    """
    out: list[Finding] = []
    for obs in sorted(observed, key=lambda o: o.key):
        binding = desired.bindings.get(obs.key)
        found = (_desired_findings(desired, binding, obs, now) if binding is not None
                 else _undesired_findings(desired.policy, obs))
        out.extend(Finding(obs.key, kind, detail, action, obs.digest())
                   for kind, detail, action in found + _stuck(obs, binding, now))
    return out


_Raw = tuple[DriftKind, str, Action]


def _desired_findings(
    desired: DesiredState, b: Binding, obs: Observed, now: datetime
) -> list[_Raw]:
    e = obs.entry
    if obs.elsewhere is not None:
        return [(DriftKind.BOUND_ELSEWHERE, f"{b.domain} is bound to bucket {obs.elsewhere}, "
                 f"not {b.bucket}; unbind it there first", Action.NONE)]
    if e is None and _icp_refused(obs.record):
        return [(DriftKind.ICP_FILING_MISSING, f"OSS refused {b.domain} on {b.bucket}: the domain "
                 "has no ICP filing (mainland China bucket); file it, then run bind for it, or "
                 "bind it to a bucket outside mainland China", Action.NONE)]
    if e is None:
        return [(DriftKind.BINDING_MISSING, f"ListCname on {b.bucket} does not show {b.domain}",
                 Action.BIND)]
    if e.status != "Enabled":
        return [(DriftKind.NOT_ENABLED, f"{b.domain} has status {e.status} on {b.bucket}",
                 Action.BIND)]
    found = _certificate(desired, b, e, now, obs.record) + _route(b, obs)
    return found + _txt_missing(b, obs)


def _icp_refused(record: BindingRecord | None) -> bool:
    """Whether the journal's last failure of the key is OSS's "no ICP filing" answer: a
    terminal refusal that re-binding cannot clear until the filing exists, so reconcile reports
    it instead of binding again every run."""
    err = record.last_error if record is not None else None
    return err is not None and issubclass(oss_error_class(err.code, 0), IcpFilingMissing)


def _certificate(desired: DesiredState, b: Binding, e: CnameEntry, now: datetime,
                 record: BindingRecord | None) -> list[_Raw]:
    want = desired.certificates.get(b.key)
    if want is not None:
        try:
            plan = plan_certificate(e.certificate, want, force=b.options.force_cert)
            mismatch = plan.action != "none"
            why = plan.reason
        except UnsafePlan as exc:
            mismatch, why = True, exc.message
        if mismatch:
            shown = (f"{e.certificate.cert_id or '-'} ({e.certificate.fingerprint})"
                     if e.certificate else "no certificate")
            if _changed_out_of_band(b, e, record):
                return [(DriftKind.CERTIFICATE_MISMATCH, f"bound: {shown}, changed outside "
                         f"cname-flow (journal: {record.cert_id if record else None}); "
                         "set force_cert: true on this binding to replace it", Action.NONE)]
            return [(DriftKind.CERTIFICATE_MISMATCH, f"bound: {shown}; {why}", Action.BIND)]
    return _expiring(desired, e, now)


def _changed_out_of_band(b: Binding, e: CnameEntry, record: BindingRecord | None) -> bool:
    """The rule of ``steps.put_cname``: a CertId other than the one we verified needs force."""
    if b.options.force_cert or record is None or record.cname_status != "Enabled":
        return False
    current = e.certificate.cert_id if e.certificate else None
    return current != record.cert_id


def _expiring(desired: DesiredState, e: CnameEntry, now: datetime) -> list[_Raw]:
    cert = e.certificate
    if cert is None or cert.valid_end is None:
        return []
    left = cert.valid_end - now
    if left > timedelta(days=desired.expiry_days):
        return []
    state = "expired" if left.total_seconds() <= 0 else f"expires in {left.days} day(s)"
    return [(DriftKind.CERTIFICATE_EXPIRING,
             f"certificate {cert.cert_id or cert.fingerprint} {state} "
             f"({cert.valid_end.isoformat()}); give the manifest a new certificate", Action.NONE)]


def _route(b: Binding, obs: Observed) -> list[_Raw]:
    if not b.options.route:
        return []
    target = b.route_target
    if not obs.route:
        return [(DriftKind.ROUTE_MISSING, f"no CNAME at {b.domain}; want {target}", Action.BIND)]
    wrong = [r.value for r in obs.route if r.value.rstrip(".").lower() != target]
    if wrong:
        return [(DriftKind.ROUTE_WRONG, f"{b.domain} CNAME {', '.join(wrong)}; want {target}",
                 Action.BIND)]
    return []


def _txt_missing(b: Binding, obs: Observed) -> list[_Raw]:
    rec = obs.record
    if rec is None or rec.txt_record_id is None or b.options.remove_txt:
        return []
    if any(r.record_id == rec.txt_record_id for r in obs.txt):
        return []
    return [(DriftKind.TXT_MISSING, f"our _dnsauth.{b.domain} record {rec.txt_record_id} is gone; "
             "the domain is bound, so the proof is no longer needed: stop tracking it",
             Action.FORGET_TXT)]


def _undesired_findings(policy: Policy, obs: Observed) -> list[_Raw]:
    bucket = obs.key.partition("/")[0]
    if obs.entry is not None:
        if not obs.made_by_us:
            return [(DriftKind.UNMANAGED, f"{obs.domain} is bound to {bucket} but not by "
                     "cname-flow and not in the manifest; left alone", Action.NONE)]
        if policy is not Policy.SYNC:  # report-only counts it as upsert-only does
            return [(DriftKind.UNDESIRED_KEPT, f"{obs.domain} is no longer in the manifest; "
                     f"{policy} keeps it (sync would unbind it)", Action.NONE)]
        return [(DriftKind.NOT_DESIRED, f"{obs.domain} is no longer in the manifest; cname-flow "
                 f"bound it to {bucket}", Action.UNBIND)]
    ours = [r for r in obs.txt if obs.ours(r)]
    if ours:
        ids = ", ".join(r.record_id for r in ours)
        return [(DriftKind.TXT_LEFTOVER, f"our _dnsauth.{obs.domain} record(s) {ids} remain for a "
                 "domain no longer desired", Action.DELETE_TXT)]
    return []


def _stuck(obs: Observed, binding: Binding | None, now: datetime) -> list[_Raw]:
    rec = obs.record
    if rec is None or rec.phase in TERMINAL or rec.last_step == AuxStep.UNBIND:
        return []
    age = (now - rec.updated_at).total_seconds()
    if age <= STUCK_AFTER_S:
        return []
    what = f"journal shows {rec.phase} (last step {rec.last_step}) for {age / 3600:.1f} h"
    if binding is None:
        return [(DriftKind.STUCK_JOB, what + "; not in the manifest, left for a person",
                 Action.NONE)]
    return [(DriftKind.STUCK_JOB, what + "; resume it", Action.BIND)]
